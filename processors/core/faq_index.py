"""The FAQ indexing use case: DynamoDB Streams records -> role indexes (through the FaqIndex port).

Per record, `plan_change` (processors/core/faq.py) decides and this module executes:

* INSERT / MODIFY: the NewImage is embedded and upserted into the index of every role allowed to see
  it, and deleted from every other role index (a revoked role loses it).
* REMOVE: deleted from every role index.
* Every write carries the record's external version (creation time, then sequence number), so a
  replayed or out-of-order older event is stale and skipped: it never overwrites a newer one.

Nothing is lost:
* a malformed record and a record whose role no index may see are counted with the reason (never
  silently dropped), and the batch goes on;
* a transient failure (index unreachable, 429/5xx after retries, the embedder throttled) raises
  TransientFailure for that record; after the first one the rest of the batch fails at once without
  trying (Lambda re-sends everything after the lowest failed sequence number anyway);
* an item the index refuses with a 4xx other than 429 (a mapping error) cannot succeed on retry: it is
  counted as rejected with the index's reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from processors.core.faq import ChangePlan, plan_change
from processors.ports import Embedder, FaqIndex, TransientFailure, WriteResult

log = logging.getLogger("sieve.faq")


@dataclass(frozen=True, slots=True)
class FaqRouting:
    roles: Mapping[str, Sequence[str]]  # index role -> the record roles it may see
    role_attribute: str = "role"
    id_attribute: str = "id"

    def plan(self, stream_record: Mapping) -> ChangePlan:
        return plan_change(stream_record, self.roles, role_attribute=self.role_attribute, id_attribute=self.id_attribute)


def sequence_of(stream_record: Mapping) -> str:
    ddb = stream_record.get("dynamodb") if isinstance(stream_record, Mapping) else None
    return str(ddb.get("SequenceNumber", "")) if isinstance(ddb, Mapping) else ""


@dataclass
class FaqBatch:
    """One invocation's records, planned and (where possible) embedded in one call."""

    plans: dict[str, ChangePlan]  # by sequence number
    vectors: dict[str, list[float]]  # by sequence number (pre-embedded upserts)
    counters: Counter = field(default_factory=Counter)
    broken: str | None = None  # the first transient failure: the rest of the batch fails fast


class FaqIndexer:
    def __init__(self, routing: FaqRouting, embedder: Embedder, index: FaqIndex):
        self.routing = routing
        self.embedder = embedder
        self.index = index
        self.counters: Counter = Counter()  # running totals for this container

    def prepare(self, records: Sequence[Mapping]) -> FaqBatch:
        """Plan every record and embed every upsert of the batch in one call. If that call fails, each
        record embeds its own text later, so a single bad text fails only its own record."""
        self.index.ensure()  # a failure here fails the whole batch: Lambda retries it
        plans = {sequence_of(r): self.routing.plan(r) for r in records}
        todo = [(seq, p.record.embedding_text()) for seq, p in plans.items() if p.record is not None and p.upsert]
        vectors: dict[str, list[float]] = {}
        if todo:
            try:
                vectors = dict(zip((s for s, _ in todo), self.embedder.embed([t for _, t in todo])))
            except Exception as exc:  # noqa: BLE001 - per-record embedding decides which record is at fault
                log.warning("batch embedding failed; embedding record by record", extra={"error": str(exc)[:300]})
        return FaqBatch(plans, vectors)

    def finish(self, batch: FaqBatch) -> None:
        self.counters.update(batch.counters)

    def apply(self, batch: FaqBatch, stream_record: Mapping) -> None:
        """Execute one record's plan. Raises TransientFailure when Lambda should retry it."""
        seq = sequence_of(stream_record)
        plan = batch.plans.get(seq) or self.routing.plan(stream_record)
        if batch.broken:
            batch.counters["failed_fast"] += 1
            raise TransientFailure(f"not tried: an earlier record of this batch failed ({batch.broken})")
        where = {"event_id": plan.event_id, "event_name": plan.event_name, "doc_id": plan.doc_id, "sequence_number": seq}
        if plan.rejection is not None:
            batch.counters["rejected"] += 1
            log.warning("faq record rejected", extra={**where, "reason": plan.rejection.reason})
        elif plan.unrouted is not None:
            batch.counters["unrouted"] += 1
            log.warning("faq record indexed nowhere", extra={**where, "reason": plan.unrouted})
        if plan.doc_id is None or plan.version is None:
            return  # nothing addressable to write; counted above
        try:
            if plan.upsert:
                vector = batch.vectors.get(seq)
                if vector is None:
                    try:
                        vector = self.embedder.embed([plan.record.embedding_text()])[0]
                    except Exception as exc:  # noqa: BLE001 - throttled, timed out, endpoint down: retry later
                        raise TransientFailure(f"embedding failed: {str(exc)[:300]}") from exc
                doc = {**plan.record.document(), "embedding": vector}
                for role in sorted(plan.upsert):
                    self._account(batch, where, "upsert", role, self.index.upsert(role, doc, plan.version))
            for role in sorted(plan.delete):
                self._account(batch, where, "delete", role, self.index.delete(role, plan.doc_id, plan.version))
        except TransientFailure as exc:
            batch.broken = str(exc)[:200]
            batch.counters["failed"] += 1
            log.warning("faq record failed; Lambda will retry it", extra={**where, "error": str(exc)[:500]})
            raise
        except Exception as exc:  # noqa: BLE001 - anything unexpected is retried, never swallowed
            batch.broken = f"{type(exc).__name__}: {str(exc)[:150]}"
            batch.counters["failed"] += 1
            log.exception("faq record failed unexpectedly; Lambda will retry it", extra=where)
            raise
        if plan.revoked:
            batch.counters["revoked"] += len(plan.revoked)
            log.info("faq record revoked from role indexes", extra={**where, "roles": sorted(plan.revoked)})

    @staticmethod
    def _account(batch: FaqBatch, where: dict, op: str, role: str, result: WriteResult) -> None:
        batch.counters[f"{op}_ok"] += len(result.succeeded)
        batch.counters[f"{op}_stale"] += len(result.stale)
        for doc_id, reason in result.rejected:
            if reason.startswith("HTTP 4") and not reason.startswith("HTTP 429"):
                batch.counters[f"{op}_rejected"] += 1
                log.warning("faq write refused by the index", extra={**where, "index_role": role, "reason": reason})
            else:
                raise TransientFailure(f"{op} {doc_id} for role {role}: {reason}")
