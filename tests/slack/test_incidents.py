"""core/incidents.py: identity, threads, mutes, decisions and blocks (pure; no services)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from processors.core.incidents import (
    ACTIONS_BLOCK_ID,
    STATUS_BLOCK_ID,
    Ack,
    Incident,
    InvalidAction,
    Mute,
    acted_message,
    actions_block,
    advance,
    apply_mutes,
    decide,
    incident_id,
    muted,
    new_thread,
    parent_message,
    parse_action,
    plan,
    split_by_incident,
    status_block,
)
from processors.core.select import SelectionConfig, select_groups
from processors.core.slack_blocks import render
from processors.core.types import Window
from processors.runtime.slack_receiver import validate_payload
from tests.slack.slack_factories import incident_report, topn

W1 = Window(1_714_564_800, 1_714_565_100)
NOW = 1_714_565_200


def test_incident_id_is_stable_and_separates_rules_and_keys():
    a = incident_id("5xx-by-ip", ("10.0.0.1", "500"))
    assert a == incident_id("5xx-by-ip", ["10.0.0.1", "500"]) and len(a) == 24
    assert a != incident_id("5xx-by-ip", ("10.0.0.1", "502"))
    assert a != incident_id("404-by-ip", ("10.0.0.1", "500"))
    assert incident_id("r", ("a,b",)) != incident_id("r", ("a", "b"))  # no separator ambiguity


def test_split_by_incident_gives_one_report_per_selected_group():
    r = incident_report(extra_groups=(("10.0.0.9", "502", 300),))
    parts = split_by_incident(r)
    assert [i.keys for i, _ in parts] == [{"ip": "10.0.0.1", "status": "500"}, {"ip": "10.0.0.9", "status": "502"}]
    assert all(len(p.selected) == 1 and p.topn == r.topn for _, p in parts)


@pytest.mark.parametrize(("start", "expected"), [
    (W1.start, "done"),                 # this window is in the thread already (a retry)
    (W1.end, "reply"),                  # the next window
    (W1.end + 3600, "reply"),           # exactly the gap after the last window
    (W1.end + 3601, "parent"),          # longer: a new incident, a new thread
    (W1.start - 300, "parent"),         # before the thread began
])
def test_plan(start, expected):
    thread = dataclasses.replace(new_thread("C1", W1, 10, {}), ts="1.000001")
    assert plan(thread, Window(start, start + 300), 3600) == expected
    assert plan(None, Window(start, start + 300), 3600) == "parent"


def test_advance_counts_windows_and_never_moves_back():
    t = dataclasses.replace(new_thread("C1", W1, 10, {}), ts="1.1")
    t2 = advance(t, Window(W1.end, W1.end + 300), 40)
    assert (t2.windows, t2.last_window, t2.last_window_end, t2.last_value) == (2, W1.end, W1.end + 300, 40)
    t3 = advance(t2, W1, 99)
    assert (t3.windows, t3.last_window, t3.last_value) == (3, W1.end, 40)


def test_muted_and_apply_mutes_move_a_muted_group_out_of_the_selection():
    t = topn()  # (10.0.0.1, 500) 1200, (10.0.0.2, 502) 300, (10.0.0.3, 500) 20
    selection = select_groups(t, SelectionConfig(min_count=100, max_groups=3))
    assert len(selection.selected) == 2
    key = incident_id("5xx-by-ip", ("10.0.0.1", "500"))
    mutes = {key: Mute("U0ONCALL", NOW - 60, NOW + 3600, "alice")}
    assert muted(key, mutes, NOW) == mutes[key] and muted(key, mutes, NOW + 3600) is None

    out = apply_mutes(selection, mutes, NOW)
    assert [g.keys["ip"] for g in out.selected] == ["10.0.0.2"]
    dropped = [n for n in out.not_selected if n.keys["ip"] == "10.0.0.1"]
    assert dropped and "muted by alice until 2024-05-01 13:06 UTC" in dropped[0].reasons[0]
    assert [n.value for n in out.not_selected] == sorted((n.value for n in out.not_selected), reverse=True)
    # expired, other rule, or no mutes: unchanged
    assert apply_mutes(selection, mutes, NOW + 3600) == selection
    assert apply_mutes(selection, {incident_id("other", ("10.0.0.1", "500")): mutes[key]}, NOW) == selection
    assert apply_mutes(selection, {}, NOW) is selection


def click(action_id: str, *, incident: str | None = None, rule: str = "5xx-by-ip", message: dict | None = None,
          value: str | None = None, **extra) -> dict:
    incident = incident or incident_id(rule, ("10.0.0.1", "500"))
    return {
        "type": "block_actions",
        "user": {"id": "U0ONCALL", "username": "alice", "team_id": "T0"},
        "container": {"type": "message", "message_ts": "1714564801.000001", "channel_id": "C0ONCALL00"},
        "channel": {"id": "C0ONCALL00", "name": "oncall"},
        "message": message or {"ts": "1714564801.000001", "text": "x", "blocks": []},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [{"action_id": action_id, "block_id": ACTIONS_BLOCK_ID, "type": "button",
                     "value": value if value is not None else json.dumps({"rule": rule, "incident": incident})}],
        **extra,
    }


def test_parse_and_decide_ack_and_mutes():
    a = parse_action(click("sieve_ack"))
    assert (a.kind, a.rule, a.user, a.user_name, a.channel, a.message_ts) == (
        "ack", "5xx-by-ip", "U0ONCALL", "alice", "C0ONCALL00", "1714564801.000001")
    assert decide(a, NOW) == Ack("U0ONCALL", NOW, "1714564801.000001", "alice")
    for action_id, seconds in (("sieve_mute_1h", 3600), ("sieve_mute_24h", 86400)):
        m = decide(parse_action(click(action_id)), NOW)
        assert m == Mute("U0ONCALL", NOW, NOW + seconds, "alice")


def test_parse_action_ignores_what_is_not_ours_and_refuses_malformed_values():
    assert parse_action({"type": "view_submission"}) is None
    assert parse_action(click("someone_elses_button")) is None
    assert parse_action("not a dict") is None
    with pytest.raises(InvalidAction):
        parse_action(click("sieve_ack", value="not json"))
    with pytest.raises(InvalidAction):
        parse_action(click("sieve_ack", incident="../../etc"))
    with pytest.raises(InvalidAction):
        parse_action(click("sieve_ack", user={}))


def test_actions_block_round_trips_through_a_click_and_slack_accepts_it():
    r = incident_report()
    incident = Incident.of(r.selected[0])
    block = actions_block(incident)
    assert [e["action_id"] for e in block["elements"]] == ["sieve_ack", "sieve_mute_1h", "sieve_mute_24h"]
    a = parse_action(click("sieve_mute_1h", value=block["elements"][1]["value"]))
    assert (a.rule, a.incident) == (incident.rule, incident.id)
    thread = new_thread("C1", r.window, 1200, render(r))
    message = parent_message(render(r), status_block(incident, thread), block)
    assert validate_payload(json.dumps(message).encode()) == message  # the receiver's Slack checks
    assert [b.get("block_id") for b in message["blocks"][-2:]] == [STATUS_BLOCK_ID, ACTIONS_BLOCK_ID]


def test_status_line_shows_an_ack_of_this_thread_only():
    r = incident_report()
    incident = Incident.of(r.selected[0])
    thread = dataclasses.replace(new_thread("C1", r.window, 1200, {}), ts="1.000001")
    plain = status_block(incident, thread)
    assert len(plain["elements"]) == 1 and "1 window since 12:00 UTC" in plain["elements"][0]["text"]
    acked = status_block(incident, thread, Ack("U0ONCALL", NOW, "1.000001"))
    assert "Acknowledged by <@U0ONCALL> at 12:06 UTC" in acked["elements"][1]["text"]
    assert len(status_block(incident, thread, Ack("U0ONCALL", NOW, "0.999999"))["elements"]) == 1  # an earlier thread
    odd = status_block(incident, thread, Ack("<!channel>", NOW, "1.000001", "<!here>"))
    assert "<!" not in odd["elements"][1]["text"]  # not a user id: escaped text, no mention


def test_parent_message_stays_within_50_blocks():
    body = {"text": "t", "blocks": [{"type": "divider"}] * 49 + [{"type": "context", "block_id": "sieve-footer",
                                                                   "elements": [{"type": "mrkdwn", "text": "f"}]}]}
    r = incident_report()
    incident = Incident.of(r.selected[0])
    m = parent_message(body, status_block(incident, new_thread("C", r.window, 1, {})), actions_block(incident))
    assert len(m["blocks"]) == 50 and m["blocks"][-3]["block_id"] == "sieve-footer"


def test_acted_message_puts_the_decision_on_the_status_line():
    r = incident_report()
    incident = Incident.of(r.selected[0])
    message = parent_message(render(r), status_block(incident, new_thread("C", r.window, 1, {})), actions_block(incident))
    out = acted_message(message, Mute("U0ONCALL", NOW, NOW + 3600))
    status = next(b for b in out["blocks"] if b.get("block_id") == STATUS_BLOCK_ID)
    assert out["replace_original"] is True and len(status["elements"]) == 2
    assert status["elements"][1]["text"] == ":mute: Muted by <@U0ONCALL> until 2024-05-01 13:06 UTC"
    again = acted_message(out, Ack("U0ONCALL", NOW))  # replaces the earlier decision, does not pile up
    assert len(next(b for b in again["blocks"] if b.get("block_id") == STATUS_BLOCK_ID)["elements"]) == 2
    bare = acted_message({"text": "x", "blocks": [actions_block(incident)]}, Ack("U0ONCALL", NOW))
    assert [b["block_id"] for b in bare["blocks"]] == [STATUS_BLOCK_ID, ACTIONS_BLOCK_ID]
