"""The log-ingest use case: one Kinesis batch -> decode -> parse -> rules -> per-shard partials.

    StreamBatch (typed, from the Lambda event) -> LogIngest.process -> IngestResult (-> Lambda response)

Stages, all owned here: `decode_record` (base64 / gzip CloudWatch Logs / raw lines) -> the parser its
LogFormat names (`parse.PARSERS`) -> every rule -> `Accumulator` (bounded aggregates + bottom-k
samples + the explanation counters of core/explain.py, serialised inside each aggregate's blob within
its byte budget; `IngestConfig.explain`) -> `ShardState` (Lambda's tumbling-window state, one compressed string) -> a flush through
the `WindowStore` port. Undecodable records go to the `RejectSink` port with their reason.

Guarantees
* A record is counted, or rejected with a reason (counted and sent to the reject sink), or reported
  as a batch item failure. Nothing vanishes.
* Exactly-once counting per shard: records at or below the shard's cursor are skipped, and a flush
  writes its partials and moves the cursor in one conditional transaction (the store's job), so a
  retried, bisected or redelivered batch never counts a record twice.
* An unexpected error on record i reports i as the failure; records before i are kept, i and the
  rest are retried by Lambda from i (the state returned covers exactly the records before i).
* A transient failure of the store or the reject sink is answered as a failure at the first record
  with the state Lambda passed in unchanged: the whole batch is retried, nothing is bisected.
"""

from __future__ import annotations

import base64
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from processors.core.aggregate import SAMPLE_KEYS, Accumulator, AccumulatorStats, WindowAggregate
from processors.core.decode import Rejected, decode_record
from processors.core.explain import ExplainConfig
from processors.core.parse import DEFAULT_JSON_FIELDS, JsonFields
from processors.core.rules import CompiledRule
from processors.core.samples import Samples
from processors.core.types import Partial
from processors.ports import RejectSink, TransientFailure, WindowStore

log = logging.getLogger("sieve.ingest")

#: flush early (and start an empty state) when the window state grows past this many bytes
STATE_FLUSH_BYTES = 700_000
#: the rejects sink keeps at most this much of a rejected record's data
REJECT_DATA_BYTES = 64 * 1024


class CursorMoved(TransientFailure):
    """Another invocation flushed this shard first (a concurrent duplicate); retry the batch."""


@dataclass(frozen=True, slots=True)
class IngestConfig:
    rules: tuple[CompiledRule, ...]
    period: int = 60
    capacity: int = 5000
    json_fields: JsonFields = DEFAULT_JSON_FIELDS
    samples_k: int = 3
    sample_keys: int = SAMPLE_KEYS
    state_flush_bytes: int = STATE_FLUSH_BYTES
    explain: ExplainConfig | None = ExplainConfig()  # None or enabled=False: no explanation counters


@dataclass(frozen=True, slots=True)
class StreamRecord:
    """One Kinesis record as the event source mapping delivers it (data still base64)."""

    sequence_number: str
    data_b64: str
    partition_key: str | None = None
    arrival: float | None = None
    source_arn: str | None = None

    def data(self) -> bytes:
        return base64.b64decode(self.data_b64)


@dataclass(frozen=True, slots=True)
class StreamBatch:
    """One invocation's records of one shard, with Lambda's tumbling-window fields."""

    shard: str
    records: tuple[StreamRecord, ...]
    windowed: bool = False  # TumblingWindowInSeconds is set: `state` round-trips through Lambda
    state: Mapping[str, str] | None = None
    final: bool = False  # isFinalInvokeForWindow or isWindowTerminatedEarly


@dataclass(frozen=True, slots=True)
class IngestResult:
    failed_sequence: str | None  # the batch item failure, if any
    state: dict[str, str] | None  # the window state to hand back (windowed batches only)
    flushed: "ShardState | None" = None  # the state that was flushed (its stats are the batch's metrics)
    partials_written: int = 0


@dataclass
class ShardState:
    """What a shard has accumulated but not yet flushed (Lambda's tumbling-window state)."""

    acc: Accumulator
    first_seq: str | None = None
    last_seq: str | None = None
    counters: Counter = field(default_factory=Counter)

    @property
    def stats(self) -> AccumulatorStats:
        return self.acc.stats

    @classmethod
    def new(cls, config: IngestConfig, shard: str) -> "ShardState":
        return cls(acc=Accumulator(config.rules, period=config.period, shard=shard, capacity=config.capacity,
                                   json_fields=config.json_fields, samples_k=config.samples_k,
                                   sample_keys=config.sample_keys, explain=config.explain))

    def note(self, seq: str) -> None:
        if self.first_seq is None:
            self.first_seq = seq
        self.last_seq = seq

    def sorted_partials(self) -> list[tuple[str, WindowAggregate]]:
        return [(rule, agg) for (rule, w), agg in sorted(self.acc.partials.items(), key=lambda kv: (kv[0][1].start, kv[0][0]))]

    # Lambda passes state back as a JSON object; keep it one compressed string.
    def to_state(self) -> dict[str, str]:
        if self.first_seq is None and not self.counters:
            return {}
        doc = {
            "first": self.first_seq, "last": self.last_seq, "counters": dict(self.counters),
            "stats": {"events": self.acc.stats.events, "parsed": self.acc.stats.parsed,
                      "rejected": dict(self.acc.stats.rejected)},
            "partials": [
                [rule, agg.window.start, base64.b64encode(agg.to_bytes()).decode(),
                 (self.acc.samples.get((rule, agg.window.start)) or Samples(0)).to_json()]
                for rule, agg in self.sorted_partials()
            ],
        }
        return {"v": "1", "s": base64.b64encode(zlib.compress(orjson.dumps(doc), 6)).decode()}

    @classmethod
    def from_state(cls, state: Mapping[str, str] | None, config: IngestConfig, shard: str) -> "ShardState":
        st = cls.new(config, shard)
        if not state or "s" not in state:
            return st
        doc = orjson.loads(zlib.decompress(base64.b64decode(state["s"])))
        st.first_seq, st.last_seq = doc["first"], doc["last"]
        st.counters.update(doc.get("counters", {}))
        st.acc.stats.events = doc["stats"]["events"]
        st.acc.stats.parsed = doc["stats"]["parsed"]
        st.acc.stats.rejected.update(doc["stats"]["rejected"])
        known = {r.name for r in config.rules}
        for rule, start, blob, samples in doc["partials"]:
            if rule not in known:  # the rule was removed from pipelines.yaml since this state was saved
                log.warning("dropping window state of a rule that is no longer configured",
                            extra={"rule": rule, "window_start": start, "shard": shard})
                continue
            st.acc.restore(WindowAggregate.from_bytes(base64.b64decode(blob)),
                           Samples.from_json(samples, config.samples_k) if samples else None)
        return st

    def partials(self, flushed_at: int) -> tuple[list[Partial], int | None]:
        """The partials to store, samples pruned to the heaviest keys, and the largest event time (ms)."""
        out, max_ts = [], None
        for rule, agg in self.sorted_partials():
            s = self.acc.samples_of(rule, agg.window)
            out.append(Partial(rule, agg.window.start, agg.shard, self.first_seq, self.last_seq, agg.to_bytes(),
                               s.to_json() if s else [], agg.total_events, flushed_at))
            if agg.max_ts is not None:
                max_ts = agg.max_ts if max_ts is None else max(max_ts, agg.max_ts)
        return out, int(max_ts * 1000) if max_ts is not None else None


def reject_message(rec: StreamRecord, shard: str, rej: Rejected, data: bytes) -> dict:
    """What the reject sink keeps of an undecodable record: the reason, where it came from, its data."""
    return {
        "reason": rej.reason, "detail": rej.detail, "shardId": shard, "sequenceNumber": rec.sequence_number,
        "partitionKey": rec.partition_key, "approximateArrivalTimestamp": rec.arrival,
        "eventSourceARN": rec.source_arn, "dataBytes": len(data),
        "data": base64.b64encode(data[:REJECT_DATA_BYTES]).decode(), "truncated": len(data) > REJECT_DATA_BYTES,
    }


class LogIngest:
    """The use case behind the logs processor (see the module docstring)."""

    def __init__(self, config: IngestConfig, store: WindowStore, rejects: RejectSink, *, clock: Callable[[], float]):
        self.config = config
        self.store = store
        self.rejects = rejects
        self.clock = clock

    def process(self, batch: StreamBatch) -> IngestResult:
        try:
            return self._process(batch)
        except TransientFailure as exc:
            log.warning("transient failure; the batch will be retried",
                        extra={"error_type": type(exc).__name__, "error": str(exc)[:300], "records": len(batch.records)})
            if not batch.records:  # a final invoke has no record to point at: fail the invoke so Lambda retries it
                raise
            return IngestResult(batch.records[0].sequence_number, dict(batch.state or {}) if batch.windowed else None)

    def _process(self, batch: StreamBatch) -> IngestResult:
        shard, records = batch.shard, batch.records
        cursor = self.store.cursor(shard)
        cursor_int = int(cursor) if cursor is not None else -1

        st, failed_at, rejects = self._consume(batch.state, records, shard, cursor_int)
        if failed_at is not None:
            # Rebuild from the input state over the records before the failure only, so the state we
            # return (or flush) covers exactly what Lambda will not send again.
            st, _, rejects = self._consume(batch.state, records[:failed_at], shard, cursor_int)

        if rejects:
            self.rejects.send(rejects)  # raises TransientFailure: the whole batch is retried

        flushed, written = None, 0
        if not batch.windowed or batch.final or len(orjson.dumps(st.to_state())) > self.config.state_flush_bytes:
            if st.last_seq is not None:
                written = self._flush(shard, st, cursor)
            flushed, st = st, ShardState.new(self.config, shard)
        log.debug("logs batch", extra={"shard": shard, "records": len(records), "failed_at": failed_at,
                                       "flushed": written, "final": batch.final})
        return IngestResult(
            failed_sequence=records[failed_at].sequence_number if failed_at is not None else None,
            state=st.to_state() if batch.windowed else None, flushed=flushed, partials_written=written)

    def _consume(self, state: Mapping[str, str] | None, records: Sequence[StreamRecord], shard: str,
                 cursor_int: int) -> tuple[ShardState, int | None, list[dict]]:
        st = ShardState.from_state(state, self.config, shard)
        rejects: list[dict] = []
        for i, rec in enumerate(records):
            seq = rec.sequence_number
            try:
                if int(seq) <= cursor_int:
                    st.counters["already_counted"] += 1
                    continue
                data = rec.data()
                res = decode_record(data)
                if isinstance(res, Rejected):
                    st.counters[f"rejected_record:{res.reason}"] += 1
                    rejects.append(reject_message(rec, shard, res, data))
                elif res.kind == "control":
                    st.counters["control_messages"] += 1
                else:
                    for ev in res.events:
                        st.acc.add_event(ev)
                st.counters["records"] += 1
                st.note(seq)
            except Exception:  # a bug or a poison record: report it, never lose it
                log.exception("record failed", extra={"shard": shard, "sequence_number": seq})
                return st, i, rejects
        return st, None, rejects

    def _flush(self, shard: str, st: ShardState, cursor: str | None) -> int:
        partials, max_event_ms = st.partials(int(self.clock()))
        if not self.store.flush(shard, cursor, st.last_seq, partials, max_event_ms):
            raise CursorMoved(f"shard {shard}: another invocation moved the cursor; retrying this batch")
        return len(partials)


def line_batches(lines: Sequence[str], *, shards: int = 2, size: int = 250):
    """Raw log lines as the StreamBatches a stream with `shards` shards would deliver (each line to the
    shard its crc32 picks, `size` records a batch, sequence numbers increasing per shard): for running
    the use case in process (evaluations, benchmarks, tests) without a stream."""
    by_shard: dict[int, list[str]] = {s: [] for s in range(shards)}
    for line in lines:
        by_shard[zlib.crc32(line.encode("utf-8", "surrogateescape")) % shards].append(line)
    for shard, shard_lines in by_shard.items():
        for i in range(0, len(shard_lines), size):
            chunk = shard_lines[i:i + size]
            yield StreamBatch(f"shardId-{shard:012d}", tuple(
                StreamRecord(str(10**20 + i + j), base64.b64encode(line.encode("utf-8", "surrogateescape")).decode())
                for j, line in enumerate(chunk)))
