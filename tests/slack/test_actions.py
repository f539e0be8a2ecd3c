"""The Slack interactivity endpoint (processors/handlers/slack_actions.py): signed Acknowledge / Mute clicks
on a real parent message are stored in the state table and honoured; forged or stale requests get 401."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from slack_sdk.signature import SignatureVerifier

from processors import wiring
from processors.core.incidents import STATUS_BLOCK_ID, apply_mutes, incident_id, muted
from processors.core.select import SelectionConfig, select_groups
from processors.core.types import WindowReport
from processors.handlers import slack_actions
from tests.slack.slack_factories import incident_report
from tests.slack.test_bot import CLOCK, bot, status_text

pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
INCIDENT = incident_id("5xx-by-ip", ("10.0.0.1", "500"))


class Responder:
    def __init__(self):
        self.posts: list[tuple[str, dict]] = []

    def __call__(self, url: str, payload: dict) -> int:
        self.posts.append((url, payload))
        return 200


@pytest.fixture()
def app(state):
    responder = Responder()
    slack_actions.reset_runtime(wiring.SlackActionsApp(state, lambda: SIGNING, responder, ack_ttl_seconds=3600))
    yield responder
    slack_actions.reset_runtime()


def click_on(parent, button: str, *, user: str = "U0ONCALL") -> dict:
    """The block_actions payload Slack sends when `button` of the parent message is clicked."""
    actions = next(b for b in parent.payload["blocks"] if b.get("type") == "actions")
    element = next(e for e in actions["elements"] if e["action_id"] == button)
    return {"type": "block_actions", "user": {"id": user, "username": "alice", "team_id": "T0"},
            "container": {"type": "message", "message_ts": parent.ts, "channel_id": parent.channel},
            "channel": {"id": parent.channel, "name": "oncall"},
            "message": {"type": "message", "ts": parent.ts, **parent.payload},
            "response_url": "https://hooks.slack.com/actions/T0/123/abc", "trigger_id": "1.2.3",
            "actions": [{"action_id": button, "block_id": actions["block_id"], "type": "button",
                         "value": element["value"], "action_ts": str(CLOCK)}]}


def event(payload: dict, *, at: float = CLOCK, secret: str = SIGNING, base64_body: bool = False, signature=None) -> dict:
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    ts = str(int(at))
    sig = signature if signature is not None else SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"version": "2.0", "routeKey": "POST /slack/actions", "rawPath": "/slack/actions",
            "headers": {"content-type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
                        "X-Slack-Signature": sig},
            "body": base64.b64encode(body.encode()).decode() if base64_body else body, "isBase64Encoded": base64_body}


def handle(ev: dict, now: float = CLOCK) -> dict:
    return slack_actions.handler(ev, None, now=lambda: now)


def first_parent(receiver, state):
    bot(receiver, state).post_report(incident_report(n=0, extra_groups=(("10.0.0.9", "502", 300),)))
    return receiver.threads()[0][0]


def test_acknowledge_is_stored_shown_at_once_and_on_the_next_update(receiver, state, app):
    parent = first_parent(receiver, state)
    assert handle(event(click_on(parent, "sieve_ack"), base64_body=True))["statusCode"] == 200
    ack = state.ack("5xx-by-ip", INCIDENT)
    assert (ack.by, ack.by_name, ack.at, ack.thread_ts) == ("U0ONCALL", "alice", int(CLOCK), parent.ts)
    [(url, answer)] = app.posts
    assert url.startswith("https://hooks.slack.com/actions/") and answer["replace_original"] is True
    status = next(b for b in answer["blocks"] if b.get("block_id") == STATUS_BLOCK_ID)
    assert "Acknowledged by <@U0ONCALL>" in status["elements"][-1]["text"]

    bot(receiver, state).post_report(incident_report(n=1))  # acknowledged: still posts, in its thread
    parent, replies = receiver.threads()[0]
    assert len(replies) == 1 and "Acknowledged by <@U0ONCALL>" in status_text(parent)


@pytest.mark.parametrize(("button", "seconds"), [("sieve_mute_1h", 3600), ("sieve_mute_24h", 86400)])
def test_mute_is_stored_and_a_muted_incident_is_not_posted(receiver, state, app, button, seconds):
    parent = first_parent(receiver, state)
    assert handle(event(click_on(parent, button)))["statusCode"] == 200
    mutes = state.mutes("5xx-by-ip")
    assert (mutes[INCIDENT].by, mutes[INCIDENT].until) == ("U0ONCALL", int(CLOCK) + seconds)
    item = state.table.get_item(Key={"pk": "mute#5xx-by-ip", "sk": INCIDENT})["Item"]
    assert int(item["expires_at"]) == int(CLOCK) + seconds
    assert "Muted by <@U0ONCALL>" in json.dumps(app.posts[0][1])

    # the next window, as the finaliser selects it: the muted incident leaves the selection
    nxt = incident_report(n=1, extra_groups=(("10.0.0.9", "502", 300),))
    selection = apply_mutes(select_groups(nxt.topn, SelectionConfig(min_count=100)), state.mutes("5xx-by-ip"), CLOCK + 60)
    assert [g.keys["ip"] for g in selection.selected] == ["10.0.0.9"]
    assert any("muted by alice" in r for n in selection.not_selected for r in n.reasons)
    messages = len(receiver.messages)
    bot(receiver, state).post_report(WindowReport(nxt.rule, nxt.window, nxt.topn, selection.selected, nxt.outcome))
    muted_thread, other_thread = receiver.threads()
    assert len(receiver.messages) == messages + 1 and muted_thread[1] == [] and len(other_thread[1]) == 1
    # once the mute ends it is selected again, and replies in its thread while the incident is ongoing
    assert muted(INCIDENT, state.mutes("5xx-by-ip"), CLOCK + seconds) is None


@pytest.mark.parametrize("forge", ["wrong secret", "stale", "tampered body", "no signature"])
def test_a_forged_or_stale_request_is_rejected_and_changes_nothing(receiver, state, app, forge):
    parent = first_parent(receiver, state)
    payload = click_on(parent, "sieve_mute_24h")
    if forge == "wrong secret":
        ev = event(payload, secret="not-the-signing-secret")
    elif forge == "stale":
        ev = event(payload, at=CLOCK - 6 * 60)
    elif forge == "tampered body":
        ev = event(payload)
        ev["body"] = ev["body"].replace("U0ONCALL", "U0MALLORY")
    else:
        ev = event(payload, signature="")
    assert handle(ev) == {"statusCode": 401, "headers": {"content-type": "text/plain; charset=utf-8"},
                          "body": "invalid request"}
    assert state.mutes("5xx-by-ip") == {} and state.ack("5xx-by-ip", INCIDENT) is None and app.posts == []


def test_other_interactions_are_ignored_and_malformed_ones_refused(receiver, state, app):
    parent = first_parent(receiver, state)
    assert handle(event({"type": "view_submission", "user": {"id": "U1"}}))["statusCode"] == 200
    bad = click_on(parent, "sieve_ack")
    bad["actions"][0]["value"] = "{}"
    assert handle(event(bad))["statusCode"] == 400
    assert state.ack("5xx-by-ip", INCIDENT) is None and app.posts == []


def test_the_handler_stays_thin():
    from pathlib import Path

    assert len(Path(slack_actions.__file__).read_text().splitlines()) < 100
