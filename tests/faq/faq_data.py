"""A small bilingual FAQ with roles public / staff / unknown / missing."""

from __future__ import annotations

import json
from pathlib import Path

ENTRIES = [
    {"id": "en-password", "role": "public", "lang": "en", "question": "How do I reset my password?",
     "answer": "Open Settings > Account and choose Reset password. A reset link is e-mailed to you.",
     "source_url": "https://help.example.com/en/password", "updated_at": "2024-05-01T09:00:00Z"},
    {"id": "ja-password", "role": "public", "lang": "ja", "question": "パスワードをリセットするには？",
     "answer": "設定のアカウント画面で「パスワードをリセット」を選ぶと、リセット用のリンクがメールで届きます。",
     "source_url": "https://help.example.com/ja/password", "updated_at": "2024-05-01T09:00:00+09:00"},
    {"id": "ja-returns", "role": "public", "lang": "ja", "question": "商品を返品できますか？",
     "answer": "購入から30日以内であれば、未使用の商品を返品できます。",
     "source_url": "https://help.example.com/ja/returns", "updated_at": 1714554000},
    {"id": "en-office-hours", "role": "public", "lang": "en", "question": "What are the office opening hours?",
     "answer": "The office is open from 9:00 to 18:00 on weekdays.",
     "source_url": "https://help.example.com/en/hours", "updated_at": "2024-05-01T09:00:00Z"},
    {"id": "en-vpn", "role": "staff", "lang": "en", "question": "How do I request VPN access?",
     "answer": "Staff request VPN access in the IT portal under Network > VPN; approval takes one day.",
     "source_url": "https://intranet.example.com/it/vpn", "updated_at": "2024-05-01T09:00:00Z"},
    {"id": "ja-payroll", "role": "staff", "lang": "ja", "question": "給与の支払日はいつですか？",
     "answer": "給与は毎月25日に支払われます。25日が休日の場合は前営業日です。",
     "source_url": "https://intranet.example.com/hr/payroll", "updated_at": "2024-05-01T09:00:00Z"},
    {"id": "en-parking", "role": "contractor", "lang": "en", "question": "How do I get a parking badge?",
     "answer": "Ask reception for a parking badge.",
     "source_url": "https://intranet.example.com/parking", "updated_at": "2024-05-01T09:00:00Z"},
    {"id": "en-norole", "lang": "en", "question": "Where is the cafeteria?",
     "answer": "The cafeteria is on the ground floor.",
     "source_url": "https://intranet.example.com/cafeteria", "updated_at": "2024-05-01T09:00:00Z"},
]

PUBLIC = {"en-password", "ja-password", "ja-returns", "en-office-hours"}
STAFF = PUBLIC | {"en-vpn", "ja-payroll"}
NOWHERE = {"en-parking", "en-norole"}


def write_jsonl(path: Path, entries=ENTRIES, extra_lines=()) -> Path:
    lines = [json.dumps(e, ensure_ascii=False) for e in entries] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
