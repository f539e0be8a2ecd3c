"""Checkpoints belong to one incarnation of a stream: its ARN and when it was created.

A stream deleted and created again under the same name (a new moto server, `sieve down` / `sieve
up`, a redeployed stack) has the same ARN but new shards whose sequence numbers start over; a
checkpoint of the old one would make the runner skip the new records. Such checkpoints are
ignored, and the runner says that it started fresh.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import boto3

from processors.runtime.checkpoints import JsonCheckpointStore, MemoryCheckpointStore, ShardCheckpoint, StreamIncarnation
from tests.runtime.conftest import Recorder, mapping, put, runner_for


def datas(rec: Recorder) -> list[bytes]:
    return [base64.b64decode(r["kinesis"]["data"]) for ev in rec.events for r in ev["Records"]]


def recreate(kinesis, name: str) -> str:
    kinesis.delete_stream(StreamName=name)
    time.sleep(0.01)  # moto stamps StreamCreationTimestamp to the millisecond
    kinesis.create_stream(StreamName=name, ShardCount=1)
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def test_a_recreated_kinesis_stream_is_read_from_its_start_not_from_the_old_checkpoint(kinesis, tmp_path, caplog):
    path = tmp_path / "cp.json"
    kinesis.create_stream(StreamName="events", ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName="events")["StreamDescriptionSummary"]["StreamARN"]
    put(kinesis, arn, [b"old-1", b"old-2", b"old-3"])
    first = Recorder()
    runner_for([mapping(first, arn)], JsonCheckpointStore(path)).run_until_idle(10)
    assert datas(first) == [b"old-1", b"old-2", b"old-3"]

    new_arn = recreate(kinesis, "events")
    assert new_arn == arn  # same name, same ARN: only the creation time tells them apart
    put(kinesis, arn, [b"new-1", b"new-2"])  # sequence numbers start over, below the old checkpoint

    second = Recorder()
    with caplog.at_level(logging.INFO, logger="sieve.runner"):
        report = runner_for([mapping(second, arn)], JsonCheckpointStore(path)).run_until_idle(10)
    assert datas(second) == [b"new-1", b"new-2"]
    assert all(i.outcome == "success" for i in report.invocations)
    fresh = [r.getMessage() for r in caplog.records if "starting fresh" in r.getMessage()]
    assert len(fresh) == 1 and "test-mapping" in fresh[0] and "created" in fresh[0], caplog.text

    # and the same incarnation resumes where it left off
    put(kinesis, arn, [b"new-3"])
    third = Recorder()
    runner_for([mapping(third, arn)], JsonCheckpointStore(path)).run_until_idle(10)
    assert datas(third) == [b"new-3"]


def test_a_recreated_dynamodb_table_stream_is_a_new_source(aws, tmp_path):
    ddb = boto3.client("dynamodb")

    def make() -> str:
        ddb.create_table(TableName="items", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST",
                         StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
        return ddb.describe_table(TableName="items")["Table"]["LatestStreamArn"]

    def keys(rec: Recorder) -> list[str]:
        return [r["dynamodb"]["Keys"]["pk"]["S"] for ev in rec.events for r in ev["Records"]]

    path = tmp_path / "cp.json"
    arn = make()
    for k in ("a", "b", "c"):
        ddb.put_item(TableName="items", Item={"pk": {"S": k}})
    first = Recorder()
    runner_for([mapping(first, arn)], JsonCheckpointStore(path)).run_until_idle(10)
    assert keys(first) == ["a", "b", "c"]

    ddb.delete_table(TableName="items")
    time.sleep(0.01)
    new_arn = make()
    assert new_arn != arn  # the stream label carries its creation time
    ddb.put_item(TableName="items", Item={"pk": {"S": "d"}})
    second = Recorder()
    runner_for([mapping(second, new_arn)], JsonCheckpointStore(path)).run_until_idle(10)
    assert keys(second) == ["d"]


KINESIS_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/s"


def test_bind_keeps_checkpoints_of_the_same_incarnation_and_drops_others(tmp_path):
    path = tmp_path / "cp.json"
    one = StreamIncarnation(KINESIS_ARN, 1764170000.123)
    store = JsonCheckpointStore(path)
    assert store.bind("m", one) is None  # nothing stored yet: nothing dropped
    store.mark_initialized("m", 5.0)
    store.put("m", "shardId-0", ShardCheckpoint("42"))
    store.put("other", "shardId-0", ShardCheckpoint("7"))

    again = JsonCheckpointStore(path)
    assert again.bind("m", StreamIncarnation(KINESIS_ARN, 1764170000.123)) is None
    assert again.get("m", "shardId-0").sequence_number == "42" and again.initialized_at("m") == 5.0

    why = again.bind("m", StreamIncarnation(KINESIS_ARN, 1764170999.0))
    assert why is not None and "created" in why
    assert again.get("m", "shardId-0") is None and again.initialized_at("m") is None
    assert again.get("other", "shardId-0").sequence_number == "7"  # other mappings untouched
    reread = JsonCheckpointStore(path)  # the drop is on disk, with the new incarnation
    assert reread.get("m", "shardId-0") is None
    assert reread.bind("m", StreamIncarnation(KINESIS_ARN, 1764170999.0)) is None


def test_bind_drops_checkpoints_of_another_arn_and_of_an_unknown_stream(tmp_path):
    store = MemoryCheckpointStore()
    store.bind("m", StreamIncarnation(KINESIS_ARN, 1.0))
    store.put("m", "shardId-0", ShardCheckpoint("42"))
    why = store.bind("m", StreamIncarnation(KINESIS_ARN.replace("/s", "/t"), 1.0))
    assert why is not None and "stream/s" in why and store.get("m", "shardId-0") is None

    # a file written before checkpoints named their stream cannot be tied to one: ignored
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"version": 1, "mappings": {"m": {"initialized_at": 3.0, "shards": {
        "shardId-0": {"sequence_number": "1501", "drained": False}}}}}))
    old = JsonCheckpointStore(path)
    why = old.bind("m", StreamIncarnation(KINESIS_ARN, 1.0))
    assert why is not None and "no stream" in why
    assert old.get("m", "shardId-0") is None and old.initialized_at("m") is None
