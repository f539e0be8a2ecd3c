"""The logs processor Lambda: Kinesis batch -> decode -> parse -> rules -> per-shard partials.

Event source mapping: Kinesis, FunctionResponseTypes [ReportBatchItemFailures], optionally
TumblingWindowInSeconds (then the partials live in Lambda's window state and are flushed on the
final invoke; without it every invocation flushes).

Guarantees
* A record is counted, or rejected with a reason (counted and written to the rejects queue), or
  reported as a batch item failure. Nothing vanishes.
* Exactly-once counting per shard: records at or below the shard's cursor (see
  processors.adapters.state_store) are skipped, and a flush writes its partials and moves the
  cursor in one conditional transaction, so a retried, bisected or redelivered batch never counts
  a record twice.
* An unexpected error on record i reports i as the failure; records before i are kept, i and the
  rest are retried by Lambda from i (the state returned covers exactly records before i).
"""

from __future__ import annotations

import base64
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from processors.adapters import aws
from processors.adapters.state_store import Partial, StateStore
from processors.config import LoadedConfig
from processors.core.aggregate import Accumulator, WindowAggregate
from processors.core.decode import Rejected, decode_record
from processors.core.parse import JsonFields
from processors.core.samples import Samples
from processors.handlers.container import PerContainer

logger = Logger(service="sieve-logs", logger_handler=None)
metrics = Metrics(namespace="Sieve", service="logs-processor")

#: samples kept per (rule, window) at flush: the heaviest keys only, k lines each
SAMPLE_KEYS = 50
#: flush early (and start an empty state) when the window state grows past this many bytes
STATE_FLUSH_BYTES = 700_000
REJECT_DATA_BYTES = 64 * 1024


@dataclass
class LogsRuntime:
    """Everything built once per container from pipelines.yaml."""

    rules: tuple
    period: int
    capacity: int
    json_fields: JsonFields
    samples_k: int
    store: StateStore
    rejects_queue_url: str | None

    @classmethod
    def from_config(cls, loaded: LoadedConfig) -> "LogsRuntime":
        logs = loaded.config.pipelines.logs
        if logs is None:
            raise RuntimeError("pipelines.logs is not configured")
        jf = logs.parse.json_fields
        queue_url = None
        if logs.rejects_queue:
            queue_url = aws.client("sqs", loaded.config.region).get_queue_url(QueueName=logs.rejects_queue)["QueueUrl"]
        return cls(
            rules=loaded.rules, period=logs.window.period_seconds, capacity=logs.state.capacity,
            json_fields=JsonFields(**jf.model_dump()),
            samples_k=logs.ai.samples_per_group,
            store=StateStore(logs.state.table, ttl_days=logs.state.ttl_days),
            rejects_queue_url=queue_url,
        )


_runtime: PerContainer[LogsRuntime] = PerContainer(LogsRuntime.from_config)


def runtime() -> LogsRuntime:
    return _runtime.get()


def reset_runtime(rt: LogsRuntime | None = None) -> None:
    _runtime.reset(rt)


@dataclass
class ShardState:
    """What a shard has accumulated but not yet flushed (Lambda's tumbling-window state)."""

    acc: Accumulator
    samples: dict[tuple[str, int], Samples] = field(default_factory=dict)
    first_seq: str | None = None
    last_seq: str | None = None
    counters: Counter = field(default_factory=Counter)

    @classmethod
    def new(cls, rt: LogsRuntime, shard: str) -> "ShardState":
        st = cls(acc=Accumulator(rt.rules, period=rt.period, shard=shard, capacity=rt.capacity,
                                 json_fields=rt.json_fields))
        k = rt.samples_k

        def on_hit(agg: WindowAggregate, key: tuple[str, ...], line: str) -> None:
            s = st.samples.get((agg.rule, agg.window.start))
            if s is None:
                s = st.samples[(agg.rule, agg.window.start)] = Samples(k)
            s.offer(key, line)
            if len(s.by_key) > 4 * SAMPLE_KEYS:
                _prune_to(s, agg, SAMPLE_KEYS)

        st.acc.on_hit = on_hit
        return st

    def note(self, seq: str) -> None:
        if self.first_seq is None:
            self.first_seq = seq
        self.last_seq = seq

    # Lambda passes state back as a JSON object; keep it one compressed string.
    def to_state(self) -> dict[str, str]:
        if self.first_seq is None and not self.counters:
            return {}
        doc = {
            "first": self.first_seq, "last": self.last_seq, "counters": dict(self.counters),
            "stats": {"events": self.acc.stats.events, "parsed": self.acc.stats.parsed,
                      "rejected": dict(self.acc.stats.rejected)},
            "partials": [
                [rule, w.start, base64.b64encode(agg.to_bytes()).decode(),
                 self.samples.get((rule, w.start), Samples(0)).to_json()]
                for (rule, w), agg in sorted(self.acc.partials.items(), key=lambda kv: (kv[0][1].start, kv[0][0]))
            ],
        }
        return {"v": "1", "s": base64.b64encode(zlib.compress(orjson.dumps(doc), 6)).decode()}

    @classmethod
    def from_state(cls, state: dict | None, rt: LogsRuntime, shard: str) -> "ShardState":
        st = cls.new(rt, shard)
        if not state or "s" not in state:
            return st
        doc = orjson.loads(zlib.decompress(base64.b64decode(state["s"])))
        st.first_seq, st.last_seq = doc["first"], doc["last"]
        st.counters.update(doc.get("counters", {}))
        st.acc.stats.events = doc["stats"]["events"]
        st.acc.stats.parsed = doc["stats"]["parsed"]
        st.acc.stats.rejected.update(doc["stats"]["rejected"])
        by_name = {r.name: r for r in rt.rules}
        for rule, start, blob, samples in doc["partials"]:
            if rule not in by_name:  # the rule was removed from pipelines.yaml since this state was saved
                logger.warning("dropping window state of a rule that is no longer configured",
                               extra={"rule": rule, "window_start": start, "shard": shard})
                continue
            st.acc.restore(WindowAggregate.from_bytes(base64.b64decode(blob)))
            if samples:
                st.samples[(rule, start)] = Samples.from_json(samples, rt.samples_k)
        return st


def _seq_int(seq: str) -> int:
    return int(seq)


def handler(event: dict, context: Any) -> dict:
    return process(event, context, runtime())


def process(event: dict, context: Any, rt: LogsRuntime) -> dict:
    """One invocation. A transient failure of the state table or the rejects queue (throttling,
    unavailable) is answered as a batch item failure at the first record, with the state Lambda
    passed in unchanged, so Lambda retries the whole batch from there without bisecting it."""
    try:
        return _process(event, context, rt)
    except (ClientError, BotoCoreError, TransientFailure) as exc:
        records = event.get("Records") or []
        logger.warning("transient failure; the batch will be retried",
                       extra={"error_type": type(exc).__name__, "error": str(exc)[:300], "records": len(records)})
        if not records:  # a final invoke has no record to point at: fail the invoke so Lambda retries it
            raise
        response: dict[str, Any] = {"batchItemFailures": [{"itemIdentifier": records[0]["kinesis"]["sequenceNumber"]}]}
        if "window" in event:
            response["state"] = event.get("state") or {}
        return response


class TransientFailure(RuntimeError):
    """Worth retrying the same batch: nothing about the records is wrong."""


class CursorMoved(TransientFailure):
    """Another invocation flushed this shard first (a concurrent duplicate); retry the batch."""


def _process(event: dict, context: Any, rt: LogsRuntime) -> dict:
    records = event.get("Records") or []
    windowed = "window" in event
    shard = event.get("shardId") or (records[0]["eventID"].split(":")[0] if records else "unknown")
    final = bool(event.get("isFinalInvokeForWindow") or event.get("isWindowTerminatedEarly"))
    cursor = rt.store.cursor(shard)
    cursor_int = _seq_int(cursor) if cursor is not None else -1

    st, failed_at, rejects = _consume(event.get("state"), records, rt, shard, cursor_int)
    if failed_at is not None:
        # Rebuild from the input state over the records before the failure only, so the state we
        # return (or flush) covers exactly what Lambda will not send again.
        st, _, rejects = _consume(event.get("state"), records[:failed_at], rt, shard, cursor_int)

    _send_rejects(rt, rejects)  # raises on a transient failure: the whole batch is retried

    must_flush = (not windowed) or final or len(orjson.dumps(st.to_state())) > STATE_FLUSH_BYTES
    flushed = None
    if must_flush and st.last_seq is not None:
        flushed = _flush(rt, shard, st, cursor)
        _emit_metrics(st)
        st = ShardState.new(rt, shard)
    elif must_flush:
        _emit_metrics(st)
        st = ShardState.new(rt, shard)

    response: dict[str, Any] = {"batchItemFailures": []}
    if failed_at is not None:
        response["batchItemFailures"] = [{"itemIdentifier": records[failed_at]["kinesis"]["sequenceNumber"]}]
    if windowed:
        response["state"] = st.to_state()
    logger.debug("logs batch", extra={"shard": shard, "records": len(records), "failed_at": failed_at,
                                       "flushed": flushed, "final": final})
    return response


def _consume(state, records, rt: LogsRuntime, shard: str, cursor_int: int):
    st = ShardState.from_state(state, rt, shard)
    rejects: list[dict] = []
    for i, rec in enumerate(records):
        k = rec["kinesis"]
        seq = k["sequenceNumber"]
        try:
            if _seq_int(seq) <= cursor_int:
                st.counters["already_counted"] += 1
                continue
            data = base64.b64decode(k["data"])
            res = decode_record(data)
            if isinstance(res, Rejected):
                st.counters[f"rejected_record:{res.reason}"] += 1
                rejects.append(_reject_message(rec, shard, res, data))
            elif res.kind == "control":
                st.counters["control_messages"] += 1
            else:
                for ev in res.events:
                    st.acc.add_event(ev)
            st.counters["records"] += 1
            st.note(seq)
        except Exception:  # a bug or a poison record: report it, never lose it
            logger.exception("record failed", extra={"shard": shard, "sequence_number": seq})
            return st, i, rejects
    return st, None, rejects


def _reject_message(rec: dict, shard: str, rej: Rejected, data: bytes) -> dict:
    k = rec["kinesis"]
    body = {
        "reason": rej.reason, "detail": rej.detail, "shardId": shard, "sequenceNumber": k["sequenceNumber"],
        "partitionKey": k.get("partitionKey"), "approximateArrivalTimestamp": k.get("approximateArrivalTimestamp"),
        "eventSourceARN": rec.get("eventSourceARN"), "dataBytes": len(data),
        "data": base64.b64encode(data[:REJECT_DATA_BYTES]).decode(), "truncated": len(data) > REJECT_DATA_BYTES,
    }
    return body


def _send_rejects(rt: LogsRuntime, rejects: list[dict]) -> None:
    if not rejects:
        return
    if rt.rejects_queue_url is None:
        for r in rejects:
            logger.warning("rejected record (no rejects_queue configured)",
                           extra={k: r[k] for k in ("reason", "shardId", "sequenceNumber")})
        return
    sqs = aws.client("sqs")
    for i in range(0, len(rejects), 10):
        chunk = rejects[i:i + 10]
        resp = sqs.send_message_batch(QueueUrl=rt.rejects_queue_url, Entries=[
            {"Id": str(j), "MessageBody": orjson.dumps(r).decode(),
             "MessageAttributes": {"reason": {"DataType": "String", "StringValue": r["reason"]},
                                   "rejectId": {"DataType": "String", "StringValue": f"{r['shardId']}:{r['sequenceNumber']}"}}}
            for j, r in enumerate(chunk)])
        if resp.get("Failed"):
            raise TransientFailure(f"rejects queue refused {len(resp['Failed'])} message(s): {resp['Failed'][0].get('Code')}")


def _flush(rt: LogsRuntime, shard: str, st: ShardState, cursor: str | None) -> int:
    now = int(time.time())
    partials = []
    max_ts = None
    for (rule, w), agg in sorted(st.acc.partials.items(), key=lambda kv: (kv[0][1].start, kv[0][0])):
        s = st.samples.get((rule, w.start))
        if s is not None:
            _prune_to(s, agg, SAMPLE_KEYS)
        partials.append(Partial(rule, w.start, shard, st.first_seq, st.last_seq, agg.to_bytes(),
                                s.to_json() if s else [], agg.total_events, now))
        if agg.max_ts is not None:
            max_ts = agg.max_ts if max_ts is None else max(max_ts, agg.max_ts)
    ok = rt.store.flush(shard, cursor, st.last_seq, partials, int(max_ts * 1000) if max_ts is not None else None)
    if not ok:
        raise CursorMoved(f"shard {shard}: another invocation moved the cursor; retrying this batch")
    return len(partials)


def _prune_to(s: Samples, agg: WindowAggregate, n: int) -> None:
    """Keep samples only for the heaviest keys (value desc, key asc): bounded, and deterministic
    given the aggregate."""
    ranked = sorted(s.by_key, key=lambda k: (-agg.values.get(k, 0), k))
    s.keep_only(ranked[:n])


def _emit_metrics(st: ShardState) -> None:
    stats = st.acc.stats
    try:
        metrics.add_metric(name="Events", unit=MetricUnit.Count, value=stats.events)
        metrics.add_metric(name="EventsParsed", unit=MetricUnit.Count, value=stats.parsed)
        for reason, n in sorted(stats.rejected.items()):
            metrics.add_metric(name=f"LinesRejected_{reason}", unit=MetricUnit.Count, value=n)
        for name, n in sorted(st.counters.items()):
            metrics.add_metric(name=name.replace(":", "_").title().replace("_", ""), unit=MetricUnit.Count, value=n)
        metrics.flush_metrics()
    except Exception:  # metrics must never fail a batch
        logger.exception("metrics flush failed")
