"""Planted secrets never reach a prompt, an audit record or a Slack payload, through the whole log
pipeline on the local stack. The model is a recording stand-in here (the real model path is tested
in tests/models and test_demo.py): what is under test is what crosses the boundary."""

from __future__ import annotations

import json

import boto3

from processors import wiring
from processors.handlers import finaliser
from processors.ports import ModelReply
from processors.runtime.slack_receiver import SlackReceiver

from .conftest import local_notifier
from .test_logs_e2e import run_all

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJlLXNlY3JldC0xMjM0NTY3OA"
AKID = "AKIAIOSFODNN7EXAMPLE"
CARD = "4111111111111111"
EMAIL = "alice.smith@example.org"
PASSWORD = "hunter2-Sup3rSecret"
APIKEY = "sk_live_51H8xYzAbCdEfGhIjKlMn"
CLIENT = "203.0.113.199"
SECRETS = (JWT, AKID, CARD, EMAIL, PASSWORD, APIKEY)


def lines():
    out = []
    for i in range(40):
        out.append(f'{CLIENT} - - [04/Mar/2024:10:01:{i % 60:02d} +0000] "GET /reset/{JWT}?email={EMAIL}&api_key={APIKEY} '
                   f'HTTP/1.1" 500 12 "-" "curl/8 {AKID}"')
        out.append(f'{CLIENT} - - [04/Mar/2024:10:01:{i % 60:02d} +0000] "POST /login?password={PASSWORD}&card={CARD} '
                   f'HTTP/1.1" 500 12 "-" "Mozilla/5.0"')
    return out


class RecordingAnalyser:
    def __init__(self):
        self.prompts: list[str] = []

    def complete(self, system, user, *, max_tokens, json_schema=None):
        self.prompts.append(system + "\n" + user)
        ids = [tok[1:-1] for tok in user.split() if tok.startswith("[G") and tok.endswith("]")]
        answer = {"likely_cause": "The reset and login endpoints fail for one client.",
                  "evidence": [f"[{ids[0]}] 500s on the reset endpoint"], "next_checks": ["check the auth service"],
                  "confidence": "low"}
        return ModelReply(json.dumps(answer), "recording", 100, 20, 1)


def test_planted_secrets_never_cross_the_boundary(make_stack, tmp_path):
    def with_model(doc):
        doc["pipelines"]["logs"]["ai"]["analyser"] = {"kind": "bedrock", "model_id": "recording"}
    stack = make_stack(with_model)
    k = boto3.client("kinesis")
    k.put_records(StreamName="sieve-access-logs", Records=[{"Data": line.encode(), "PartitionKey": str(i)}
                                                           for i, line in enumerate(lines())])
    run_all(stack)
    model = RecordingAnalyser()
    with SlackReceiver() as receiver:
        notifier = local_notifier(receiver.url)
        rt = wiring.finaliser(stack.loaded(), notifier=notifier, analyser=model)
        result = rt.run(flush=True)
        payloads = json.dumps(receiver.accepted)
    assert any(d["status"] == "analysed" for d in result["finalised"])
    assert model.prompts, "the model was never called"
    audit = json.dumps(boto3.client("dynamodb").scan(TableName="sieve-audit")["Items"])
    assert "prompt_user" in audit
    for secret in SECRETS:
        for where, text in (("prompt", "\n".join(model.prompts)), ("audit", audit), ("slack", payloads)):
            assert secret not in text, f"{secret!r} reached the {where}"
    # the client address is pseudonymised for the model, and kept for people in Slack
    assert CLIENT not in "\n".join(model.prompts) and CLIENT not in audit
    assert "ip-" in "\n".join(model.prompts)
    assert "[REDACTED:jwt]" in payloads or "REDACTED" in payloads
