"""What explains a selected group: contrast (which attribute values set it apart from the rest of the
window's traffic), onset (the sub-window where its rate rose) and change (against earlier windows).
Pure, bounded and mergeable, in the spirit of `aggregate.WindowAggregate`.

Ingest side (hot path, one `ExplainPartial` per (rule, window, shard), stored inside the rule's
`WindowAggregate` blob):

* **Dimensions** come from the already-parsed record (`extractor`): CLF/combined gives `method`,
  `status`, `user_agent`, `referer`, `client_network` (IPv4 /24, IPv6 /48), `path_template`, `protocol`;
  JSON lines and ALB entries also `target` (ALB `target`; JSON `target_field`), `host` (ALB
  `domain_name`), `response_time` (bucketed: <100ms, 100-500ms, 0.5-1s, 1-5s, >5s) and `bytes`
  (bucketed). A missing value is `-`. Derived values (network, template, buckets) are computed once
  per distinct raw value and batch, never per event.
* **Baseline**: per dimension, a counter over *all* parsed events of the window (matched or not),
  shared by the rules of one format and log-group scope, so one event is counted once however many
  rules read it. Events are appended to a pending list and counted in batches (`Baseline.flush`).
* **Keys**: for at most `keys` contributor keys (Space-Saving over matched events, deterministic
  eviction of the smallest (count, key); a newcomer that would be the smallest is not admitted), the
  key's own per-dimension counters (`values_per_key` values each) and its events per
  `bucket_seconds` bucket. Dimensions a rule fixes (its keys, and filters with `EqualTo` or a
  one-value `In`) are not counted for it (they cannot distinguish its groups), and a dimension no
  rule of the scope counts per key is not counted at all.
* **Counting** happens in batches, never per event in Python: the hot path appends the event's raw
  values (one `itemgetter` call for CLF) to a pending list; every `FLUSH_EVENTS` events each column
  is counted by raw value at C speed (`Counter.update`); raw values are turned into dimension values
  and added to the bounded counters when many have accumulated, when a new window starts, or before
  anything reads or serialises them (`settle`).

Every counter is a `Tally`: exact while it holds at most its capacity of values, then Space-Saving
(a batch's new value starts at `floor + count` where `floor` is the largest count ever evicted; each
value remembers its over-count). Bounds, with the "counted" convention (a lower bound plus an error):

* a held value's true count lies in [count - err, count]; a value not held in [0, floor];
* a key tracked with `n` counted events and error `err` had at most `err` events that are not in its
  counters or buckets (they happened before it was tracked). `err` is exact while the partial keeps
  the counts of the keys it does not track (`UNTRACKED_MAX`; not serialised), else an upper bound:
  for a Count rule the smaller of the aggregate's count and the tracker's floor, otherwise the
  floor (0 for a key new to an exact aggregate).

Finaliser side: `explain_groups(parts, keys, config)` merges any number of partials in any order
(sums of counts, errors and floors of approximate partials that lack a value), and for each key gives:

* `contrast`: per dimension the value with the largest |group_share - baseline_share| (group share
  among the key's counted events; baseline share among the window's *other* events, i.e. all parsed
  events minus the group's; a tie goes to the value over-represented in the group, then the smaller
  value), for a key with at least `min_events` counted events, kept when the difference is at least
  `min_difference` and more than twice its error (so the true difference cannot be 0); the best
  `max_facts` dimensions, ranked by difference, ties broken by (field, value). `error` bounds both
  shares' error, by interval arithmetic over every count's bounds (0: exact).
* `onset` (only when the key's bucket counts are exact and it has `min_events`): the first bucket
  i >= 1 with at least threshold = max(onset_factor x the mean of the buckets before i, 1) events,
  from which the buckets at or above the threshold form one unbroken run (a burst may end inside the
  window). None when the rate is steady, falls, or was already high when the window began.

`change_of(keys, value, previous, factor)`: "new pattern" (absent from every earlier window's stored
top-N), "known pattern" (present, count within a factor of the latest earlier one), or
"count change x4.0" (that ratio is >= factor or <= 1/factor); "" without earlier windows.
"""

from __future__ import annotations

import hashlib
import heapq
import ipaddress
import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from processors.core.parse import ALB_TYPES, CLF_INDEX, CLF_POSITIONS, DEFAULT_JSON_FIELDS, JsonFields, path_template
from processors.core.types import ContrastFact, Onset, TopNReport
from processors.errors import ConfigError

__all__ = [
    "DIMENSIONS",
    "FORMAT_DIMENSIONS",
    "ExplainConfig",
    "ExplainPlan",
    "plans_for",
    "Tally",
    "Baseline",
    "ExplainPartial",
    "Explanation",
    "explain_groups",
    "explain_selected",
    "extractor",
    "onset_of",
    "change_of",
    "client_network",
    "response_time_bucket",
    "bytes_bucket",
]

Key = tuple[str, ...]

#: every dimension name (the default `dimensions`, in this order)
DIMENSIONS = ("method", "status", "user_agent", "referer", "client_network", "path_template", "protocol",
              "target", "host", "response_time", "bytes")  # fmt: skip
#: which dimensions each LogFormat provides (JSON rules read JSON lines and ALB entries; ALB has no referer)
FORMAT_DIMENSIONS = {"CLF": DIMENSIONS[:7], "JSON": DIMENSIONS}

#: values longer than this are cut and suffixed with a hash of the whole value (bounded state)
MAX_VALUE_CHARS = 256
#: events per batch: pending events are counted when a baseline holds this many
FLUSH_EVENTS = 1024
#: distinct raw values a key's counter collects before they are turned into dimension values (settled)
KEY_RAW_MAX = 512
#: keys not tracked whose exact event counts are kept (beyond: the floor bounds what they missed)
UNTRACKED_MAX = 20_000
_CACHE_MAX = 100_000


@dataclass(frozen=True, slots=True)
class ExplainConfig:
    """pipelines.logs.explain: what is counted to explain selected groups, and how facts are chosen."""

    enabled: bool = True
    rules: tuple[str, ...] = ()  # rule names that pay for explanation; empty: every rule
    dimensions: tuple[str, ...] = DIMENSIONS  # each format uses those it has (FORMAT_DIMENSIONS)
    bucket_seconds: int = 10
    keys: int = 50
    values_per_key: int = 8
    baseline_values: int = 200
    max_facts: int = 3
    min_difference: float = 0.2
    min_events: int = 5
    onset_factor: float = 2.0
    change_factor: float = 2.0
    change_windows: int = 3
    max_state_bytes: int = 64_000
    user_agent_field: str = "user_agent"
    referer_field: str = "referer"
    protocol_field: str = "protocol"
    host_field: str = "host"
    target_field: str = "upstream"

    def __post_init__(self) -> None:
        p = []
        unknown = [d for d in self.dimensions if d not in DIMENSIONS]
        if unknown:
            p.append(f"explain.dimensions: unknown {', '.join(repr(d) for d in unknown)}; known: {', '.join(DIMENSIONS)}")
        if len(set(self.dimensions)) != len(self.dimensions):
            p.append("explain.dimensions: a dimension is listed twice")
        if len(set(self.rules)) != len(self.rules):
            p.append("explain.rules: a rule is listed twice")
        if not 1 <= self.bucket_seconds <= 3600:
            p.append(f"explain.bucket_seconds: {self.bucket_seconds} must be between 1 and 3600")
        for name, lo, hi in (("keys", 1, 1000), ("values_per_key", 1, 100), ("baseline_values", 1, 10_000),
                             ("max_facts", 1, 5), ("change_windows", 1, 50), ("min_events", 1, 1_000_000)):  # fmt: skip
            v = getattr(self, name)
            if not lo <= v <= hi:
                p.append(f"explain.{name}: {v} must be between {lo} and {hi}")
        if not 0 <= self.min_difference <= 1:
            p.append(f"explain.min_difference: {self.min_difference} is not a share difference between 0 and 1")
        if not self.onset_factor > 1:
            p.append(f"explain.onset_factor: {self.onset_factor} must be > 1")
        if not self.change_factor > 1:
            p.append(f"explain.change_factor: {self.change_factor} must be > 1")
        if not 4_000 <= self.max_state_bytes <= 150_000:
            p.append(f"explain.max_state_bytes: {self.max_state_bytes} must be between 4000 and 150000 "
                     "(a partial, explanation included, must stay within 200000 bytes)")
        if p:
            raise ConfigError("explain", p)

    def applies_to(self, rule_name: str) -> bool:
        return self.enabled and (not self.rules or rule_name in self.rules)


# ------------------------------------------------------------------------------------ values


def _as_text(v: Any) -> str:
    """A raw field value as bounded, JSON-safe text; None (absent) is `-`."""
    t = type(v)
    if t is str:
        s = v
    elif v is None:
        return "-"
    elif t is bool:
        return "true" if v else "false"
    elif t is int:
        s = str(v)
    elif t is float:
        s = str(int(v)) if v.is_integer() and abs(v) < 2**63 else repr(v)
    else:
        s = orjson.dumps(v, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()
    if not s.isascii():  # lone surrogates (files read with surrogateescape) cannot be serialised
        s = s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if len(s) > MAX_VALUE_CHARS:
        s = s[: MAX_VALUE_CHARS - 18] + "\u2026#" + hashlib.blake2b(s.encode(), digest_size=8).hexdigest()
    return s


def client_network(v: Any) -> str:
    """`203.0.113.7` -> `203.0.113.0/24`, `2001:db8:1:2::5` -> `2001:db8:1::/48` (IPv4-mapped IPv6 as
    IPv4); anything that is not an address (a host name, `-`) stays as logged."""
    s = _as_text(v)
    try:
        ip = ipaddress.ip_address(s[1:-1] if s[:1] == "[" and s[-1:] == "]" else s)
    except ValueError:
        return s
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.version == 4:
        return f"{ipaddress.IPv4Address(int(ip) & 0xFFFFFF00)}/24"
    return f"{ipaddress.IPv6Address(int(ip) >> 80 << 80)}/48"


def _number(v: Any) -> float | None:
    t = type(v)
    if t is int or t is float:
        f = float(v)
    elif t is str:
        try:
            f = float(v)
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) and f >= 0 else None


def response_time_bucket(ms: Any) -> str:
    """Milliseconds -> `<100ms`, `100-500ms`, `0.5-1s`, `1-5s`, `>5s` (`-` when absent or not a number)."""
    f = _number(ms)
    if f is None:
        return "-"
    if f < 100:
        return "<100ms"
    if f < 500:
        return "100-500ms"
    if f < 1000:
        return "0.5-1s"
    return "1-5s" if f < 5000 else ">5s"


def bytes_bucket(n: Any) -> str:
    """Bytes -> `0B`, `<1KB`, `1-10KB`, `10-100KB`, `100KB-1MB`, `>1MB` (`-` when absent)."""
    f = _number(n)
    if f is None:
        return "-"
    if f == 0:
        return "0B"
    if f < 1024:
        return "<1KB"
    if f < 10240:
        return "1-10KB"
    if f < 102400:
        return "10-100KB"
    return "100KB-1MB" if f < 1048576 else ">1MB"


def _template(v: Any) -> str:
    return path_template(v) if type(v) is str and v else _as_text(v)


_FINISH: dict[str, Callable[[Any], str]] = {
    "client_network": client_network,
    "path_template": _template,
    "response_time": response_time_bucket,
    "bytes": bytes_bucket,
}
#: raw value -> dimension value, per dimension (bounded: cleared when full)
_FINISH_CACHES: dict[str, dict] = {d: {} for d in DIMENSIONS}


def _finisher(dim: str) -> tuple[dict, Callable[[Any], str]]:
    """(cache, function): raw value as extracted -> the dimension's value text. Used once per distinct
    raw value per batch, through the cache."""
    return _FINISH_CACHES[dim], _FINISH.get(dim, _as_text)


# ------------------------------------------------------------------------------------ extraction

_CLF_DIM_FIELD = {"method": "method", "status": "status", "user_agent": "user_agent", "referer": "referer",
                  "client_network": "client", "path_template": "path", "protocol": "protocol"}  # fmt: skip
_ALB_PREFIXES = tuple(t + " " for t in ALB_TYPES)


def _json_sources(jf: JsonFields, cfg: ExplainConfig) -> dict[str, str]:
    return {"method": jf.method, "status": jf.status, "user_agent": cfg.user_agent_field, "referer": cfg.referer_field,
            "client_network": jf.client, "path_template": "path", "protocol": cfg.protocol_field,
            "target": cfg.target_field, "host": cfg.host_field, "response_time": jf.latency, "bytes": jf.bytes}  # fmt: skip


_ALB_SOURCES = {"method": "method", "status": "elb_status_code", "user_agent": "user_agent", "referer": "",
                "client_network": "client", "path_template": "path", "protocol": "protocol", "target": "target",
                "host": "domain_name", "response_time": None, "bytes": "sent_bytes"}  # fmt: skip


def _alb_response_ms(rec: dict) -> float | None:
    a, b, c = rec.get("request_processing_time"), rec.get("target_processing_time"), rec.get("response_processing_time")
    if a is None and b is None and c is None:
        return None
    return ((a or 0.0) + (b or 0.0) + (c or 0.0)) * 1000


def _dotted_getter(path: str) -> Callable[[dict], Any]:
    if not path:
        return lambda obj: None
    if "." not in path:
        return lambda obj: obj.get(path)
    parts = path.split(".")

    def get(obj):
        cur = obj
        for part in parts:
            if type(cur) is not dict:
                return None
            cur = cur.get(part)
        return cur

    return get


def _dict_extractor(sources: Sequence[str | Callable]) -> Callable[[dict], tuple]:
    """Values of top-level names by one C-level map; dotted names and computed values patched after."""
    names = tuple(s if type(s) is str and s and "." not in s else "\x00" for s in sources)
    patches = tuple((i, s if callable(s) else _dotted_getter(s)) for i, s in enumerate(sources)
                    if callable(s) or (s and "." in s))
    if not patches:
        return lambda obj: tuple(map(obj.get, names))

    def get(obj):
        vals = list(map(obj.get, names))
        for i, g in patches:
            vals[i] = g(obj)
        return tuple(vals)

    return get


def extractor(log_format: str, dims: Sequence[str], json_fields: JsonFields = DEFAULT_JSON_FIELDS,
              config: ExplainConfig | None = None) -> tuple[Callable, bool]:
    """(extract, needs_line): `extract(record)` (CLF) or `extract(record, line)` (JSON, which tells an ALB
    entry by its line) -> the raw values of `dims`, a plain tuple in that order; `Baseline` turns them
    into dimension values once per distinct value. For CLF it is an `itemgetter` (no Python call)."""
    if log_format == "CLF":
        idx = [CLF_INDEX[_CLF_DIM_FIELD[d]] for d in dims]
        if not idx:
            return (lambda rec: ()), False
        if len(idx) == 1:
            i = idx[0]
            return (lambda rec: (rec[i],)), False
        return itemgetter(*idx), False
    config = config or ExplainConfig()
    src = _json_sources(json_fields, config)
    from_json = _dict_extractor([src[d] for d in dims])
    from_alb = _dict_extractor([_alb_response_ms if d == "response_time" else _ALB_SOURCES[d] for d in dims])
    prefixes = _ALB_PREFIXES

    def extract(rec, line):
        return from_alb(rec) if line.startswith(prefixes) else from_json(rec)

    return extract, True


# ------------------------------------------------------------------------------------ per-rule plan

_JSON_NAME_DIM = {"method": "method", "status": "status", "elb_status_code": "status", "user_agent": "user_agent",
                  "referer": "referer", "client": "client_network", "path": "path_template",
                  "path_template": "path_template", "request_uri": "path_template", "url": "path_template",
                  "protocol": "protocol", "target": "target", "target_ip": "target", "domain_name": "host",
                  "host": "host", "sent_bytes": "bytes"}  # fmt: skip
_CLF_NAME_DIM = {"method": "method", "status": "status", "user_agent": "user_agent", "referer": "referer",
                 "client": "client_network", "path": "path_template", "path_template": "path_template",
                 "request_uri": "path_template", "request": "path_template", "protocol": "protocol"}  # fmt: skip


def _field_dim(ref: Any, log_format: str, aliases: Mapping[str, str], jf: JsonFields, cfg: ExplainConfig) -> str | None:
    """The dimension a rule's field reference reads, if any."""
    if not isinstance(ref, str):
        return None
    if log_format == "CLF":
        name = ref
        if ref in aliases:
            name = aliases[ref]
        if name.isdigit():
            name = CLF_POSITIONS.get(int(name), "")
        return _CLF_NAME_DIM.get(name)
    if not ref.startswith("$."):
        return None
    name = ref[2:]
    by_config = {jf.method: "method", jf.status: "status", cfg.user_agent_field: "user_agent",
                 cfg.referer_field: "referer", jf.client: "client_network", jf.path: "path_template",
                 cfg.protocol_field: "protocol", cfg.target_field: "target", cfg.host_field: "host",
                 jf.latency: "response_time", jf.bytes: "bytes"}  # fmt: skip
    return by_config.get(name) or _JSON_NAME_DIM.get(name)


@dataclass(frozen=True, slots=True)
class ExplainPlan:
    """What one rule counts. `row`: the dimensions extracted per event for its format (a row is a tuple
    in that order); `dims`: those its scope's baseline counts (every dimension some rule of the scope
    counts per key: a dimension no rule can use is not counted at all); `key_dims`: indexes into
    `dims` of the ones this rule counts per key (not those it fixes)."""

    log_format: str
    row: tuple[str, ...]
    dims: tuple[str, ...]
    key_dims: tuple[int, ...]
    bucket_seconds: int
    keys: int
    values_per_key: int
    baseline_values: int
    max_state_bytes: int
    count_rule: bool

    @property
    def cols(self) -> tuple[int, ...]:
        """Where each of `dims` is in a row."""
        return tuple(self.row.index(d) for d in self.dims)


def _useful_dims(rule, config: ExplainConfig, json_fields: JsonFields) -> tuple[str, ...]:
    """The configured dimensions of the rule's format that the rule does not decide: not its keys, and
    not a field any filter reads. A filter makes its field differ between the group and the rest of the
    traffic by construction (`status > 399` puts every error status inside the group and the 200s
    outside), so a contrast there restates the rule instead of telling what set the group apart."""
    definition = rule.definition or {}
    aliases = {str(a): str(p) for p, a in (definition.get("Fields") or {}).items()} if rule.log_format == "CLF" else {}
    fixed = {_field_dim(k, rule.log_format, aliases, json_fields, config) for k in rule.key_names}
    for f in (definition.get("Contribution") or {}).get("Filters") or []:
        if isinstance(f, dict) and f.get("Match") is not None:
            fixed.add(_field_dim(f.get("Match"), rule.log_format, aliases, json_fields, config))
    return tuple(d for d in config.dimensions if d in FORMAT_DIMENSIONS[rule.log_format] and d not in fixed)


def plans_for(rules: Sequence, config: ExplainConfig | None, json_fields: JsonFields = DEFAULT_JSON_FIELDS) -> dict[str, ExplainPlan | None]:
    """rule name -> its plan, or None when the rule does not pay for explanation (explain off, or not
    in `config.rules`). Rules of one format and the same log groups share a scope (and a baseline)."""
    useful = {r.name: _useful_dims(r, config, json_fields) for r in rules if config is not None and config.applies_to(r.name)}
    out: dict[str, ExplainPlan | None] = {}
    for r in rules:
        if r.name not in useful:
            out[r.name] = None
            continue
        same_format = [q for q in rules if q.name in useful and q.log_format == r.log_format]
        row = tuple(d for d in config.dimensions if any(d in useful[q.name] for q in same_format))  # type: ignore[union-attr]
        scope = [q for q in same_format if q.log_groups == r.log_groups]
        dims = tuple(d for d in row if any(d in useful[q.name] for q in scope))
        key_dims = tuple(i for i, d in enumerate(dims) if d in useful[r.name])
        out[r.name] = ExplainPlan(r.log_format, row, dims, key_dims, config.bucket_seconds, config.keys,  # type: ignore[union-attr]
                                  config.values_per_key, config.baseline_values, config.max_state_bytes,  # type: ignore[union-attr]
                                  r.aggregate_on == "Count")
    return out


# ------------------------------------------------------------------------------------ counters


class Tally:
    """Counts per value, exact up to `cap` values, then Space-Saving (see the module docstring).
    `counts[v]` includes the over-count `errors.get(v, 0)`. Events are first counted by their raw
    value in `raw` (C speed, `count`); `settle` turns each distinct raw value into its dimension value
    (`finish`: cache and function) and adds it, as one batch. Readers settle first."""

    __slots__ = ("cap", "counts", "errors", "floor", "approximate", "raw", "raw_max", "finish")

    def __init__(self, cap: int, finish: tuple[dict, Callable[[Any], str]] | None = None, raw_max: int = 4096):
        self.cap = cap
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.floor = 0
        self.approximate = False
        self.raw: Counter = Counter()
        self.raw_max = raw_max
        self.finish = finish if finish is not None else ({}, _as_text)

    def count(self, rows: list[tuple], col: int) -> None:
        """Count the raw values at `col` of `rows`."""
        raw = self.raw
        try:
            raw.update(map(itemgetter(col), rows))
        except TypeError:  # a JSON list or object: the values before it were counted; count the rest as text
            vals = [r[col] for r in rows]
            k = next(i for i, v in enumerate(vals) if type(v) in (list, dict))
            raw.update(_as_text(v) if type(v) in (list, dict) else v for v in vals[k:])
        if len(raw) > self.raw_max:
            self.settle()

    def settle(self) -> None:
        raw = self.raw
        if not raw:
            return
        counts, errors, floor = self.counts, self.errors, self.floor
        cache, fn = self.finish
        get = cache.get
        for r, c in raw.items():
            v = get(r)
            if v is None:
                v = fn(r)
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[r] = v
            cur = counts.get(v)
            if cur is None:
                counts[v] = floor + c
                if floor:
                    errors[v] = floor
            else:
                counts[v] = cur + c
        raw.clear()
        if len(counts) > self.cap:
            self.prune(self.cap)

    def prune(self, keep: int) -> None:
        """Evict down to `keep` values: the smallest counts first, among equal counts the earliest
        inserted (deterministic for a given input); the floor rises to the largest count evicted."""
        counts = self.counts
        n = len(counts) - keep
        if n <= 0:
            return
        cut = sorted(counts.values())[n - 1]  # the n-th smallest count
        ties = n - sum(1 for c in counts.values() if c < cut)  # how many of the values at `cut` go
        drop = []
        for v, c in counts.items():
            if c < cut:
                drop.append(v)
            elif c == cut and ties > 0:
                drop.append(v)
                ties -= 1
        errors = self.errors
        for v in drop:
            del counts[v]
            errors.pop(v, None)
        if cut > self.floor:
            self.floor = cut
        self.approximate = True

    def counted(self, v: str) -> tuple[int, int]:
        """(events counted for v, maximum events of v not counted)."""
        c = self.counts.get(v)
        if c is None:
            return 0, (self.floor if self.approximate else 0)
        e = self.errors.get(v, 0)
        return c - e, e

    def to_list(self, index: Mapping[str, int]) -> list:
        out = [self.floor, int(self.approximate)]
        errors = self.errors
        for v, c in sorted(self.counts.items()):
            out += (index[v], c, errors.get(v, 0))
        return out

    @classmethod
    def from_list(cls, data: list, strings: list[str], cap: int, finish=None, raw_max: int = 4096) -> Tally:
        t = cls(cap, finish, raw_max)
        t.floor, t.approximate = data[0], bool(data[1])
        for i in range(2, len(data), 3):
            v = strings[data[i]]
            t.counts[v] = data[i + 1]
            if data[i + 2]:
                t.errors[v] = data[i + 2]
        return t

    def __repr__(self) -> str:
        return f"Tally({len(self.counts)}/{self.cap}, floor={self.floor}, approximate={self.approximate})"


class Baseline:
    """Per-dimension counters over every parsed event of one (format, log-group scope, window) on one
    shard. `pending` holds raw value tuples not yet counted (the same list object for the baseline's
    life: members alias it); `members` are the ExplainPartials that share it (their per-key pending
    events are counted in the same flush); the one whose rule comes first appends each event."""

    __slots__ = ("dims", "cols", "finish", "tallies", "events", "pending", "members")

    def __init__(self, dims: Sequence[str], cap: int, cols: Sequence[int] | None = None):
        self.dims = tuple(dims)
        self.cols = tuple(range(len(self.dims))) if cols is None else tuple(cols)  # where each is in a row
        self.finish = tuple(_finisher(d) for d in self.dims)
        self.tallies = [Tally(cap, f) for f in self.finish]
        self.events = 0
        self.pending: list[tuple] = []
        self.members: list[ExplainPartial] = []

    def join(self, ex: ExplainPartial) -> None:
        """Share this baseline with `ex`; the member with the smallest `rank` (rule order) leads."""
        ex.baseline = self
        ex.pending = self.pending
        if ex not in self.members:
            self.members.append(ex)
        first = min(self.members, key=lambda m: m.rank)
        for m in self.members:
            m.leader = m is first

    def flush(self) -> None:
        """Count the pending events (and the members' keys' pending events)."""
        p = self.pending
        if p:
            self.events += len(p)
            for tally, col in zip(self.tallies, self.cols):
                tally.count(p, col)
            p.clear()
        for m in self.members:
            m.flush_keys()

    def settle(self) -> None:
        """flush, then settle every counter (baseline and members' keys): ready to read or serialise."""
        self.flush()
        for t in self.tallies:
            t.settle()
        for m in self.members:
            for ks in m.keys.values():
                if ks.tallies is None:
                    ks.tallies = m._new_tallies()
                for t in ks.tallies:
                    t.settle()

    def same_counts(self, other: Baseline) -> bool:
        return self.dims == other.dims and self.events == other.events and all(
            (a.counts, a.errors, a.floor, a.approximate) == (b.counts, b.errors, b.floor, b.approximate)
            for a, b in zip(self.tallies, other.tallies))


class KeyStats:
    """One tracked key: counted events `n` (+ `vals`/`times` pending), at most `err` events not counted,
    events per bucket, and per-dimension counters (the plan's key_dims)."""

    __slots__ = ("vals", "times", "n", "err", "buckets", "tallies")

    def __init__(self, err: int, nbuckets: int, tallies: list[Tally] | None = None):
        self.vals: list[tuple] = []
        self.times: list[float] = []
        self.n = 0
        self.err = err
        self.buckets = [0] * nbuckets
        self.tallies = tallies  # created at the first flush: most keys evicted early never need them

    def value(self) -> int:
        return self.n + len(self.times) + self.err


class ExplainPartial:
    """The explanation counters of one rule's (window, shard) partial (see the module docstring).
    Hot path: `Accumulator` appends to `baseline.pending` and, for matched events, to the key's
    `vals`/`times` (after `track`)."""

    __slots__ = ("plan", "start", "nbuckets", "baseline", "pending", "rank", "leader", "keys", "floor", "approximate",
                 "untracked", "_heap", "_least")  # fmt: skip

    def __init__(self, plan: ExplainPlan, window_start: int, period: int, baseline: Baseline | None = None,
                 rank: int = 0):  # fmt: skip
        if period % plan.bucket_seconds:
            raise ValueError(f"bucket_seconds {plan.bucket_seconds} must divide the window period {period}")
        self.plan = plan
        self.start = window_start
        self.nbuckets = period // plan.bucket_seconds
        self.rank = rank  # the rule's place in the accumulator: the first member of a baseline feeds it
        self.leader = True
        (baseline if baseline is not None else Baseline(plan.dims, plan.baseline_values, plan.cols)).join(self)
        self.keys: dict[Key, KeyStats] = {}
        self.floor = 0
        self.approximate = False
        self._heap: list | None = None
        self._least = 0  # a lower bound of the smallest tracked value (values only grow)
        # exact event counts of the keys not tracked (this partial saw all their events): a late key's
        # error is then exact. Not serialised: after a restore the floor bounds what they missed.
        self.untracked: dict[Key, int] | None = {}

    # -- feeding (hot path in Accumulator.add_line) --------------------------------------------

    def track(self, key: Key, agg) -> KeyStats | None:
        """Start tracking `key` (not tracked yet), before `agg.add` counts the event; None if it is not
        admitted. Space-Saving: the key enters with its error (an upper bound of its events so far:
        exact from `untracked` while that is kept; else for a Count rule the smaller of the aggregate's
        count and the floor; else 0 when it is new to an exact aggregate, or the floor) and value
        error + 1; when the tracker is full, the smallest entry is evicted and the floor rises to its
        value. When that smallest entry would be the newcomer itself (its value is at most the smallest
        tracked value), it is evicted at once: not tracked, the floor rises to its value. So a stream
        of one-off keys costs a comparison each, not an insertion and an eviction."""
        plan = self.plan
        untracked = self.untracked
        if untracked is not None:
            err = untracked.get(key, 0)  # exactly the events of this key seen so far
        elif plan.count_rule:
            # the aggregate's count is an upper bound of the events before this one (exact while it is
            # exact); so is the floor (every matched event was offered here): the smaller one holds
            before = agg.values.get(key)
            err = min(int(before) if before is not None else (int(agg.floor) if agg.approximate else 0), self.floor)
        elif not agg.approximate and key not in agg.values:
            err = 0  # the key's first event in this partial: nothing was missed
        else:
            err = self.floor
        if len(self.keys) >= plan.keys:
            v = err + 1
            if v <= self._least or v <= self._min_value():  # `_least` <= the smallest value: no heap work
                if v > self.floor:
                    self.floor = v
                self.approximate = True
                if untracked is not None:
                    untracked[key] = v
                    if len(untracked) > UNTRACKED_MAX:
                        self.untracked = None  # too many distinct keys: the floor bounds what they missed
                return None
            self._evict(len(self.keys) - plan.keys + 1)
        if untracked is not None:
            untracked.pop(key, None)
        ks = self.keys[key] = KeyStats(err, self.nbuckets)
        if err + 1 < self._least:
            self._least = err + 1
        if self._heap is not None:
            heapq.heappush(self._heap, (ks.value(), key))
        return ks

    def _min_value(self) -> int:
        """The smallest tracked value (the heap's top made current)."""
        heap = self._heap
        if heap is None:
            heap = self._heap = [(ks.value(), k) for k, ks in self.keys.items()]
            heapq.heapify(heap)
        keys = self.keys
        while heap:
            v, k = heap[0]
            ks = keys.get(k)
            if ks is None:
                heapq.heappop(heap)
                continue
            cur = ks.value()
            if cur == v:
                self._least = v
                return v
            heapq.heapreplace(heap, (cur, k))
        self._least = 0
        return 0

    def _evict(self, n: int) -> None:
        keys = self.keys
        heap = self._heap
        if heap is None:
            heap = self._heap = [(ks.value(), k) for k, ks in keys.items()]
            heapq.heapify(heap)
        while n > 0 and keys:
            v, k = heapq.heappop(heap)
            ks = keys.get(k)
            if ks is None:
                continue
            cur = ks.value()
            if cur != v:
                heapq.heappush(heap, (cur, k))
                continue
            del keys[k]
            if v > self.floor:
                self.floor = v
            if self.untracked is not None:
                self.untracked[k] = v
            self.approximate = True
            n -= 1

    def flush_keys(self) -> None:
        """Count the tracked keys' pending events (called by the baseline's flush)."""
        plan = self.plan
        cols = plan.cols
        kd = [cols[i] for i in plan.key_dims]
        bs, start = plan.bucket_seconds, self.start
        last = self.nbuckets - 1
        for ks in self.keys.values():
            times = ks.times
            if not times:
                continue
            for ts, c in Counter(times).items():
                b = int((ts - start) // bs)
                ks.buckets[b if 0 <= b <= last else (0 if b < 0 else last)] += c
            vals = ks.vals
            if ks.tallies is None:
                ks.tallies = self._new_tallies()
            for tally, col in zip(ks.tallies, kd):
                tally.count(vals, col)
            ks.n += len(times)
            ks.vals = []
            ks.times = []

    def _new_tallies(self) -> list[Tally]:
        finish = self.baseline.finish
        return [Tally(self.plan.values_per_key, finish[i], KEY_RAW_MAX) for i in self.plan.key_dims]

    def flush(self) -> None:
        self.baseline.flush()

    def settle(self) -> None:
        """Count everything pending: the counters are then ready to read."""
        self.baseline.settle()

    # -- serialisation ---------------------------------------------------------------------------

    def to_doc(self) -> dict:
        """Deterministic JSON-ready form (pending events counted first)."""
        self.settle()
        strings: set[str] = set()
        for t in self.baseline.tallies:
            strings.update(t.counts)
        for ks in self.keys.values():
            for t in ks.tallies:
                strings.update(t.counts)
        table = sorted(strings)
        index = {s: i for i, s in enumerate(table)}
        plan = self.plan
        return {
            "format": plan.log_format, "row": list(plan.row), "dims": list(plan.dims), "key_dims": list(plan.key_dims),
            "bucket_seconds": plan.bucket_seconds, "caps": [plan.keys, plan.values_per_key, plan.baseline_values],
            "max_bytes": plan.max_state_bytes, "count_rule": plan.count_rule,
            "events": self.baseline.events, "floor": self.floor, "approximate": self.approximate,
            "strings": table,
            "baseline": [t.to_list(index) for t in self.baseline.tallies],
            "keys": [[list(k), ks.n, ks.err, ks.buckets, [t.to_list(index) for t in ks.tallies]]
                     for k, ks in sorted(self.keys.items())],
        }

    @classmethod
    def from_doc(cls, doc: dict, window_start: int, period: int) -> ExplainPartial:
        keys_cap, values_cap, base_cap = doc["caps"]
        plan = ExplainPlan(doc["format"], tuple(doc["row"]), tuple(doc["dims"]), tuple(doc["key_dims"]),
                           doc["bucket_seconds"], keys_cap, values_cap, base_cap, doc["max_bytes"], doc["count_rule"])  # fmt: skip
        if not set(plan.dims) <= set(plan.row) or any(not 0 <= i < len(plan.dims) for i in plan.key_dims):
            raise ValueError("explain: inconsistent dimensions")
        strings = doc["strings"]
        base = Baseline(plan.dims, base_cap, plan.cols)
        base.events = doc["events"]
        base.tallies = [Tally.from_list(t, strings, base_cap, f) for t, f in zip(doc["baseline"], base.finish)]
        if len(base.tallies) != len(plan.dims):
            raise ValueError("explain: baseline counters do not match the dimensions")
        ex = cls(plan, window_start, period, base)
        ex.floor, ex.approximate = doc["floor"], doc["approximate"]
        ex.untracked = None if ex.approximate else {}  # counts of keys not tracked were not kept
        for k, n, err, buckets, tallies in doc["keys"]:
            ks = KeyStats(err, ex.nbuckets, [Tally.from_list(t, strings, values_cap, base.finish[i], KEY_RAW_MAX)
                                             for t, i in zip(tallies, plan.key_dims)])
            ks.n = n
            if len(buckets) != ex.nbuckets or len(ks.tallies) != len(plan.key_dims):
                raise ValueError("explain: key counters do not match the plan")
            ks.buckets = list(buckets)
            ex.keys[tuple(k)] = ks
        return ex

    def fit(self, max_bytes: int | None = None) -> bytes:
        """Evict (lightest keys first, then baseline values) until the compressed document fits the
        budget; returns that compressed document (its size is what this part adds to a partial)."""
        budget = self.plan.max_state_bytes if max_bytes is None else max_bytes
        while True:
            blob = zlib.compress(orjson.dumps(self.to_doc()), 6)
            if len(blob) <= budget:
                return blob
            base_cap = max((len(t.counts) for t in self.baseline.tallies), default=0)
            if len(self.keys) > 8:
                self._evict(len(self.keys) - max(8, int(len(self.keys) * 0.6)))
            elif base_cap > 16:
                for t in self.baseline.tallies:
                    t.prune(base_cap // 2)
            elif self.keys:
                self._evict(max(1, len(self.keys) // 2))
            elif base_cap > 1:
                for t in self.baseline.tallies:
                    t.prune(base_cap // 2)
            else:
                raise ValueError(f"explain state needs {len(blob)} bytes; max_state_bytes={budget} is too small")

    def __repr__(self) -> str:
        return (f"ExplainPartial(dims={len(self.plan.dims)}, keys={len(self.keys)}, events={self.baseline.events}, "
                f"approximate={self.approximate})")


# ------------------------------------------------------------------------------------ facts


@dataclass(frozen=True, slots=True)
class Explanation:
    """What the merged partials say about one key."""

    contrast: tuple[ContrastFact, ...]
    onset: Onset | None
    events: int  # the key's counted events (all shards)
    missed: int  # at most this many of its events are not in its counters (0: exact)
    buckets: tuple[int, ...] = ()  # its events per sub-window, oldest first (exact counts only, else empty)
    bucket_seconds: int = 0


class _Merged:
    """Counts of one dimension summed over partials: value -> [counted, error], and the error of a
    value no partial holds (the sum of the approximate partials' floors)."""

    __slots__ = ("counted", "error", "held_floor", "total_floor")

    def __init__(self) -> None:
        self.counted: dict[str, int] = {}
        self.error: dict[str, int] = {}
        self.held_floor: dict[str, int] = {}
        self.total_floor = 0

    def add(self, t: Tally) -> None:
        f = t.floor if t.approximate else 0
        self.total_floor += f
        counted, error, held = self.counted, self.error, self.held_floor
        errors = t.errors
        for v, c in t.counts.items():
            e = errors.get(v, 0)
            counted[v] = counted.get(v, 0) + c - e
            error[v] = error.get(v, 0) + e
            if f:
                held[v] = held.get(v, 0) + f

    def get(self, v: str) -> tuple[int, int]:
        if v in self.counted:
            return self.counted[v], self.error[v] + self.total_floor - self.held_floor.get(v, 0)
        return 0, self.total_floor


def _round_up(x: float) -> float:
    return math.ceil(x * 1e6) / 1e6 if x > 0 else 0.0


def _fact(field: str, v: str, g: tuple[int, int], b: tuple[int, int], n: int, missed: int, total: int) -> ContrastFact:
    """Shares and their error bound by interval arithmetic over the counted convention: the group's
    events with v lie in [c, c + e + missed], the group's events in [n, n + missed], the window's
    events with v in [bc, bc + be]; `total` is exact."""
    c, e = g
    bc, be = b
    other_total = total - n
    gs = c / n
    other = max(0, bc - c)
    bs = other / other_total if other_total > 0 else 0.0
    if e or missed or be:
        gs_lo = c / (n + missed)
        gs_hi = (min(c + e, n) + missed) / (n + missed)
        bs_lo = max(0, bc - c - e - missed) / other_total if other_total > 0 else 0.0
        least = other_total - missed
        bs_hi = min(1.0, (bc + be - c) / least) if least > 0 else 1.0
        err = max(gs - gs_lo, gs_hi - gs, bs - bs_lo, bs_hi - bs, 0.0)
    else:
        err = 0.0
    return ContrastFact(field, v, gs, bs, c, other, _round_up(err))


def onset_of(counts: Sequence[int], start: int, bucket_seconds: int, factor: float = 2.0) -> Onset | None:
    """The first bucket i >= 1 that has at least threshold = max(factor x mean(buckets before i), 1)
    events and from which the buckets at or above the threshold form one unbroken run (up to the last
    such bucket: a burst may end inside the window). None when there is none (steady, falling, or
    already high when the window began)."""
    counts = tuple(int(c) for c in counts)
    b = len(counts)
    for i in range(1, b):
        before = sum(counts[:i]) / i
        threshold = max(factor * before, 1)
        if counts[i] < threshold:
            continue
        above = [j for j in range(i, b) if counts[j] >= threshold]
        if above[-1] - i + 1 == len(above):
            return Onset(start + i * bucket_seconds, bucket_seconds, counts, before, sum(counts[i:]) / (b - i))
    return None


def _common_plan(parts: Sequence[ExplainPartial]) -> tuple[tuple[str, ...], tuple[str, ...], int] | None:
    """Dimensions every partial counted (baseline; per key), and the bucket size; None if they disagree on buckets."""
    first = parts[0].plan
    if any(p.plan.bucket_seconds != first.bucket_seconds or p.nbuckets != parts[0].nbuckets for p in parts):
        return None
    dims = tuple(d for d in first.dims if all(d in p.plan.dims for p in parts))
    key_dims = tuple(d for d in dims if all(p.plan.dims.index(d) in p.plan.key_dims for p in parts))
    return dims, key_dims, first.bucket_seconds


def explain_groups(parts: Sequence[ExplainPartial | None], keys: Iterable[Key], config: ExplainConfig) -> dict[Key, Explanation]:
    """Merge the explanation counters of every shard's partial of one (rule, window), in any order,
    and explain each of `keys`. A key no partial tracked gets no entry; when a partial carries no
    explanation (explain was off, or its settings changed mid-window) nothing is explained."""
    if not parts or any(p is None for p in parts) or not config.enabled:
        return {}
    for p in parts:
        p.settle()  # type: ignore[union-attr]
    plan = _common_plan(parts)  # type: ignore[arg-type]
    if plan is None:
        return {}
    dims, key_dims, bs = plan
    total = sum(p.baseline.events for p in parts)  # type: ignore[union-attr]
    baseline: dict[str, _Merged] = {}
    for d in dims:
        m = baseline[d] = _Merged()
        for p in parts:
            m.add(p.baseline.tallies[p.plan.dims.index(d)])  # type: ignore[union-attr]
    out: dict[Key, Explanation] = {}
    for key in keys:
        key = tuple(key)
        tracked = [(p, p.keys[key]) for p in parts if key in p.keys]  # type: ignore[union-attr]
        if not tracked:
            continue
        n = sum(ks.n for _, ks in tracked)
        missed = sum(ks.err for _, ks in tracked) + sum(p.floor for p in parts if p.approximate and key not in p.keys)  # type: ignore[union-attr]
        if n == 0:
            continue
        facts: list[ContrastFact] = []
        for d in key_dims if n >= config.min_events else ():  # a handful of events: every value looks distinctive
            group = _Merged()
            for p, ks in tracked:
                group.add(ks.tallies[p.plan.key_dims.index(p.plan.dims.index(d))])
            best = None
            for v in sorted(set(group.counted) | set(baseline[d].counted)):
                f = _fact(d, v, group.get(v), baseline[d].get(v), n, missed, total)
                score = abs(f.group_share - f.baseline_share)
                if score < config.min_difference or score <= 2 * f.error:  # the true difference may be 0
                    continue
                rank = (score, f.group_share > f.baseline_share)  # a tie: the value the group has more of
                if best is None or rank > best[0]:  # values are visited in order: then the smaller value
                    best = (rank, f)
            if best is not None:
                facts.append(best[1])
        facts.sort(key=lambda f: (-abs(f.group_share - f.baseline_share), f.field, f.value))
        buckets = [sum(ks.buckets[i] for _, ks in tracked) for i in range(parts[0].nbuckets)]  # type: ignore[union-attr]
        onset = (onset_of(buckets, parts[0].start, bs, config.onset_factor)  # type: ignore[union-attr]
                 if missed == 0 and n >= config.min_events else None)
        out[key] = Explanation(tuple(facts[: config.max_facts]), onset, n, missed,
                               tuple(buckets) if missed == 0 else (), bs if missed == 0 else 0)
    return out


def _ratio_text(r: float) -> str:
    return f"{r:.1f}" if r >= 1 else f"{r:.2g}"


def change_of(keys: Key, value: float, previous: Sequence[TopNReport], factor: float = 2.0) -> str:
    """Against the latest earlier window whose stored top-N holds `keys` (see the module docstring)."""
    if not previous:
        return ""
    keys = tuple(keys)
    for r in sorted(previous, key=lambda r: r.window.start, reverse=True):
        for c in r.contributors:
            if c.keys == keys:
                before = c.value
                if before <= 0:
                    return "known pattern" if value <= 0 else "count change from 0"
                ratio = value / before
                if ratio >= factor or ratio <= 1 / factor:
                    return f"count change x{_ratio_text(ratio)}"
                return "known pattern"
    return "new pattern"


def explain_selected(groups: Sequence, parts: Sequence[ExplainPartial | None], previous: Sequence[TopNReport],
                     config: ExplainConfig) -> tuple:
    """`SelectedGroup`s with `contrast`, `onset` and `change` filled in (the finaliser's step between
    selection and the AI boundary). `parts`: the explanations of every shard's partial of the window;
    `previous`: earlier windows' stored top-N reports of the rule."""
    import dataclasses

    if not config.enabled or not groups:
        return tuple(groups)
    found = explain_groups(parts, [tuple(g.keys.values()) for g in groups], config)
    out = []
    for g in groups:
        key = tuple(g.keys.values())
        e = found.get(key)
        out.append(dataclasses.replace(
            g, contrast=e.contrast if e else (), onset=e.onset if e else None,
            buckets=e.buckets if e else (), bucket_seconds=e.bucket_seconds if e else 0,
            change=change_of(key, g.value, [r for r in previous if r.window.end <= g.window.start], config.change_factor)))
    return tuple(out)
