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
from processors.core.ingest import IngestResult, LogIngest, ShardState, StreamBatch, StreamRecord

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


def emit_metrics(st: ShardState) -> None:
    try:
        metrics.add_metric(name="Events", unit=MetricUnit.Count, value=st.stats.events)
        metrics.add_metric(name="EventsParsed", unit=MetricUnit.Count, value=st.stats.parsed)
        for reason, n in sorted(st.stats.rejected.items()):
            metrics.add_metric(name=f"LinesRejected_{reason}", unit=MetricUnit.Count, value=n)
        for name, n in sorted(st.counters.items()):
            metrics.add_metric(name=name.replace(":", "_").title().replace("_", ""), unit=MetricUnit.Count, value=n)
        metrics.flush_metrics()
    except Exception:  # metrics must never fail a batch
        logger.exception("metrics flush failed")
