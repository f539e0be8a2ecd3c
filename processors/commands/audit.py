"""`sieve audit list|show`: what was sent to a model, when, for which window, and what it cost.

    sieve audit list [--rule R] [--since 2h|2026-11-26T10:00] [--limit N] [--json]
    sieve audit show ID [--json]

FAQ answers are recorded too (`--rule faq`): the role, the question's sha256 (not its text), every
retrieved entry with its similarity and whether it was relevant, the entries given to the model (E1=id),
the redacted prompt, tokens, the reply and the outcome (answered | invalid_output | model_error |
budget_exhausted).

The table comes from --table, else $SIEVE_AUDIT_TABLE, else `sieve-audit`.

The prompts in a record were redacted before they were sent; everything printed here (prompts, the
model's reply, reasons, keys; tables and --json) passes the people's redaction again
(processors/core/surfaces.py), so a reply or an error message that quotes a secret is masked too. If
that changes a prompt, `show` says so: the boundary's redaction missed something.
"""

from __future__ import annotations

import os
import re
import sys
import time
from datetime import datetime, timezone

import boto3
import orjson

from processors.adapters.audit import DynamoDBAuditStore
from processors.core.surfaces import ForPeople
from processors.errors import SieveError

DEFAULT_TABLE = "sieve-audit"
_REL = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def register(sub) -> None:
    from processors.runtime.slack_terminal import CONFIG_HELP

    p = sub.add_parser("audit", help="list and show audit records of model calls")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    asub.required = True
    lp = asub.add_parser("list", help="newest first")
    lp.add_argument("--rule", help="only records of this rule")
    lp.add_argument("--since", help="relative (30m, 2h, 7d) or an ISO date/time (UTC unless it has an offset)")
    lp.add_argument("--limit", type=int, default=20, help="at most N records (default 20)")
    lp.add_argument("--json", action="store_true", help="one JSON object per line")
    lp.add_argument("--table", default=None, help=f"audit table (default: $SIEVE_AUDIT_TABLE or {DEFAULT_TABLE})")
    lp.add_argument("--config", help=CONFIG_HELP)
    lp.set_defaults(func=run_list)
    sp = asub.add_parser("show", help="one record in full, including the exact (redacted) prompt")
    sp.add_argument("id", help="an audit id from `sieve audit list`")
    sp.add_argument("--json", action="store_true", help="print the record as JSON")
    sp.add_argument("--table", default=None, help=f"audit table (default: $SIEVE_AUDIT_TABLE or {DEFAULT_TABLE})")
    sp.add_argument("--config", help=CONFIG_HELP)
    sp.set_defaults(func=run_show)


def parse_since(value: str, now: float | None = None) -> float:
    now = time.time() if now is None else now
    v = value.strip()
    m = _REL.match(v)
    if m:
        return now - int(m.group(1)) * _UNIT[m.group(2)]
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise SieveError(
            f"--since {value!r}: not understood; use a relative age like 30m, 2h, 7d or an ISO time like 2026-11-26T10:00"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _store(args) -> DynamoDBAuditStore:
    table = args.table or os.environ.get("SIEVE_AUDIT_TABLE") or DEFAULT_TABLE
    region = boto3.Session().region_name or "us-east-1"
    return DynamoDBAuditStore(table, client=boto3.client("dynamodb", region_name=region))


def _view(args) -> ForPeople:
    from processors.runtime.slack_terminal import people_view

    return people_view(getattr(args, "config", None))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_list(args) -> int:
    if args.limit < 1:
        raise SieveError(f"--limit {args.limit}: must be at least 1")
    since = parse_since(args.since) if args.since else None
    view = _view(args)
    records = _store(args).list(rule=args.rule, since=since, limit=args.limit)
    if args.json:
        for r in records:
            r.pop("prompt_system", None)
            r.pop("prompt_user", None)
            print(orjson.dumps(view.value(r), option=orjson.OPT_SORT_KEYS).decode())
        return 0
    if not records:
        print("no audit records" + (f" for rule {args.rule}" if args.rule else "") + (f" since {args.since}" if args.since else ""))
        return 0
    header = ("ID", "TIME", "RULE", "WINDOW/ROLE", "STATUS", "MODEL", "IN", "OUT", "MS")
    rows = [
        (
            r["audit_id"],
            _iso(r["created_at"]),
            r["rule"],
            (f"role {r.get('role', '?')}" if r.get("kind") == "faq"
             else f"{_iso(r['window_start'])}+{r['window_end'] - r['window_start']}s"),
            r["status"],
            r["model_id"],
            str(r.get("tokens_in", 0)),
            str(r.get("tokens_out", 0)),
            str(r.get("latency_ms", 0)),
        )
        for r in records
    ]
    rows = [tuple(view(c) for c in row) for row in rows]
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def run_show(args) -> int:
    view = _view(args)
    store = _store(args)
    record = store.get(args.id)
    if record is None:
        raise SieveError(f"audit record {args.id!r} not found in table {store.table}; list ids with `sieve audit list`")
    sent = view.value([record.get("prompt_system", ""), record.get("prompt_user", "")])
    masked_in_prompts = view.redacted
    record = view.value(record)
    if args.json:
        print(orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode())
    else:
        record.pop("prompt_system", None)
        record.pop("prompt_user", None)
        reply = record.pop("reply_text", "")
        for k in sorted(record):
            v = record[k]
            if k in ("created_at", "expires_at") and isinstance(v, (int, float)) and v:
                v = f"{v} ({_iso(v)})"
            print(f"{k}: {v}")
        print("\n--- system prompt (sent) ---\n" + sent[0])
        print("\n--- user prompt (sent) ---\n" + sent[1])
        print("\n--- reply ---\n" + (reply or "(none)"))
    if masked_in_prompts:
        print(f"warning: the prompt as sent matched the secret patterns {masked_in_prompts} time(s); masked here, so the "
              "text above differs from what prompt_sha256 covers. Check ai.redact in pipelines.yaml.", file=sys.stderr)
    return 0
