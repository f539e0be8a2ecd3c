"""Incidents for an on-call team: identity, threads, Acknowledge / Mute, and the blocks that carry them.

Pure: no I/O, no clock (the caller passes `now`), no vendor types.

An *incident* is one contributor key of one rule: ``(rule, key values)`` -> `incident_id` (a short
hash, safe as a DynamoDB sort key and in a button value). With a bot token (notifier kind ``bot``),
each incident gets one Slack thread: the first window posts the parent message (the rendered window,
then the status line `status_block` and the buttons `actions_block`); a later window of the same
*ongoing* incident (`plan`: its window starts at most `gap` seconds after the thread's last window
ended) replies in the thread and the parent is updated with a new status line.

People act on the parent's buttons (Slack interactivity, `parse_action` -> `decide`):

    Acknowledge   who and when; the incident still posts in its thread, the status line says who acked
    Mute 1 h/24 h who, when, until; a muted incident is not posted (`apply_mutes` for selection,
                  `muted` for anything else), and posts again, in its thread if still ongoing, after
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from processors.core.select import NotSelected, Selection
from processors.core.slack_blocks import MAX_BLOCKS, escape, fmt_number, format_window
from processors.core.types import SelectedGroup, Window, WindowReport

STATUS_BLOCK_ID = "incident-status"
ACTIONS_BLOCK_ID = "incident-actions"
ACK_ACTION = "sieve_ack"
MUTE_ACTIONS = {"sieve_mute_1h": 3600, "sieve_mute_24h": 86400}  # action_id -> seconds
DEFAULT_GAP_SECONDS = 3600
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")


class InvalidAction(ValueError):
    """A block_actions payload that names one of our actions but is malformed (the caller answers 400)."""


@dataclass(frozen=True, slots=True)
class Incident:
    rule: str
    keys: dict[str, str]
    id: str

    @classmethod
    def of(cls, group: SelectedGroup) -> Incident:
        return cls(group.rule, dict(group.keys), incident_id(group.rule, tuple(group.keys.values())))

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.keys.items()) or "(all)"


@dataclass(frozen=True, slots=True)
class Thread:
    """Where an incident's thread lives and how far it got. `parent` is the parent's body as first
    posted ({text, blocks} without the status line and buttons), re-sent with every chat.update."""

    channel: str
    ts: str
    first_window: int  # window start, epoch seconds
    last_window: int  # start of the last window posted in the thread
    last_window_end: int
    windows: int
    last_value: float
    parent: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ack:
    by: str  # Slack user id
    at: int
    thread_ts: str = ""  # the thread acknowledged; a later thread of the same key starts unacknowledged
    by_name: str = ""


@dataclass(frozen=True, slots=True)
class Mute:
    by: str
    at: int
    until: int
    by_name: str = ""


@dataclass(frozen=True, slots=True)
class Action:
    """One click on one of our buttons, as Slack reported it (signature checked by the caller)."""

    kind: Literal["ack", "mute"]
    rule: str
    incident: str
    user: str
    user_name: str = ""
    seconds: int = 0
    channel: str = ""
    message_ts: str = ""
    thread_ts: str = ""
    response_url: str = ""
    message: dict = field(default_factory=dict)


# --- identity -----------------------------------------------------------------------------------


def incident_id(rule: str, keys: Sequence[str]) -> str:
    """A stable 24-hex-digit id of (rule, contributor key values)."""
    doc = json.dumps([rule, list(keys)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:24]


def split_by_incident(report: WindowReport) -> list[tuple[Incident, WindowReport]]:
    """One (incident, report with only that group selected) per selected group, in selection order."""
    return [(Incident.of(g), dataclasses.replace(report, selected=(g,))) for g in report.selected]


# --- threads ------------------------------------------------------------------------------------


def plan(thread: Thread | None, window: Window, gap: int = DEFAULT_GAP_SECONDS) -> Literal["parent", "reply", "done"]:
    """What to post for `window`: `done` (this window is in the thread already), `reply` (the incident
    is ongoing: at most `gap` seconds since the thread's last window ended), else a new `parent`."""
    if thread is None or not thread.ts:
        return "parent"
    if window.start == thread.last_window:
        return "done"
    if thread.first_window <= window.start and window.start - thread.last_window_end <= gap:
        return "reply"
    return "parent"


def advance(thread: Thread, window: Window, value: float) -> Thread:
    """The thread after `window` was replied in it."""
    if window.start < thread.last_window:  # a late retry of an older window: count it, never move back
        return dataclasses.replace(thread, windows=thread.windows + 1)
    return dataclasses.replace(thread, last_window=window.start, last_window_end=window.end,
                               windows=thread.windows + 1, last_value=value)


def new_thread(channel: str, window: Window, value: float, parent: dict) -> Thread:
    return Thread(channel, "", window.start, window.start, window.end, 1, value, parent)


# --- mutes --------------------------------------------------------------------------------------


def muted(incident: str, mutes: Mapping[str, Mute], now: float) -> Mute | None:
    """The mute in force for `incident` at `now`, if any (an expired one is ignored: TTL is lazy)."""
    m = mutes.get(incident)
    return m if m is not None and now < m.until else None


def apply_mutes(selection: Selection, mutes: Mapping[str, Mute], now: float) -> Selection:
    """`selection` with every muted group moved to `not_selected`, with who muted it until when."""
    if not mutes:
        return selection
    kept, dropped = [], []
    for g in selection.selected:
        m = muted(incident_id(g.rule, tuple(g.keys.values())), mutes, now)
        if m is None:
            kept.append(g)
        else:
            dropped.append(NotSelected(g.keys, g.value, g.share, (f"muted by {m.by_name or m.by} until {_when(m.until)}",)))
    if not dropped:
        return selection
    rest = sorted([*selection.not_selected, *dropped], key=lambda n: (-n.value, tuple(n.keys.values())))
    return Selection(tuple(kept), tuple(rest))


# --- decisions ----------------------------------------------------------------------------------


def parse_action(payload: Any) -> Action | None:
    """Our action in a Slack `block_actions` payload; None when the payload is something else."""
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions") or []
    if not isinstance(actions, list):
        raise InvalidAction("actions is not a list")
    ours = [a for a in actions if isinstance(a, dict) and isinstance(a.get("action_id"), str)
            and (a["action_id"] == ACK_ACTION or a["action_id"] in MUTE_ACTIONS)]
    if not ours:
        return None
    a = ours[0]
    try:
        value = json.loads(a.get("value") or "")
        rule, incident = str(value["rule"]), str(value["incident"])
    except (ValueError, TypeError, KeyError):
        raise InvalidAction("button value is not {rule, incident}") from None
    if not re.fullmatch(r"[0-9a-f]{24}", incident) or not rule:
        raise InvalidAction("button value names no incident")
    user = payload.get("user") or {}
    user_id = str(user.get("id") or "") if isinstance(user, dict) else ""
    if not user_id:
        raise InvalidAction("no user in the payload")
    container, message, channel = (payload.get(k) or {} for k in ("container", "message", "channel"))
    if not (isinstance(container, dict) and isinstance(message, dict) and isinstance(channel, dict)):
        raise InvalidAction("container, message or channel is not an object")
    kind: Literal["ack", "mute"] = "ack" if a["action_id"] == ACK_ACTION else "mute"
    return Action(kind, rule, incident, user_id, str(user.get("username") or user.get("name") or ""),
                  MUTE_ACTIONS.get(a["action_id"], 0),
                  str(container.get("channel_id") or channel.get("id") or ""),
                  str(container.get("message_ts") or message.get("ts") or ""),
                  str(message.get("thread_ts") or container.get("thread_ts") or ""),
                  str(payload.get("response_url") or ""), message if isinstance(message, dict) else {})


def decide(action: Action, now: float) -> Ack | Mute:
    at = int(now)
    if action.kind == "ack":
        return Ack(action.user, at, action.thread_ts or action.message_ts, action.user_name)
    if action.seconds not in MUTE_ACTIONS.values():
        raise InvalidAction(f"mute for {action.seconds} s is not offered")
    return Mute(action.user, at, at + action.seconds, action.user_name)


# --- blocks -------------------------------------------------------------------------------------


def actions_block(incident: Incident) -> dict:
    value = json.dumps({"rule": incident.rule, "incident": incident.id}, separators=(",", ":"))
    return {"type": "actions", "block_id": ACTIONS_BLOCK_ID, "elements": [
        _button("Acknowledge", ACK_ACTION, value, style="primary"),
        _button("Mute 1 h", "sieve_mute_1h", value),
        _button("Mute 24 h", "sieve_mute_24h", value, confirm=(
            "Mute for 24 hours?", "This incident will not be posted for 24 hours, whatever it does.")),
    ]}


def status_block(incident: Incident, thread: Thread, ack: Ack | None = None) -> dict:
    """The parent's status line; an ack of another (earlier) thread of the same key is not shown."""
    windows = f"{thread.windows} window{'s' if thread.windows != 1 else ''}"
    main = (f":rotating_light: *Ongoing* · `{escape(_code(incident.label()))}` · {windows} since "
            f"{_hhmm(thread.first_window)} · latest {escape(format_window(thread.last_window, thread.last_window_end))}: "
            f"*{fmt_number(thread.last_value)}*")
    elements = [{"type": "mrkdwn", "text": main[:2000], "verbatim": True}]
    if ack is not None and (not ack.thread_ts or ack.thread_ts == thread.ts):
        elements.append({"type": "mrkdwn", "text": decision_text(ack), "verbatim": True})
    return {"type": "context", "block_id": STATUS_BLOCK_ID, "elements": elements}


def decision_text(decision: Ack | Mute) -> str:
    who = f"<@{decision.by}>" if _USER_ID.match(decision.by) else escape(decision.by_name or decision.by)
    if isinstance(decision, Ack):
        return f":white_check_mark: Acknowledged by {who} at {_hhmm(decision.at)}"
    return f":mute: Muted by {who} until {_when(decision.until)}"


def parent_message(body: dict, status: dict, actions: dict) -> dict:
    """The parent: the rendered window, then the status line and the buttons (within 50 blocks)."""
    blocks = [b for b in body.get("blocks") or () if b.get("block_id") not in (STATUS_BLOCK_ID, ACTIONS_BLOCK_ID)]
    if len(blocks) + 2 > MAX_BLOCKS:  # keep the footer; drop what would not fit before it
        blocks = blocks[: MAX_BLOCKS - 3] + blocks[-1:]
    return {"text": body.get("text") or "Sieve incident", "blocks": [*blocks, status, actions]}


def acted_message(message: dict, decision: Ack | Mute) -> dict:
    """The clicked message with the decision on its status line (a response_url `replace_original`)."""
    note = {"type": "mrkdwn", "text": decision_text(decision), "verbatim": True}
    blocks, seen = [], False
    for b in message.get("blocks") or ():
        if isinstance(b, dict) and b.get("block_id") == STATUS_BLOCK_ID:
            b = {**b, "elements": [*(b.get("elements") or [])[:1], note]}
            seen = True
        blocks.append(b)
    if not seen:
        at = next((i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("block_id") == ACTIONS_BLOCK_ID), len(blocks))
        blocks.insert(at, {"type": "context", "block_id": STATUS_BLOCK_ID, "elements": [note]})
    return {"replace_original": True, "text": message.get("text") or "Sieve incident", "blocks": blocks}


def _button(text: str, action_id: str, value: str, *, style: str | None = None, confirm: tuple[str, str] | None = None) -> dict:
    b: dict = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}, "value": value}
    if style:
        b["style"] = style
    if confirm:
        b["confirm"] = {"title": {"type": "plain_text", "text": "Mute"}, "text": {"type": "plain_text", "text": confirm[1]},
                        "confirm": {"type": "plain_text", "text": confirm[0][:30]}, "deny": {"type": "plain_text", "text": "Cancel"}}
    return b


def _hhmm(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M UTC")


def _when(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _code(text: str) -> str:
    return text.replace("`", "ˋ")[:120]
