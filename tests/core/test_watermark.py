"""The watermark waits for a shard that has flushed nothing yet (the fault harness's open finding, issue 14):
Watermark.of with "nothing flushed yet" records, the memory store's registration, and the finaliser on the
in-memory ports with a lister of the stream's shards. The same finaliser on moto (a real 2-shard stream,
DynamoDB, ListShards) is tests/pipeline/test_watermark_shards.py."""

from __future__ import annotations

import base64
import dataclasses
import logging

import pytest

from processors.adapters.memory import MemoryAudit, MemoryNotifier, MemoryWindowStore
from processors.adapters.sqs import LogRejectSink
from processors.config import load
from processors.core.budget import InMemoryBudgetLedger
from processors.core.finalise import Finaliser
from processors.core.ingest import LogIngest, StreamBatch, StreamRecord
from processors.core.types import ShardProgress, Window
from processors.core.watermark import IDLE_SHARD_SECONDS, Watermark, unregistered
from processors.ports import TransientFailure
from processors.wiring import finalise_config, ingest_config

NOW = 1_800_000_000
W = Window(1709546400, 1709546460)  # 10:00-10:01 on 04/Mar/2024
A, B = "shardId-000000000000", "shardId-000000000001"


# ------------------------------------------------------------------------------------ Watermark.of


def test_a_listed_shard_with_nothing_flushed_holds_every_window():
    progress = {A: ShardProgress((W.end + 600) * 1000, NOW - 5), B: ShardProgress(None, NOW - 10)}
    wm = Watermark.of(progress, NOW)
    assert wm.event_ms is None and wm.waiting_for == (B,)
    assert not wm.closes(W, allowed_lateness=0) and not wm.closes(Window(0, 60), allowed_lateness=0)


def test_it_stops_holding_once_known_for_idle_seconds_without_a_flush():
    progress = {A: ShardProgress((W.end + 30) * 1000, NOW - 5), B: ShardProgress(None, NOW - IDLE_SHARD_SECONDS)}
    assert Watermark.of(progress, NOW).waiting_for == (B,)  # exactly idle_seconds: still awaited
    progress[B] = ShardProgress(None, NOW - IDLE_SHARD_SECONDS - 1)
    wm = Watermark.of(progress, NOW)
    assert wm == Watermark((W.end + 30) * 1000) and wm.closes(W, allowed_lateness=30)
    # a shorter idle time (FinaliseConfig.idle_shard_seconds) lets it go sooner
    assert Watermark.of({**progress, B: ShardProgress(None, NOW - 61)}, NOW, idle_seconds=60).closes(W, 30)


def test_real_progress_replaces_nothing_yet():
    slow = {A: ShardProgress((W.end + 600) * 1000, NOW - 5), B: ShardProgress((W.end + 10) * 1000, NOW - 1)}
    wm = Watermark.of(slow, NOW)
    assert wm.event_ms == (W.end + 10) * 1000 and wm.waiting_for == ()  # the slowest flushed shard holds
    assert not wm.closes(W, 30) and wm.closes(W, 10)


def test_every_shard_idle_goes_by_the_flushed_ones_only():
    progress = {A: ShardProgress((W.end + 45) * 1000, NOW - 1000), B: ShardProgress(None, NOW - 1000)}
    assert Watermark.of(progress, NOW) == Watermark((W.end + 45) * 1000)
    assert Watermark.of({B: ShardProgress(None, NOW - 1000)}, NOW) == Watermark(None)
    assert Watermark.of({B: ShardProgress(None, NOW)}, NOW) == Watermark(None, (B,))


def test_unregistered_is_the_listed_shards_without_any_record_in_order():
    progress = {A: ShardProgress(1, NOW), B: ShardProgress(None, NOW)}
    assert unregistered(["shardId-2", A, B, "shardId-3", "shardId-2"], progress) == ["shardId-2", "shardId-3"]
    assert unregistered([], progress) == []


# ------------------------------------------------------------------------------------ the memory store


def test_memory_store_registration_never_overwrites_and_a_flush_advances_from_it():
    clock = {"t": NOW}
    store = MemoryWindowStore(clock=lambda: clock["t"])
    assert store.flush(A, None, "1", [], 1_000)
    store.register_shards([A, B], NOW - 50)
    assert store.shard_progress() == {A: ShardProgress(1_000, NOW), B: ShardProgress(None, NOW - 50)}
    store.register_shards([B], NOW)  # a second finaliser: the first-seen time stays
    assert store.shard_progress()[B] == ShardProgress(None, NOW - 50)
    clock["t"] = NOW + 7
    assert store.flush(B, None, "5", [], 2_000)
    assert store.shard_progress()[B] == ShardProgress(2_000, NOW + 7)
    store.register_shards([B], NOW + 8)
    assert store.shard_progress()[B] == ShardProgress(2_000, NOW + 7)


# ------------------------------------------------------------------------------------ the finaliser, in process


def line(minute: int, second: int, path: str = "/w") -> str:
    return f'192.0.2.9 - - [04/Mar/2024:10:{minute:02d}:{second:02d} +0000] "GET {path} HTTP/1.1" 500 1 "-" "ua"'


def batch(shard: str, first_seq: int, lines: list[str]) -> StreamBatch:
    return StreamBatch(shard, tuple(StreamRecord(str(first_seq + i), base64.b64encode(text.encode()).decode())
                                    for i, text in enumerate(lines)))


class Listed:
    """The ShardLister port as the stream answers it (its open shards), or failing as ListShards can."""

    def __init__(self, shards, error: Exception | None = None):
        self._shards, self.error, self.calls = list(shards), error, 0

    def shards(self) -> list[str]:
        self.calls += 1
        if self.error:
            raise self.error
        return list(self._shards)


@pytest.fixture()
def pipeline():
    loaded = load("pipelines.yaml")
    clock = {"t": float(NOW)}
    store = MemoryWindowStore(clock=lambda: clock["t"])
    ingest = LogIngest(ingest_config(loaded), store, LogRejectSink(), clock=lambda: clock["t"])
    cfg = finalise_config(loaded, b"k" * 32)
    cfg = dataclasses.replace(cfg, boundary=dataclasses.replace(cfg.boundary, enabled=False))

    def finaliser(lister):
        return Finaliser(cfg, store, analyser=None, budget=InMemoryBudgetLedger(), audit=MemoryAudit(),
                         notifier=MemoryNotifier(), clock=lambda: clock["t"], shards=lister)

    return ingest, store, finaliser, clock


def errors_window(result) -> list[dict]:
    return [d for d in result["finalised"] if d["rule"] == "errors-by-path" and d["window"] == W.key]


def test_the_finaliser_waits_for_a_listed_shard_until_its_first_flush(pipeline):
    ingest, store, finaliser, clock = pipeline
    # shard A: 3 errors in 10:00, then a line at 10:02 moves its event time past 10:01 + 30 s lateness
    assert ingest.process(batch(A, 10, [line(0, 5), line(0, 6), line(0, 7), line(2, 0, "/later")])).failed_sequence is None
    fin = finaliser(Listed([A, B]))
    first = fin.run()
    assert errors_window(first) == [] and first["waiting_for"] == [B] and first["watermark_ms"] is None
    assert store.shard_progress()[B] == ShardProgress(None, NOW)  # registered, first seen now
    clock["t"] += 60
    assert ingest.process(batch(B, 10, [line(0, 30), line(0, 31), line(2, 1, "/later")])).failed_sequence is None
    second = fin.run()
    [done] = errors_window(second)
    assert done["status"] != "late" and second["waiting_for"] == []
    assert done["report"]["topn"]["total_events"] == 5  # both shards' events, none late
    assert store.stored_report("errors-by-path", W.start).document.get("late_events") is None


def test_a_shard_that_never_flushes_stops_holding_after_idle_seconds(pipeline):
    ingest, store, finaliser, clock = pipeline
    ingest.process(batch(A, 10, [line(0, 5), line(2, 0, "/later")]))
    fin = finaliser(Listed([A, B]))
    assert errors_window(fin.run()) == []
    clock["t"] += IDLE_SHARD_SECONDS  # A's progress is as old: every shard idle, the flushed one decides
    ingest.process(batch(A, 20, [line(2, 5, "/later")]))  # A moves again: only B is idle
    clock["t"] += 1
    result = fin.run()
    assert result["waiting_for"] == [] and len(errors_window(result)) == 1


def test_without_a_lister_or_when_listing_fails_it_goes_by_the_flushed_shards(pipeline, caplog):
    ingest, store, finaliser, clock = pipeline
    ingest.process(batch(A, 10, [line(0, 5), line(2, 0, "/later")]))
    failing = Listed([A, B], error=TransientFailure("kinesis ListShards sieve-access-logs: AccessDeniedException"))
    with caplog.at_level(logging.WARNING, logger="sieve.finalise"):
        result = finaliser(failing).run()
    assert failing.calls == 1 and len(errors_window(result)) == 1  # closed as before: never fails the run
    assert any("could not be listed" in r.getMessage() for r in caplog.records)
    assert B not in store.shard_progress()


def test_a_flush_run_does_not_list_the_shards(pipeline):
    ingest, store, finaliser, clock = pipeline
    ingest.process(batch(A, 10, [line(0, 5)]))
    lister = Listed([A, B])
    result = finaliser(lister).run(flush=True)
    assert lister.calls == 0 and len(errors_window(result)) == 1 and B not in store.shard_progress()
