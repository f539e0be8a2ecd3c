"""The FAQ processor Lambda: DynamoDB Streams (table `pipelines.faq.table`) -> `FaqIndexer` -> role indexes.

The use case (processors/core/faq_index.py) plans, embeds and writes each record; Powertools'
`BatchProcessor` turns the records that raised into Lambda's ReportBatchItemFailures response, so
nothing is lost: what failed is retried by Lambda, what is invalid is counted with its reason.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from processors import wiring

if TYPE_CHECKING:  # built on the first invocation (wiring), so importing this module stays cheap
    from processors.core.faq_index import FaqIndexer

logger = Logger(service="sieve-faq", logger_handler=None)
metrics = Metrics(namespace="Sieve", service="faq-processor")


@functools.cache
def batch_utility():
    """Powertools' batch utility (it loads asyncio): on the first invocation, not at import."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    return BatchProcessor(event_type=EventType.DynamoDBStreams), process_partial_response

COMPONENT = wiring.FAQ
_indexer: wiring.PerContainer[FaqIndexer] = wiring.PerContainer(COMPONENT)
reset_runtime = _indexer.reset


def handler(event: dict, context: Any) -> dict:
    indexer = _indexer.get()
    records = event.get("Records") or []
    batch = indexer.prepare(records)
    started = time.monotonic()

    def record_handler(record) -> None:  # Powertools passes it by this name
        indexer.apply(batch, record.raw_event)

    processor, process_partial_response = batch_utility()
    try:
        response = process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                            context=context)
    finally:
        indexer.finish(batch)
        emit_metrics(batch.counters)
    logger.info("faq batch", extra={"records": len(records), "failed": len(response.get("batchItemFailures", [])),
                                    "counters": dict(batch.counters),
                                    "duration_ms": round((time.monotonic() - started) * 1000, 1)})
    return response


def emit_metrics(counters: Counter) -> None:
    try:
        for name, n in sorted(counters.items()):
            metrics.add_metric(name="Faq" + name.title().replace("_", ""), unit=MetricUnit.Count, value=n)
        metrics.flush_metrics()
    except Exception:  # metrics must never fail a batch
        logger.exception("metrics flush failed")
