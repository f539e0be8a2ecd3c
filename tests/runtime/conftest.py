"""Helpers for the runner tests: real streams, queues and tables on the session's moto server."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import boto3
import pytest

from processors.runtime.checkpoints import JsonCheckpointStore
from processors.runtime.runner import EventSourceMapping, Runner


class FakeClock:
    """Wall time plus an offset the test moves; moto stamps arrivals with the real time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Recorder:
    """A handler that records every event it gets and answers with `respond(event, n)`, where n
    counts the calls from 1. `respond` may raise."""

    def __init__(self, respond: Callable[[dict, int], Any] | None = None):
        self.events: list[dict] = []
        self.contexts: list[Any] = []
        self.respond = respond

    def __call__(self, event: dict, context: Any) -> Any:
        self.events.append(json.loads(json.dumps(event)))
        self.contexts.append(context)
        if self.respond is None:
            return None
        return self.respond(event, len(self.events))

    def batches(self) -> list[list[str]]:
        """Sequence numbers of each invoke (Kinesis or DynamoDB)."""
        out = []
        for ev in self.events:
            out.append([seq_of(r) for r in ev["Records"]])
        return out


def seq_of(record: dict) -> str:
    if "kinesis" in record:
        return record["kinesis"]["sequenceNumber"]
    return record["dynamodb"]["SequenceNumber"]


@pytest.fixture()
def kinesis(aws):
    return boto3.client("kinesis")


@pytest.fixture()
def sqs(aws):
    return boto3.client("sqs")


@pytest.fixture()
def store(tmp_path):
    return JsonCheckpointStore(tmp_path / "checkpoints.json")


@pytest.fixture()
def clock():
    return FakeClock()


def make_stream(kinesis, name: str = "events", shards: int = 1) -> str:
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]


def put(kinesis, arn: str, datas: list[bytes], partition_key: str = "pk") -> list[tuple[str, str]]:
    """Put records one by one (order kept); returns (shard id, sequence number) of each."""
    out = []
    for data in datas:
        r = kinesis.put_record(StreamARN=arn, Data=data, PartitionKey=partition_key)
        out.append((r["ShardId"], r["SequenceNumber"]))
    return out


def make_queue(sqs, name: str = "dlq") -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def drain_queue(sqs, url: str) -> list[dict]:
    out = []
    while True:
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def runner_for(mappings: list[EventSourceMapping], store, clock=time.time, **kw) -> Runner:
    kw.setdefault("retry_delay_seconds", 0)
    kw.setdefault("poll_interval_seconds", 0.01)
    kw.setdefault("shard_refresh_seconds", 0)
    return Runner(mappings, store, clock, **kw)


def mapping(fn, arn: str, **kw) -> EventSourceMapping:
    kw.setdefault("name", "test-mapping")
    kw.setdefault("starting_position", "TRIM_HORIZON")
    return EventSourceMapping(function=fn, event_source_arn=arn, **kw)
