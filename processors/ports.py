"""The ports: every protocol the pipeline core and the handlers depend on, with the errors that cross them.

Adapters (processors/adapters) implement these; the wiring (processors/wiring.py) builds them from
pipelines.yaml; the core (processors/core) and the handlers only ever see these types. Values that cross
a port are plain frozen dataclasses in processors/core/types.py, never vendor types or raw items.

    Analyser      a chat model: one prompt in, one ModelReply out
    Embedder      texts -> vectors
    Retriever     question + role -> FAQ candidates (role-filtered)
    Notifier      a finalised window -> one Slack message (idempotent)
    BudgetLedger  token/call budgets, reserved before a model call
    AuditSink     one record per model call attempt
    WindowStore   the log pipeline's state: cursors, partials, open windows, progress, reports, cooldowns, mutes
    ShardLister   the open shards of the log pipeline's source stream (the watermark waits for each)
    RejectSink    undecodable records, kept with their reason
    FaqIndex      role indexes of FAQ entries (upsert/delete with external versions)
    Fetcher       one polite, bounded GET for the FAQ crawler
    FaqStore      what the FAQ table holds per crawl source; conditional writes and deletes
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from processors.core.budget import BudgetConfig
from processors.core.types import (
    AuditRecord,
    Fetched,
    FetchLimits,
    HeldEntry,
    Candidate,
    Delivery,
    LastSelected,
    ModelReply,
    Partial,
    Reservation,
    ShardProgress,
    StoredReport,
    TopNReport,
    WindowReport,
)
from processors.errors import ServiceError, SieveError

if TYPE_CHECKING:  # core.incidents imports the renderer, which imports these ports
    from processors.core.incidents import Mute

__all__ = [
    "Analyser", "AuditSink", "BudgetLedger", "Embedder", "FaqIndex", "Notifier", "RejectSink", "Retriever",
    "WindowStore", "ShardLister", "ModelReply", "Delivery", "WriteResult",
    "TransientFailure", "ModelCallError", "ModelThrottled", "ModelTimeout", "NotificationFailed",
]


# --------------------------------------------------------------------------------------- errors


class TransientFailure(ServiceError):
    """Worth retrying the same work later: nothing about the input is wrong (throttled, unavailable,
    a concurrent writer moved first). Stream handlers answer it with a batch item failure."""


class ModelCallError(ServiceError):
    """A model call failed (bad request, unknown model, model error). The message says which and why."""


class ModelThrottled(ModelCallError, TransientFailure):
    """The model endpoint is busy or over quota; retrying later may succeed."""


class ModelTimeout(ModelCallError):
    """The model did not answer in time."""


class NotificationFailed(SieveError):
    """A message was not delivered. `retryable`: trying again later can help (the caller leaves the
    window open); `dead_lettered`: it went to the failure destination, so nothing is lost."""

    def __init__(self, message: str, *, idempotency_key: str = "", retryable: bool, status_code: int | None = None,
                 dead_lettered: bool = False):
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.retryable = retryable
        self.status_code = status_code
        self.dead_lettered = dead_lettered


# --------------------------------------------------------------------------------------- models


class Analyser(Protocol):
    """Sends one prompt (system + user text) to a chat model and returns its reply.
    Raises ModelCallError (ModelThrottled, ModelTimeout) on failure."""

    def complete(self, system: str, user: str, *, max_tokens: int, json_schema: dict | None = None) -> ModelReply: ...


class Embedder(Protocol):
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class Retriever(Protocol):
    def retrieve(self, question: str, role: str, k: int) -> list[Candidate]: ...


# --------------------------------------------------------------------------------------- the boundary


class BudgetLedger(Protocol):
    def reserve(self, *, day: str, window_id: str, tokens: int, config: BudgetConfig, new_call: bool) -> Reservation:
        """Atomically add `tokens` to the day (and one call to the window when `new_call`) if the
        limits allow, else raise processors.core.budget.BudgetExhausted."""
        ...

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        """Replace the reserved estimate by the actual usage."""
        ...


class AuditSink(Protocol):
    def record(self, record: AuditRecord) -> None: ...


class Notifier(Protocol):
    def bind_invocation(self, context: Any) -> None:
        """Called by the handler with the Lambda context of each invocation (idempotency expiry)."""
        ...

    def post_report(self, report: WindowReport, *, max_rows: int) -> Delivery:
        """Post one window's message, at most once per content key. Raises NotificationFailed."""
        ...


# --------------------------------------------------------------------------------------- log pipeline state


class WindowStore(Protocol):
    """The log pipeline's durable state (see processors/adapters/state_store.py for its layout)."""

    def cursor(self, shard: str) -> str | None: ...

    def flush(self, shard: str, expected_cursor: str | None, new_cursor: str, partials: Sequence[Partial],
              max_event_ms: int | None) -> bool:
        """Write the partials and move the shard's cursor, all or nothing; False if the cursor moved."""
        ...

    def partials(self, rule: str, window_start: int) -> list[Partial]: ...

    def open_windows(self, rule: str) -> list[int]: ...

    def close_window(self, rule: str, window_start: int) -> None: ...

    def shard_progress(self) -> dict[str, ShardProgress]: ...

    def register_shards(self, shards: Sequence[str], now: int) -> None:
        """Record each shard as "nothing flushed yet, first seen `now`" (ShardProgress(None, now)) unless the
        store already has progress (or such a record) for it: never overwrites; a later flush advances it."""
        ...

    def stored_report(self, rule: str, window_start: int) -> StoredReport | None: ...

    def previous_reports(self, rule: str, *, before: int, limit: int) -> list[TopNReport]:
        """Finalised top-Ns of the windows before `before`, newest first."""
        ...

    def put_report(self, rule: str, window_start: int, document: dict) -> bool: ...

    def mark_late(self, rule: str, window_start: int, *, late_events: int, late_partials: int) -> None: ...

    def last_selected(self, rule: str) -> dict[tuple[str, ...], LastSelected]: ...

    def mark_selected(self, rule: str, selected: Mapping[tuple[str, ...], LastSelected]) -> None: ...

    def mutes(self, rule: str) -> dict[str, Mute]:
        """Mutes of the rule's incidents by incident id (processors.core.incidents; expired ones too)."""
        ...


class ShardLister(Protocol):
    def shards(self) -> list[str]:
        """The ids of the source stream's open shards (closed ones are left to the watermark's idle rule).
        Raises TransientFailure if they could not be listed."""
        ...


class RejectSink(Protocol):
    def send(self, rejects: Sequence[dict]) -> None:
        """Keep every rejected record with its reason. Raises TransientFailure if it could not."""
        ...


# --------------------------------------------------------------------------------------- FAQ index


@dataclass
class WriteResult:
    """Per-document outcome of an index write."""

    succeeded: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # an equal or newer version was already there
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (doc id, reason)


class FaqIndex(Protocol):
    def ensure(self) -> None:
        """Create every role index if missing (once per container)."""
        ...

    def upsert(self, role: str, document: dict, version: int) -> WriteResult:
        """Index `document` (with its `id`) in the role's index at an external version."""
        ...

    def delete(self, role: str, doc_id: str, version: int) -> WriteResult: ...


# --------------------------------------------------------------------------------------- FAQ crawler


class Fetcher(Protocol):
    def fetch(self, url: str, *, limits: FetchLimits, delay: float, allow: Callable[[str], str | None]) -> Fetched:
        """GET `url` at least `delay` seconds after the previous request to its host, following at most
        limits.max_redirects redirects, each target first passed to `allow` (None: go on; else the reason
        code to stop with). Never raises for anything the site does."""
        ...


class FaqStore(Protocol):
    def held(self, source_key: str) -> dict[str, HeldEntry]: ...

    def put(self, item: Mapping[str, Any], *, source_key: str) -> str:
        """Write unless the table holds the same content hash: "written" | "unchanged" | "claimed" (the id
        belongs to another source or was written by hand). Raises TransientFailure."""
        ...

    def delete(self, entry: HeldEntry, *, source_key: str) -> str:
        """Delete if it still has the hash we saw: "deleted" | "changed" | "gone". Raises TransientFailure."""
        ...
