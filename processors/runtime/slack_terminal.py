"""Show a Slack Block Kit payload in the terminal with rich, the way a reader would see it in Slack.

Computed blocks (block_id ``computed-*``) go in a green panel, AI inference blocks (``ai-*``) in a
magenta panel titled "AI inference — not verified", so the boundary is visible at a glance. Entities
are decoded for display only (``&lt;!channel&gt;`` shows as the literal text ``<!channel>``, which
is what Slack shows too). Payloads from other sources render generically.

Messages a bot posted through the Web API (the receiver's JSONL records with ``method``) are grouped
into threads (`conversations`): the parent as it was last updated, then its replies, indented; the
incident status line and the Acknowledge / Mute buttons are drawn too.

Every string of a payload passes the people's redaction (processors/core/surfaces.py) before it is
drawn: payloads Sieve posted are already clean, but a saved file may come from elsewhere or from an
older version. `people_view` gives every terminal command that same redaction, with the patterns of
pipelines.yaml when there is one.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable

from rich.console import Console, Group, RenderableType
from rich.emoji import Emoji
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.text import Text

from processors.core.surfaces import ForPeople

_FENCE = re.compile(r"```\n?(.*?)\n?```", re.S)
_INLINE = re.compile(
    r"`(?P<code>[^`\n]+)`"
    r"|(?<![\w*])\*(?P<bold>[^*\n]+)\*(?![\w*])"
    r"|(?<![\w])_(?P<italic>[^_\n]+)_(?![\w])"
    r"|(?<![\w~])~(?P<strike>[^~\n]+)~(?![\w~])"
)
_STYLES = {"code": "cyan", "bold": "bold", "italic": "italic", "strike": "strike"}


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def mrkdwn_to_text(source: str, *, base_style: str = "") -> Text:
    """Slack mrkdwn (code fences, `code`, *bold*, _italic_, ~strike~, :emoji:) as rich Text."""
    out = Text(style=base_style)
    pos = 0
    for fence in _FENCE.finditer(source):
        _inline(out, source[pos : fence.start()])
        out.append(_unescape(fence.group(1)), style="bold cyan")
        pos = fence.end()
    _inline(out, source[pos:])
    return out


def _inline(out: Text, chunk: str) -> None:
    pos = 0
    for m in _INLINE.finditer(chunk):
        out.append(_emoji(_unescape(chunk[pos : m.start()])))
        kind = m.lastgroup or "code"
        value = _unescape(m.group(kind))
        out.append(value if kind == "code" else _emoji(value), style=_STYLES[kind])
        pos = m.end()
    out.append(_emoji(_unescape(chunk[pos:])))


def _emoji(text: str) -> str:
    return Emoji.replace(text) if ":" in text else text


def _text_of(obj: object) -> Text:
    if isinstance(obj, dict):
        if obj.get("type") == "plain_text":
            return Text(_emoji(_unescape(str(obj.get("text", "")))))
        if "text" in obj:
            return mrkdwn_to_text(str(obj.get("text", "")))
        if obj.get("type") == "image":
            return Text(f"[image: {obj.get('alt_text', '')}]", style="dim")
    return Text(str(obj))


def _kind(block: dict) -> str:
    block_id = str(block.get("block_id", ""))
    if block_id.startswith("computed-"):
        return "computed"
    if block_id.startswith("ai-"):
        return "ai"
    text = block.get("text")
    if isinstance(text, dict) and "AI inference" in str(text.get("text", "")):
        return "ai"
    return "other"


def _block(block: dict) -> RenderableType:
    kind = block.get("type")
    if kind == "header":
        return Text(_emoji(_unescape(str((block.get("text") or {}).get("text", "")))), style="bold reverse")
    if kind == "divider":
        return Rule(style="dim")
    if kind == "context":
        line = Text(" | ").join(_text_of(e) for e in block.get("elements") or ())
        line.stylize("dim")
        return line
    if kind == "section":
        items: list[RenderableType] = []
        if block.get("text") is not None:
            items.append(_text_of(block["text"]))
        for f in block.get("fields") or ():
            items.append(_text_of(f))
        return Group(*items)
    if kind == "actions":
        buttons = [e for e in block.get("elements") or () if isinstance(e, dict)]
        line = Text("  ").join(Text(f"[ {_unescape(str((e.get('text') or {}).get('text', e.get('type', ''))))} ]",
                                    style="bold green" if e.get("style") == "primary" else "bold")
                               for e in buttons)
        return line
    return Text(f"[{kind} block]", style="dim")


def payload_renderable(payload: dict, view: ForPeople | None = None) -> RenderableType:
    """A rich renderable for one webhook payload (for printing or for tests), secrets redacted."""
    payload = (view or ForPeople()).value(payload)
    parts: list[RenderableType] = []
    blocks = payload.get("blocks") or []
    if not blocks:
        return Panel(mrkdwn_to_text(str(payload.get("text", ""))), title="message", border_style="white")
    group: list[RenderableType] = []
    current = None

    def flush():
        if not group:
            return
        if current == "computed":
            parts.append(Panel(Group(*group), title="Computed — deterministic", title_align="left", border_style="green"))
        elif current == "ai":
            parts.append(Panel(Group(*group), title="AI inference — not verified", title_align="left", border_style="magenta"))
        else:
            parts.extend(group)

    for block in blocks:
        kind = _kind(block) if isinstance(block, dict) else "other"
        if kind != current:
            flush()
            group, current = [], kind
        group.append(_block(block) if isinstance(block, dict) else Text(repr(block), style="red"))
    flush()
    if payload.get("text"):
        parts.append(Text("notification text: ", style="dim") + Text(_unescape(str(payload["text"])), style="dim italic"))
    return Group(*parts)


@dataclass
class Conversation:
    """A thread of Web API messages (parent as last updated, then replies), or one webhook payload."""

    parent: dict | None
    replies: list[dict] = field(default_factory=list)
    channel: str = ""
    ts: str = ""
    updates: int = 0
    last_seen: int = 0  # index of the latest record that touched it

    @property
    def is_thread(self) -> bool:
        return bool(self.ts)


def conversations(records: Iterable[dict]) -> list[Conversation]:
    """Receiver records (``{"payload", "method"?, "channel"?, "ts"?, "thread_ts"?}``) grouped into threads,
    in order of first appearance; records without ``method`` (webhook payloads) stand alone."""
    out: list[Conversation] = []
    threads: dict[tuple[str, str], Conversation] = {}
    where: dict[tuple[str, str], tuple[Conversation, int | None]] = {}  # message -> (thread, reply index)
    for i, r in enumerate(records):
        if not r.get("method"):  # a webhook payload, or a receiver record of one
            out.append(Conversation(r.get("payload", r) if "blocks" not in r and "text" not in r else r, last_seen=i))
            continue
        payload = r.get("payload") if isinstance(r.get("payload"), dict) else {}
        method, channel, ts, thread_ts = r.get("method"), str(r.get("channel") or ""), str(r.get("ts") or ""), r.get("thread_ts")
        if method == "chat.update":
            conv, idx = where.get((channel, ts), (None, None))
            if conv is None:  # the log starts after the post: show what we have
                conv = threads[(channel, ts)] = Conversation(payload, channel=channel, ts=ts)
                where[(channel, ts)] = (conv, None)
                out.append(conv)
            elif idx is None:
                conv.parent = payload
            else:
                conv.replies[idx] = payload
            conv.updates += 1
            conv.last_seen = i
            continue
        if thread_ts:
            conv = threads.get((channel, thread_ts))
            if conv is None:
                conv = threads[(channel, thread_ts)] = Conversation(None, channel=channel, ts=str(thread_ts))
                where[(channel, str(thread_ts))] = (conv, None)
                out.append(conv)
            conv.replies.append(payload)
            where[(channel, ts)] = (conv, len(conv.replies) - 1)
        else:
            conv = threads[(channel, ts)] = Conversation(payload, channel=channel, ts=ts)
            where[(channel, ts)] = (conv, None)
            out.append(conv)
        conv.last_seen = i
    return out


def conversation_renderable(conv: Conversation, view: ForPeople | None = None) -> RenderableType:
    """A thread: its parent, then every reply indented; a webhook payload as `payload_renderable`."""
    if not conv.is_thread:
        return payload_renderable(conv.parent or {}, view)
    edited = f", updated {conv.updates}x" if conv.updates else ""
    parts: list[RenderableType] = [Text(f"thread {conv.channel} {conv.ts} ({len(conv.replies)} "
                                        f"repl{'y' if len(conv.replies) == 1 else 'ies'}{edited})", style="bold blue")]
    parts.append(payload_renderable(conv.parent, view) if conv.parent is not None
                 else Text("(parent message not in this log)", style="dim"))
    for n, reply in enumerate(conv.replies, 1):
        parts.append(Padding(Group(Text(f"↳ reply {n}", style="bold blue"), payload_renderable(reply, view)), (0, 0, 0, 4)))
    return Group(*parts)


def show_conversations(convs: Iterable[Conversation], console: Console | None = None, view: ForPeople | None = None) -> None:
    console = console or Console()
    view = view or ForPeople()
    for i, conv in enumerate(convs):
        if i:
            console.print(Rule(style="blue"))
        console.print(conversation_renderable(conv, view))


def show(payloads: Iterable[dict], console: Console | None = None, view: ForPeople | None = None) -> None:
    console = console or Console()
    view = view or ForPeople()
    for i, payload in enumerate(payloads):
        if i:
            console.print(Rule(style="blue"))
        console.print(payload_renderable(payload, view))


from processors.runtime.people_view import CONFIG_HELP, people_view, people_view_of  # noqa: E402,F401 - re-exported
