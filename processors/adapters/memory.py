"""In-process implementations of the log pipeline's ports, for benchmarks, evaluations and plain-data
tests that need the whole use case without a local stack: a WindowStore with the DynamoDB store's
semantics (exactly-once flush on the cursor, reports written once), a Notifier that keeps what it
would post, an AuditSink that keeps its records. Not for production: nothing here is durable."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from processors.core.incidents import Mute
from processors.core.records import report_from_dict
from processors.core.slack_blocks import render
from processors.core.types import (AuditRecord, Delivery, LastSelected, Partial, ShardProgress, StoredReport, TopNReport,
                                   WindowReport)


@dataclass
class MemoryWindowStore:
    clock: object = None  # () -> epoch seconds, for progress timestamps; time.time when None
    cursors: dict[str, str] = field(default_factory=dict)
    _partials: dict[tuple[str, int], dict[tuple[str, str, str], Partial]] = field(default_factory=dict)
    _open: set[tuple[str, int]] = field(default_factory=set)
    _progress: dict[str, ShardProgress] = field(default_factory=dict)
    _reports: dict[tuple[str, int], dict] = field(default_factory=dict)
    _selected: dict[str, dict[tuple[str, ...], LastSelected]] = field(default_factory=dict)
    muted: dict[str, dict[str, Mute]] = field(default_factory=dict)  # rule -> incident id -> mute
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _now(self) -> int:
        import time

        return int((self.clock or time.time)())

    def cursor(self, shard: str) -> str | None:
        return self.cursors.get(shard)

    def flush(self, shard: str, expected_cursor: str | None, new_cursor: str, partials: Sequence[Partial],
              max_event_ms: int | None) -> bool:
        with self._lock:
            if self.cursors.get(shard) != expected_cursor:
                return False
            for p in partials:
                self._partials.setdefault((p.rule, p.window_start), {})[(p.shard, p.first_seq, p.last_seq)] = p
                self._open.add((p.rule, p.window_start))
            self.cursors[shard] = new_cursor
            if max_event_ms is not None:
                old = self._progress.get(shard)
                if old is None or old.max_event_ms is None or old.max_event_ms < max_event_ms:
                    self._progress[shard] = ShardProgress(max_event_ms, self._now())
            return True

    def partials(self, rule: str, window_start: int) -> list[Partial]:
        return list(self._partials.get((rule, window_start), {}).values())

    def open_windows(self, rule: str) -> list[int]:
        return sorted(start for r, start in self._open if r == rule)

    def close_window(self, rule: str, window_start: int) -> None:
        self._open.discard((rule, window_start))

    def shard_progress(self) -> dict[str, ShardProgress]:
        return dict(self._progress)

    def register_shards(self, shards: Sequence[str], now: int) -> None:
        with self._lock:  # "nothing flushed yet, first seen now", never over real progress
            for shard in shards:
                self._progress.setdefault(shard, ShardProgress(None, int(now)))

    def stored_report(self, rule: str, window_start: int) -> StoredReport | None:
        doc = self._reports.get((rule, window_start))
        return None if doc is None else StoredReport(rule, window_start, report_from_dict(doc["topn"]), doc)

    def previous_reports(self, rule: str, *, before: int, limit: int) -> list[TopNReport]:
        starts = sorted((s for r, s in self._reports if r == rule and s < before), reverse=True)[:limit]
        return [report_from_dict(self._reports[(rule, s)]["topn"]) for s in starts]

    def put_report(self, rule: str, window_start: int, document: dict) -> bool:
        if (rule, window_start) in self._reports:
            return False
        self._reports[(rule, window_start)] = document
        return True

    def mark_late(self, rule: str, window_start: int, *, late_events: int, late_partials: int) -> None:
        self._reports[(rule, window_start)].update(late_events=late_events, late_partials=late_partials)

    def last_selected(self, rule: str) -> dict[tuple[str, ...], LastSelected]:
        return dict(self._selected.get(rule, {}))

    def mark_selected(self, rule: str, selected: Mapping[tuple[str, ...], LastSelected]) -> None:
        self._selected.setdefault(rule, {}).update(selected)

    def mutes(self, rule: str) -> dict[str, Mute]:
        return dict(self.muted.get(rule, {}))

    def put_mute(self, rule: str, incident: str, mute: Mute) -> None:
        self.muted.setdefault(rule, {})[incident] = mute


@dataclass
class MemoryNotifier:
    """Keeps the Block Kit payload it would post, once per delivery key."""

    posted: list[dict] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)

    def bind_invocation(self, context) -> None:
        pass

    def post_report(self, report: WindowReport, *, max_rows: int) -> Delivery:
        from processors.core.slack_blocks import delivery_key

        key = delivery_key(report)
        if key in self._keys:
            return Delivery(key, "duplicate", 200, 0)
        self._keys.add(key)
        self.posted.append(render(report, max_rows=max_rows))
        return Delivery(key, "posted", 200, 1)


@dataclass
class MemoryAudit:
    records: list[AuditRecord] = field(default_factory=list)

    def record(self, record: AuditRecord) -> None:
        self.records.append(record)
