"""The local Slack receiver: real HTTP, Slack's validation, scripting, the CLI and the terminal view."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from rich.console import Console

from processors.cli import main
from processors.core.slack_blocks import render
from processors.core.types import Analysis
from processors.runtime.slack_terminal import payload_renderable
from tests.slack.slack_factories import analysed, report
from tests.slack.test_blocks import huge_report


def post(url: str, body: bytes | str) -> tuple[int, str, dict]:
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_accepts_a_rendered_report_and_saves_it(receiver):
    payload = render(report())
    assert post(receiver.url, json.dumps(payload))[:2] == (200, "ok")
    assert receiver.accepted == [payload]
    lines = receiver.out.read_text().splitlines()
    assert [json.loads(line)["payload"] for line in lines] == [payload]


def test_huge_report_after_truncation_is_accepted(receiver):
    status, answer, _ = post(receiver.url, json.dumps(render(huge_report(), max_rows=200)))
    assert (status, answer) == (200, "ok")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("not json", "invalid_payload"),
        ("[1, 2]", "invalid_payload"),
        ("{}", "no_text"),
        (json.dumps({"text": "x", "blocks": [section("a")] * 51}), "invalid_blocks"),
        (json.dumps({"blocks": [section("a" * 3001)]}), "invalid_blocks"),
        (json.dumps({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}), "invalid_blocks"),
        (json.dumps({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]}), "invalid_blocks"),
        (json.dumps({"blocks": [{"type": "section"}]}), "invalid_blocks"),
        (json.dumps({"blocks": [{"type": "marquee"}]}), "invalid_blocks"),
        (json.dumps({"blocks": [section("a" * 3000)] * 5}), "msg_blocks_too_long"),
    ],
    ids=["not-json", "array", "empty", "51-blocks", "section-3001", "header-151", "header-mrkdwn", "empty-section",
         "unknown-type", "total-15000"],
)
def test_rejects_what_slack_rejects(receiver, body, error):
    status, answer, _ = post(receiver.url, body)
    assert (status, answer) == (400, error)
    assert receiver.accepted == [] and not receiver.out.exists()
    assert [r.status for r in receiver.requests] == [400]


def test_limits_are_inclusive(receiver):
    ok = {"text": "x", "blocks": [section("a" * 3000)] + [section("b")] * 49}
    assert post(receiver.url, json.dumps(ok))[:2] == (200, "ok")


def test_unknown_path_is_404(receiver):
    assert post(receiver.base_url + "/hooks/x", '{"text": "x"}')[:2] == (404, "no_service")
    # the Web API is served now (see test_web_api.py); without a bot token it answers like Slack
    status, answer, _ = post(receiver.base_url + "/api/chat.postMessage", '{"text": "x"}')
    assert (status, json.loads(answer)) == (200, {"ok": False, "error": "not_authed"})


def test_scripted_failures_then_recovery(receiver):
    receiver.fail_next(1, 429, retry_after=7)
    receiver.fail_next(1, 500)
    status, answer, headers = post(receiver.url, '{"text": "a"}')
    assert (status, answer, headers.get("Retry-After")) == (429, "rate_limited", "7")
    assert post(receiver.url, '{"text": "a"}')[:2] == (500, "internal_error")
    assert post(receiver.url, '{"text": "a"}')[:2] == (200, "ok")
    assert [r.status for r in receiver.requests] == [429, 500, 200]
    assert [r.at for r in receiver.requests] == sorted(r.at for r in receiver.requests)
    assert len(receiver.accepted) == 1


def test_terminal_view_separates_computed_from_inferred():
    r = report(outcome=analysed(analysis=Analysis("pool <!channel> exhausted & more", ("e1",), ("c1",), "high")))
    console = Console(record=True, width=140, color_system=None)
    console.print(payload_renderable(render(r)))
    out = console.export_text()
    computed, inferred = out.index("Computed — deterministic"), out.index("AI inference — not verified")
    assert computed < out.index("10.0.0.1, 500") < inferred < out.index("pool <!channel> exhausted & more")
    assert "tokens 812 in / 143 out" in out[inferred:]


def test_cli_show_renders_a_saved_payload_and_a_receiver_log(tmp_path, capsys):
    single = tmp_path / "payload.json"
    single.write_text(json.dumps(render(report(outcome=analysed(status="budget_exhausted", analysis=None)))))
    assert main(["slack", "show", str(single)]) == 0
    out = capsys.readouterr().out
    assert "Computed — deterministic" in out and "budget is exhausted" in out

    log = tmp_path / "received.jsonl"
    log.write_text("".join(json.dumps({"payload": {"text": f"message {i}"}}) + "\n" for i in range(3)))
    assert main(["slack", "show", str(log)]) == 0
    out = capsys.readouterr().out
    assert "message 2" in out and "message 0" not in out
    assert main(["slack", "show", "--all", str(log)]) == 0
    assert "message 0" in capsys.readouterr().out


def test_cli_show_errors_are_clear(tmp_path, capsys):
    assert main(["slack", "show", str(tmp_path / "missing.json")]) == 1
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{oops\n')
    assert main(["slack", "show", str(bad)]) == 1
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err


def test_cli_receive_runs_a_real_server(tmp_path):
    out = tmp_path / "rx.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "processors.cli", "slack", "receive", "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=os.getcwd(),
    )
    try:
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "/services/" in line:
                url = line.strip()
        assert url, f"no URL printed; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        assert post(url, json.dumps({"text": "hello"}))[:2] == (200, "ok")
        assert post(url, "{}")[:2] == (400, "no_text")
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "2 request(s), 1 accepted" in rest
    assert [json.loads(line)["payload"] for line in out.read_text().splitlines()] == [{"text": "hello"}]
