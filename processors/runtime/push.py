"""Put log lines onto a Kinesis stream the way producers do.

Formats:
  lines  one record per line (access-log lines, or any text)
  json   one record per line; each line must be a JSON object (bad lines are counted and reported,
         never sent and never silently skipped)
  cwl    lines wrapped exactly as a CloudWatch Logs subscription delivers them: gzip JSON with
         messageType DATA_MESSAGE, owner, logGroup, logStream, subscriptionFilters, logEvents
         [{id, timestamp, message}], many events per record

PutRecords takes at most 500 records and 5 MiB per call and 1 MiB per record (data plus partition
key). Records that PutRecords reports as failed (throttled, internal error) are resent with the
adapters' one backoff policy (`processors.adapters.retry.Backoff`); what still fails after the last
attempt is reported.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Iterator

import orjson

from processors.adapters.retry import Backoff
from processors.core.batching import bounded_batches

MAX_RECORDS = 500
MAX_CALL_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
CWL_EVENTS_PER_RECORD = 200
CWL_MAX_RAW_BYTES = 256 * 1024

_CLF_TIME = re.compile(r"\[(\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\]")


@dataclass
class PushResult:
    lines: int = 0
    records: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    invalid: int = 0
    errors: list[str] = field(default_factory=list)  # first few reasons, for the summary

    def note(self, msg: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(msg)


@dataclass(frozen=True)
class Entry:
    data: bytes
    key: str
    lines: int  # how many input lines this record carries


def line_time_ms(line: str, default_ms: int) -> int:
    """Event time for a CWL event: the access-log timestamp when there is one, else `default_ms`."""
    m = _CLF_TIME.search(line)
    if m:
        try:
            return int(datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z").timestamp() * 1000)
        except ValueError:
            pass
    return default_ms


def _pkey(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def entries(lines: Iterable[str], fmt: str, result: PushResult, *, log_group: str = "/sieve/push",
            log_stream: str = "push", owner: str = "123456789012", now_ms: Callable[[], int] | None = None) -> Iterator[Entry]:
    now_ms = now_ms or (lambda: int(time.time() * 1000))
    if fmt == "cwl":
        yield from _cwl_entries(lines, result, log_group, log_stream, owner, now_ms)
        return
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        result.lines += 1
        if fmt == "json":
            try:
                if not isinstance(orjson.loads(line), dict):
                    raise ValueError("not a JSON object")
            except (orjson.JSONDecodeError, ValueError) as exc:
                result.invalid += 1
                result.note(f"line {n}: invalid JSON ({exc}); not sent")
                continue
        data = line.encode("utf-8", "surrogateescape")
        if len(data) + 16 > MAX_RECORD_BYTES:
            result.invalid += 1
            result.note(f"line {n}: {len(data)} bytes is over Kinesis' 1 MiB record limit; not sent")
            continue
        yield Entry(data, _pkey(f"{n}:{line}"), 1)


def _cwl_entries(lines, result, log_group, log_stream, owner, now_ms) -> Iterator[Entry]:
    events: list[dict] = []
    size = 0
    seq = 0

    def flush() -> Entry:
        doc = {"messageType": "DATA_MESSAGE", "owner": owner, "logGroup": log_group, "logStream": log_stream,
               "subscriptionFilters": ["sieve-push"], "logEvents": list(events)}
        data = gzip.compress(orjson.dumps(doc), mtime=0)
        return Entry(data, _pkey(f"{log_stream}:{events[0]['id']}"), len(events))

    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        result.lines += 1
        ts = line_time_ms(line, now_ms())
        seq += 1
        # CloudWatch event ids are 56-digit strings; this keeps the same shape and is unique per push.
        ev = {"id": f"{ts:020d}{seq:036d}", "timestamp": ts, "message": line}
        n = len(line) + 80
        if events and (len(events) >= CWL_EVENTS_PER_RECORD or size + n > CWL_MAX_RAW_BYTES):
            yield flush()
            events, size = [], 0
        events.append(ev)
        size += n
    if events:
        yield flush()


def batches(items: Iterable[Entry]) -> Iterator[list[Entry]]:
    """PutRecords calls: at most 500 records and 5 MiB (data plus partition key) each."""
    return bounded_batches(items, max_items=MAX_RECORDS, max_bytes=MAX_CALL_BYTES, size=_record_bytes)


def _record_bytes(e: Entry) -> int:
    return len(e.data) + len(e.key.encode())


def put_all(kinesis, stream: str, items: Iterable[Entry], result: PushResult, *, max_attempts: int = 8,
            base_delay: float = 0.1, max_delay: float = 5.0, sleep: Callable[[float], None] = time.sleep,
            on_progress: Callable[[int], None] | None = None) -> PushResult:
    """Send every entry; records PutRecords reports as failed are resent, up to `max_attempts` calls."""
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"put_all: max_attempts must be an integer >= 1, got {max_attempts!r}")
    backoff = Backoff(base_delay, max_delay, max_attempts - 1, sleep=sleep)
    for batch in batches(items):
        pending = batch
        for retry in backoff.attempts():
            if retry:
                result.retried += len(pending)
            resp = kinesis.put_records(StreamName=stream, Records=[{"Data": e.data, "PartitionKey": e.key} for e in pending])
            failed = [(e, r) for e, r in zip(pending, resp["Records"]) if r.get("ErrorCode")]
            result.sent += len(pending) - len(failed)
            if on_progress:
                on_progress(sum(e.lines for e, r in zip(pending, resp["Records"]) if not r.get("ErrorCode")))
            if not failed:
                break
            pending = [e for e, _ in failed]
        else:
            result.failed += len(failed)
            for _, r in failed[:5]:
                result.note(f"gave up after {max_attempts} attempts: {r.get('ErrorCode')}: {r.get('ErrorMessage')}")
        result.records += len(batch)
    return result
