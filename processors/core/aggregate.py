"""Per (rule, shard, window) partial aggregates, their bounded serialisation, and the exact merge.

Flow: each shard's processor feeds matched events into one `WindowAggregate` per (rule,
event-time window) - `Accumulator` does the bookkeeping - and stores `to_bytes()`; the finaliser
loads every shard's partial for a window with `from_bytes()` and calls `merge(partials, top)` to
get the `TopNReport`.

Exactness. A `WindowAggregate` counts exactly while it holds at most `capacity` distinct keys.
Beyond that it becomes a Space-Saving summary (Metwally et al.), weighted for `Sum`: a new key
evicts the entry with the smallest (value, key) - deterministic - and starts at `floor + value`,
where `floor` is the largest value ever evicted, an upper bound on the true value of any key not
held. Each entry remembers its own over-count (`error`, the floor when it was inserted). The
aggregate is then flagged `approximate`; `sample_count`, `sum`, `total_events` and the event-time
range stay exact. Serialisation also enforces a byte budget (`max_bytes`) by evicting the same
way, so a partial's size is bounded whatever keys arrive.

Merge. For each key held by any partial: value = sum over partials of (its value there, or that
partial's floor if it is approximate and lacks the key); error = the same sum of errors/floors.
So every reported value v satisfies `true <= v <= true + error_bound`, and no contributor left out
of every partial has a true value above `error_bound` (it is also at least the sum of the
approximate partials' floors); with only exact partials everything is exact and the bound is 0. Ranking is by value descending, ties broken by the key tuple ascending; integer values
are summed as ints and floats with math.fsum, so the result does not depend on partial order.

Explanation. A partial may carry an `ExplainPartial` (`explain`, see processors/core/explain.py):
bounded per-dimension counters of the window's traffic and of its heaviest keys, serialised inside
the same blob within its own byte budget (`ExplainConfig.max_state_bytes`), so the blob as a whole
stays within `max_bytes`. `merge` ignores it; `explain.explain_groups` merges it.
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import orjson

from processors.core.decode import LogEvent, Rejected
from processors.core.explain import FLUSH_EVENTS, Baseline, ExplainConfig, ExplainPartial, ExplainPlan, extractor, plans_for
from processors.core.parse import DEFAULT_JSON_FIELDS, PARSERS, JsonFields
from processors.core.rules import CompiledRule
from processors.core.samples import Samples
from processors.core.types import Contributor, TopNReport, Window

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_STATE_BYTES",
    "WindowAggregate",
    "merge",
    "window_of",
    "Accumulator",
]

#: Distinct keys counted exactly per (rule, shard, window). Measured: after 1M random distinct
#: client IPs (6% IPv6) a partial holds 10,000 keys in ~62 KB (5,000: 33 KB; 20,000: 118 KB), see
#: bench/results/topn.json. Longer keys (paths) take more; the byte budget below caps it anyway.
DEFAULT_CAPACITY = 10_000
#: Byte budget of one serialised partial. Below DynamoDB's 400 KB item limit with room for the
#: other attributes, and small enough that a few rules' partials fit Lambda's 1 MB tumbling-window
#: state even after base64 (x4/3).
DEFAULT_MAX_STATE_BYTES = 200_000
_FORMAT_VERSION = 1


def window_of(ts: float, period: int) -> Window:
    """The tumbling window [start, start + period) holding epoch second `ts`."""
    start = int(ts // period) * period
    return Window(start, start + period)


def _storable(v):
    """A value the partial's JSON can hold: integers past 64 bits become the nearest float (they order the
    same; no real count or byte total comes near), everything else as it is."""
    return float(v) if type(v) is int and not -(2**63) <= v < 2**64 else v


class WindowAggregate:
    """One rule's contributions in one event-time window on one shard (see module docstring)."""

    __slots__ = ("rule", "window", "shard", "key_names", "aggregate_on", "capacity", "values", "errors", "floor",
                 "approximate", "inserted", "sample_count", "sum", "total_events", "min_ts", "max_ts",
                 "late_events", "explain", "_heap")  # fmt: skip

    def __init__(self, rule: str, window: Window, key_names: tuple[str, ...], aggregate_on: str = "Count",
                 shard: str = "", capacity: int = DEFAULT_CAPACITY):  # fmt: skip
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.rule = rule
        self.window = window
        self.shard = shard
        self.key_names = tuple(key_names)
        self.aggregate_on = aggregate_on
        self.capacity = capacity
        self.values: dict[tuple[str, ...], int | float] = {}
        self.errors: dict[tuple[str, ...], int | float] = {}  # only keys with a non-zero over-count
        self.floor: int | float = 0
        self.approximate = False
        self.inserted = 0  # new-key insertions: == distinct keys while exact, an upper bound after
        self.sample_count = 0
        self.sum: int | float = 0
        self.total_events = 0
        self.min_ts: float | None = None
        self.max_ts: float | None = None
        self.late_events = 0
        self.explain: ExplainPartial | None = None
        self._heap: list | None = None

    @classmethod
    def for_rule(cls, rule: CompiledRule, window: Window, shard: str = "", capacity: int = DEFAULT_CAPACITY) -> WindowAggregate:
        return cls(rule.name, window, rule.key_names, rule.aggregate_on, shard, capacity)

    # -- feeding -----------------------------------------------------------------------------

    def observe(self, ts: float) -> None:
        """Count one parsed event of the window (matched or not): total_events and time range."""
        self.total_events += 1
        if self.min_ts is None or ts < self.min_ts:
            self.min_ts = ts
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts

    def add(self, key: tuple[str, ...], value: int | float = 1) -> None:
        """Add one matched event's contribution (value 1 for Count)."""
        self.sample_count += 1
        self.sum += value
        values = self.values
        cur = values.get(key)
        if cur is not None:
            values[key] = cur + value
        elif len(values) < self.capacity:
            v = values[key] = value + self.floor
            if self.floor:
                self.errors[key] = self.floor
            self.inserted += 1
            if self._heap is not None:
                heapq.heappush(self._heap, (v, key))
        else:
            self._evict(1)
            v = values[key] = self.floor + value
            if self.floor:
                self.errors[key] = self.floor
            self.inserted += 1
            heapq.heappush(self._heap, (v, key))

    def _evict(self, n: int) -> None:
        """Drop the n entries with the smallest (value, key); raise the floor to their value."""
        values = self.values
        heap = self._heap
        if heap is None:
            heap = [(v, k) for k, v in values.items()]
            heapq.heapify(heap)
            self._heap = heap
        pop, push = heapq.heappop, heapq.heappush
        while n > 0 and values:
            v, k = pop(heap)
            cur = values.get(k)
            if cur is None:
                continue  # stale: key already evicted
            if cur != v:
                push(heap, (cur, k))  # stale: value grew since it was pushed
                continue
            del values[k]
            self.errors.pop(k, None)
            if v > self.floor:
                self.floor = v
            self.approximate = True
            n -= 1

    # -- reading -----------------------------------------------------------------------------

    def error_of(self, key: tuple[str, ...]) -> int | float:
        """Maximum over-count of `key`'s value here (the floor if the key is not held)."""
        if key in self.values:
            return self.errors.get(key, 0)
        return self.floor if self.approximate else 0

    def report(self, top: int = 10) -> TopNReport:
        """This partial alone as a report (the same as merge([self], top))."""
        return merge([self], top)

    # -- serialisation -----------------------------------------------------------------------

    def to_bytes(self, max_bytes: int = DEFAULT_MAX_STATE_BYTES) -> bytes:
        """Compact deterministic form (zlib of sorted orjson). If it would exceed `max_bytes`,
        entries are evicted first (smallest value first, the aggregate turns approximate), so
        afterwards `from_bytes(result)` equals this aggregate and `len(result) <= max_bytes`. An
        explanation is first fitted to its own budget (ExplainConfig.max_state_bytes)."""
        if self.explain is not None:
            self.explain.fit()
        blob = self._encode()
        while len(blob) > max_bytes:
            if not self.values:
                raise ValueError(f"an empty aggregate needs {len(blob)} bytes; max_bytes={max_bytes} is too small")
            keep = int(len(self.values) * max_bytes / len(blob) * 0.95)
            self._evict(max(1, len(self.values) - keep))
            blob = self._encode()
        return blob

    def _encode(self) -> bytes:
        entries = [[*k, v, self.errors.get(k, 0)] for k, v in sorted(self.values.items())]
        doc = {
            "v": _FORMAT_VERSION,
            "rule": self.rule,
            "window": [self.window.start, self.window.end],
            "shard": self.shard,
            "key_names": list(self.key_names),
            "aggregate_on": self.aggregate_on,
            "capacity": self.capacity,
            "approximate": self.approximate,
            "floor": self.floor,
            "inserted": self.inserted,
            "sample_count": self.sample_count,
            "sum": self.sum,
            "total_events": self.total_events,
            "min_ts": self.min_ts,
            "max_ts": self.max_ts,
            "late_events": self.late_events,
            "entries": entries,
        }
        if self.explain is not None:
            doc["explain"] = self.explain.to_doc()
        try:
            raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # an integer past 64 bits (a 20-digit byte count, or a Sum that grew past it)
            doc["sum"] = _storable(doc["sum"])
            doc["entries"] = [[*e[:-2], _storable(e[-2]), e[-1]] for e in entries]
            raw = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        return zlib.compress(raw, 6)

    @classmethod
    def from_bytes(cls, blob: bytes) -> WindowAggregate:
        """Inverse of to_bytes. Raises ValueError on anything that is not a partial we wrote."""
        try:
            doc = orjson.loads(zlib.decompress(blob))
            if doc.get("v") != _FORMAT_VERSION:
                raise ValueError(f"unsupported partial format version {doc.get('v')!r}")
            n = len(doc["key_names"])
            agg = cls(doc["rule"], Window(*doc["window"]), tuple(doc["key_names"]), doc["aggregate_on"], doc["shard"],
                      doc["capacity"])  # fmt: skip
            for e in doc["entries"]:
                k = tuple(e[:n])
                agg.values[k] = e[n]
                if e[n + 1]:
                    agg.errors[k] = e[n + 1]
            for f in ("approximate", "floor", "inserted", "sample_count", "sum", "total_events", "min_ts", "max_ts",
                      "late_events"):  # fmt: skip
                setattr(agg, f, doc[f])
            ex = doc.get("explain")
            if ex is not None:
                agg.explain = ExplainPartial.from_doc(ex, agg.window.start, agg.window.end - agg.window.start)
        except (zlib.error, orjson.JSONDecodeError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"not a serialised WindowAggregate: {type(exc).__name__}: {exc}") from exc
        return agg

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowAggregate):
            return NotImplemented
        return self._encode() == other._encode()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"WindowAggregate({self.rule!r}, {self.window.key}, shard={self.shard!r}, keys={len(self.values)}, "
                f"samples={self.sample_count}, approximate={self.approximate})")  # fmt: skip


def _exact_sum(xs: list) -> int | float:
    if all(type(x) is int for x in xs):
        return sum(xs)
    total = math.fsum(xs)
    return int(total) if total.is_integer() and abs(total) < 2**53 else total


def merge(partials: Iterable[WindowAggregate], top: int = 10) -> TopNReport:
    """Merge every shard's partial for one (rule, window) into the top-N report.

    Partials must agree on rule, window, key names and aggregate. Several partials from the same
    shard are fine (they are added). Raises ValueError on an empty or inconsistent input."""
    parts = list(partials)
    if not parts:
        raise ValueError("merge needs at least one partial")
    if top < 1:
        raise ValueError("top must be >= 1")
    first = parts[0]
    for p in parts[1:]:
        if (p.rule, p.window, p.key_names, p.aggregate_on) != (first.rule, first.window, first.key_names, first.aggregate_on):
            raise ValueError(f"cannot merge partials of different rules/windows: {first!r} vs {p!r}")
    approx_parts = [p for p in parts if p.approximate]
    candidates: dict[tuple[str, ...], list] = {}
    for p in parts:
        for k, v in p.values.items():
            lst = candidates.get(k)
            if lst is None:
                candidates[k] = [v]
            else:
                lst.append(v)
    scored: list[tuple[int | float, tuple[str, ...], int | float]] = []
    for k, vals in candidates.items():
        errs = [p.errors.get(k, 0) for p in parts if k in p.values]
        if approx_parts:
            missing = [p.floor for p in approx_parts if k not in p.values]
            vals = vals + missing
            errs = errs + missing
        scored.append((_exact_sum(vals), k, _exact_sum(errs) if errs else 0))
    scored.sort(key=lambda t: (-t[0], t[1]))
    chosen = scored[:top]
    unique = len(candidates)
    if approx_parts:
        unique += sum(max(0, p.inserted - len(p.values)) for p in approx_parts)
    return TopNReport(
        rule=first.rule,
        window=first.window,
        key_names=first.key_names,
        aggregate_on=first.aggregate_on,  # type: ignore[arg-type]
        contributors=tuple(Contributor(k, v) for v, k, _ in chosen),
        unique_contributors=unique,
        max_contributor_value=scored[0][0] if scored else 0,
        sample_count=sum(p.sample_count for p in parts),
        sum=_exact_sum([p.sum for p in parts]),
        total_events=sum(p.total_events for p in parts),
        approximate=bool(approx_parts),
        error_bound=max(max((e for _, _, e in scored), default=0), _exact_sum([p.floor for p in approx_parts]))
        if approx_parts else 0,
        shards=tuple(sorted({p.shard for p in parts})),
    )


#: samples are kept for at most this many keys per (rule, window): the heaviest ones
SAMPLE_KEYS = 50


@dataclass
class AccumulatorStats:
    """What happened to every event fed to an Accumulator (bounded labels)."""

    events: int = 0
    parsed: int = 0
    rejected: Counter = None  # type: ignore[assignment]

    def __post_init__(self):
        if self.rejected is None:
            self.rejected = Counter()


class Accumulator:
    """One shard's pipeline state: log lines -> parse -> every rule -> per (rule, window) partials,
    with a few sample lines per contributor key.

    `add_line(text, log_group=None, timestamp_ms=None)` / `add_event(LogEvent)` feed one event.
    Each rule is read by the parser its LogFormat names (`parse.PARSERS`; a line is parsed once per
    format; JSON rules also read ALB access-log entries). The event time is the line's own time, else
    the transport's `timestamp_ms`; an event with neither is rejected (`missing_timestamp`).
    Rejections are counted per reason in `stats.rejected`.

    `partials` maps (rule name, Window) -> WindowAggregate; `samples` maps (rule name, window start)
    -> Samples (bottom-k lines per key, `samples_k` each, pruned to the `sample_keys` heaviest keys;
    0 keeps none); `reports(top)` merges each partial alone; `restore(partial, samples)` puts back a
    stored partial.

    `explain` (an enabled ExplainConfig; None: off) gives each partial of the rules it applies to an
    `ExplainPartial`: the event's dimension values are extracted once per format (only when a rule of
    that format pays), appended to the baseline shared by the rules of one format and log-group scope,
    and, for matched events, to the key's pending list; counting happens in batches."""

    def __init__(self, rules: Iterable[CompiledRule], *, period: int = 60, shard: str = "", capacity: int = DEFAULT_CAPACITY,
                 json_fields: JsonFields = DEFAULT_JSON_FIELDS, samples_k: int = 0, sample_keys: int = SAMPLE_KEYS,
                 explain: ExplainConfig | None = None):  # fmt: skip
        self.rules = list(rules)
        if not self.rules:
            raise ValueError("Accumulator needs at least one rule")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique, got {names}")
        if period <= 0:
            raise ValueError("period must be > 0")
        self.period = period
        self.shard = shard
        self.capacity = capacity
        self.json_fields = json_fields
        self.samples_k = samples_k
        self.sample_keys = sample_keys
        self.partials: dict[tuple[str, Window], WindowAggregate] = {}
        self.samples: dict[tuple[str, int], Samples] = {}
        self.stats = AccumulatorStats()
        self._formats = sorted({r.log_format for r in self.rules})
        unknown = [f for f in self._formats if f not in PARSERS]
        if unknown:
            raise ValueError(f"no parser for LogFormat {unknown}; known: {sorted(PARSERS)}")
        self.explain = explain if explain is not None and explain.enabled else None
        if self.explain is not None:
            unknown = [n for n in self.explain.rules if n not in names]
            if unknown:
                raise ValueError(f"explain.rules names no such rule: {unknown}; rules: {names}")
            if period % self.explain.bucket_seconds:
                raise ValueError(f"explain.bucket_seconds {self.explain.bucket_seconds} must divide the period {period}")
        self._plans: dict[str, ExplainPlan | None] = plans_for(self.rules, self.explain, json_fields)
        self._baselines: dict[tuple, Baseline] = {}  # (format, log groups, window start) -> shared baseline
        self._unsettled: list[Baseline] = []  # baselines of the current window(s), raw counts not yet settled
        self._parsers = []
        for f in self._formats:
            rules_f = [r for r in self.rules if r.log_format == f]
            plan = next((self._plans[r.name] for r in rules_f if self._plans[r.name] is not None), None)
            extract, with_line = extractor(f, plan.row, json_fields, self.explain) if plan is not None else (None, False)
            self._parsers.append((PARSERS[f], rules_f, extract, with_line))
        self._by_name = {r.name: r for r in self.rules}
        # hot-path cache: (rule name, window start) -> aggregate
        self._cache: dict[tuple[str, int], WindowAggregate] = {}
        self._fast = None  # the chunked path of add_chunk (processors/core/fastpath.py), made on first use

    def restore(self, partial: WindowAggregate, samples: Samples | None = None) -> None:
        """Put back a partial loaded with from_bytes (e.g. from Lambda's tumbling-window state), and its
        samples, so later events of the same (rule, window) add to them."""
        if partial.rule not in self._by_name:
            raise ValueError(f"no rule named {partial.rule!r} in this accumulator")
        self._adopt_explain(partial)
        self.partials[(partial.rule, partial.window)] = partial
        if partial.window.end - partial.window.start == self.period:
            self._cache[(partial.rule, partial.window.start)] = partial
        if samples is not None:
            self.samples[(partial.rule, partial.window.start)] = samples

    def _adopt_explain(self, partial: WindowAggregate) -> None:
        """A restored explanation continues only under the same plan (else it is dropped: that window is
        then not explained); rules of one scope share one baseline again when their copies agree."""
        ex = partial.explain
        if ex is None:
            return
        plan = self._plans.get(partial.rule)
        if plan is None or ex.plan != plan or partial.window.end - partial.window.start != self.period:
            partial.explain = None
            return
        rule = self._by_name[partial.rule]
        scope = (rule.log_format, rule.log_groups, partial.window.start)
        ex.rank = self.rules.index(rule)
        shared = self._baselines.get(scope)
        if shared is None:
            self._baselines[scope] = ex.baseline
        elif shared is not ex.baseline and shared.same_counts(ex.baseline):
            ex.baseline.members.remove(ex)
            shared.join(ex)
        ex.baseline.join(ex)  # (re)elects the member that feeds the baseline

    def add_event(self, event: LogEvent) -> None:
        self.add_line(event.message, log_group=event.log_group, timestamp_ms=event.timestamp_ms)

    def add_chunk(self, data: bytes) -> int:
        """Feed every line of `data`: complete lines of raw text (UTF-8, split on `\\n`, a final `\\n`
        ends the last line, trailing `\\r` removed; invalid bytes kept as surrogate escapes), as
        `sieve topn` reads a file. Blank lines are skipped and their number returned. The result is
        exactly that of `add_line` on each line in order (`fastpath.split_lines`); when the rules allow
        it (`fastpath.plan`), many lines are done per step."""
        fast = self._fast
        if fast is None:
            from processors.core.fastpath import FastPath, plan

            fast = self._fast = plan(self) or FastPath(self)
        return fast.feed(data)

    def add_line(self, line: str, *, log_group: str | None = None, timestamp_ms: int | None = None) -> None:
        stats = self.stats
        stats.events += 1
        used = False
        sampling = self.samples_k > 0
        for parser, rules, extract, with_line in self._parsers:
            if log_group is not None:
                rules = [r for r in rules if r.matches_log_group(log_group)]
                if not rules:
                    continue
            res = parser(line, self.json_fields)
            if type(res) is Rejected:
                stats.rejected[res.reason] += 1
                continue
            ts, rec = res
            if ts is None:
                if timestamp_ms is None:
                    stats.rejected["missing_timestamp"] += 1
                    continue
                ts = timestamp_ms / 1000
            used = True
            start = int(ts // self.period) * self.period
            cache = self._cache
            raw = None
            for r in rules:
                agg = cache.get((r.name, start))
                if agg is None:
                    agg = self._partial(r, ts)
                # inlined agg.observe(ts): this loop runs once per event and rule
                agg.total_events += 1
                hi = agg.max_ts
                if hi is None or ts > hi:
                    agg.max_ts = ts
                lo = agg.min_ts
                if lo is None or ts < lo:
                    agg.min_ts = ts
                ex = agg.explain
                if ex is not None and ex.leader:  # the first rule of a scope feeds the shared baseline
                    if raw is None:
                        raw = extract(rec, line) if with_line else extract(rec)
                    pending = ex.pending
                    pending.append(raw)
                    if len(pending) >= FLUSH_EVENTS:
                        ex.baseline.flush()
                hit = r.apply(rec)
                if hit is not None:
                    if ex is not None:
                        ks = ex.keys.get(hit[0])
                        if ks is None:
                            ks = ex.track(hit[0], agg)  # before agg.add: it asks whether the key is new
                        if ks is not None:
                            if raw is None:
                                raw = extract(rec, line) if with_line else extract(rec)
                            ks.vals.append(raw)
                            ks.times.append(ts)
                    agg.add(hit[0], hit[1])
                    if sampling:
                        self._sample(agg, hit[0], line)
        if used:
            stats.parsed += 1

    def _sample(self, agg: WindowAggregate, key: tuple[str, ...], line: str) -> None:
        s = self.samples.get((agg.rule, agg.window.start))
        if s is None:
            s = self.samples[(agg.rule, agg.window.start)] = Samples(self.samples_k)
        s.offer(key, line)
        if len(s.by_key) > 4 * self.sample_keys:
            s.keep_heaviest(agg.values, self.sample_keys)

    def samples_of(self, rule: str, window: Window) -> Samples | None:
        """The samples of one (rule, window), pruned to the heaviest `sample_keys` keys."""
        s = self.samples.get((rule, window.start))
        agg = self.partials.get((rule, window))
        if s is not None and agg is not None:
            s.keep_heaviest(agg.values, self.sample_keys)
        return s

    def _partial(self, rule: CompiledRule, ts: float) -> WindowAggregate:
        start = int(ts // self.period) * self.period
        agg = self._cache.get((rule.name, start))
        if agg is None:
            w = Window(start, start + self.period)
            agg = WindowAggregate.for_rule(rule, w, self.shard, self.capacity)
            plan = self._plans.get(rule.name)
            if plan is not None:
                scope = (rule.log_format, rule.log_groups, start)
                base = self._baselines.get(scope)
                if base is None:
                    # a new window: the raw counts of earlier windows' baselines are settled now, so an
                    # accumulator over many windows (a day of logs) holds only their bounded counters
                    for old in self._unsettled:
                        old.settle()
                    self._unsettled.clear()
                    base = self._baselines[scope] = Baseline(plan.dims, plan.baseline_values, plan.cols)
                    self._unsettled.append(base)
                agg.explain = ExplainPartial(plan, start, self.period, base, self.rules.index(rule))
            self.partials[(rule.name, w)] = agg
            self._cache[(rule.name, start)] = agg
        return agg

    def reports(self, top: int = 10) -> list[TopNReport]:
        """One report per (rule, window) this accumulator saw, ordered by window then rule."""
        keys = sorted(self.partials, key=lambda k: (k[1].start, k[0]))
        return [merge([self.partials[k]], top) for k in keys]
