"""Selection: which contributors of a window's top-N deserve attention. Deterministic, no I/O.

A contributor is selected when it passes every configured gate:

    min_count            value >= min_count (0 disables)
    min_share            value / total_events >= min_share (0 disables). The denominator is the
                         report's `total_events`, or `sample_count` when the top-N engine did not
                         record it, so a share is never divided by zero
    status_classes       the rule key named `status_key` is in one of the classes ("5xx", "4xx", or
                         an exact code like "503")
    only_new             it is absent from the previous `new_within_windows` windows' top-N (being
                         new is always reported as a reason when `new_within_windows` > 0)
    cooldown_seconds     it was not selected within the cooldown, unless its value grew by
                         `cooldown_growth_factor` since then ("now" is the window's end, event time)

then the survivors are ranked (value descending, then key values ascending) and the first
`max_groups` are kept. Everything that was not selected is returned too, each with the reasons,
for the Slack "computed" section and the audit. History is data: previous `TopNReport`s of the
same rule and the last selection time and value per contributor key.

Note that "absent" means absent from what the earlier windows *kept* (their top-N), not from
their logs: a contributor ranked just below the top-N in every earlier window looks new.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from processors.core.types import LastSelected, SelectedGroup, TopNReport
from processors.errors import ConfigError

Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SelectionConfig:
    min_count: float = 10
    min_share: float = 0.0
    status_key: str | None = None
    status_classes: tuple[str, ...] = ()
    new_within_windows: int = 0
    only_new: bool = False
    cooldown_seconds: int = 0
    cooldown_growth_factor: float = 2.0
    max_groups: int = 3

    def __post_init__(self) -> None:
        problems = []
        if self.min_count < 0:
            problems.append(f"selection.min_count: {self.min_count} is negative")
        if not 0 <= self.min_share <= 1:
            problems.append(f"selection.min_share: {self.min_share} is not a fraction between 0 and 1 (5% is 0.05)")
        if self.max_groups < 1:
            problems.append(f"selection.max_groups: {self.max_groups} must be at least 1")
        if self.new_within_windows < 0 or self.cooldown_seconds < 0:
            problems.append("selection.new_within_windows and cooldown_seconds must not be negative")
        if self.only_new and self.new_within_windows == 0:
            problems.append("selection.only_new needs new_within_windows >= 1 (how many earlier windows to look at)")
        if self.cooldown_growth_factor < 1:
            problems.append(f"selection.cooldown_growth_factor: {self.cooldown_growth_factor} must be >= 1")
        for c in self.status_classes:
            if not _valid_class(c):
                problems.append(f"selection.status_classes: {c!r} is neither a class like '5xx' nor a 3-digit code")
        if self.status_classes and not self.status_key:
            problems.append("selection.status_classes needs status_key: the rule key alias that holds the HTTP status")
        if problems:
            raise ConfigError("selection", problems)


@dataclass(frozen=True, slots=True)
class SelectionHistory:
    previous: tuple[TopNReport, ...] = ()
    last_selected: Mapping[Key, LastSelected] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NotSelected:
    keys: dict[str, str]
    value: float
    share: float
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Selection:
    selected: tuple[SelectedGroup, ...]
    not_selected: tuple[NotSelected, ...]

    def selected_keys(self) -> list[Key]:
        return [tuple(g.keys.values()) for g in self.selected]


def _valid_class(c: str) -> bool:
    return (len(c) == 3 and c[0] in "12345" and c[1:].lower() == "xx") or (len(c) == 3 and c.isdigit())


def _status_matches(value: str, classes: Sequence[str]) -> bool:
    value = value.strip()
    for c in classes:
        if c[1:].lower() == "xx":
            if len(value) == 3 and value.isdigit() and value[0] == c[0]:
                return True
        elif value == c:
            return True
    return False


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def _pct(f: float) -> str:
    return f"{f * 100:.1f}%"


def select_groups(
    report: TopNReport,
    config: SelectionConfig,
    history: SelectionHistory = SelectionHistory(),
    *,
    samples: Mapping[Key, Sequence[str]] | None = None,
    now: int | None = None,
) -> Selection:
    """Select from `report`. `samples` maps a contributor key to its raw sample lines (the digest
    chooses among them); `now` defaults to the window's end."""
    now = report.window.end if now is None else now
    names = report.key_names
    if config.status_classes and config.status_key not in names:
        raise ConfigError(
            f"selection for rule {report.rule}",
            [f"status_key {config.status_key!r} is not one of the rule's keys {list(names)}; set status_key to one of them"],
        )
    previous = sorted(
        (r for r in history.previous if r.rule == report.rule and r.window.end <= report.window.start),
        key=lambda r: r.window.start,
    )
    prev_values = [{c.keys: c.value for c in r.contributors} for r in previous]
    recent = prev_values[-config.new_within_windows :] if config.new_within_windows else []
    denominator = report.total_events or report.sample_count

    candidates: list[SelectedGroup] = []
    rejected: list[NotSelected] = []
    for c in report.contributors:
        keys = dict(zip(names, c.keys))
        share = c.value / denominator if denominator else 0.0
        ok: list[str] = []
        bad: list[str] = []
        if config.min_count:
            (ok if c.value >= config.min_count else bad).append(
                f"count {_num(c.value)} {'>=' if c.value >= config.min_count else '<'} min_count {_num(config.min_count)}"
            )
        if config.min_share:
            (ok if share >= config.min_share else bad).append(
                f"share {_pct(share)} {'>=' if share >= config.min_share else '<'} min_share {_pct(config.min_share)}"
            )
        if config.status_classes:
            status = keys[config.status_key]  # type: ignore[index]
            if _status_matches(status, config.status_classes):
                ok.append(f"{config.status_key} {status} in {'/'.join(config.status_classes)}")
            else:
                bad.append(f"{config.status_key} {status} not in {'/'.join(config.status_classes)}")
        if config.new_within_windows:
            seen = [i for i, w in enumerate(recent) if c.keys in w]
            if not seen:
                ok.append(f"new: absent from previous {len(recent)} window(s)")
            elif config.only_new:
                bad.append(f"known: present in {len(seen)} of previous {len(recent)} window(s)")
            else:
                ok.append(f"known: present in {len(seen)} of previous {len(recent)} window(s)")
        if report.approximate:
            ok.append(f"approximate count (error bound {_num(report.error_bound)})")
        if not bad and config.cooldown_seconds:
            last = history.last_selected.get(c.keys)
            # a selection stored at this very window's end is this window's own: the finaliser remembered it and
            # was stopped before it stored the report, and runs the window again; that is not an earlier selection
            if last is not None and last.at != now and now - last.at < config.cooldown_seconds:
                grown = last.value > 0 and c.value >= last.value * config.cooldown_growth_factor
                if grown:
                    ok.append(
                        f"grew x{c.value / last.value:.1f} since selected {now - last.at}s ago (>= x{config.cooldown_growth_factor:g})"
                    )
                else:
                    bad.append(
                        f"cooldown: selected {now - last.at}s ago (< {config.cooldown_seconds}s) at {_num(last.value)}, "
                        f"not grown x{config.cooldown_growth_factor:g}"
                    )
        if bad:
            rejected.append(NotSelected(keys, c.value, share, tuple(bad)))
            continue
        candidates.append(
            SelectedGroup(
                rule=report.rule,
                window=report.window,
                keys=keys,
                value=c.value,
                share=share,
                reasons=tuple(ok) or ("no thresholds configured",),
                samples=tuple((samples or {}).get(c.keys, ())),
                trend=tuple(float(w.get(c.keys, 0.0)) for w in prev_values),
            )
        )

    ranked = sorted(candidates, key=lambda g: (-g.value, tuple(g.keys.values())))
    kept = ranked[: config.max_groups]
    for rank, g in enumerate(ranked[config.max_groups :], start=config.max_groups + 1):
        rejected.append(NotSelected(g.keys, g.value, g.share, (f"rank {rank} > max_groups {config.max_groups}",)))
    rejected.sort(key=lambda n: (-n.value, tuple(n.keys.values())))
    return Selection(tuple(kept), tuple(rejected))


def remember(selection: Selection, last: Mapping[Key, LastSelected], at: int) -> dict[Key, LastSelected]:
    """The next `last_selected` map after a selection (what the finaliser stores)."""
    out = dict(last)
    for g in selection.selected:
        out[tuple(g.keys.values())] = LastSelected(at, g.value)
    return out
