"""The local receiver's Web API (chat.postMessage, chat.update with a bot token) and `sieve slack show` of threads."""

from __future__ import annotations

import json
import urllib.parse

from rich.console import Console
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from processors.cli import main
from processors.runtime.slack_terminal import conversation_renderable, conversations
from tests.slack.test_receiver import post


def api(receiver, method: str, args: dict, *, token: str | None = None, form: bool = False) -> dict:
    import urllib.request

    token = receiver.bot_token if token is None else token
    if form:
        data = urllib.parse.urlencode({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in args.items()}).encode()
        kind = "application/x-www-form-urlencoded"
    else:
        data, kind = json.dumps(args).encode(), "application/json; charset=utf-8"
    headers = {"Content-Type": kind, **({"Authorization": f"Bearer {token}"} if token else {})}
    req = urllib.request.Request(receiver.api_url + method, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
        assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
        return json.loads(r.read())


def test_post_reply_update_answer_like_slack_and_are_recorded(receiver):
    parent = api(receiver, "chat.postMessage", {"channel": "#oncall", "text": "parent"})
    assert parent["ok"] and parent["channel"] == receiver.channel_id("#oncall") and parent["ts"]
    reply = api(receiver, "chat.postMessage", {"channel": parent["channel"], "thread_ts": parent["ts"], "text": "reply"},
                form=True)
    assert reply["ok"] and reply["message"]["thread_ts"] == parent["ts"] and reply["ts"] > parent["ts"]
    updated = api(receiver, "chat.update", {"channel": parent["channel"], "ts": parent["ts"], "text": "parent v2",
                                            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "v2"}}]})
    assert updated["ok"] and updated["ts"] == parent["ts"]
    [(p, replies)] = receiver.threads()
    assert (p.payload["text"], p.updates, [r.payload["text"] for r in replies]) == ("parent v2", 1, ["reply"])
    assert [m for m, _ in receiver.api_calls] == ["chat.postMessage", "chat.postMessage", "chat.update"]
    saved = [json.loads(line) for line in receiver.out.read_text().splitlines()]
    assert [(r["method"], r["thread_ts"]) for r in saved] == [
        ("chat.postMessage", None), ("chat.postMessage", parent["ts"]), ("chat.update", None)]
    assert receiver.accepted == []  # webhook payloads are kept apart


def test_errors_like_slack(receiver):
    assert api(receiver, "chat.postMessage", {"channel": "#c", "text": "x"}, token="")["error"] == "not_authed"
    assert api(receiver, "chat.postMessage", {"channel": "#c", "text": "x"}, token="xoxb-wrong")["error"] == "invalid_auth"
    assert api(receiver, "chat.postMessage", {"text": "x"})["error"] == "channel_not_found"
    assert api(receiver, "chat.postMessage", {"channel": "#c"})["error"] == "no_text"
    assert api(receiver, "chat.postMessage", {"channel": "#c", "blocks": [{"type": "section"}]})["error"] == "invalid_blocks"
    assert api(receiver, "chat.postMessage", {"channel": "#c", "text": "x", "thread_ts": "1.000009"})["error"] == "thread_not_found"
    assert api(receiver, "chat.update", {"channel": "#c", "ts": "1.000009", "text": "x"})["error"] == "message_not_found"
    assert api(receiver, "chat.delete", {"channel": "#c", "ts": "1"})["error"] == "unknown_method"
    bad_button = {"type": "actions", "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x" * 76}}]}
    assert api(receiver, "chat.postMessage", {"channel": "#c", "text": "x", "blocks": [bad_button]})["error"] == "invalid_blocks"
    twice = {"type": "actions", "elements": [{"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "x"}}] * 2}
    assert api(receiver, "chat.postMessage", {"channel": "#c", "text": "x", "blocks": [twice]})["error"] == "invalid_blocks"
    assert receiver.messages == []


def test_slack_sdk_web_client_works_against_it_including_a_scripted_429(receiver):
    client = WebClient(token=receiver.bot_token, base_url=receiver.api_url)
    ts = client.chat_postMessage(channel="#oncall", text="hello")["ts"]
    receiver.fail_next(1, 429, retry_after=1)
    try:
        client.chat_update(channel=receiver.channel_id("#oncall"), ts=ts, text="bye")
    except SlackApiError as exc:
        assert exc.response.status_code == 429 and exc.response["error"] == "ratelimited"
    else:
        raise AssertionError("the scripted 429 did not arrive")
    assert client.chat_update(channel=receiver.channel_id("#oncall"), ts=ts, text="bye")["ok"]


def rendered(conv) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(conversation_renderable(conv))
    return console.export_text()


def test_show_renders_threads_parent_then_replies_indented(receiver, tmp_path, capsys):
    one = api(receiver, "chat.postMessage", {"channel": "#oncall", "text": "first incident",
                                             "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "PARENT ONE"}}]})
    two = api(receiver, "chat.postMessage", {"channel": "#oncall", "text": "PARENT TWO"})
    api(receiver, "chat.postMessage", {"channel": one["channel"], "thread_ts": one["ts"], "text": "REPLY ONE-A"})
    api(receiver, "chat.update", {"channel": one["channel"], "ts": one["ts"], "text": "x",
                                  "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "PARENT ONE v2"}}]})
    api(receiver, "chat.postMessage", {"channel": one["channel"], "thread_ts": one["ts"], "text": "REPLY ONE-B"})
    post(receiver.url, json.dumps({"text": "A WEBHOOK"}))

    records = [json.loads(line) for line in receiver.out.read_text().splitlines()]
    convs = conversations(records)
    assert [(c.ts, len(c.replies), c.updates) for c in convs] == [(one["ts"], 2, 1), (two["ts"], 0, 0), ("", 0, 0)]
    text = rendered(convs[0])
    assert text.index("PARENT ONE v2") < text.index("REPLY ONE-A") < text.index("REPLY ONE-B")
    assert "PARENT ONE\n" not in text  # the parent as last updated
    reply_lines = [line for line in text.splitlines() if "REPLY ONE" in line or "reply 1" in line]
    assert reply_lines and all(line.startswith("    ") for line in reply_lines), reply_lines

    assert main(["slack", "show", "--all", str(receiver.out)]) == 0
    out = capsys.readouterr().out
    assert out.index("PARENT ONE v2") < out.index("REPLY ONE-B") < out.index("PARENT TWO") < out.index("A WEBHOOK")
    assert main(["slack", "show", str(receiver.out)]) == 0  # the last conversation touched: the webhook
    assert "PARENT" not in capsys.readouterr().out
    log = tmp_path / "threads.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records[:5]) + "\n")
    assert main(["slack", "show", str(log)]) == 0  # last touched: the first thread (its second reply)
    out = capsys.readouterr().out
    assert "REPLY ONE-B" in out and "PARENT TWO" not in out


def test_a_reply_without_its_parent_in_the_log_still_shows(tmp_path):
    convs = conversations([{"method": "chat.postMessage", "channel": "C1", "ts": "2.000002", "thread_ts": "1.000001",
                            "payload": {"text": "ORPHAN"}}])
    assert "parent message not in this log" in rendered(convs[0]) and "ORPHAN" in rendered(convs[0])


def test_files_upload_v2_into_a_thread_and_the_ways_it_is_refused(receiver):
    import urllib.request

    client = WebClient(token=receiver.bot_token, base_url=receiver.api_url)
    parent = client.chat_postMessage(channel="#oncall", text="incident")
    answer = client.files_upload_v2(channel=parent["channel"], thread_ts=parent["ts"], content=b"\x89PNG-bytes",
                                    filename="rate.png", title="the rate", alt_txt="1, 2, 3")
    [(p, [shared])] = receiver.threads()
    assert answer["files"][0]["title"] == "the rate" and "rate.png" in shared.payload["text"]
    [f] = receiver.files.values()
    assert (f["data"], f["thread_ts"], f["alt_txt"]) == (b"\x89PNG-bytes", p.ts, "1, 2, 3")
    # an upload URL takes exactly the announced bytes, once
    url = api(receiver, "files.getUploadURLExternal", {"filename": "x.png", "length": 4}, form=True)
    assert url["ok"] and url["upload_url"].startswith(receiver.base_url + "/upload/v1/")
    for body, status in ((b"toolong", 400), (b"four", 200), (b"four", 400)):
        req = urllib.request.Request(url["upload_url"], data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback
                got = r.status
        except urllib.error.HTTPError as exc:
            got = exc.code
        assert got == status
    # completing a file that was never uploaded, or into a thread that is not here, is refused like Slack does
    never = api(receiver, "files.getUploadURLExternal", {"filename": "y.png", "length": 9}, form=True)
    assert api(receiver, "files.completeUploadExternal", {"files": [{"id": never["file_id"]}], "channel_id": p.channel},
               form=True)["error"] == "file_not_found"
    assert api(receiver, "files.completeUploadExternal", {"files": [{"id": url["file_id"]}], "channel_id": p.channel,
                                                          "thread_ts": "1.000001"}, form=True)["error"] == "thread_not_found"
    assert api(receiver, "files.getUploadURLExternal", {"filename": "z.png", "length": 0}, form=True)["error"] == "invalid_arguments"
    assert api(receiver, "files.getUploadURLExternal", {"filename": "z.png", "length": 3}, token="xoxb-wrong", form=True)["error"] == "invalid_auth"
