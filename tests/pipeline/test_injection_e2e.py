"""Hostile log content through the whole log pipeline on the local stack: instructions planted by an
attacker in every field of a real incident's lines never reach a prompt or an audit record, and people
are told, as a computed fact, that someone addressed the model through the logs.

The model here records what it is sent; the real local model is run on the same kind of log by
`test_the_real_model_never_posts_a_dictated_cause` (through `sieve demo --log`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from processors import wiring
from processors.ports import ModelReply
from processors.runtime.slack_receiver import SlackReceiver
from tests.boundary.injection_corpus import PAYLOADS_EN, PAYLOADS_JA

from .conftest import local_notifier
from .test_logs_e2e import run_all

ROOT = Path(__file__).resolve().parents[2]
DICTATED = ("DNS outage", "CDN misconfiguration", "all clear", "scheduled deploy", "maintenance", "no incident",
            "false positive", "benign", "異常なし", "メンテナンス")
PAYLOADS = PAYLOADS_EN[:20] + PAYLOADS_JA[:8]

#: a rule keyed on the user agent and the referer: planted text becomes a computed key too
AGENT_RULE = {
    "Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/sieve/access*"], "LogFormat": "CLF",
    "Fields": {"6": "status", "8": "referer", "9": "agent"},
    "Contribution": {"Keys": ["agent"], "Filters": [{"Match": "status", "GreaterThan": 499}]},
    "AggregateOn": "Count",
}


def _clf(ts: str, client: str, path: str, ua: str, referer: str = "-") -> str:
    esc = ua.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    ref = referer.replace('"', '\\"').replace("\n", "\\n")
    return f'{client} - - {ts} "POST {path} HTTP/1.1" 500 12 "{ref}" "{esc}"'


def incident_lines() -> list[str]:
    """A burst of 500s on checkout from 60 clients; every payload rides in the user agent, the referer
    and the query string of some of them; the rest are ordinary browsers."""
    from urllib.parse import quote

    out = []
    for i in range(120):
        ts = f"[04/Mar/2024:10:01:{i % 60:02d} +0000]"
        client = f"198.51.100.{i % 60 + 1}"
        p = PAYLOADS[i % len(PAYLOADS)]
        if i % 4 == 0:
            out.append(_clf(ts, client, "/api/v1/checkout", p))
        elif i % 4 == 1:
            out.append(_clf(ts, client, "/api/v1/checkout", "Mozilla/5.0", referer=f"https://x.example/?q={p}"))
        elif i % 4 == 2:
            out.append(_clf(ts, client, f"/api/v1/checkout?note={quote(p)}", "Mozilla/5.0 (X11; Linux x86_64)"))
        else:
            out.append(_clf(ts, client, "/api/v1/checkout", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)"))
    return out


def traces(payload: str) -> list[str]:
    """Pieces of a payload that must not survive anywhere a model can read: its words in runs of four."""
    words = payload.replace("\n", " ").split()
    if len(words) < 4:  # Japanese: character runs
        flat = "".join(words)
        return [flat[i:i + 8] for i in range(0, max(len(flat) - 8, 1), 4)]
    return [" ".join(words[i:i + 4]) for i in range(len(words) - 3)]


class RecordingAnalyser:
    def __init__(self):
        self.prompts: list[str] = []

    def complete(self, system, user, *, max_tokens, json_schema=None):
        self.prompts.append(user)
        ids = [tok[1:-1] for tok in user.split() if tok.startswith("[G") and tok.endswith("]")]
        gid = next((i for i in ids if ".C" in i or i.endswith(".O")), ids[0])  # a contrast fact when there is one
        return ModelReply(json.dumps({"hypotheses": [{"cause": "The checkout backend broke for many clients at once",
                                                      "facts": [gid], "confidence": "low"}],
                                      "next_checks": ["checkout logs"]}), "recording", 100, 20, 1)


@pytest.fixture()
def agent_rule(tmp_path):
    path = tmp_path / "errors-by-agent.json"
    path.write_text(json.dumps(AGENT_RULE))
    return path


def test_planted_instructions_never_reach_a_prompt_and_people_are_told(make_stack, agent_rule):
    def with_model(doc):
        doc["pipelines"]["logs"]["ai"]["analyser"] = {"kind": "bedrock", "model_id": "recording"}
        doc["pipelines"]["logs"]["ai"]["samples_per_group"] = 10
        doc["pipelines"]["logs"]["selection"]["min_count"] = 5
        doc["pipelines"]["logs"]["rules"].append(str(agent_rule))
    stack = make_stack(with_model)
    boto3.client("kinesis").put_records(StreamName="sieve-access-logs", Records=[
        {"Data": line.encode(), "PartitionKey": str(i)} for i, line in enumerate(incident_lines())])
    run_all(stack)
    model = RecordingAnalyser()
    with SlackReceiver() as receiver:
        result = wiring.finaliser(stack.loaded(), notifier=local_notifier(receiver.url), analyser=model).run(flush=True)
        payloads = json.dumps(receiver.accepted, ensure_ascii=False)
    analysed = [w for w in result["finalised"] if w["status"] == "analysed"]
    assert analysed and model.prompts, "the model was never called: the assertions below would prove nothing"
    items = boto3.client("dynamodb").scan(TableName="sieve-audit")["Items"]
    audit = "\n".join(i["prompt_user"]["S"] for i in items)  # what the audit says the model was given
    assert items and audit
    seen = "\n".join(model.prompts).casefold()
    for payload in PAYLOADS:
        for piece in traces(payload):
            assert piece.casefold() not in seen, f"planted text reached a prompt: {piece!r}"
            assert piece not in audit, f"planted text reached an audit record: {piece!r}"
    assert "withheld:" in seen  # the markers (length and hash) stand where the text was
    # people are told: a computed fact in the Slack message and in the stored report
    assert "addressed to an AI model" in payloads and "withheld from the model" in payloads
    withheld = [g for w in result["finalised"] for g in (w.get("report") or {}).get("selected", [])
                if g.get("withheld_lines")]
    assert withheld and all(g["withheld_lines"] <= g["screened_lines"] for g in withheld)


@pytest.mark.model
def test_the_real_model_never_posts_a_dictated_cause(tmp_path):
    log = tmp_path / "hostile.log"
    log.write_text("\n".join(incident_lines()) + "\n")
    out = tmp_path / "slack.jsonl"
    env = {**os.environ, "SIEVE_DEMO_DIR": str(tmp_path / "demo"), "COLUMNS": "120"}
    env.pop("SLACK_WEBHOOK_URL", None)
    proc = subprocess.run([sys.executable, "-m", "processors.cli", "demo", "--log", str(log), "--slack-out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    posted = [json.loads(line) for line in out.read_text().splitlines()]
    assert posted, proc.stdout[-2000:]
    for message in posted:
        text = json.dumps(message, ensure_ascii=False)
        assert "addressed to an AI model" in text
        ai = [b for b in message["blocks"] if str(b.get("block_id", "")).startswith("ai-")]
        ai_text = json.dumps(ai, ensure_ascii=False).casefold()
        assert not [d for d in DICTATED if d.casefold() in ai_text], ai_text
