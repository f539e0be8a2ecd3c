"""No secret on a surface people read, where the input is not already clean: `sieve slack show` of a
payload saved elsewhere, `sieve audit` of a record whose reply or reason quotes a secret, the logs
processor's metric names. (tests/pipeline/test_secrets_e2e.py runs the whole pipeline.)"""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import boto3
import orjson
import pytest

from processors.adapters.audit import DynamoDBAuditStore
from processors.cli import main
from processors.core.types import AuditRecord
from processors.handlers import logs as logs_handler

AKID = "AKIAIOSFODNN7EXAMPLE"
EMAIL = "alice.smith@example.org"
CARD = "4111111111111111"
TOKEN = "hunter2-Sup3rSecret"
SECRETS = (AKID, EMAIL, CARD, TOKEN)
CLIENT = "198.51.100.7"


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.fixture(autouse=True)
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")


def test_slack_show_redacts_a_payload_that_was_not_clean(tmp_path, capsys):
    payload = {"text": f"top /login?password={TOKEN} by {CLIENT}",
               "blocks": [{"type": "header", "text": {"type": "plain_text", "text": f"errors for {EMAIL}"}},
                          {"type": "section", "block_id": "computed-topn",
                           "text": {"type": "mrkdwn", "text": f"```\n1  /pay?card={CARD}  40\n```"}},
                          {"type": "context", "elements": [{"type": "mrkdwn", "text": f"key {AKID}"}]}]}
    one = tmp_path / "payload.json"
    one.write_text(json.dumps(payload))
    log = tmp_path / "received.jsonl"
    log.write_text(json.dumps({"payload": payload}) + "\n" + json.dumps({"payload": {"text": f"mail {EMAIL}"}}) + "\n")
    for argv in (["slack", "show", str(one)], ["slack", "show", str(log), "--all"]):
        assert main(argv) == 0
        out = capsys.readouterr()
        assert not leaked(out.out + out.err), f"sieve {' '.join(argv)}: {leaked(out.out + out.err)}"
        assert "[REDACTED:email]" in out.out
    assert CLIENT in one.read_text() and TOKEN in one.read_text()  # the file itself is not rewritten


@pytest.fixture()
def audit_with_secrets(tables, monkeypatch):
    monkeypatch.setenv("SIEVE_AUDIT_TABLE", tables["audit"])
    store = DynamoDBAuditStore(tables["audit"], client=boto3.client("dynamodb"))
    now = time.time()
    rec = AuditRecord(
        audit_id=f"{int(now * 1000):013d}-0000beef", created_at=now, rule="errors-by-path", window_start=1_700_000_000,
        window_end=1_700_000_060, attempt=1, status="invalid_output",
        reason=f"does not match the schema: 'see {AKID}' is not one of ['low', 'medium', 'high']",
        model_id="test.model-v1", prompt_system="SYSTEM TEXT",
        prompt_user=f"[G1] path=/login?password={TOKEN} count 40 client ip-1a2b3c",  # a boundary that missed one
        prompt_sha256="ab" * 32, digest_hash="cd" * 32,
        selected_keys=(f"path=/pay?card={CARD}",), redaction_counts={"ipv4": 2}, tokens_in=100, tokens_out=20,
        latency_ms=900, reply_text=f'{{"likely_cause": "user {EMAIL} with key {AKID}", "confidence": "see {AKID}"}}',
        expires_at=int(now) + 86400)
    store.record(rec)
    return rec


def test_audit_list_and_show_redact_reply_reason_keys_and_prompts(audit_with_secrets, capsys):
    rid = audit_with_secrets.audit_id
    for argv in (["audit", "list"], ["audit", "list", "--json"], ["audit", "show", rid], ["audit", "show", rid, "--json"]):
        assert main(argv) == 0, argv
        out = capsys.readouterr()
        assert not leaked(out.out + out.err), f"sieve {' '.join(argv)}: {leaked(out.out + out.err)}"
        if argv[1] == "show":
            # the prompt held a secret: shown masked, and said so, since it is no longer what was sent
            assert "the prompt as sent matched the secret patterns 1 time(s)" in out.err
    assert main(["audit", "show", rid, "--json"]) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["reply_text"].startswith('{"likely_cause": "user [REDACTED:email]')
    assert data["selected_keys"] == ["path=/pay?card=[REDACTED:card]"] and "ip-1a2b3c" in data["prompt_user"]


class _Recorder:
    def __init__(self):
        self.names: list[str] = []

    def add_metric(self, *, name, unit, value):
        self.names.append(name)

    def flush_metrics(self):
        pass


def test_metric_names_come_from_a_bounded_vocabulary(monkeypatch):
    rec = _Recorder()
    monkeypatch.setattr(logs_handler, "metrics", rec)
    # what emit_metrics reads of a ShardState; a reason or counter outside the vocabulary (a parser added
    # later, a state restored from an older version) must not turn log text into a metric name
    st = SimpleNamespace(stats=SimpleNamespace(events=5, parsed=3,
                                               rejected={"bad_status": 1, f"weird /login?password={TOKEN}": 1}),
                         counters={"records": 5, "rejected_record:bad_gzip": 1, f"rejected_record:{EMAIL}": 1,
                                   f"key {AKID}": 2})
    logs_handler.emit_metrics(st)
    assert not leaked(" ".join(rec.names)), rec.names
    assert sorted(rec.names) == sorted(["Events", "EventsParsed", "LinesRejected_bad_status", "LinesRejected_other",
                                        "Records", "RejectedRecordBadGzip", "RejectedRecordOther", "Other"])
