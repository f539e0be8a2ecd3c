"""The event-time watermark of a stream: how far every active shard has flushed.

The logs processor records, per shard, the largest event time it has flushed and when (wall clock)
it did so (`ShardProgress`). The watermark is the slowest shard's event time among the shards that
moved recently: a shard that has been idle for `idle_seconds` (drained, or closed by a reshard) no
longer holds the stream back. A window is closed once the watermark is at or past its end plus the
allowed lateness; partials that arrive after that are late, and the finaliser counts them on the
window's report instead of posting it again.

A shard that is open on the stream but has flushed nothing yet (its runner throttled, restarting, or
just not reached) has no event time to offer, yet its first partial may belong to any open window.
The finaliser lists the stream's open shards (the ShardLister port) and registers each one without
progress as "nothing flushed yet" (`ShardProgress(None, first seen)`, a conditional write that never
overwrites real progress). Such a shard holds every window open until it flushes, or until it has
been known for `idle_seconds` without flushing: then, like an idle shard, it no longer holds (a shard
that never receives a record delays the stream's windows once, by `idle_seconds`, not forever).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from processors.core.types import ShardProgress, Window

#: a shard whose progress has not moved for this long (wall clock) no longer holds the watermark back;
#: a listed shard that has flushed nothing stops holding this long after it was first seen
IDLE_SHARD_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Watermark:
    event_ms: int | None  # None: nothing may close (no shard has flushed, or one that has not is still awaited)
    waiting_for: tuple[str, ...] = ()  # shards that have flushed nothing yet and hold every window open

    @classmethod
    def of(cls, progress: Mapping[str, ShardProgress], now: float, *, idle_seconds: float = IDLE_SHARD_SECONDS) -> "Watermark":
        active = {s: p for s, p in progress.items() if now - p.updated_at <= idle_seconds}
        waiting = tuple(sorted(s for s, p in active.items() if p.max_event_ms is None))
        if waiting:  # its first partial may belong to any open window: nothing closes until it flushes or idles
            return cls(None, waiting)
        if not active:  # every shard is idle: the stream as a whole has reached the slowest one
            active = dict(progress)
        flushed = [p.max_event_ms for p in active.values() if p.max_event_ms is not None]
        return cls(min(flushed) if flushed else None)

    def closes(self, window: Window, allowed_lateness: int) -> bool:
        return self.event_ms is not None and self.event_ms / 1000 >= window.end + allowed_lateness


def unregistered(listed: Iterable[str], progress: Mapping[str, ShardProgress]) -> list[str]:
    """The listed shards the state table knows nothing about yet (no progress, no placeholder), in order."""
    seen: set[str] = set()
    out = []
    for s in listed:
        if s not in progress and s not in seen:
            seen.add(s)
            out.append(s)
    return out
