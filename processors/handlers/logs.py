"""The logs processor Lambda: Kinesis batch -> `LogIngest` (processors/core/ingest.py) -> response.

Event source mapping: Kinesis, FunctionResponseTypes [ReportBatchItemFailures], optionally
TumblingWindowInSeconds (the partials then live in Lambda's window state and are flushed on the final
invoke; without it every invocation flushes). The guarantees are the use case's; this module only turns
the event into a typed batch, the result into Lambda's response, and the flushed counts into metrics.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from processors import wiring
from processors.core.decode import REJECT_REASONS as DECODE_REASONS
from processors.core.ingest import IngestResult, LogIngest, ShardState, StreamBatch, StreamRecord
from processors.core.parse import REJECT_REASONS as PARSE_REASONS

logger = Logger(service="sieve-logs", logger_handler=None)
metrics = Metrics(namespace="Sieve", service="logs-processor")

COMPONENT = wiring.LOGS
_ingest: wiring.PerContainer[LogIngest] = wiring.PerContainer(COMPONENT)
reset_runtime = _ingest.reset


def handler(event: dict, context: Any) -> dict:
    result = _ingest.get().process(batch_of(event))
    if result.flushed is not None:
        emit_metrics(result.flushed)
    return response_of(result)


def batch_of(event: dict) -> StreamBatch:
    records = tuple(
        StreamRecord(r["kinesis"]["sequenceNumber"], r["kinesis"]["data"], r["kinesis"].get("partitionKey"),
                     r["kinesis"].get("approximateArrivalTimestamp"), r.get("eventSourceARN"))
        for r in event.get("Records") or ())
    shard = event.get("shardId") or (event["Records"][0]["eventID"].split(":")[0] if records else "unknown")
    return StreamBatch(shard, records, windowed="window" in event, state=event.get("state"),
                       final=bool(event.get("isFinalInvokeForWindow") or event.get("isWindowTerminatedEarly")))


def response_of(result: IngestResult) -> dict:
    response: dict[str, Any] = {"batchItemFailures": []}
    if result.failed_sequence is not None:
        response["batchItemFailures"] = [{"itemIdentifier": result.failed_sequence}]
    if result.state is not None:
        response["state"] = result.state
    return response


#: metric names come from these fixed vocabularies only (never from log text): a reason or counter
#: outside them is counted as `other`, so no key, line or detail can become a metric name
LINE_REASONS = PARSE_REASONS
COUNTERS = frozenset({"records", "already_counted", "control_messages"} | {f"rejected_record:{r}" for r in DECODE_REASONS})


def metric_counts(st: ShardState) -> dict[str, int]:
    """The flushed counts by metric name, names from the bounded vocabularies above."""
    out: dict[str, int] = {"Events": st.stats.events, "EventsParsed": st.stats.parsed}

    def add(name: str, n: int) -> None:
        out[name] = out.get(name, 0) + n

    for reason, n in st.stats.rejected.items():
        add(f"LinesRejected_{reason if reason in LINE_REASONS else 'other'}", n)
    for name, n in st.counters.items():
        name = name if name in COUNTERS else ("rejected_record:other" if name.startswith("rejected_record:") else "other")
        add(name.replace(":", "_").title().replace("_", ""), n)
    return out


def emit_metrics(st: ShardState) -> None:
    try:
        for name, n in sorted(metric_counts(st).items()):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=n)
        metrics.flush_metrics()
    except Exception:  # metrics must never fail a batch
        logger.exception("metrics flush failed")
