"""Plain data passed between the pipeline stages. No I/O, no vendor types.

These are the contracts between stages: the top-N engine produces `TopNReport`, selection turns it
into `SelectedGroup`s, the AI boundary turns those into a `Digest` and an `AnalysisOutcome`, and the
notifier renders a `WindowReport`. Everything is frozen so a stage can never edit what an earlier
stage computed.
"""

from __future__ import annotations

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
class SelectedGroup:
    """A contributor that needs attention, and why (deterministic reasons only)."""

    rule: str
    window: Window
    keys: dict[str, str]
    value: float
    share: float  # of total_events in the window, 0..1
    reasons: tuple[str, ...]
    samples: tuple[str, ...] = ()  # raw sample lines, chosen by a stable rule (unredacted!)
    trend: tuple[float, ...] = ()  # values of the same key in the previous windows, oldest first


@dataclass(frozen=True, slots=True)
class Analysis:
    """The model's answer after it validated against schemas/analysis.schema.json."""

    likely_cause: str
    evidence: tuple[str, ...]
    next_checks: tuple[str, ...]
    confidence: Literal["low", "medium", "high"]


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
