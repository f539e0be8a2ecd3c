"""The watermark waits for a shard that has flushed nothing yet, on the real local stack: a 2-shard Kinesis
stream on moto (ListShards), the state table on DynamoDB, the runner and the logs handler, the finaliser
built by the wiring. Found by the fault harness under load (issue 14): a window closed before a throttled
shard's first partial, which was then merged as late."""

from __future__ import annotations

import logging
import time

import boto3
import pytest
from botocore.stub import Stubber

from processors import wiring
from processors.adapters.kinesis_shards import KinesisShardLister
from processors.adapters.state_store import StateStore
from processors.core.types import ShardProgress
from processors.core.watermark import IDLE_SHARD_SECONDS
from processors.ports import TransientFailure
from processors.runtime.checkpoints import MemoryCheckpointStore
from processors.runtime.mappings import build_mappings
from processors.runtime.runner import Runner
from processors.runtime.slack_receiver import SlackReceiver

from .conftest import local_notifier

A, B = "shardId-000000000000", "shardId-000000000001"
HASH = {A: "0", B: str(2**127 + 1)}  # the 2-shard stream splits the hash key range in halves
WINDOW = 1709546400  # 10:00-10:01 on 04/Mar/2024
LINE = '192.0.2.{} - - [04/Mar/2024:10:{:02d}:{:02d} +0000] "GET {} HTTP/1.1" 500 1 "-" "ua"'


def put(shard: str, lines: list[str]) -> None:
    resp = boto3.client("kinesis").put_records(StreamName="sieve-access-logs", Records=[
        {"Data": text.encode(), "PartitionKey": "k", "ExplicitHashKey": HASH[shard]} for text in lines])
    assert resp["FailedRecordCount"] == 0 and {r["ShardId"] for r in resp["Records"]} == {shard}


def runner(stack) -> Runner:
    return Runner(build_mappings(stack.loaded(), {"logs-processor"}), MemoryCheckpointStore(),
                  poll_interval_seconds=0.05, retry_delay_seconds=0)


def drain(r: Runner) -> None:
    assert not r.run_until_idle(60).timed_out


# ------------------------------------------------------------------------------------ the adapters


def test_the_state_store_registers_without_overwriting_and_a_flush_advances_from_it(aws):
    from processors.runtime.provision import provision
    from processors.config import load

    provision(load("pipelines.yaml").config, emulator=True)
    store = StateStore("sieve-state")
    store.advance_progress(A, 1_000)
    store.register_shards([A, B], 1_700_000_000)
    got = store.shard_progress()
    assert got[A].max_event_ms == 1_000 and got[A].updated_at != 1_700_000_000  # real progress untouched
    assert got[B] == ShardProgress(None, 1_700_000_000)
    store.register_shards([B], 1_700_000_500)  # another finaliser: the first-seen time stays
    assert store.shard_progress()[B] == ShardProgress(None, 1_700_000_000)
    assert store.progress() == {A: 1_000}  # "nothing flushed yet" is no progress
    store.advance_progress(B, 2_000)  # the logs processor's update replaces the record
    assert store.shard_progress()[B].max_event_ms == 2_000 and store.progress() == {A: 1_000, B: 2_000}
    store.advance_progress(B, 1_500)  # and never moves it back
    assert store.progress()[B] == 2_000
    store.register_shards([B], 1_700_000_900)
    assert store.shard_progress()[B].max_event_ms == 2_000


def test_the_lister_names_the_open_shards_only(aws):
    kinesis = boto3.client("kinesis")
    kinesis.create_stream(StreamName="s3", ShardCount=3)
    lister = KinesisShardLister("s3")
    assert lister.shards() == ["shardId-000000000000", "shardId-000000000001", "shardId-000000000002"]
    kinesis.merge_shards(StreamName="s3", ShardToMerge="shardId-000000000000", AdjacentShardToMerge="shardId-000000000001")
    after = lister.shards()
    assert "shardId-000000000000" not in after and "shardId-000000000001" not in after  # closed by the merge
    assert "shardId-000000000002" in after and len(after) == 2  # the untouched one and the merged child
    with pytest.raises(TransientFailure, match="ResourceNotFoundException"):
        KinesisShardLister("no-such-stream").shards()


def test_the_lister_follows_next_token_without_the_stream_name():
    """ListShards rejects StreamName together with NextToken; moto accepts neither form of paging, so the
    request shapes are checked against the service model by botocore's Stubber."""
    client = boto3.client("kinesis", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    shard = {"HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": "1"}}
    with Stubber(client) as stub:
        stub.add_response("list_shards", {"Shards": [{"ShardId": "s-1", **shard,
                                                      "SequenceNumberRange": {"StartingSequenceNumber": "1"}}],
                                          "NextToken": "t1"}, {"StreamName": "logs"})
        stub.add_response("list_shards", {"Shards": [{"ShardId": "s-2", **shard, "SequenceNumberRange": {
            "StartingSequenceNumber": "1", "EndingSequenceNumber": "9"}}, {"ShardId": "s-3", **shard,
            "SequenceNumberRange": {"StartingSequenceNumber": "10"}}]}, {"NextToken": "t1"})
        assert KinesisShardLister("logs", client=client).shards() == ["s-1", "s-3"]
        stub.assert_no_pending_responses()


def test_the_finaliser_needs_list_shards_on_its_stream():
    from processors.config import load

    cfg = load("pipelines.yaml").config
    statements = wiring.needs(cfg, "processors.handlers.finaliser.handler").statements()
    [st] = [s for s in statements if s["Action"] == "kinesis:ListShards"]
    assert st["Resource"]["Fn::Sub"].endswith(f":stream/{cfg.pipelines.logs.source_stream}")
    assert not any("kinesis:" in str(s) for s in wiring.needs(cfg, "processors.handlers.logs.handler").statements())


# ------------------------------------------------------------------------------------ the finaliser


def test_a_window_waits_for_the_shard_that_has_flushed_nothing_then_nothing_is_late(make_stack):
    stack = make_stack()
    r = runner(stack)
    # shard A: 3 errors in 10:00, then 10:02 on it moves its event time past 10:01 + 30 s of lateness
    put(A, [LINE.format(1, 0, s, "/slow") for s in (5, 6, 7)] + [LINE.format(1, 2, 0, "/later")])
    drain(r)
    store = StateStore("sieve-state")
    assert set(store.progress()) == {A}
    with SlackReceiver() as receiver:
        fin = wiring.finaliser(stack.loaded(), notifier=local_notifier(receiver.url))
        first = fin.run()
        assert first["finalised"] == [] and first["waiting_for"] == [B] and first["watermark_ms"] is None
        assert WINDOW in store.open_windows("errors-by-path")
        assert store.shard_progress()[B].max_event_ms is None  # registered: "nothing flushed yet"
        # a fresh container (Lambda) still waits: the first-seen time is in the table, not in the process
        again = wiring.finaliser(stack.loaded(), notifier=local_notifier(receiver.url)).run()
        assert again["finalised"] == [] and again["waiting_for"] == [B]
        # shard B's runner catches up: its events of 10:00, and 10:02
        put(B, [LINE.format(2, 0, s, "/slow") for s in (30, 31)] + [LINE.format(2, 2, 1, "/later")])
        drain(r)
        second = fin.run()
    done = {(d["rule"], d["window"]): d for d in second["finalised"]}
    key = ("errors-by-path", f"{WINDOW}-{WINDOW + 60}")
    assert key in done and done[key]["status"] != "late" and second["waiting_for"] == []
    report = store.report("errors-by-path", WINDOW)
    assert int(report["topn"]["total_events"]) == 5  # both shards, counted in the window, not as late
    assert "late_events" not in report and "late_partials" not in report


def test_a_shard_that_never_flushes_holds_only_for_idle_seconds(make_stack):
    stack = make_stack()
    r = runner(stack)
    put(A, [LINE.format(1, 0, 5, "/slow"), LINE.format(1, 2, 0, "/later")])
    drain(r)
    # the finaliser first sees B idle_seconds (+1) ago: its clock runs that far behind for the first run
    offset = {"s": -IDLE_SHARD_SECONDS - 1.0}
    with SlackReceiver() as receiver:
        fin = wiring.finaliser(stack.loaded(), notifier=local_notifier(receiver.url),
                               clock=lambda: time.time() + offset["s"])
        first = fin.run()
        assert first["waiting_for"] == [B] and first["finalised"] == []
        offset["s"] = 0.0  # now: A flushed a moment ago (active), B has been known longer than idle_seconds
        result = fin.run()
    assert result["waiting_for"] == [] and result["watermark_ms"] // 1000 == WINDOW + 120  # A's 10:02:00
    assert [d["window"] for d in result["finalised"] if d["rule"] == "errors-by-path"] == [f"{WINDOW}-{WINDOW + 60}"]


def test_when_the_stream_cannot_be_listed_the_finaliser_goes_on_as_before(make_stack, caplog):
    stack = make_stack()
    r = runner(stack)
    put(A, [LINE.format(1, 0, 5, "/slow"), LINE.format(1, 2, 0, "/later")])
    drain(r)
    with SlackReceiver() as receiver, caplog.at_level(logging.WARNING, logger="sieve.finalise"):
        fin = wiring.finaliser(stack.loaded(), notifier=local_notifier(receiver.url))
        fin.shards = KinesisShardLister("sieve-no-such-stream")  # e.g. a template without kinesis:ListShards
        result = fin.run()
    assert [d["window"] for d in result["finalised"] if d["rule"] == "errors-by-path"] == [f"{WINDOW}-{WINDOW + 60}"]
    assert any("could not be listed" in rec.getMessage() for rec in caplog.records)
