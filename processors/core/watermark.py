"""The event-time watermark of a stream: how far every active shard has flushed.

The logs processor records, per shard, the largest event time it has flushed and when (wall clock)
it did so (`ShardProgress`). The watermark is the slowest shard's event time among the shards that
moved recently: a shard that has been idle for `idle_seconds` (drained, or closed by a reshard) no
longer holds the stream back. A window is closed once the watermark is at or past its end plus the
allowed lateness; partials that arrive after that are late, and the finaliser counts them on the
window's report instead of posting it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from processors.core.types import ShardProgress, Window

#: a shard whose progress has not moved for this long (wall clock) no longer holds the watermark back
IDLE_SHARD_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Watermark:
    event_ms: int | None  # None: no shard has flushed anything yet

    @classmethod
    def of(cls, progress: Mapping[str, ShardProgress], now: float, *, idle_seconds: float = IDLE_SHARD_SECONDS) -> "Watermark":
        active = [p.max_event_ms for p in progress.values() if now - p.updated_at <= idle_seconds]
        if not active:  # every shard is idle: the stream as a whole has reached the slowest one
            active = [p.max_event_ms for p in progress.values()]
        return cls(min(active) if active else None)

    def closes(self, window: Window, allowed_lateness: int) -> bool:
        return self.event_ms is not None and self.event_ms / 1000 >= window.end + allowed_lateness
