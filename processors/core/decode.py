"""Decode one Kinesis record's data into log events. Pure, never raises on any bytes.

The caller hands over the record's data bytes (already base64-decoded, as Lambda's
`kinesis.data` is base64 text). Three shapes are recognised automatically:

* a CloudWatch Logs subscription payload: gzip (magic bytes 1f 8b) of a JSON document with
  `messageType`, `logGroup`, `logStream` and `logEvents[{id, timestamp, message}]`. A
  `CONTROL_MESSAGE` (CloudWatch's reachability check) carries no log events: it is reported as
  `kind == "control"` so the caller can count it apart from data.
* raw text lines (an access log pushed with `sieve push`), possibly several per record.
* JSON log lines (a record whose first non-blank character is `{`), one object per line.

Anything else becomes a `Rejected(reason, detail)` with a reason from `REJECT_REASONS`, so the
caller can count it under a bounded label and the record never disappears.

    >>> decode_record(b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326').kind
    'text'
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Literal

import orjson

#: Upper bound on the decompressed size of one record (gzip bombs become `too_large`).
MAX_DECODED_BYTES = 16 * 1024 * 1024

#: Every reason `decode_record` can reject with (a bounded label set for metrics).
REJECT_REASONS = frozenset(
    {"empty", "too_large", "bad_gzip", "bad_json", "not_utf8", "unknown_message_type", "bad_cwl_payload"}
)

_GZIP_MAGIC = b"\x1f\x8b"
#: Event timestamps (epoch ms) must fall before the year 10000 (as parse.MAX_EVENT_SECONDS).
MAX_TIMESTAMP_MS = 253_402_300_800_000


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why an input (a record, a line) was not used. `reason` is a short fixed label, `detail`
    a human hint (never the full input, which may hold secrets)."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One log event: its text plus whatever the transport told us about it.

    `timestamp_ms`, `log_group`, `log_stream` and `event_id` are only known for CloudWatch Logs
    subscription payloads; for raw lines they are None and the event time comes from the line."""

    message: str
    timestamp_ms: int | None = None
    log_group: str | None = None
    log_stream: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded record. `kind` says which shape it was; `blank_lines` counts empty lines that were
    skipped inside a multi-line text record (skipped, but counted)."""

    kind: Literal["cwl", "control", "text", "json"]
    events: tuple[LogEvent, ...]
    blank_lines: int = 0


def decode_record(data: bytes, *, max_bytes: int = MAX_DECODED_BYTES) -> Decoded | Rejected:
    """Decode one record's data bytes into log events, or say why not. Never raises."""
    try:
        return _decode(bytes(data), max_bytes)
    except Exception as exc:  # defensive: a decoder must never sink the batch
        return Rejected("bad_cwl_payload", f"unexpected {type(exc).__name__}")


def _decode(data: bytes, max_bytes: int) -> Decoded | Rejected:
    if not data:
        return Rejected("empty", "record has no data")
    if len(data) > max_bytes:
        return Rejected("too_large", f"record is {len(data)} bytes, limit {max_bytes}")
    if data[:2] == _GZIP_MAGIC:
        return _decode_cwl(data, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected("not_utf8", f"invalid UTF-8 at byte {exc.start}")
    if text.startswith("\ufeff"):
        text = text[1:]
    stripped = text.lstrip()
    if not stripped.strip():
        return Rejected("empty", "record holds only whitespace")
    kind: Literal["text", "json"] = "json" if stripped[0] == "{" else "text"
    events = []
    blank = 0
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip():
            blank += 1
            continue
        events.append(LogEvent(line))
    # a trailing newline is not a blank line
    if text.endswith("\n"):
        blank -= 1
    return Decoded(kind, tuple(events), max(blank, 0))


def _decode_cwl(data: bytes, max_bytes: int) -> Decoded | Rejected:
    # MAX_WBITS|32 accepts gzip and zlib headers, like Powertools' CloudWatchLogsDecodedData.
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)
    try:
        raw = inflater.decompress(data, max_bytes)
        if inflater.unconsumed_tail:
            return Rejected("too_large", f"decompressed payload exceeds {max_bytes} bytes")
        raw += inflater.flush()
    except zlib.error as exc:
        return Rejected("bad_gzip", str(exc)[:200])
    if not inflater.eof:
        return Rejected("bad_gzip", "truncated gzip stream")
    if inflater.unused_data:  # a second gzip member or trailing bytes: never silently ignored
        return Rejected("bad_gzip", f"{len(inflater.unused_data)} bytes after the end of the gzip stream")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if _is_utf8_error(raw):
            return Rejected("not_utf8", "gzip payload is not UTF-8")
        return Rejected("bad_json", f"gzip payload is not JSON: {str(exc)[:120]}")
    if not isinstance(doc, dict):
        return Rejected("bad_cwl_payload", f"gzip JSON payload is a {type(doc).__name__}, expected an object")
    return decode_cwl_document(doc)


def decode_cwl_document(doc: dict) -> Decoded | Rejected:
    """The events of an already-decompressed, already-parsed CloudWatch Logs subscription payload
    (also what `sieve topn` reads from a saved payload file)."""
    message_type = doc.get("messageType")
    if message_type == "CONTROL_MESSAGE":
        return Decoded("control", ())
    if message_type != "DATA_MESSAGE":
        return Rejected("unknown_message_type", f"messageType is {str(message_type)[:40]!r}, expected DATA_MESSAGE")
    group, stream, log_events = doc.get("logGroup"), doc.get("logStream"), doc.get("logEvents")
    if not isinstance(group, str) or not isinstance(stream, str) or not isinstance(log_events, list):
        return Rejected("bad_cwl_payload", "DATA_MESSAGE needs string logGroup, logStream and a logEvents list")
    events = []
    for i, item in enumerate(log_events):
        if not isinstance(item, dict):
            return Rejected("bad_cwl_payload", f"logEvents[{i}] is not an object")
        message, ts, event_id = item.get("message"), item.get("timestamp"), item.get("id")
        if not isinstance(message, str):
            return Rejected("bad_cwl_payload", f"logEvents[{i}].message is not a string")
        if ts is not None and (type(ts) is not int or ts < 0 or ts >= MAX_TIMESTAMP_MS):
            return Rejected("bad_cwl_payload", f"logEvents[{i}].timestamp is not epoch milliseconds")
        if message.endswith("\n"):
            message = message.rstrip("\r\n")
        events.append(LogEvent(message, ts, group, stream, event_id if isinstance(event_id, str) else None))
    return Decoded("cwl", tuple(events))


def _is_utf8_error(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
