"""Plain data passed between the pipeline stages. No I/O, no vendor types.

These are the contracts between stages: the top-N engine produces `TopNReport`, selection turns it
into `SelectedGroup`s, the AI boundary turns those into a `Digest` and an `AnalysisOutcome`, and the
notifier renders a `WindowReport`. Everything is frozen so a stage can never edit what an earlier
stage computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class Window:
    """A tumbling event-time window, [start, end) in epoch seconds."""

    start: int
    end: int

    @property
    def key(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True, slots=True)
class Contributor:
    """One unique combination of a rule's key values and its aggregate (Count or Sum)."""

    keys: tuple[str, ...]
    value: float


@dataclass(frozen=True, slots=True)
class TopNReport:
    """What the finaliser stores per (rule, window): the exact top-N plus Contributor Insights'
    report metrics. `approximate` is set when a shard-window overflowed its exact capacity and a
    heavy-hitter summary was used; `error_bound` is then the maximum over-count of any value."""

    rule: str
    window: Window
    key_names: tuple[str, ...]
    aggregate_on: Literal["Count", "Sum"]
    contributors: tuple[Contributor, ...]
    unique_contributors: int
    max_contributor_value: float
    sample_count: int  # log events that matched the rule
    sum: float  # sum of all contributor values
    total_events: int = 0  # all parsed events in the window (denominator for shares)
    approximate: bool = False
    error_bound: float = 0.0
    shards: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ContrastFact:
    """One attribute value whose share inside a group differs from the rest of the window's traffic
    (the idea of Honeycomb BubbleUp / CloudWatch Logs Insights `diff`). Computed, never inferred."""

    field: str  # a dimension: method, status, user_agent, referer, client_network, path_template, ...
    value: str
    group_share: float  # of the group's events, 0..1
    baseline_share: float  # of the window's other events, 0..1
    group_count: int = 0
    baseline_count: int = 0
    error: float = 0.0  # upper bound on the share error when a counter overflowed its exact capacity (0: exact)


@dataclass(frozen=True, slots=True)
class Onset:
    """When a group's rate rose: the sub-window (bucket) where it began, and its rate per bucket."""

    at: int  # epoch seconds: start of the first bucket of the rise
    bucket_seconds: int
    counts: tuple[int, ...]  # the group's events per bucket over the window, oldest first
    before_rate: float  # events per bucket before the onset
    after_rate: float  # events per bucket from the onset on


@dataclass(frozen=True, slots=True)
class SelectedGroup:
    """A contributor that needs attention, and why (deterministic reasons only)."""

    rule: str
    window: Window
    keys: dict[str, str]
    value: float
    share: float  # of total_events in the window, 0..1
    reasons: tuple[str, ...]
    samples: tuple[str, ...] = ()  # sample lines, chosen by a stable rule (unredacted! screened once finalise ran)
    trend: tuple[float, ...] = ()  # values of the same key in the previous windows, oldest first
    #: a computed security fact: sample lines whose text addresses an AI model (withheld from the model)
    screened_lines: int = 0
    withheld_lines: int = 0
    withheld_reasons: tuple[str, ...] = ()
    #: what distinguishes the group and when it began (computed; empty when the rule collects no dimensions)
    contrast: tuple[ContrastFact, ...] = ()
    onset: Onset | None = None
    change: str = ""  # against earlier windows: "new pattern" | "known pattern" | "count change x4.0" ...
    #: its events per sub-window of this window, oldest first (exact counts; empty when not known exactly)
    buckets: tuple[int, ...] = ()
    bucket_seconds: int = 0


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One ranked cause the model proposed, and the computed facts (digest line ids) it rests on."""

    cause: str
    facts: tuple[str, ...]
    confidence: Literal["low", "medium", "high"]


@dataclass(frozen=True, slots=True)
class Analysis:
    """The model's answer after it validated (schemas/analysis.schema.json and the checks in code).
    `likely_cause` and `confidence` are the top hypothesis's; `evidence` is the text of the digest lines
    it cites, as Sieve computed them (never model text)."""

    likely_cause: str
    evidence: tuple[str, ...]
    next_checks: tuple[str, ...]
    confidence: Literal["low", "medium", "high"]
    hypotheses: tuple[Hypothesis, ...] = ()
    dropped: tuple[str, ...] = ()  # why hypotheses or next checks of the answer were not kept (for the audit)


@dataclass(frozen=True, slots=True)
class AnalysisOutcome:
    """What happened at the AI boundary for one window's digest."""

    status: Literal["analysed", "budget_exhausted", "invalid_output", "model_error", "disabled", "nothing_selected"]
    analysis: Analysis | None = None
    reason: str = ""
    model_id: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    estimated_cost_usd: float = 0.0
    digest_hash: str = ""


@dataclass(frozen=True, slots=True)
class WindowReport:
    """Everything the notifier needs for one Slack message."""

    rule: str
    window: Window
    topn: TopNReport
    selected: tuple[SelectedGroup, ...]
    outcome: AnalysisOutcome
    extra: dict[str, str] = field(default_factory=dict)


# --- values that cross a port (see processors/ports.py) -----------------------------------------


@dataclass(frozen=True, slots=True)
class ModelReply:
    """One chat model reply, whatever answered it (Bedrock, llama.cpp, ml-commons)."""

    text: str
    model_id: str
    tokens_in: int
    tokens_out: int
    latency_ms: int


@dataclass(frozen=True, slots=True)
class Partial:
    """One shard's partial aggregate of one (rule, window), covering sequence numbers first..last."""

    rule: str
    window_start: int
    shard: str
    first_seq: str
    last_seq: str
    blob: bytes  # WindowAggregate.to_bytes()
    samples: list  # Samples.to_json()
    events: int
    flushed_at: int


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """How far in event time a shard has flushed, and when (wall clock) it last moved. A shard the finaliser
    has seen listed on the stream but that has flushed nothing yet has max_event_ms None and updated_at
    the time it was first seen (core/watermark.py)."""

    max_event_ms: int | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A finalised window as the state store keeps it: the top-N and the whole stored document."""

    rule: str
    window_start: int
    topn: TopNReport
    document: dict


@dataclass(frozen=True, slots=True)
class LastSelected:
    """When a contributor key was last selected (epoch seconds) and its value then."""

    at: int
    value: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """Tokens reserved in the budget ledger for one model call."""

    day: str
    window_id: str
    tokens: int


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What was sent to a model and what came back (redacted text only), one per call attempt."""

    audit_id: str
    created_at: float
    rule: str
    window_start: int
    window_end: int
    attempt: int
    status: str  # calling | analysed | invalid_output | model_error | budget_exhausted
    reason: str
    model_id: str
    prompt_system: str
    prompt_user: str
    prompt_sha256: str
    digest_hash: str
    selected_keys: tuple[str, ...]
    redaction_counts: dict[str, int]
    estimated_tokens: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    estimated_cost_usd: float = 0.0
    reply_text: str = ""
    expires_at: int = 0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One retrieved FAQ entry. `similarity` is the cosine of question vs entry embedding; `fused` the RRF score."""

    id: str
    question: str
    answer: str
    source_url: str
    lang: str
    role: str
    similarity: float
    fused: float = 0.0
    knn_rank: int | None = None
    bm25_rank: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a notifier did with one message: `posted` now, or `duplicate` (an earlier send posted it)."""

    idempotency_key: str
    status: Literal["posted", "duplicate"]
    http_status: int
    attempts: int


# --- the FAQ crawler's ports (processors/ports.py: Fetcher, FaqStore) -------------------------------

@dataclass(frozen=True, slots=True)
class HeldEntry:
    """What the table holds for one item of a source."""

    id: str
    page_url: str
    content_hash: str


@dataclass(frozen=True, slots=True)
class FetchLimits:
    timeout_seconds: float
    max_bytes: int
    max_redirects: int
    user_agent: str = "SieveFaqCrawler/0.1"


@dataclass(frozen=True, slots=True)
class Fetched:
    """One GET, after redirects. `reason` set: no usable answer (a SKIP_REASONS code); `status` None:
    no HTTP answer at all."""

    url: str
    final_url: str
    status: int | None
    content_type: str = ""
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # lowercase names
    reason: str | None = None
    detail: str = ""
    redirects: tuple[str, ...] = ()
