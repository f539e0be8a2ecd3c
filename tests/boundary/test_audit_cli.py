"""`sieve audit list|show` against audit records in a DynamoDB table on the moto server."""

from __future__ import annotations

import time

import boto3
import orjson
import pytest

from processors.adapters.audit import DynamoDBAuditStore
from processors.cli import main
from processors.commands.audit import parse_since
from processors.core.boundary import AuditRecord
from processors.errors import SieveError


def record(i: int, rule: str, created: float, status="analysed") -> AuditRecord:
    return AuditRecord(
        audit_id=f"{int(created * 1000):013d}-{i:08x}", created_at=created, rule=rule, window_start=1_700_000_000 + 60 * i,
        window_end=1_700_000_060 + 60 * i, attempt=1, status=status, reason="", model_id="test.model-v1",
        prompt_system="SYSTEM TEXT", prompt_user=f"USER TEXT {i}", prompt_sha256="ab" * 32, digest_hash="cd" * 32,
        selected_keys=("status=500, client=ip-1a2b3c",), redaction_counts={"ipv4": 2}, tokens_in=100 + i, tokens_out=20,
        latency_ms=900, estimated_cost_usd=0.0125, expires_at=int(created) + 86400,
    )


@pytest.fixture()
def filled(tables, monkeypatch):
    monkeypatch.setenv("SIEVE_AUDIT_TABLE", tables["audit"])
    store = DynamoDBAuditStore(tables["audit"], client=boto3.client("dynamodb"))
    now = time.time()
    recs = [record(i, "errors-by-path" if i % 2 else "404-by-client", now - 3600 * (5 - i)) for i in range(5)]
    for r in recs:
        store.record(r)
    return recs


def test_list_newest_first_with_rule_since_and_limit(filled, capsys):
    assert main(["audit", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:5] == ["ID", "TIME", "RULE", "WINDOW/ROLE", "STATUS"]  # an FAQ record shows its role
    assert [line.split()[0] for line in out[1:]] == [r.audit_id for r in reversed(filled)]

    assert main(["audit", "list", "--rule", "errors-by-path", "--json"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["audit_id"] for r in rows] == [filled[3].audit_id, filled[1].audit_id]
    assert rows[0]["tokens_in"] == 103 and rows[0]["estimated_cost_usd"] == 0.0125 and "prompt_user" not in rows[0]

    assert main(["audit", "list", "--since", "150m", "--limit", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[1].split()[0] == filled[4].audit_id
    assert main(["audit", "list", "--since", "150m", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2  # the records 1 h and 2 h old


def test_show_prints_the_exact_prompt_and_fields(filled, capsys):
    assert main(["audit", "show", filled[2].audit_id]) == 0
    out = capsys.readouterr().out
    assert "status: analysed" in out and "tokens_in: 102" in out and "redaction_counts: {'ipv4': 2}" in out
    assert "--- system prompt (sent) ---\nSYSTEM TEXT" in out and "--- user prompt (sent) ---\nUSER TEXT 2" in out
    assert main(["audit", "show", filled[2].audit_id, "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["prompt_user"] == "USER TEXT 2" and data["selected_keys"] == ["status=500, client=ip-1a2b3c"]


def test_errors_are_clear(filled, capsys, monkeypatch):
    assert main(["audit", "show", "0000000000000-deadbeef"]) == 1
    assert "audit record '0000000000000-deadbeef' not found in table sieve-audit" in capsys.readouterr().err
    assert main(["audit", "list", "--table", "no-such-table"]) == 1
    err = capsys.readouterr().err
    assert "audit table 'no-such-table' does not exist" in err and "SIEVE_AUDIT_TABLE" in err
    assert main(["audit", "list", "--since", "yesterday-ish"]) == 1
    assert "--since 'yesterday-ish': not understood" in capsys.readouterr().err


def test_parse_since():
    assert parse_since("90m", now=10_000) == 10_000 - 5400
    assert parse_since("2d", now=200_000) == 200_000 - 172_800
    assert parse_since("2026-11-26T10:00") == parse_since("2026-11-26T10:00:00Z") == parse_since("2026-11-26T19:00+09:00")
    with pytest.raises(SieveError):
        parse_since("soon")
