"""Planted secrets never reach a prompt, an audit record or a Slack payload, through the whole log
pipeline on the local stack, nor any surface people read: the terminal of `sieve demo`, `sieve topn`
(tables and --json), `sieve slack show`, `sieve audit list|show`, and the log records of the run.
The model is a recording stand-in here (the real model path is tested in tests/models and
test_demo.py): what is under test is what crosses the boundary and what is shown."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from processors import wiring
from processors.cli import main
from processors.ports import ModelReply
from processors.runtime.slack_receiver import SlackReceiver

from .conftest import local_notifier
from .test_logs_e2e import run_all

ROOT = Path(__file__).resolve().parents[2]

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJlLXNlY3JldC0xMjM0NTY3OA"
AKID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CARD = "4111111111111111"
CARD_DASHED = "5500-0000-0000-0004"
EMAIL = "alice.smith@example.org"
USER_EMAIL = "bob.jones@example.net"
PASSWORD = "hunter2-Sup3rSecret"
APIKEY = "sk_live_51H8xYzAbCdEfGhIjKlMn"
ACCESS_TOKEN = "at-7Hq2Lx9Vb3Nm4Kp8Rt"
SESSION = "s3ss10n-9f8e7d6c5b4a"
BEARER = "tok_4f3e2d1c0b9aZZyyXX"
CLIENT = "203.0.113.199"
SECRETS = (JWT, AKID, AWS_SECRET, CARD, CARD_DASHED, EMAIL, USER_EMAIL, PASSWORD, APIKEY, ACCESS_TOKEN, SESSION, BEARER)

# one secret or more in every field of a combined log line: user, path, query string, referer, user agent
REFERER_1 = f"https://partner.example.com/cb?access_token={ACCESS_TOKEN}&contact={EMAIL}"
REFERER_2 = f"https://shop.example.com/pay?cc={CARD_DASHED}&sid={SESSION}"
AGENT_1 = f"curl/8 {AKID}"
AGENT_2 = f"Mozilla/5.0 (Bearer {BEARER})"

#: a rule keyed on the referer and the user agent, so those fields become computed keys too
AGENT_RULE = {
    "Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/sieve/access*"], "LogFormat": "CLF",
    "Fields": {"6": "status", "8": "referer", "9": "agent"},
    "Contribution": {"Keys": ["agent", "referer"], "Filters": [{"Match": "status", "GreaterThan": 499}]},
    "AggregateOn": "Count",
}


def lines():
    out = []
    for i in range(40):
        ts = f"[04/Mar/2024:10:01:{i % 60:02d} +0000]"
        out.append(f'{CLIENT} - {USER_EMAIL} {ts} "GET /reset/{JWT}?email={EMAIL}&api_key={APIKEY} '
                   f'HTTP/1.1" 500 12 "{REFERER_1}" "{AGENT_1}"')
        out.append(f'{CLIENT} - - {ts} "POST /login?password={PASSWORD}&card={CARD}&key={AWS_SECRET} '
                   f'HTTP/1.1" 500 12 "{REFERER_2}" "{AGENT_2}"')
        out.append(f'{CLIENT} - {USER_EMAIL} {ts} "GET /admin/.env?id_token={JWT}&sid={SESSION} '
                   f'HTTP/1.1" 404 0 "{REFERER_1}" "{AGENT_2}"')
    return out


def leaks(text: str) -> list[str]:
    """The planted secrets found in `text`, also when a table wrapped one over several lines."""
    flat = re.sub(r"[\s│┃┆|]+", "", text)
    return [s for s in SECRETS if s in text or re.sub(r"\s+", "", s) in flat]


class RecordingAnalyser:
    def __init__(self):
        self.prompts: list[str] = []

    def complete(self, system, user, *, max_tokens, json_schema=None):
        self.prompts.append(system + "\n" + user)
        ids = [tok[1:-1] for tok in user.split() if tok.startswith("[G") and tok.endswith("]")]
        ids = sorted(ids, key=lambda i: not (".C" in i or i.endswith(".O")))  # a contrast fact first, if any
        answer = {"hypotheses": [{"cause": "The reset and login endpoints fail for one client.", "facts": [ids[0]],
                                  "confidence": "low"}], "next_checks": ["check the auth service"]}
        return ModelReply(json.dumps(answer), "recording", 100, 20, 1)


def _all_log_records(caplog) -> str:
    """Every captured record: message, extras and traceback."""
    fmt = logging.Formatter()
    return "\n".join(fmt.format(r) + " " + repr({k: v for k, v in vars(r).items() if k not in ("msg", "args")})
                     for r in caplog.records)


@pytest.fixture()
def agent_rule(tmp_path):
    path = tmp_path / "errors-by-agent.json"
    path.write_text(json.dumps(AGENT_RULE))
    return path


@pytest.fixture()
def wide_terminal(monkeypatch):
    # rich folds long cells at the terminal width; a wide one keeps each secret on one line
    monkeypatch.setenv("COLUMNS", "1000")


def test_planted_secrets_never_cross_the_boundary(make_stack, tmp_path, agent_rule, caplog, capsys, wide_terminal,
                                                  monkeypatch):
    def with_model(doc):
        doc["pipelines"]["logs"]["ai"]["analyser"] = {"kind": "bedrock", "model_id": "recording"}
        doc["pipelines"]["logs"]["rules"].append(str(agent_rule))
    stack = make_stack(with_model)
    # our loggers at DEBUG; the AWS SDK's wire logs (request bodies, opt-in DEBUG) stay at their default
    caplog.set_level(logging.DEBUG)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        monkeypatch.setattr(logging.getLogger(noisy), "level", logging.WARNING)
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
        saved = tmp_path / "slack.jsonl"
        saved.write_text("".join(json.dumps(p) + "\n" for p in receiver.accepted))
    assert any(d["status"] == "analysed" for d in result["finalised"])
    assert model.prompts, "the model was never called"
    audit = json.dumps(boto3.client("dynamodb").scan(TableName="sieve-audit")["Items"])
    assert "prompt_user" in audit
    logged = _all_log_records(caplog)
    assert caplog.records, "nothing was logged: the log assertion would prove nothing"
    for where, text in (("prompt", "\n".join(model.prompts)), ("audit", audit), ("slack", payloads),
                        ("log records", logged)):
        assert not leaks(text), f"{leaks(text)} reached the {where}"
    # the client address is pseudonymised for the model, and kept for people in Slack
    assert CLIENT not in "\n".join(model.prompts) and CLIENT not in audit
    assert "ip-" in "\n".join(model.prompts)
    assert "[REDACTED:jwt]" in payloads or "REDACTED" in payloads

    # what people read in the terminal about this run
    capsys.readouterr()
    audit_id = json.loads(json.dumps(boto3.client("dynamodb").scan(TableName="sieve-audit")["Items"]))[0]["sk"]["S"]
    for argv in (["slack", "show", str(saved), "--all"], ["audit", "list"], ["audit", "list", "--json"],
                 ["audit", "show", audit_id], ["audit", "show", audit_id, "--json"]):
        assert main(argv) == 0, argv
        out = capsys.readouterr()
        assert not leaks(out.out + out.err), f"sieve {' '.join(argv)} printed {leaks(out.out + out.err)}"


def test_topn_prints_no_secret(tmp_path, agent_rule, capsys, wide_terminal):
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines()) + "\n")
    rules = ["--rule", str(ROOT / "rules" / "errors-by-path.json"), "--rule", str(ROOT / "rules" / "404-by-client.json"),
             "--rule", str(agent_rule)]
    assert main(["topn", *rules, str(log)]) == 0
    out = capsys.readouterr()
    assert not leaks(out.out + out.err), f"sieve topn printed {leaks(out.out + out.err)}"
    assert "[REDACTED:" in out.out and CLIENT in out.out  # the rows are there, secrets masked, the client shown
    assert main(["topn", "--json", *rules, str(log)]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert sum(len(r["contributors"]) for r in doc["reports"]) >= 4
    assert not leaks(out.out + out.err), f"sieve topn --json printed {leaks(out.out + out.err)}"


def test_demo_terminal_shows_no_secret(tmp_path, agent_rule):
    """`sieve demo --log FILE --no-model`, as a new user runs it, on a log full of secrets."""
    from .conftest import write_config

    log = tmp_path / "access.log"
    log.write_text("\n".join(lines()) + "\n")
    config = write_config(tmp_path, lambda doc: doc["pipelines"]["logs"]["rules"].append(str(agent_rule)))
    out = tmp_path / "slack.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_", "SIEVE_"))}
    env.update({"SIEVE_DEMO_DIR": str(tmp_path / "demo"), "COLUMNS": "1000"})
    proc = subprocess.run([sys.executable, "-m", "processors.cli", "demo", "--log", str(log), "--no-model",
                           "--config", str(config), "--slack-out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert not leaks(proc.stdout + proc.stderr), f"sieve demo printed {leaks(proc.stdout + proc.stderr)}"
    assert "computed: errors-by-path" in proc.stdout and "[REDACTED:" in proc.stdout  # the table was printed
    assert out.exists() and not leaks(out.read_text())
