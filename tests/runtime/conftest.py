"""Helpers for the runner tests: real streams, queues and tables on the session's moto server."""

from __future__ import annotations

import bisect
import json
import math
import time
from typing import Any, Callable

import boto3
import pytest

from processors.runtime.checkpoints import JsonCheckpointStore
from processors.runtime.runner import Clock, EventSourceMapping, Runner


class FakeClock(Clock):
    """The runner's clock in tests: it stands still until the test moves it, so what a test sees
    does not depend on the time of day or on how fast the machine is.

    `time()` starts at START, a multiple of 900 s (the widest tumbling window), so every window
    width divides it; `time()` and `monotonic()` move only by `advance()`. moto stamps records
    with the real time, so the clock notes the real instant each `advance()` took effect:
    `arrival(stamp)` is the clock's time when moto stamped the record, and `stream_time(t)` the
    first real instant at which the clock read `t` or later (for Kinesis AT_TIMESTAMP). A record
    put before `advance(s)` therefore arrives `s` seconds before one put after it.
    """

    START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    # moto serialises its stamps to the millisecond; an advance() takes effect MARGIN after the
    # call starts and returns 2 * MARGIN after it, so a rounded stamp falls on the right side.
    MARGIN = 0.005

    def __init__(self, start: float = START) -> None:
        self.start = start
        self._now = start
        self._real: list[float] = [-math.inf]  # real time from which each reading holds
        self._reading: list[float] = [start]

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return 1_000.0 + (self._now - self.start)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        called = time.time()
        while time.time() < called + 2 * self.MARGIN:
            pass
        self._now += seconds
        self._real.append(called + self.MARGIN)
        self._reading.append(self._now)

    def arrival(self, stamp: float) -> float:
        return self._reading[bisect.bisect_right(self._real, stamp) - 1]

    def stream_time(self, t: float) -> float:
        i = bisect.bisect_left(self._reading, t)
        if i == len(self._reading):  # later than the clock has been: from now on
            return time.time()
        return max(self._real[i], 0.0)


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


def runner_for(mappings: list[EventSourceMapping], store, clock: Clock | Callable[[], float] | None = None, **kw) -> Runner:
    """A runner polling fast; `clock=None` is the real time."""
    kw.setdefault("retry_delay_seconds", 0)
    kw.setdefault("poll_interval_seconds", 0.01)
    kw.setdefault("shard_refresh_seconds", 0)
    return Runner(mappings, store, clock, **kw)


def mapping(fn, arn: str, **kw) -> EventSourceMapping:
    kw.setdefault("name", "test-mapping")
    kw.setdefault("starting_position", "TRIM_HORIZON")
    return EventSourceMapping(function=fn, event_source_arn=arn, **kw)
