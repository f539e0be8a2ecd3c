"""The boundary end to end with a scripted analyser (a test double for the model; the real model path
is tested with the local model elsewhere). The digest, redaction, prompt, budget store, validation and
audit store are all the real ones, the stores on the moto server."""

from __future__ import annotations

import hashlib
import itertools
import json

import boto3
import orjson
import pytest

from processors.adapters.audit import DynamoDBAuditStore
from processors.adapters.budget_store import DynamoDBBudgetStore
from processors.core.boundary import BoundaryConfig, ModelPrice, analyse_window, load_analysis_schema
from processors.core.budget import BudgetConfig, utc_day
from processors.core.prompts import system_prompt
from processors.core.select import SelectionConfig, select_groups
from processors.ports import ModelReply

SECRET = b"test-pseudonym-secret-0123456789"
GOOD = {
    "hypotheses": [
        {"cause": "The order API times out waiting for database connections.", "facts": ["G1", "G1.S1"],
         "confidence": "medium"},
        {"cause": "One client retries aggressively against a failing backend.", "facts": ["G1"], "confidence": "low"},
    ],
    "next_checks": ["Check the connection pool metrics of the orders service."],
}
PLANTED = {
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    "card": "4242 4242 4242 4242",
    "password": "Tr0ub4dor&3x",
    "email": "alice.w@example.org",
    "ip": "203.0.113.77",
}


class ScriptedAnalyser:
    """Implements the Analyser port: replays scripted replies (text) or raises scripted exceptions."""

    def __init__(self, *script, model_id="test.model-v1"):
        self.script = list(script)
        self.model_id = model_id
        self.calls: list[dict] = []

    def complete(self, system, user, *, max_tokens, json_schema=None):
        self.calls.append({"system": system, "user": user, "max_tokens": max_tokens, "json_schema": json_schema})
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        text = step if isinstance(step, str) else json.dumps(step)
        return ModelReply(text=text, model_id=self.model_id, tokens_in=len(user) // 4, tokens_out=len(text) // 4, latency_ms=1200)


def lines():
    out = [f'10.0.0.{i % 4} - - [14/Nov/2023:22:13:{i:02d} +0000] "GET /api/orders/{100 + i} HTTP/1.1" 500 {300 + i} "-" "curl/8"'
           for i in range(30)]
    out.append(f'{PLANTED["ip"]} - - [14/Nov/2023:22:13:30 +0000] "POST /login?user={PLANTED["email"]}&password={PLANTED["password"]}'
               f' HTTP/1.1" 500 10 "-" "Bearer {PLANTED["jwt"]}"')
    out.append(f'10.0.0.1 - - [14/Nov/2023:22:13:31 +0000] "GET /pay?card={PLANTED["card"]}&k={PLANTED["aws"]} HTTP/1.1" 500 1 "-" "x"')
    return out


@pytest.fixture()
def world(report_factory, tables):
    report = report_factory(key_names=("status", "client"), rows=[(("500", PLANTED["ip"]), 412), (("404", "10.0.0.1"), 3)],
                            total=10_000)
    sel = select_groups(report, SelectionConfig(min_count=50), samples={("500", PLANTED["ip"]): lines()})
    client = boto3.client("dynamodb")
    clock = itertools.count(1_764_000_000, 0.5).__next__
    return {
        "report": report,
        "selected": sel.selected,
        "budget": DynamoDBBudgetStore(tables["state"], client=client, clock=clock),
        "audit": DynamoDBAuditStore(tables["audit"], client=client),
        "clock": clock,
        "config": BoundaryConfig(
            model_id="test.model-v1",
            redaction_secret=SECRET,
            budget=BudgetConfig(tokens_per_call=3000, calls_per_window=1, tokens_per_day=20_000, max_output_tokens=300),
            prices={"test.model-v1": ModelPrice(input_per_1k=0.25, output_per_1k=1.25)},
        ),
    }


def run(world, analyser, **overrides):
    cfg = world["config"]
    if overrides:
        cfg = BoundaryConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, **overrides})
    return analyse_window(world["report"], world["selected"], cfg, analyser, world["budget"], world["audit"], world["clock"])


def audit_items(world):
    return sorted(world["audit"].list(limit=100), key=lambda r: r["audit_id"])


def test_valid_answer_is_analysed_and_audited(world):
    analyser = ScriptedAnalyser(GOOD)
    out = run(world, analyser)
    assert out.status == "analysed", out.reason
    assert out.analysis.likely_cause == GOOD["hypotheses"][0]["cause"] and out.analysis.confidence == "medium"
    assert [h.cause for h in out.analysis.hypotheses] == [h["cause"] for h in GOOD["hypotheses"]]
    assert out.analysis.evidence[0].startswith("[G1] status=500")  # the computed line it cites, not model text
    call = analyser.calls[0]
    assert call["system"] == system_prompt("en") and call["max_tokens"] == 300
    assert call["json_schema"] == load_analysis_schema()
    assert out.tokens_in == len(call["user"]) // 4 and out.latency_ms == 1200 and out.model_id == "test.model-v1"
    assert out.estimated_cost_usd == pytest.approx(out.tokens_in / 1000 * 0.25 + out.tokens_out / 1000 * 1.25, abs=1e-6)
    block = call["user"].split("<<<SIEVE-DATA-BEGIN>>>\n", 1)[1].split("\n<<<SIEVE-DATA-END>>>", 1)[0]
    quoted = "".join(line[2:] + "\n" for line in block.split("\n"))  # strip the "| " prefixes
    assert hashlib.sha256(quoted.encode()).hexdigest() == out.digest_hash  # the hash is of exactly what was quoted
    (rec,) = audit_items(world)
    assert rec["status"] == "analysed" and rec["attempt"] == 1 and rec["rule"] == "errors-by-path"
    assert rec["prompt_user"] == call["user"] and rec["prompt_system"] == call["system"]
    assert rec["prompt_sha256"] == hashlib.sha256(f"{call['system']}\n\x00\n{call['user']}".encode()).hexdigest()
    assert rec["tokens_in"] == out.tokens_in and rec["tokens_out"] == out.tokens_out and rec["latency_ms"] == 1200
    assert rec["digest_hash"] == out.digest_hash and rec["selected_keys"][0].startswith("status=500, client=ip-")
    assert rec["redaction_counts"]["ipv4"] >= 1 and rec["expires_at"] > rec["created_at"] + 80 * 86400
    assert world["budget"].window_usage("errors-by-path#1700000000-1700000060") == {
        "calls": 1, "tokens": out.tokens_in + out.tokens_out}


def test_invalid_json_then_valid_retries_once_with_the_error(world):
    analyser = ScriptedAnalyser('{"hypotheses": [{"cause": "db", "facts": [', "```json\n" + json.dumps(GOOD) + "\n```")
    out = run(world, analyser)
    assert out.status == "analysed" and out.reason == "attempt 2"
    first, second = analyser.calls
    assert second["system"] == first["system"]
    assert second["user"].startswith(first["user"]) and "rejected by the validator: not JSON" in second["user"]
    assert [r["status"] for r in audit_items(world)] == ["invalid_output", "analysed"]
    usage = world["budget"].window_usage("errors-by-path#1700000000-1700000060")
    assert usage["calls"] == 1  # the retry is the same analysis
    assert usage["tokens"] == out.tokens_in + out.tokens_out  # both attempts, actual usage


def test_invalid_twice_is_invalid_output_with_facts_only(world):
    bad_schema = {**GOOD, "hypotheses": [{**GOOD["hypotheses"][0], "confidence": "certain"}], "extra": 1}
    analyser = ScriptedAnalyser("not json at all", bad_schema)
    out = run(world, analyser)
    assert out.status == "invalid_output" and out.analysis is None
    assert "attempt 2: does not match the schema" in out.reason and "certain" in out.reason
    assert len(analyser.calls) == 2 and out.digest_hash
    assert [r["status"] for r in audit_items(world)] == ["invalid_output", "invalid_output"]


def test_evidence_citing_a_line_that_is_not_in_the_digest_is_invalid(world):
    hallucinated = {**GOOD, "hypotheses": [{**GOOD["hypotheses"][0], "facts": ["G7.S3"]}]}
    analyser = ScriptedAnalyser(hallucinated, hallucinated)
    out = run(world, analyser)
    assert out.status == "invalid_output" and "cites G7.S3, which the digest does not have" in out.reason
    assert "valid ids: G1, G1.S1" in analyser.calls[1]["user"]


def test_timeout_is_model_error_and_still_audited(world):
    analyser = ScriptedAnalyser(TimeoutError(f"read timed out after 120s talking to {PLANTED['ip']}"))
    out = run(world, analyser)
    assert out.status == "model_error" and out.reason.startswith("TimeoutError: read timed out after 120s")
    assert PLANTED["ip"] not in out.reason  # exception text is redacted too
    (rec,) = audit_items(world)
    assert rec["status"] == "model_error" and rec["reason"] == out.reason
    day = world["budget"].day_usage(utc_day(1_764_000_000))  # the injected clock's day
    assert day["calls"] == 1 and day["tokens"] == rec["estimated_tokens"]  # settled conservatively at the estimate


def test_budget_exhausted_makes_no_call(world):
    analyser = ScriptedAnalyser(GOOD)
    out = run(world, analyser, budget=BudgetConfig(tokens_per_call=400, max_output_tokens=300))
    assert out.status == "budget_exhausted" and out.reason.startswith("tokens_per_call: estimated ")
    out = run(world, analyser, budget=BudgetConfig(tokens_per_call=3000, tokens_per_day=1000, max_output_tokens=300))
    assert out.status == "budget_exhausted" and out.reason.startswith("tokens_per_day:")
    assert analyser.calls == []
    assert [r["status"] for r in audit_items(world)] == ["budget_exhausted", "budget_exhausted"]


def test_a_redelivered_window_is_not_analysed_twice(world):
    analyser = ScriptedAnalyser(GOOD, GOOD)
    assert run(world, analyser).status == "analysed"
    again = run(world, analyser)
    assert again.status == "budget_exhausted" and "calls_per_window: 1 of 1" in again.reason
    assert len(analyser.calls) == 1


def test_nothing_selected_and_disabled_make_no_call_and_no_record(world):
    analyser = ScriptedAnalyser()
    out = analyse_window(world["report"], (), world["config"], analyser, world["budget"], world["audit"], world["clock"])
    assert out.status == "nothing_selected"
    assert run(world, analyser, enabled=False).status == "disabled"
    assert analyser.calls == [] and audit_items(world) == []


def test_no_audit_record_means_no_call(world):
    class Broken:
        def record(self, record):
            raise ConnectionError("audit table unreachable")

    analyser = ScriptedAnalyser(GOOD)
    out = analyse_window(world["report"], world["selected"], world["config"], analyser, world["budget"], Broken(), world["clock"])
    assert out.status == "model_error" and out.reason.startswith("not called: audit store failed: ConnectionError")
    assert analyser.calls == []


def test_planted_secrets_never_reach_the_prompt_or_the_audit_table(world):
    analyser = ScriptedAnalyser("{oops", GOOD)
    out = run(world, analyser)
    assert out.status == "analysed"
    sent = "\n".join(c["system"] + c["user"] for c in analyser.calls)
    raw_items = boto3.client("dynamodb").scan(TableName="sieve-audit")["Items"]
    stored = orjson.dumps(raw_items).decode()
    assert len(raw_items) == 2
    for kind, secret in PLANTED.items():
        assert secret not in sent, kind
        assert secret not in stored, kind
    assert "ip-" in sent and ("[REDACTED:jwt]" in sent or "[REDACTED:bearer-token]" in sent)
    assert "[REDACTED:card]" in sent and "[REDACTED:aws-access-key-id]" in sent and "[REDACTED:email]" in sent


def test_a_large_window_is_fitted_to_the_per_call_budget_not_refused(report_factory, tables):
    rows = [((f"5{i:02d}", f"/api/p{i}"), 1000 - i) for i in range(10)]
    report = report_factory(rows=rows)
    samples = {k: [f"shape {'w ' * j}" + "日本語のログ行 " * 40 for j in range(6)] for k, _ in rows}
    sel = select_groups(report, SelectionConfig(min_count=1, max_groups=10), samples=samples)
    cfg = BoundaryConfig(model_id="test.model-v1", redaction_secret=SECRET, budget=BudgetConfig(tokens_per_call=2000, max_output_tokens=300))
    client = boto3.client("dynamodb")
    # this window's digest has no "412" or "4.1%", so the answer may not state them (fact check)
    analyser = ScriptedAnalyser({**GOOD, "hypotheses": [{"cause": "The busiest backend fails most under load",
                                                          "facts": ["G1"], "confidence": "low"}]})
    out = analyse_window(report, sel.selected, cfg, analyser, DynamoDBBudgetStore(tables["state"], client=client),
                         DynamoDBAuditStore(tables["audit"], client=client), itertools.count(1_764_000_000).__next__)
    assert out.status == "analysed", out.reason
    (call,) = analyser.calls
    assert len((call["system"] + "\n" + call["user"]).encode()) / 3 + 300 <= 2000
    assert "omitted to fit the size cap" in call["user"]
