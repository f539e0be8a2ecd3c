"""The local event source mapping (ESM) runner: plays Lambda's Kinesis / DynamoDB Streams poller.

No Docker runs here, so Sieve polls the shards itself and calls the real handlers in-process with
the event JSON Lambda sends. It is meant to be faithful, so that a handler that works here works
behind a real mapping: same event shapes, same batching, same partial-batch and retry rules.

Construction (explicit; `sieve run` builds these from pipelines.yaml)::

    from processors.runtime.runner import EventSourceMapping, Runner
    from processors.runtime.checkpoints import JsonCheckpointStore

    mapping = EventSourceMapping(
        name="logs-processor",                       # mapping + function name; checkpoint key
        function="processors.handlers.logs.handler",  # or a callable handler(event, context)
        event_source_arn="arn:aws:kinesis:us-east-1:123456789012:stream/logs",
        starting_position="TRIM_HORIZON",            # TRIM_HORIZON | LATEST (required, as in Lambda)
        batch_size=100,                              # Kinesis 1..10000, DynamoDB 1..10000
        maximum_batching_window_seconds=0,           # 0..300
        function_response_types=("ReportBatchItemFailures",),
        bisect_batch_on_function_error=False,
        maximum_retry_attempts=-1,                   # -1 = until the record expires
        maximum_record_age_seconds=-1,               # -1 = infinite, else 60..604800
        tumbling_window_seconds=0,                   # 0 = off, else 1..900
        on_failure_destination="arn:aws:sqs:us-east-1:123456789012:logs-dlq",  # or None
        function_timeout_seconds=60,                 # 1..900
        memory_size_mb=128,
    )
    runner = Runner([mapping], JsonCheckpointStore(".sieve/checkpoints.json"))  # clock=Clock(): real time
    runner.run(stop_event)                 # forever, until stop_event is set
    report = runner.run_until_idle(30)     # until every shard is caught up and nothing is pending
    report = runner.poll_once()            # one pass over every shard: at most one invoke per shard

What it does, per mapping and shard (as Lambda documents it):

* Shards are listed at start and every `shard_refresh_seconds`; a child shard starts only when its
  parents are drained (or gone). Shards found after the first listing are read from TRIM_HORIZON.
  A restarted runner resumes AFTER_SEQUENCE_NUMBER of its checkpoint, if that was written for
  this incarnation of the stream (same ARN and creation time; otherwise it starts fresh and logs
  why); a LATEST mapping that never checkpointed a shard resumes from the time it first started
  (Kinesis AT_TIMESTAMP; DynamoDB TRIM_HORIZON, skipping records created before that time), so
  records put while it was down are not lost.
* A batch holds up to `batch_size` records of one shard, in order, at most 6 MB of event; it is sent
  when full, when the batching window has passed, or at once when the window is 0.
* Success: checkpoint at the last record. A handler exception (or timeout, or a response that cannot
  be marshalled) fails the whole batch. With ReportBatchItemFailures, `{"batchItemFailures":
  [{"itemIdentifier": seq}]}` checkpoints just before the lowest failed sequence number and retries
  from there; an empty or null list (or null/empty response) is success; an item without
  `itemIdentifier`, a null/empty/unknown identifier or a malformed response fails the whole batch.
* Retries: a failed batch is retried (after `retry_delay_seconds`) until MaximumRetryAttempts. With
  BisectBatchOnFunctionError a failed batch is split in halves, first half first; splitting does not
  use up retries, so a poison record is isolated in a batch of one, which then uses the retries.
* Records older than MaximumRecordAgeInSeconds are not sent; they go to the failure destination with
  condition RecordAgeExceeded. Exhausted retries go there with RetryAttemptsExhausted. The SQS message
  is Lambda's invocation record (requestContext, responseContext, version, timestamp,
  KinesisBatchInfo / DDBStreamBatchInfo); then the runner moves past the batch. Without a
  destination the batch is logged as an error and reported in `PollReport.discards`.
* Tumbling windows: windows are aligned on arrival time (creation time for DynamoDB); a batch never
  spans two windows; the handler's returned `state` is passed to the next invoke of that shard and
  window and is checkpointed with the sequence number; when the window ends (a record of a later
  window is read, or the shard is caught up past the window's end, or a closed shard is drained)
  the handler gets a final invoke with no records and `isFinalInvokeForWindow: true`, retried until
  it succeeds; the state is then dropped. A response without `state` is a failure. A state over
  1 MB ends the window early: a final invoke with `isWindowTerminatedEarly: true`, and the next
  records of the same window start from an empty state.
* Records are delivered as bytes: nothing is decoded, dropped or rewritten on the handler's behalf.
* Time comes from the runner's `Clock` (see there): the real one by default; tests inject one that
  moves only when told, so windows, ages and batching windows do not depend on the time of day.
* Every invoke is logged on logger "sieve.runner" with `extra` fields mapping, shard, batch_size,
  first_sequence, last_sequence, outcome, attempt, duration_ms, request_id.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import math
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator

import boto3
import orjson
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from processors.adapters.aws import CLIENT_CONFIG
from processors.errors import ConfigError, ServiceError, SieveError
from processors.runtime.checkpoints import CheckpointStore, ShardCheckpoint, StreamIncarnation
from processors.runtime.lambda_context import LambdaContext, function_arn

log = logging.getLogger("sieve.runner")

Handler = Callable[[dict, Any], Any]

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # synchronous invoke request limit
MAX_STATE_BYTES = 1024 * 1024  # tumbling window state limit per shard
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
STARTING_POSITIONS = ("TRIM_HORIZON", "LATEST")


class EventSourceError(SieveError):
    """An event source (stream) cannot be read: missing, or not a stream Sieve can poll."""


class Clock:
    """The runner's time. This one is the real time; tests pass their own (same four methods).

    * `time()`: epoch seconds now. Record age (MaximumRecordAgeInSeconds), the batching window
      (MaximumBatchingWindowInSeconds), the end of a tumbling window, when a mapping first started
      (LATEST) and the failure record's `timestamp`.
    * `monotonic()`: seconds for intervals: retry delays, shard list refreshes, the function timeout
      and the handler's `context.get_remaining_time_in_millis()`.
    * `arrival(stamp)`: a stream's own timestamp (Kinesis ApproximateArrivalTimestamp, DynamoDB
      ApproximateCreationDateTime; epoch seconds) on this clock's time line. Everything the runner
      does with a record's arrival (tumbling windows, age, the timestamps in the event and in the
      failure record) uses this value. Here: the stamp itself.
    * `stream_time(t)`: the inverse, a time of this clock as the stream's timestamp (the Kinesis
      AT_TIMESTAMP a LATEST mapping resumes from). Here: `t` itself.

    `run()` and `run_until_idle()` rest and give up on the real time whatever the clock: a test with
    a clock that never moves must still end.
    """

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def arrival(self, stamp: float) -> float:
        return stamp

    def stream_time(self, t: float) -> float:
        return t


class _CallableClock(Clock):
    """A bare `() -> epoch seconds` (the runner's former `clock` argument) as a Clock."""

    def __init__(self, now: Callable[[], float]):
        self._now = now

    def time(self) -> float:
        return self._now()


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True, kw_only=True)
class EventSourceMapping:
    """One Lambda event source mapping, with Lambda's parameter names and defaults."""

    function: Handler | str
    event_source_arn: str
    starting_position: str
    batch_size: int = 100
    maximum_batching_window_seconds: float = 0
    function_response_types: tuple[str, ...] = ()
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: int = -1
    maximum_record_age_seconds: int = -1
    tumbling_window_seconds: int = 0
    on_failure_destination: str | None = None
    name: str = ""
    function_timeout_seconds: float = 3
    memory_size_mb: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "function_response_types", tuple(self.function_response_types))
        problems: list[str] = []
        try:
            _source_kind(_parse_arn(self.event_source_arn))
        except ValueError as exc:
            problems.append(f"event_source_arn: {exc}")
        if not callable(self.function) and not (isinstance(self.function, str) and "." in self.function):
            problems.append(f"function: expected a callable or a dotted path 'pkg.module.func', got {self.function!r}")
        if self.starting_position not in STARTING_POSITIONS:
            problems.append(f"starting_position: {self.starting_position!r} is not one of {', '.join(STARTING_POSITIONS)}")
        if not isinstance(self.batch_size, int) or not 1 <= self.batch_size <= 10_000:
            problems.append(f"batch_size: {self.batch_size!r} is outside 1..10000")
        if not 0 <= self.maximum_batching_window_seconds <= 300:
            problems.append(f"maximum_batching_window_seconds: {self.maximum_batching_window_seconds!r} is outside 0..300")
        unknown = [t for t in self.function_response_types if t != REPORT_BATCH_ITEM_FAILURES]
        if unknown:
            problems.append(f"function_response_types: {unknown!r} unknown; the only value is {REPORT_BATCH_ITEM_FAILURES!r}")
        if not isinstance(self.maximum_retry_attempts, int) or not -1 <= self.maximum_retry_attempts <= 10_000:
            problems.append(f"maximum_retry_attempts: {self.maximum_retry_attempts!r} is outside -1..10000")
        age = self.maximum_record_age_seconds
        if not isinstance(age, int) or not (age == -1 or 60 <= age <= 604_800):
            problems.append(f"maximum_record_age_seconds: {age!r} must be -1 (infinite) or 60..604800")
        if not isinstance(self.tumbling_window_seconds, int) or not 0 <= self.tumbling_window_seconds <= 900:
            problems.append(f"tumbling_window_seconds: {self.tumbling_window_seconds!r} is outside 0..900")
        if self.on_failure_destination is not None:
            try:
                dest = _parse_arn(self.on_failure_destination)
                if dest.service != "sqs":
                    raise ValueError(f"only SQS queues are supported locally, got a {dest.service!r} ARN")
            except ValueError as exc:
                problems.append(f"on_failure_destination: {exc}")
        if not 1 <= self.function_timeout_seconds <= 900:
            problems.append(f"function_timeout_seconds: {self.function_timeout_seconds!r} is outside 1..900")
        if not 128 <= self.memory_size_mb <= 10_240:
            problems.append(f"memory_size_mb: {self.memory_size_mb!r} is outside 128..10240")
        if problems:
            raise ConfigError(f"event source mapping {self.mapping_name!r}", problems)

    @property
    def mapping_name(self) -> str:
        """`name`, or `<function>-<stream>` when no name was given. Checkpoints are keyed by it."""
        if self.name:
            return self.name
        func = self.function if isinstance(self.function, str) else getattr(self.function, "__name__", "handler")
        stream = self.event_source_arn.split("/")[1] if "/" in self.event_source_arn else self.event_source_arn
        return f"{func.rsplit('.', 1)[-1]}-{stream}"

    @property
    def report_batch_item_failures(self) -> bool:
        return REPORT_BATCH_ITEM_FAILURES in self.function_response_types


# ---------------------------------------------------------------------------------------------
# What poll_once reports


@dataclass(frozen=True, slots=True)
class Invocation:
    """One call of the handler. `outcome` is success | partial_failure | function_error |
    invalid_response | timeout."""

    mapping: str
    shard_id: str
    request_id: str
    sequence_numbers: tuple[str, ...]
    outcome: str
    attempt: int
    duration_ms: float
    final_window: bool = False
    failed_sequence_number: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Discard:
    """A batch the runner gave up on: sent to the failure destination (or only logged without one)."""

    mapping: str
    shard_id: str
    condition: str  # RetryAttemptsExhausted | RecordAgeExceeded
    start_sequence_number: str
    end_sequence_number: str
    batch_size: int
    approximate_invoke_count: int
    destination: str | None


@dataclass
class PollReport:
    invocations: list[Invocation] = field(default_factory=list)
    discards: list[Discard] = field(default_factory=list)
    fetched: int = 0
    pending: int = 0  # records read but not finished, over all shards, after the pass
    waiting: bool = False  # a shard is not caught up, or is waiting for a retry or a window
    errors: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def idle(self) -> bool:
        return not (self.invocations or self.discards or self.fetched or self.pending or self.waiting)

    def extend(self, other: PollReport) -> None:
        self.invocations.extend(other.invocations)
        self.discards.extend(other.discards)
        self.fetched += other.fetched
        self.pending = other.pending
        self.waiting = other.waiting
        self.errors.extend(other.errors)


# ---------------------------------------------------------------------------------------------
# ARNs and stream sources


@dataclass(frozen=True, slots=True)
class _Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str


def _parse_arn(arn: str) -> _Arn:
    parts = arn.split(":", 5) if isinstance(arn, str) else []
    if len(parts) != 6 or parts[0] != "arn" or not parts[2] or not parts[3] or not parts[5]:
        raise ValueError(f"{arn!r} is not an ARN (arn:partition:service:region:account:resource)")
    return _Arn(parts[1], parts[2], parts[3], parts[4], parts[5])


def _source_kind(arn: _Arn) -> str:
    if arn.service == "kinesis" and arn.resource.startswith("stream/") and "/consumer/" not in arn.resource:
        return "kinesis"
    if arn.service == "dynamodb" and arn.resource.startswith("table/") and "/stream/" in arn.resource:
        return "dynamodb"
    raise ValueError(
        f"{arn.service}:{arn.resource!r} is neither a Kinesis stream ARN (…:stream/NAME) "
        "nor a DynamoDB stream ARN (…:table/NAME/stream/LABEL)"
    )


@dataclass(slots=True)
class _Rec:
    seq: str
    seq_int: int
    arrival: float  # epoch seconds on the runner's clock: Kinesis arrival, DynamoDB creation
    payload: dict[str, Any]  # the record exactly as it appears in the Lambda event
    size: int  # bytes of the payload as JSON


@dataclass(slots=True)
class _ShardInfo:
    shard_id: str
    parents: tuple[str, ...]
    closed: bool


@dataclass(slots=True)
class _Page:
    records: list[_Rec]
    next_iterator: str | None
    caught_up: bool


def _iso_seconds(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_millis(epoch: float) -> str:
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def _json_size(obj: Any) -> int:
    try:
        return len(orjson.dumps(obj))
    except TypeError:  # e.g. an integer wider than 64 bits in a window state
        return len(json.dumps(obj).encode())


class _StreamSource:
    """What both stream kinds share: the ARN's region and account, the clock, a client of `service`."""

    service = ""

    def __init__(self, arn: str, session: boto3.Session | None, clock: Clock):
        self.arn = arn
        parsed = _parse_arn(arn)
        self.region = parsed.region
        self.account = parsed.account
        self.clock = clock
        self.client = (session or boto3).client(self.service, region_name=parsed.region, config=CLIENT_CONFIG)


class _KinesisSource(_StreamSource):
    kind = "kinesis"
    service = "kinesis"
    batch_info_key = "KinesisBatchInfo"
    max_limit = 10_000
    supports_at_timestamp = True

    @staticmethod
    def arrival_text(epoch: float) -> str:
        return _iso_millis(epoch)

    def incarnation(self) -> StreamIncarnation:
        """A stream created again under the same name has the same ARN: its creation time tells."""
        summary = self.client.describe_stream_summary(StreamARN=self.arn)["StreamDescriptionSummary"]
        return StreamIncarnation(self.arn, _epoch(summary["StreamCreationTimestamp"]))

    def list_shards(self) -> list[_ShardInfo]:
        out: list[_ShardInfo] = []
        kwargs: dict[str, Any] = {"StreamARN": self.arn}
        while True:
            page = self.client.list_shards(**kwargs)
            for s in page.get("Shards", []):
                parents = tuple(p for p in (s.get("ParentShardId"), s.get("AdjacentParentShardId")) if p)
                closed = "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
                out.append(_ShardInfo(s["ShardId"], parents, closed))
            token = page.get("NextToken")
            if not token:
                return out
            kwargs = {"NextToken": token}  # ListShards rejects the stream together with NextToken

    def iterator(self, shard_id: str, kind: str, sequence: str | None = None, timestamp: float | None = None) -> str:
        kwargs: dict[str, Any] = {"StreamARN": self.arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["StartingSequenceNumber"] = sequence
        if timestamp is not None:
            kwargs["Timestamp"] = datetime.fromtimestamp(self.clock.stream_time(timestamp), timezone.utc)
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def get(self, shard_id: str, iterator: str, limit: int, role_arn: str) -> _Page:
        resp = self.client.get_records(StreamARN=self.arn, ShardIterator=iterator, Limit=min(limit, self.max_limit))
        recs = [self._record(shard_id, raw, role_arn) for raw in resp.get("Records", [])]
        nxt = resp.get("NextShardIterator")
        caught_up = not recs and (nxt is None or resp.get("MillisBehindLatest", 0) == 0)
        return _Page(recs, nxt, caught_up)

    def _record(self, shard_id: str, raw: dict[str, Any], role_arn: str) -> _Rec:
        seq = raw["SequenceNumber"]
        arrival = self.clock.arrival(_epoch(raw["ApproximateArrivalTimestamp"]))
        payload = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": seq,
                "data": base64.b64encode(raw["Data"]).decode("ascii"),
                "approximateArrivalTimestamp": round(arrival, 3),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{seq}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": role_arn,
            "awsRegion": self.region,
            "eventSourceARN": self.arn,
        }
        return _Rec(seq, int(seq), arrival, payload, _json_size(payload))


def _ddb_json(value: Any) -> Any:
    """boto3 hands DynamoDB binary attributes back as bytes; Lambda sends them base64-encoded."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _ddb_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ddb_json(v) for v in value]
    return value


class _DynamoDBSource(_StreamSource):
    kind = "dynamodb"
    service = "dynamodbstreams"
    batch_info_key = "DDBStreamBatchInfo"
    max_limit = 1_000
    supports_at_timestamp = False

    @staticmethod
    def arrival_text(epoch: float) -> str:
        return _iso_seconds(epoch)

    def incarnation(self) -> StreamIncarnation:
        return StreamIncarnation(self.arn)  # the ARN's label is the stream's creation time

    def list_shards(self) -> list[_ShardInfo]:
        out: list[_ShardInfo] = []
        kwargs: dict[str, Any] = {"StreamArn": self.arn}
        while True:
            desc = self.client.describe_stream(**kwargs)["StreamDescription"]
            for s in desc.get("Shards", []):
                parents = (s["ParentShardId"],) if s.get("ParentShardId") else ()
                closed = "EndingSequenceNumber" in s.get("SequenceNumberRange", {})
                out.append(_ShardInfo(s["ShardId"], parents, closed))
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return out
            kwargs = {"StreamArn": self.arn, "ExclusiveStartShardId": last}

    def iterator(self, shard_id: str, kind: str, sequence: str | None = None, timestamp: float | None = None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        return self.client.get_shard_iterator(**kwargs)["ShardIterator"]

    def get(self, shard_id: str, iterator: str, limit: int, role_arn: str) -> _Page:
        resp = self.client.get_records(ShardIterator=iterator, Limit=min(limit, self.max_limit))
        recs = [self._record(raw) for raw in resp.get("Records", [])]
        nxt = resp.get("NextShardIterator")
        return _Page(recs, nxt, caught_up=not recs)

    def _record(self, raw: dict[str, Any]) -> _Rec:
        ddb = dict(raw["dynamodb"])
        arrival = self.clock.arrival(_epoch(ddb["ApproximateCreationDateTime"]))
        ddb["ApproximateCreationDateTime"] = int(arrival)
        ddb = _ddb_json(ddb)
        payload: dict[str, Any] = {
            "eventID": raw["eventID"],
            "eventName": raw["eventName"],
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": ddb,
            "eventSourceARN": self.arn,
        }
        if raw.get("userIdentity"):
            payload["userIdentity"] = raw["userIdentity"]
        seq = ddb["SequenceNumber"]
        return _Rec(seq, int(seq), arrival, payload, _json_size(payload))


# ---------------------------------------------------------------------------------------------
# Runner state


@dataclass(slots=True)
class _Batch:
    records: list[_Rec]
    attempts: int = 0  # failed invokes counted against MaximumRetryAttempts
    invokes: int = 0  # invokes of this batch (approximateInvokeCount)
    last_request_id: str | None = None
    last_function_error: str | None = None


@dataclass(slots=True)
class _ShardState:
    info: _ShardInfo
    checkpoint: ShardCheckpoint
    start: tuple[str, str | None, float | None]  # (iterator type, sequence, timestamp) if no checkpoint
    skip_before: float | None = None  # DynamoDB LATEST resumed from TRIM_HORIZON: skip older records
    iterator: str | None = None
    fetched_upto: str | None = None
    queue: deque[_Rec] = field(default_factory=deque)
    queue_since: float | None = None
    batches: deque[_Batch] = field(default_factory=deque)
    exhausted: bool = False  # closed and read to its end
    caught_up: bool = False
    retry_at: float = 0.0  # clock.monotonic() before which a failed batch is not retried
    final_attempts: int = 0

    @property
    def shard_id(self) -> str:
        return self.info.shard_id

    def pending(self) -> int:
        return len(self.queue) + sum(len(b.records) for b in self.batches)

    def head(self) -> _Rec | None:
        if self.batches:
            return self.batches[0].records[0]
        return self.queue[0] if self.queue else None


@dataclass
class _MappingState:
    mapping: EventSourceMapping
    handler: Handler
    source: _KinesisSource | _DynamoDBSource
    function_arn: str
    role_arn: str
    shards: dict[str, _ShardState] = field(default_factory=dict)
    fresh: bool = True  # the store had never seen this mapping when this run started
    initialized_at: float | None = None
    listed_once: bool = False
    last_refresh: float = -math.inf  # clock.monotonic() of the last shard listing

    @property
    def key(self) -> str:
        return self.mapping.mapping_name


def resolve_handler(function: Handler | str) -> Handler:
    """A callable as is; "pkg.module.func" imported (at runner start, like a cold start)."""
    if callable(function):
        return function
    module_name, _, attr = function.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("event source mapping", [f"function: cannot import module {module_name!r} ({exc})"]) from exc
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise ConfigError(
            "event source mapping", [f"function: module {module_name!r} has no callable {attr!r}; check the dotted path"]
        )
    return handler


def _lambda_json_default(value: Any) -> Any:
    # The Python runtime marshals responses with json.dumps and a Decimal-aware default.
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class Runner:
    """Polls every shard of every mapping and invokes the handlers. Single-threaded.

    `clock` is a `Clock` (default: the real time): it decides record age, batching windows,
    tumbling windows, retry delays and function timeouts. A bare callable returning epoch seconds
    is also accepted and stands for `Clock.time` (the rest stays real).
    """

    def __init__(
        self,
        mappings: Iterable[EventSourceMapping],
        checkpoint_store: CheckpointStore,
        clock: Clock | Callable[[], float] | None = None,
        *,
        session: boto3.Session | None = None,
        shard_refresh_seconds: float = 10.0,
        poll_interval_seconds: float = 1.0,
        retry_delay_seconds: float = 1.0,
    ):
        self.store = checkpoint_store
        if clock is None:
            clock = Clock()
        elif not isinstance(clock, Clock) and not all(
            callable(getattr(clock, name, None)) for name in ("time", "monotonic", "arrival", "stream_time")
        ):
            clock = _CallableClock(clock)
        self.clock = clock
        self.shard_refresh_seconds = shard_refresh_seconds
        self.poll_interval_seconds = poll_interval_seconds
        self.retry_delay_seconds = retry_delay_seconds
        self._mappings: list[_MappingState] = []
        names: set[str] = set()
        for m in mappings:
            if m.mapping_name in names:
                raise ConfigError("event source mappings", [f"two mappings are named {m.mapping_name!r}; names key the checkpoints"])
            names.add(m.mapping_name)
            source_cls = _KinesisSource if _source_kind(_parse_arn(m.event_source_arn)) == "kinesis" else _DynamoDBSource
            source = source_cls(m.event_source_arn, session, self.clock)
            fn_arn = function_arn(source.region, source.account, m.mapping_name, _parse_arn(m.event_source_arn).partition)
            role = f"arn:{_parse_arn(m.event_source_arn).partition}:iam::{source.account}:role/{m.mapping_name}-role"
            self._mappings.append(_MappingState(m, resolve_handler(m.function), source, fn_arn, role))
        self._sqs: dict[str, Any] = {}
        self._session = session

    # -- public loop -----------------------------------------------------------------------

    def poll_once(self) -> PollReport:
        """One pass: refresh shard lists when due, then at most one fetch and one invoke per shard."""
        report = PollReport()
        for ms in self._mappings:
            with self._aws_errors(ms, None, report):
                self._maybe_refresh(ms)
            for sh in sorted(ms.shards.values(), key=lambda s: s.shard_id):
                if sh.checkpoint.drained or not self._parents_done(ms, sh):
                    continue
                with self._aws_errors(ms, sh, report):
                    self._step(ms, sh, report)
        report.pending = sum(sh.pending() for ms in self._mappings for sh in ms.shards.values())
        return report

    @contextmanager
    def _aws_errors(self, ms: _MappingState, sh: _ShardState | None, report: PollReport) -> Iterator[None]:
        """An unreachable endpoint stops the runner (ServiceError); any other AWS error is logged,
        reported and retried on the next pass, without holding up the other shards."""
        try:
            yield
        except EndpointConnectionError as exc:
            raise ServiceError(
                f"mapping {ms.key!r}: cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')} "
                "(is the local stack up? `sieve up`)"
            ) from exc
        except (ClientError, BotoCoreError) as exc:
            where = f"mapping {ms.key!r}" + (f" shard {sh.shard_id}" if sh else "")
            msg = f"{where}: {exc}"
            log.error("poll failed: %s", msg, extra={"mapping": ms.key, "shard": sh.shard_id if sh else None})
            report.errors.append(msg)
            report.waiting = True
            if sh is not None:
                sh.iterator = None  # start again from what is known on the next pass

    def run(self, stop_event: threading.Event) -> None:
        """Poll until `stop_event` is set, resting `poll_interval_seconds` when there is nothing to do."""
        while not stop_event.is_set():
            rep = self.poll_once()
            if not (rep.invocations or rep.fetched or rep.discards):
                stop_event.wait(self.poll_interval_seconds)

    def run_until_idle(self, timeout: float = 30.0) -> PollReport:
        """Poll until a pass finds every shard caught up with nothing pending, or `timeout` seconds
        of real time pass (then the report has `timed_out=True`). Returns everything that happened."""
        deadline = time.monotonic() + timeout
        total = PollReport()
        while True:
            rep = self.poll_once()
            total.extend(rep)
            if rep.idle:
                return total
            if time.monotonic() >= deadline:
                total.timed_out = True
                log.warning("run_until_idle: still busy after %.1fs (%d records pending)", timeout, rep.pending)
                return total
            if not (rep.invocations or rep.fetched or rep.discards):
                time.sleep(min(0.05, self.poll_interval_seconds))

    # -- shards -----------------------------------------------------------------------------

    def _maybe_refresh(self, ms: _MappingState) -> None:
        now = self.clock.monotonic()
        if ms.listed_once and now - ms.last_refresh < self.shard_refresh_seconds:
            return
        try:
            if not ms.listed_once:
                # checkpoints of another incarnation of the stream (deleted and created again)
                # would skip its records: they are dropped, and the mapping starts fresh
                why = self.store.bind(ms.key, ms.source.incarnation())
                if why:
                    log.warning("mapping %s: %s; ignoring them and starting fresh from %s", ms.key, why,
                                ms.mapping.starting_position)
                ms.initialized_at = self.store.initialized_at(ms.key)
                ms.fresh = ms.initialized_at is None
            infos = ms.source.list_shards()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise EventSourceError(
                    f"mapping {ms.key!r}: stream {ms.mapping.event_source_arn} does not exist; "
                    "create it (or fix event_source_arn) and start again"
                ) from exc
            raise
        if ms.fresh and not ms.listed_once:
            ms.initialized_at = self.clock.time()
            self.store.mark_initialized(ms.key, ms.initialized_at)
        seen = set()
        for info in infos:
            seen.add(info.shard_id)
            known = ms.shards.get(info.shard_id)
            if known is not None:
                known.info = info
                continue
            ms.shards[info.shard_id] = self._new_shard(ms, info, first_listing=not ms.listed_once)
        for gone in set(ms.shards) - seen:
            log.warning("shard %s of %s is no longer listed (expired); forgetting it", gone, ms.key)
            del ms.shards[gone]
        ms.listed_once = True
        ms.last_refresh = now

    def _new_shard(self, ms: _MappingState, info: _ShardInfo, first_listing: bool) -> _ShardState:
        cp = self.store.get(ms.key, info.shard_id) or ShardCheckpoint()
        skip_before = None
        if cp.sequence_number is not None or cp.drained:
            start: tuple[str, str | None, float | None] = ("AFTER_SEQUENCE_NUMBER", cp.sequence_number, None)
        elif ms.fresh and first_listing:
            start = (ms.mapping.starting_position, None, None)
        elif ms.mapping.starting_position == "TRIM_HORIZON" or not first_listing:
            start = ("TRIM_HORIZON", None, None)  # shards that appear later are read from their start
        elif ms.source.supports_at_timestamp:
            start = ("AT_TIMESTAMP", None, ms.initialized_at)  # LATEST, as of when the mapping started
        else:
            start = ("TRIM_HORIZON", None, None)
            skip_before = (ms.initialized_at or 0) - 1.0  # DynamoDB has no AT_TIMESTAMP
        log.debug("shard %s of %s starts at %s", info.shard_id, ms.key, start)
        return _ShardState(info=info, checkpoint=cp, start=start, skip_before=skip_before)

    @staticmethod
    def _parents_done(ms: _MappingState, sh: _ShardState) -> bool:
        for parent in sh.info.parents:
            p = ms.shards.get(parent)
            if p is not None and not p.checkpoint.drained:
                return False
        return True

    # -- one step of one shard ---------------------------------------------------------------

    def _step(self, ms: _MappingState, sh: _ShardState, report: PollReport) -> None:
        m = ms.mapping
        if not sh.batches and len(sh.queue) < m.batch_size and not sh.exhausted:
            self._fetch(ms, sh, report)

        if m.tumbling_window_seconds and self._maybe_close_window(ms, sh, report):
            return

        if self.clock.monotonic() < sh.retry_at:
            report.waiting = True
            return

        if not sh.batches:
            batch = self._next_batch(ms, sh)
            if batch is None:
                if sh.queue or not sh.caught_up:
                    report.waiting = True
                elif sh.info.closed and sh.exhausted and sh.checkpoint.window_start is None:
                    self._mark_drained(ms, sh)
                return
            sh.batches.appendleft(batch)
        batch = sh.batches[0]

        if m.maximum_record_age_seconds != -1 and self._expire(ms, sh, batch, report):
            return

        self._invoke_batch(ms, sh, batch, report)

    def _fetch(self, ms: _MappingState, sh: _ShardState, report: PollReport) -> None:
        m = ms.mapping
        if sh.iterator is None:
            sh.iterator = self._iterator(ms, sh)
        try:
            page = ms.source.get(sh.shard_id, sh.iterator, max(1, m.batch_size - len(sh.queue)), ms.role_arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ExpiredIteratorException":
                sh.iterator = self._iterator(ms, sh)
                report.waiting = True
                return
            if code in ("ProvisionedThroughputExceededException", "LimitExceededException"):
                report.waiting = True
                return
            if code == "TrimmedDataAccessException":
                log.error("%s %s: records were trimmed before they were read; continuing from TRIM_HORIZON", ms.key, sh.shard_id)
                sh.iterator = ms.source.iterator(sh.shard_id, "TRIM_HORIZON")
                report.waiting = True
                return
            raise
        sh.iterator = page.next_iterator
        records = page.records
        if sh.skip_before is not None and records:
            kept = [r for r in records if r.arrival >= sh.skip_before]
            if len(kept) != len(records):
                log.info("%s %s: %d records predate the LATEST start; not part of this mapping", ms.key, sh.shard_id, len(records) - len(kept))
            if kept:
                sh.skip_before = None
            sh.fetched_upto = records[-1].seq
            records = kept
        elif records:
            sh.fetched_upto = records[-1].seq
        if records:
            if not sh.queue:
                sh.queue_since = self.clock.time()
            sh.queue.extend(records)
            report.fetched += len(records)
        if page.next_iterator is None or (sh.info.closed and page.caught_up):
            sh.exhausted = True  # a closed shard read to its end (closed perhaps after it was listed)
        sh.caught_up = page.caught_up or sh.exhausted

    def _iterator(self, ms: _MappingState, sh: _ShardState) -> str:
        if sh.fetched_upto is not None:
            return ms.source.iterator(sh.shard_id, "AFTER_SEQUENCE_NUMBER", sh.fetched_upto)
        if sh.checkpoint.sequence_number is not None:
            return ms.source.iterator(sh.shard_id, "AFTER_SEQUENCE_NUMBER", sh.checkpoint.sequence_number)
        kind, seq, ts = sh.start
        if kind == "AFTER_SEQUENCE_NUMBER":  # drained earlier with no record read
            kind = "TRIM_HORIZON"
        return ms.source.iterator(sh.shard_id, kind, seq, ts)

    def _window_of(self, ms: _MappingState, rec: _Rec) -> int:
        w = ms.mapping.tumbling_window_seconds
        return int(rec.arrival // w) * w

    def _next_batch(self, ms: _MappingState, sh: _ShardState) -> _Batch | None:
        m = ms.mapping
        if not sh.queue:
            return None
        full = len(sh.queue) >= m.batch_size
        waited = sh.queue_since is not None and self.clock.time() - sh.queue_since >= m.maximum_batching_window_seconds
        window_cut = False
        if m.tumbling_window_seconds:
            first = self._window_of(ms, sh.queue[0])
            window_cut = any(self._window_of(ms, r) != first for r in sh.queue)
        payload_full = sum(r.size for r in sh.queue) >= MAX_PAYLOAD_BYTES
        if not (full or waited or sh.exhausted or window_cut or payload_full or m.maximum_batching_window_seconds == 0):
            return None
        records: list[_Rec] = []
        size = 200  # the event's envelope
        window = self._window_of(ms, sh.queue[0]) if m.tumbling_window_seconds else None
        while sh.queue and len(records) < m.batch_size:
            rec = sh.queue[0]
            if records and size + rec.size + 1 > MAX_PAYLOAD_BYTES:
                break
            if window is not None and self._window_of(ms, rec) != window:
                break
            records.append(sh.queue.popleft())
            size += rec.size + 1
        sh.queue_since = self.clock.time() if sh.queue else None
        return _Batch(records)

    # -- invoking ----------------------------------------------------------------------------

    def _build_event(self, ms: _MappingState, sh: _ShardState, records: list[_Rec], *, final: bool = False, early: bool = False) -> dict:
        m = ms.mapping
        event: dict[str, Any] = {"Records": [r.payload for r in records]}
        if m.tumbling_window_seconds:
            if records:
                start = self._window_of(ms, records[0])
            else:
                start = sh.checkpoint.window_start  # the final invoke of the open window
            state = sh.checkpoint.window_state if sh.checkpoint.window_start == start else None
            event.update(
                {
                    "window": {"start": _iso_seconds(start), "end": _iso_seconds(start + m.tumbling_window_seconds)},
                    "state": state if state is not None else {},
                    "shardId": sh.shard_id,
                    "eventSourceARN": m.event_source_arn,
                    "isFinalInvokeForWindow": final,
                    "isWindowTerminatedEarly": early,
                }
            )
        # A fresh copy per invoke: the handler may mutate its event without touching our records.
        return orjson.loads(orjson.dumps(event))

    def _call(self, ms: _MappingState, event: dict) -> tuple[str, Any, str | None, str, float]:
        """Invoke the handler as the runtime would. Returns (kind, response, error, request_id, ms)."""
        m = ms.mapping
        ctx = LambdaContext(
            function_name=m.mapping_name,
            invoked_function_arn=ms.function_arn,
            timeout_seconds=m.function_timeout_seconds,
            memory_limit_in_mb=m.memory_size_mb,
            monotonic=self.clock.monotonic,
        )
        t0 = self.clock.monotonic()
        try:
            response = ms.handler(event, ctx)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - any handler error fails the invoke
            took = (self.clock.monotonic() - t0) * 1000
            return "function_error", None, f"{type(exc).__name__}: {str(exc)[:500]}", ctx.aws_request_id, took
        took = (self.clock.monotonic() - t0) * 1000
        if took > m.function_timeout_seconds * 1000:
            return "timeout", None, f"Task timed out after {m.function_timeout_seconds:.2f} seconds", ctx.aws_request_id, took
        try:
            response = json.loads(json.dumps(response, default=_lambda_json_default))
        except (TypeError, ValueError) as exc:
            return "function_error", None, f"Runtime.MarshalError: {exc}", ctx.aws_request_id, took
        return "returned", response, None, ctx.aws_request_id, took

    def _classify(self, ms: _MappingState, records: list[_Rec], response: Any) -> tuple[str, int | None, Any, str | None]:
        """(outcome, index of the lowest failed record, new window state, error)."""
        m = ms.mapping
        state = None
        if m.tumbling_window_seconds:
            if not isinstance(response, dict) or response.get("state") is None:
                return "invalid_response", None, None, "tumbling window response has no 'state'"
            state = response["state"]
            if not isinstance(state, dict):
                return "invalid_response", None, None, f"'state' must be a JSON object, got {type(state).__name__}"
        if not m.report_batch_item_failures or response is None:
            return "success", None, state, None
        if not isinstance(response, dict):
            return "invalid_response", None, None, f"response is a {type(response).__name__}, not a StreamsEventResponse object"
        failures = response.get("batchItemFailures")
        if failures is None or failures == []:
            return "success", None, state, None
        if not isinstance(failures, list):
            return "invalid_response", None, None, f"batchItemFailures is a {type(failures).__name__}, not a list"
        index = {r.seq: i for i, r in enumerate(records)}
        lowest: int | None = None
        for item in failures:
            if not isinstance(item, dict) or "itemIdentifier" not in item:
                return "invalid_response", None, None, f"batchItemFailures item {item!r} has no itemIdentifier"
            ident = item["itemIdentifier"]
            if not isinstance(ident, str) or not ident:
                return "invalid_response", None, None, f"itemIdentifier {ident!r} is null, empty or not a string"
            if ident not in index:
                return "invalid_response", None, None, f"itemIdentifier {ident!r} is not a sequence number of this batch"
            lowest = index[ident] if lowest is None else min(lowest, index[ident])
        return "partial_failure", lowest, state, None

    def _invoke_batch(self, ms: _MappingState, sh: _ShardState, batch: _Batch, report: PollReport) -> None:
        m = ms.mapping
        records = batch.records
        if m.tumbling_window_seconds and sh.checkpoint.window_start is not None:
            if self._window_of(ms, records[0]) != sh.checkpoint.window_start:
                # a record of another window at the head: the open window is closed first
                self._final_invoke(ms, sh, report, early=False)
                return
        event = self._build_event(ms, sh, records)
        kind, response, error, request_id, took = self._call(ms, event)
        batch.invokes += 1
        batch.last_request_id = request_id
        failed_index = None
        state = None
        if kind == "returned":
            outcome, failed_index, state, error = self._classify(ms, records, response)
            batch.last_function_error = None
        else:
            outcome = kind
            batch.last_function_error = "Unhandled"
        self._record_invoke(ms, sh, report, records, outcome, batch.attempts + 1, took, request_id, error,
                            failed_seq=records[failed_index].seq if failed_index is not None else None)

        window_start = self._window_of(ms, records[0]) if m.tumbling_window_seconds else None
        if outcome == "success":
            sh.batches.popleft()
            self._commit(ms, sh, records[-1].seq, window_start, state)
            return
        if outcome == "partial_failure" and failed_index:
            # records before the lowest failure are done; the rest is retried as a batch
            self._commit(ms, sh, records[failed_index - 1].seq, window_start, state)
            rest = _Batch(records[failed_index:], attempts=1, invokes=1, last_request_id=request_id)
            sh.batches[0] = rest
            batch = rest
        elif outcome == "partial_failure":
            if state is not None:
                self._commit(ms, sh, sh.checkpoint.sequence_number, window_start, state)
            batch.attempts += 1
        elif m.bisect_batch_on_function_error and len(records) > 1:
            half = (len(records) + 1) // 2
            sh.batches.popleft()
            sh.batches.appendleft(_Batch(records[half:], attempts=batch.attempts))
            sh.batches.appendleft(_Batch(records[:half], attempts=batch.attempts))
            log.info("%s %s: bisecting a failed batch of %d into %d + %d", ms.key, sh.shard_id, len(records), half, len(records) - half)
            return
        else:
            batch.attempts += 1

        if m.maximum_retry_attempts != -1 and batch.attempts > m.maximum_retry_attempts:
            self._discard(ms, sh, batch, batch.records, "RetryAttemptsExhausted", report)
        else:
            sh.retry_at = self.clock.monotonic() + self.retry_delay_seconds

    def _record_invoke(self, ms, sh, report, records, outcome, attempt, took, request_id, error, *, final=False, failed_seq=None) -> None:
        first = records[0].seq if records else None
        last = records[-1].seq if records else None
        inv = Invocation(
            mapping=ms.key,
            shard_id=sh.shard_id,
            request_id=request_id,
            sequence_numbers=tuple(r.seq for r in records),
            outcome=outcome,
            attempt=attempt,
            duration_ms=round(took, 3),
            final_window=final,
            failed_sequence_number=failed_seq,
            error=error,
        )
        report.invocations.append(inv)
        level = logging.INFO if outcome == "success" else logging.WARNING
        log.log(
            level,
            "invoke mapping=%s shard=%s batch_size=%d first=%s last=%s outcome=%s attempt=%d%s",
            ms.key, sh.shard_id, len(records), first, last, outcome, attempt, f" error={error}" if error else "",
            extra={
                "mapping": ms.key,
                "shard": sh.shard_id,
                "batch_size": len(records),
                "first_sequence": first,
                "last_sequence": last,
                "outcome": outcome,
                "attempt": attempt,
                "duration_ms": round(took, 3),
                "request_id": request_id,
                "final_window": final,
            },
        )

    def _commit(self, ms: _MappingState, sh: _ShardState, seq: str | None, window_start: int | None, state: Any) -> None:
        cp = sh.checkpoint
        if window_start is not None:
            cp = ShardCheckpoint(seq, False, window_start, state)
        else:
            cp = ShardCheckpoint(seq, False, cp.window_start, cp.window_state)
        sh.checkpoint = cp
        sh.retry_at = 0.0
        self.store.put(ms.key, sh.shard_id, cp)

    def _mark_drained(self, ms: _MappingState, sh: _ShardState) -> None:
        sh.checkpoint = ShardCheckpoint(sh.checkpoint.sequence_number, True)
        self.store.put(ms.key, sh.shard_id, sh.checkpoint)
        log.info("%s %s: closed shard drained; its children may start", ms.key, sh.shard_id)

    # -- record age and failure destination --------------------------------------------------

    def _expire(self, ms: _MappingState, sh: _ShardState, batch: _Batch, report: PollReport) -> bool:
        now = self.clock.time()
        limit = ms.mapping.maximum_record_age_seconds
        n = 0
        while n < len(batch.records) and now - batch.records[n].arrival > limit:
            n += 1
        if n == 0:
            return False
        expired = batch.records[:n]
        if not self._discard(ms, sh, batch, expired, "RecordAgeExceeded", report, pop=False):
            return True
        if n == len(batch.records):
            sh.batches.popleft()
        else:
            batch.records = batch.records[n:]
        return True

    def _discard(self, ms, sh, batch: _Batch, records: list[_Rec], condition: str, report: PollReport, *, pop: bool = True) -> bool:
        """Send Lambda's invocation record for `records` to the failure destination, then move the
        checkpoint past them. False (and nothing moved) when the destination cannot be reached."""
        m = ms.mapping
        src = ms.source
        info = {
            "shardId": sh.shard_id,
            "startSequenceNumber": records[0].seq,
            "endSequenceNumber": records[-1].seq,
            "approximateArrivalOfFirstRecord": src.arrival_text(records[0].arrival),
            "approximateArrivalOfLastRecord": src.arrival_text(records[-1].arrival),
            "batchSize": len(records),
            "streamArn": m.event_source_arn,
        }
        body: dict[str, Any] = {
            "requestContext": {
                "requestId": batch.last_request_id or str(uuid.uuid4()),
                "functionArn": ms.function_arn,
                "condition": condition,
                "approximateInvokeCount": batch.invokes,
            },
        }
        if batch.invokes:
            body["responseContext"] = {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": batch.last_function_error,
            }
        body["version"] = "1.0"
        body["timestamp"] = _iso_millis(self.clock.time())
        body[src.batch_info_key] = info
        if m.on_failure_destination:
            try:
                self._send_sqs(m.on_failure_destination, body)
            except (ClientError, BotoCoreError) as exc:
                msg = f"{ms.key} {sh.shard_id}: cannot send to failure destination {m.on_failure_destination}: {exc}"
                log.error(msg)
                report.errors.append(msg)
                sh.retry_at = self.clock.monotonic() + self.retry_delay_seconds
                return False
        else:
            log.error(
                "%s %s: %s; no on_failure_destination, records %s..%s (%d) skipped and only logged here",
                ms.key, sh.shard_id, condition, records[0].seq, records[-1].seq, len(records),
            )
        log.warning(
            "discard mapping=%s shard=%s condition=%s first=%s last=%s batch_size=%d invokes=%d",
            ms.key, sh.shard_id, condition, records[0].seq, records[-1].seq, len(records), batch.invokes,
            extra={"mapping": ms.key, "shard": sh.shard_id, "condition": condition, "first_sequence": records[0].seq,
                   "last_sequence": records[-1].seq, "batch_size": len(records), "outcome": "discarded"},
        )
        report.discards.append(
            Discard(ms.key, sh.shard_id, condition, records[0].seq, records[-1].seq, len(records), batch.invokes, m.on_failure_destination)
        )
        if pop:
            sh.batches.popleft()
        self._commit(ms, sh, records[-1].seq, None, None)
        return True

    def _send_sqs(self, queue_arn: str, body: dict) -> None:
        arn = _parse_arn(queue_arn)
        entry = self._sqs.get(queue_arn)
        if entry is None:
            client = (self._session or boto3).client("sqs", region_name=arn.region, config=CLIENT_CONFIG)
            kwargs = {"QueueName": arn.resource}
            if arn.account:
                kwargs["QueueOwnerAWSAccountId"] = arn.account
            url = client.get_queue_url(**kwargs)["QueueUrl"]
            entry = self._sqs[queue_arn] = (client, url)
        client, url = entry
        client.send_message(QueueUrl=url, MessageBody=json.dumps(body))

    # -- tumbling windows --------------------------------------------------------------------

    def _maybe_close_window(self, ms: _MappingState, sh: _ShardState, report: PollReport) -> bool:
        """Run the final invoke of the open window when it is over. True when an invoke was made
        (or is waiting to be retried)."""
        cp = sh.checkpoint
        if cp.window_start is None:
            return False
        if _json_size(cp.window_state) > MAX_STATE_BYTES:
            return self._final_invoke(ms, sh, report, early=True)
        head = sh.head()
        end = cp.window_start + ms.mapping.tumbling_window_seconds
        if head is not None:
            over = self._window_of(ms, head) != cp.window_start
        else:
            over = sh.exhausted or (sh.caught_up and self.clock.time() >= end)
        if not over:
            if head is None:
                report.waiting = report.waiting or not sh.caught_up
            return False
        return self._final_invoke(ms, sh, report, early=False)

    def _final_invoke(self, ms: _MappingState, sh: _ShardState, report: PollReport, *, early: bool) -> bool:
        if self.clock.monotonic() < sh.retry_at:
            report.waiting = True
            return True
        event = self._build_event(ms, sh, [], final=True, early=early)
        kind, _response, error, request_id, took = self._call(ms, event)
        outcome = "success" if kind == "returned" else kind
        sh.final_attempts += 1
        self._record_invoke(ms, sh, report, [], outcome, sh.final_attempts, took, request_id, error, final=True)
        if outcome != "success":
            # Lambda pauses the shard until the final invoke succeeds
            sh.retry_at = self.clock.monotonic() + self.retry_delay_seconds
            return True
        sh.final_attempts = 0
        sh.checkpoint = ShardCheckpoint(sh.checkpoint.sequence_number, False)
        sh.retry_at = 0.0
        self.store.put(ms.key, sh.shard_id, sh.checkpoint)
        return True
