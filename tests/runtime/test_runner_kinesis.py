"""Kinesis: event shape, batching, order, shards, starting positions, resharding."""

from __future__ import annotations

import base64
import time

from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent
from aws_lambda_powertools.utilities.parser.models import KinesisDataStreamModel

from processors.runtime.checkpoints import JsonCheckpointStore
from tests.runtime.conftest import Recorder, make_stream, mapping, put, runner_for


def test_event_has_lambdas_shape_and_powertools_parses_it(kinesis, store):
    arn = make_stream(kinesis)
    datas = [b'{"a": 1}', b"\xff\x00 not utf-8 \x80", b"plain line"]
    before = time.time()
    written = put(kinesis, arn, datas, partition_key="p-1")
    rec = Recorder()
    runner_for([mapping(rec, arn)], store).run_until_idle(10)

    assert len(rec.events) == 1
    event = rec.events[0]
    assert set(event) == {"Records"}
    for raw, (shard, seq), r in zip(datas, written, event["Records"]):
        assert r["eventSource"] == "aws:kinesis"
        assert r["eventVersion"] == "1.0"
        assert r["eventName"] == "aws:kinesis:record"
        assert r["eventID"] == f"{shard}:{seq}"
        assert r["eventSourceARN"] == arn
        assert r["awsRegion"] == "us-east-1"
        assert r["invokeIdentityArn"].startswith("arn:aws:iam::123456789012:role/")
        k = r["kinesis"]
        assert k["kinesisSchemaVersion"] == "1.0"
        assert k["partitionKey"] == "p-1"
        assert k["sequenceNumber"] == seq
        assert base64.b64decode(k["data"]) == raw  # bytes as they are, even when not UTF-8
        assert isinstance(k["approximateArrivalTimestamp"], float)
        assert before - 1 <= k["approximateArrivalTimestamp"] <= time.time() + 1

    parsed = KinesisStreamEvent(event)
    assert [r.kinesis.data_as_bytes() for r in parsed.records] == datas
    assert parsed.window is None and parsed.state == {}
    assert [r.kinesis.data for r in KinesisDataStreamModel(**event).Records] == datas  # parser decodes base64


def test_batches_keep_shard_order_and_respect_batch_size(kinesis, store):
    arn = make_stream(kinesis)
    written = put(kinesis, arn, [f"r{i}".encode() for i in range(25)])
    rec = Recorder()
    report = runner_for([mapping(rec, arn, batch_size=10)], store).run_until_idle(10)

    assert [len(b) for b in rec.batches()] == [10, 10, 5]
    seqs = [int(s) for b in rec.batches() for s in b]
    assert seqs == sorted(seqs) and len(set(seqs)) == 25
    assert seqs == [int(s) for _, s in written]
    assert all(i.outcome == "success" for i in report.invocations)
    assert store.get("test-mapping", written[0][0]).sequence_number == written[-1][1]


def test_several_shards_each_record_once_in_shard_order(kinesis, store):
    arn = make_stream(kinesis, shards=3)
    written = []
    for i in range(60):
        written += put(kinesis, arn, [f"{i}".encode()], partition_key=f"key-{i}")
    assert len({s for s, _ in written}) == 3, "moto should spread these keys over the 3 shards"
    rec = Recorder()
    runner_for([mapping(rec, arn, batch_size=7)], store).run_until_idle(10)

    seen: dict[str, list[int]] = {}
    for ev in rec.events:
        shards = {r["eventID"].split(":")[0] for r in ev["Records"]}
        assert len(shards) == 1, "a batch holds records of one shard"
        seen.setdefault(shards.pop(), []).extend(int(r["kinesis"]["sequenceNumber"]) for r in ev["Records"])
    for shard, seqs in seen.items():
        assert seqs == sorted(seqs), shard
        assert seqs == [int(q) for s, q in written if s == shard]
    assert sum(len(v) for v in seen.values()) == 60


def test_trim_horizon_reads_history_latest_only_new_records(kinesis, store):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"old-1", b"old-2", b"old-3"])
    horizon, latest = Recorder(), Recorder()
    runner = runner_for(
        [mapping(horizon, arn, name="horizon"), mapping(latest, arn, name="latest", starting_position="LATEST")], store
    )
    runner.poll_once()
    put(kinesis, arn, [b"new-1", b"new-2"])
    runner.run_until_idle(10)

    def datas(r):
        return [base64.b64decode(x["kinesis"]["data"]) for ev in r.events for x in ev["Records"]]

    assert datas(horizon) == [b"old-1", b"old-2", b"old-3", b"new-1", b"new-2"]
    assert datas(latest) == [b"new-1", b"new-2"]


def test_latest_mapping_restarted_before_any_record_keeps_records_put_while_down(kinesis, tmp_path, clock):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"before-start"])
    clock.advance(1)  # the mapping starts 1 s after that record (the restart resumes AT_TIMESTAMP)
    path = tmp_path / "cp.json"
    first = Recorder()
    runner_for([mapping(first, arn, starting_position="LATEST")], JsonCheckpointStore(path), clock).run_until_idle(10)
    assert first.events == []
    put(kinesis, arn, [b"while-down-1", b"while-down-2"])  # the runner is "down"

    second = Recorder()
    runner_for([mapping(second, arn, starting_position="LATEST")], JsonCheckpointStore(path), clock).run_until_idle(10)
    got = [base64.b64decode(r["kinesis"]["data"]) for ev in second.events for r in ev["Records"]]
    assert got == [b"while-down-1", b"while-down-2"]


def test_batching_window_waits_for_a_full_batch_or_the_window(kinesis, store, clock):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"1", b"2", b"3"])
    rec = Recorder()
    runner = runner_for([mapping(rec, arn, batch_size=5, maximum_batching_window_seconds=30)], store, clock)
    runner.poll_once()
    runner.poll_once()
    assert rec.events == [], "3 of 5 records and the window not over: no invoke yet"
    put(kinesis, arn, [b"4", b"5", b"6"])
    runner.poll_once()
    assert rec.batches() and len(rec.batches()[0]) == 5, "a full batch goes at once"
    runner.poll_once()
    assert len(rec.events) == 1, "the 6th record waits for the window"
    clock.advance(31)
    runner.poll_once()
    assert [len(b) for b in rec.batches()] == [5, 1]


def test_closed_parent_shards_are_drained_before_their_child(kinesis, store):
    arn = make_stream(kinesis, shards=2)
    shards = [s["ShardId"] for s in kinesis.list_shards(StreamARN=arn)["Shards"]]
    for i in range(12):
        put(kinesis, arn, [f"p{i}".encode()], partition_key=f"key-{i}")
    rec = Recorder()
    runner = runner_for([mapping(rec, arn, batch_size=2)], store)
    runner.poll_once()  # part of each parent is read before the merge
    assert len(rec.events) == 2
    kinesis.merge_shards(StreamName="events", ShardToMerge=shards[0], AdjacentShardToMerge=shards[1])
    child = [s["ShardId"] for s in kinesis.list_shards(StreamARN=arn)["Shards"] if s["ShardId"] not in shards][0]
    # moto copies the parents' records into the merged shard (AWS does not) and keeps routing new
    # puts to the closed parents, so the child here holds the 12 copies: enough to check the order.
    report = runner.run_until_idle(10)
    assert not report.timed_out

    order = [ev["Records"][0]["eventID"].split(":")[0] for ev in rec.events]
    assert child in order
    first_child = order.index(child)
    assert set(order[first_child:]) == {child}, f"a parent was read after the child started: {order}"
    from_parents = [r for ev in rec.events for r in ev["Records"] if not r["eventID"].startswith(child)]
    assert sorted(base64.b64decode(r["kinesis"]["data"]) for r in from_parents) == sorted(f"p{i}".encode() for i in range(12))
    from_child = [r for ev in rec.events for r in ev["Records"] if r["eventID"].startswith(child)]
    assert len(from_child) == 12
    assert all(store.get("test-mapping", s).drained for s in shards)
    assert not store.get("test-mapping", child).drained


def test_handler_given_as_a_dotted_path(kinesis, store, tmp_path, monkeypatch):
    from tests.runtime import handlers

    arn = make_stream(kinesis)
    put(kinesis, arn, [b"x", b"y"])
    out = tmp_path / "seen.txt"
    monkeypatch.setenv("SIEVE_TEST_OUT", str(out))
    runner_for([mapping("tests.runtime.handlers.append_records", arn)], store).run_until_idle(10)
    assert handlers.read_seen(out) == [("shardId-000000000000", "1", b"x"), ("shardId-000000000000", "2", b"y")]


def test_every_invoke_is_logged_with_structured_fields(kinesis, store, caplog):
    arn = make_stream(kinesis)
    written = put(kinesis, arn, [b"secret-token=abc", b"two"])
    caplog.set_level("INFO", logger="sieve.runner")
    runner_for([mapping(Recorder(), arn)], store).run_until_idle(10)
    [entry] = [r for r in caplog.records if r.getMessage().startswith("invoke ")]
    assert (entry.mapping, entry.shard, entry.batch_size) == ("test-mapping", written[0][0], 2)
    assert (entry.first_sequence, entry.last_sequence, entry.outcome) == (written[0][1], written[1][1], "success")
    assert all("secret-token" not in r.getMessage() for r in caplog.records), "record data never reaches the log"
