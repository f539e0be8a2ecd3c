"""Contributor Insights rules: validate the real rule JSON once, then apply it fast. Pure.

A rule is the same JSON CloudWatch takes (`aws cloudwatch put-insight-rule --rule-definition`)::

    {"Schema": {"Name": "CloudWatchLogRule", "Version": 1},
     "LogGroupNames": ["/web/nginx/access*"],          # or LogGroupARNs; trailing * = prefix
     "LogFormat": "CLF",                               # or JSON
     "Fields": {"1": "client", "6": "status"},         # CLF only: position -> alias
     "Contribution": {"Keys": ["path"],                # 1..4 fields; a contributor = one combination
                      "Filters": [{"Match": "status", "GreaterThan": 499}]},   # 0..4, all must hold
     "AggregateOn": "Count"}                           # or Sum, which needs Contribution.ValueOf

`compile_rule(obj, name, path_prefix=...)` checks everything and raises `ConfigError` listing EVERY
problem, each prefixed with its path (`pipelines.logs.rules[2].Contribution.Filters[0]: ...`).
It also rejects mistakes seen in the wild, AWS's own docs included: `Sum` without `ValueOf`,
`"EqualTo": [..]` arrays, `"Comparison": "starts-with"`, unknown or wrongly-cased keys, more than
4 keys or filters, more than 10 strings in one filter.

Semantics (all matching is case-sensitive, as in Contributor Insights):

* Fields are JSON paths for JSON logs (`$.a.b`, `$.arr[0]`, `$.users[1].name`). For CLF they are
  an alias from `Fields`, a bare position (`"6"`), or one of the parsed names (`client`, `status`,
  `method`, `request_uri`, `path`, `query`, `path_template`, ...; see `processors.core.parse`).
  Positions follow parse.CLF_POSITIONS. `path` has no query string (`request_uri` has it).
* CLF `request_uri` and `path_template` (`parse.CLF_DERIVED`) and JSON/ALB `$.path_template`
  (`parse.path_template` of `$.path`) are computed only by rules that read them; a JSON object
  that logs its own `path_template` keeps it.
* A field is *absent* when the path does not resolve or resolves to JSON null; CLF's `-` is a
  present string. Every operator except `IsPresent` fails on an absent field, so `NotIn` and
  `NotEqualTo` only pass events that carry the field. `IsPresent: true` needs a present leaf
  (not an object or array); `IsPresent: false` is its negation.
* `In`, `NotIn`, `StartsWith` compare the value's text (numbers as JSON writes them, booleans as
  `true`/`false`). `GreaterThan`, `LessThan`, `EqualTo`, `NotEqualTo` need a number: a JSON
  number or a string that reads as a finite number (`"500"`); anything else fails the filter.
* An event missing any key, or (for `Sum`) without a numeric `ValueOf`, contributes nothing.
* Key values are text; a value longer than `MAX_KEY_CHARS` is cut and suffixed with a hash of the
  whole value, so state stays bounded while distinct values stay distinct.

`CompiledRule.apply(record)` returns `(keys_tuple, value)` or None. It is the hot path: paths are
compiled to getters once, and CLF records (tuples) are read by index.
"""

from __future__ import annotations

import hashlib
import math
import re
from operator import itemgetter, methodcaller
from typing import Any, Callable, Literal

import orjson

from processors.core.parse import CLF_DERIVED, CLF_INDEX, CLF_POSITIONS, path_template
from processors.errors import ConfigError

__all__ = ["CompiledRule", "compile_rule", "rules_from_json", "MAX_KEY_CHARS"]

MAX_KEYS = 4
MAX_FILTERS = 4
MAX_FILTER_STRINGS = 10
MAX_KEY_CHARS = 256
MAX_CLF_POSITION = 64

SCHEMA = {"Name": "CloudWatchLogRule", "Version": 1}
_TOP_KEYS = ("Schema", "LogGroupNames", "LogGroupARNs", "LogFormat", "Fields", "Contribution", "AggregateOn")
_CONTRIB_KEYS = ("Keys", "ValueOf", "Filters")
_STRING_OPS = ("In", "NotIn", "StartsWith")
_NUMBER_OPS = ("GreaterThan", "LessThan", "EqualTo", "NotEqualTo")
_OPS = _STRING_OPS + _NUMBER_OPS + ("IsPresent",)
_CLF_NAMES = tuple(n for n in CLF_INDEX if n != "extra") + tuple(CLF_DERIVED)

_JSON_PATH_RE = re.compile(r"\$((?:\.[^.\[\]]+|\[\d+\])+)\Z")
_PATH_STEP_RE = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")

Record = Any
Getter = Callable[[Record], Any]


class CompiledRule:
    """A validated rule, ready for the hot path. Treat it as immutable.

    Attributes: `name`, `log_format` ("JSON" | "CLF"), `key_names` (the Keys as written),
    `aggregate_on` ("Count" | "Sum"), `value_of`, `log_groups` (patterns), `definition` (the
    original JSON object), `fingerprint` (sha256 of the canonical definition; changes whenever the
    rule's meaning may change, so it can key stored partials).

    `apply(record)` -> `(keys, value)` or None; `record` is what parse_json / parse_clf returned
    for the rule's `log_format`."""

    __slots__ = ("name", "log_format", "key_names", "aggregate_on", "value_of", "log_groups", "definition",
                 "fingerprint", "apply", "reads", "status_filters", "_exact_groups", "_group_prefixes")  # fmt: skip

    def __init__(self, *, name, log_format, key_names, aggregate_on, value_of, log_groups, definition, apply,
                 reads=None, status_filters=()):
        self.name: str = name
        self.log_format: Literal["JSON", "CLF"] = log_format
        self.key_names: tuple[str, ...] = key_names
        self.aggregate_on: Literal["Count", "Sum"] = aggregate_on
        self.value_of: str | None = value_of
        self.log_groups: tuple[str, ...] = log_groups
        self.definition: dict = definition
        self.fingerprint: str = hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()
        self.apply: Callable[[Record], tuple[tuple[str, ...], int | float] | None] = apply
        #: What `apply` reads of a record, for the chunked fast path (processors/core/fastpath.py): CLF
        #: field names (`CLF_INDEX` keys), or top-level JSON keys (`path_template` stands for the
        #: derived field, which also reads `path`); None when a JSON path goes deeper than one key.
        self.reads: frozenset[str] | None = reads
        #: The numeric filters on the status field as `(op, argument)` pairs (CLF `status` / position 6,
        #: JSON `$.status`): a line whose status fails one of them cannot match.
        self.status_filters: tuple[tuple[str, int | float], ...] = tuple(status_filters)
        names = [_group_name(p) for p in log_groups]
        self._exact_groups = frozenset(n for n in names if not n.endswith("*"))
        self._group_prefixes = tuple(n[:-1] for n in names if n.endswith("*"))

    def matches_log_group(self, log_group: str | None) -> bool:
        """Whether events from `log_group` feed this rule. Events without a group (raw lines pushed
        straight to Kinesis, files) always do: the rule cannot tell where they came from."""
        if log_group is None:
            return True
        return log_group in self._exact_groups or log_group.startswith(self._group_prefixes)

    def __repr__(self) -> str:
        return f"CompiledRule({self.name!r}, {self.log_format}, keys={self.key_names}, {self.aggregate_on})"


def _group_name(pattern: str) -> str:
    """LogGroupARNs entries are matched on their log-group name part."""
    if pattern.startswith("arn:"):
        for sep in ("log-group:", "log-group/"):
            i = pattern.find(sep)
            if i >= 0:
                name = pattern[i + len(sep):]
                return name[:-2] if name.endswith(":*") else name
    return pattern


# ---------------------------------------------------------------------------------------- values


def _key_text(v: Any) -> str:
    """A key value as text (bounded); used for non-str values and long strings."""
    t = type(v)
    if t is str:
        s = v
    elif t is bool:
        s = "true" if v else "false"
    elif t is int:
        s = str(v)
    elif t is float:
        s = str(int(v)) if v.is_integer() and abs(v) < 2**63 else repr(v)
    else:
        s = orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
    if len(s) > MAX_KEY_CHARS:
        digest = hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
        s = s[: MAX_KEY_CHARS - 18] + "\u2026#" + digest
    return s


def _text(v: Any) -> str:
    """A value's text for In / NotIn / StartsWith (not truncated)."""
    t = type(v)
    if t is str:
        return v
    if t is bool:
        return "true" if v else "false"
    if t is float and v.is_integer() and abs(v) < 2**63:
        return str(int(v))
    if t is int or t is float:
        return str(v) if t is int else repr(v)
    return orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()


def _num(v: Any) -> int | float | None:
    """A value as a finite number, or None."""
    t = type(v)
    if t is int:
        return v
    if t is float:
        return v if math.isfinite(v) else None
    if t is str:
        try:
            return int(v)
        except ValueError:
            pass
        try:
            f = float(v)
        except ValueError:
            return None
        if not math.isfinite(f):
            return None
        return int(f) if f.is_integer() and abs(f) < 2**53 else f
    return None


# --------------------------------------------------------------------------------------- getters


def _json_getter(steps: list[tuple[str, str | int]]) -> Getter:
    if len(steps) == 1 and steps[0][0] == "key":
        return methodcaller("get", steps[0][1])

    def get(rec):
        cur = rec
        for kind, k in steps:
            if kind == "key":
                if type(cur) is not dict:
                    return None
                cur = cur.get(k)
            else:
                if type(cur) is not list or k >= len(cur):
                    return None
                cur = cur[k]
            if cur is None:
                return None
        return cur

    return get


def _json_template_getter(rec, _tpl=path_template):
    v = rec.get("path_template")
    if v is not None:
        return v
    p = rec.get("path")
    return _tpl(p) if type(p) is str else None


#: The getter of a CLF record's status (position 6, or by name). The parser only accepts 3-digit
#: codes 100-599, so a number filter on it becomes a set of status strings (no int() per event).
_CLF_STATUS = itemgetter(CLF_INDEX["status"])
_CLF_STATUSES = tuple(range(100, 600))


def _clf_name_getter(name: str) -> Getter:
    return _CLF_STATUS if name == "status" else itemgetter(CLF_INDEX[name])


def _clf_position_getter(pos: int) -> Getter:
    if pos <= 7:
        return _clf_name_getter(CLF_POSITIONS[pos])

    ref, ua, ex = CLF_INDEX["referer"], CLF_INDEX["user_agent"], CLF_INDEX["extra"]

    def get(rec):
        # positions 8.. count the fields written after `bytes`
        if rec[ref] is not None:
            if pos == 8:
                return rec[ref]
            if pos == 9:
                return rec[ua]
            k = pos - 10
        else:
            k = pos - 8
        extra = rec[ex]
        if extra is None:
            return None
        tokens = extra.split()
        return tokens[k] if k < len(tokens) else None

    return get


# --------------------------------------------------------------------------------------- filters


def _filter(op: str, arg: Any, get: Getter) -> Callable[[Record], bool]:
    if get is _CLF_STATUS and op in _NUMBER_OPS:
        test = {"GreaterThan": lambda c: c > arg, "LessThan": lambda c: c < arg, "EqualTo": lambda c: c == arg,
                "NotEqualTo": lambda c: c != arg}[op]  # fmt: skip
        statuses = frozenset(str(c) for c in _CLF_STATUSES if test(c))

        def f(rec, _i=CLF_INDEX["status"]):
            return rec[_i] in statuses

        return f
    if op == "In":
        vals = frozenset(arg)

        def f(rec):
            v = get(rec)
            return v is not None and (v if type(v) is str else _text(v)) in vals

    elif op == "NotIn":
        vals = frozenset(arg)

        def f(rec):
            v = get(rec)
            return v is not None and (v if type(v) is str else _text(v)) not in vals

    elif op == "StartsWith":
        prefixes = tuple(arg)

        def f(rec):
            v = get(rec)
            return v is not None and (v if type(v) is str else _text(v)).startswith(prefixes)

    elif op == "IsPresent":
        want = bool(arg)

        def f(rec):
            v = get(rec)
            present = v is not None and type(v) is not dict and type(v) is not list
            return present is want

    else:
        x = arg
        if op == "GreaterThan":

            def f(rec):
                n = _num(get(rec))
                return n is not None and n > x

        elif op == "LessThan":

            def f(rec):
                n = _num(get(rec))
                return n is not None and n < x

        elif op == "EqualTo":

            def f(rec):
                n = _num(get(rec))
                return n is not None and n == x

        else:

            def f(rec):
                n = _num(get(rec))
                return n is not None and n != x

    return f


def _make_apply(filters: list, keys: list[Getter], value_get: Getter | None) -> Callable:
    """Build the hot-path function, specialised for the common shapes (1-2 keys, Count)."""
    filters = tuple(filters)
    kt = _key_text
    limit = MAX_KEY_CHARS

    def k1(rec, g=keys[0]):
        v = g(rec)
        if v is None:
            return None
        if type(v) is not str or len(v) > limit:
            v = kt(v)
        return (v,)

    def kn(rec, gs=tuple(keys)):
        out = []
        for g in gs:
            v = g(rec)
            if v is None:
                return None
            if type(v) is not str or len(v) > limit:
                v = kt(v)
            out.append(v)
        return tuple(out)

    key_of = k1 if len(keys) == 1 else kn

    if value_get is None:

        def apply(rec):
            for f in filters:
                if not f(rec):
                    return None
            k = key_of(rec)
            return None if k is None else (k, 1)

    else:

        def apply(rec):
            for f in filters:
                if not f(rec):
                    return None
            k = key_of(rec)
            if k is None:
                return None
            n = _num(value_get(rec))
            return None if n is None else (k, n)

    return apply


# ------------------------------------------------------------------------------------ validation


def _is_number(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _unknown_key_problem(where: str, key: str, allowed: tuple[str, ...]) -> str:
    for a in allowed:
        if a.lower() == str(key).lower():
            return f"{where}: unknown key {key!r}; did you mean {a!r}? (keys are case-sensitive)"
    if key == "Comparison":
        return (f"{where}: 'Comparison' is not a Contributor Insights filter key; write the operator itself, "
                f"e.g. {{\"Match\": \"$.path\", \"StartsWith\": [\"/api\"]}}")  # fmt: skip
    return f"{where}: unknown key {key!r}; allowed keys are {', '.join(allowed)}"


class _Compiler:
    def __init__(self, path: str):
        self.path = path
        self.problems: list[str] = []
        self.reads: set[str] | None = set()  # see CompiledRule.reads
        self.last_read: str | None = None  # the single field the last `field()` call named, if it is one

    def _read(self, *names: str, single: str | None = None) -> None:
        if self.reads is not None:
            self.reads.update(names)
        self.last_read = single

    def err(self, where: str, msg: str) -> None:
        self.problems.append(f"{self.path}{where}: {msg}" if where else f"{self.path}: {msg}")

    def field(self, where: str, ref: Any, log_format: str | None, aliases: dict[str, int]) -> Getter | None:
        if not isinstance(ref, str) or not ref:
            self.err(where, f"must be a non-empty string naming a field, got {_show(ref)}")
            return None
        if log_format == "JSON":
            m = _JSON_PATH_RE.match(ref)
            if m is None:
                hint = f"; write '$.{ref}'" if re.fullmatch(r"[A-Za-z_][\w-]*", ref) else ""
                self.err(where, f"{ref!r} is not a JSON path like $.status or $.a.b[0]{hint}")
                return None
            steps = [("key", k) if k else ("idx", int(i)) for k, i in _PATH_STEP_RE.findall(m.group(1))]
            if steps == [("key", "path_template")]:
                self._read("path_template", "path")
                return _json_template_getter
            if len(steps) == 1 and steps[0][0] == "key":
                self._read(steps[0][1], single=steps[0][1])
            else:
                self.reads = None
                self.last_read = None
            return _json_getter(steps)
        if log_format == "CLF":
            name = ref[2:] if ref.startswith("$.") else ref
            if name in aliases:
                self._read_position(aliases[name])
                return _clf_position_getter(aliases[name])
            if name.isdigit() and name.isascii():
                pos = int(name)
                if 1 <= pos <= MAX_CLF_POSITION:
                    self._read_position(pos)
                    return _clf_position_getter(pos)
                self.err(where, f"CLF position {pos} is out of range 1..{MAX_CLF_POSITION}")
                return None
            if name in CLF_INDEX and name != "extra":
                self._read(name, single=name)
                return _clf_name_getter(name)
            if name in CLF_DERIVED:
                self._read("path", "query")
                return CLF_DERIVED[name]
            known = sorted(aliases) + list(_CLF_NAMES)
            self.err(where, f"unknown CLF field {ref!r}; use a Fields alias, a position number, or one of: {', '.join(known)}")
            return None
        return None  # log format already reported as invalid

    def _read_position(self, pos: int) -> None:
        if pos <= 7:
            self._read(CLF_POSITIONS[pos], single=CLF_POSITIONS[pos])
        else:
            self._read("referer", "user_agent", "extra")

    def compile(self, obj: Any, name: str) -> CompiledRule | None:
        if not isinstance(name, str) or not name.strip():
            self.err("", "rule name must be a non-empty string")
        if not isinstance(obj, dict):
            self.err("", f"a rule must be a JSON object, got {_show(obj)}")
            return None
        for k in obj:
            if k not in _TOP_KEYS:
                self.problems.append(_unknown_key_problem(self.path, k, _TOP_KEYS))

        schema = obj.get("Schema")
        if schema != SCHEMA or type(schema.get("Version")) is not int:
            self.err(".Schema", 'must be {"Name": "CloudWatchLogRule", "Version": 1}' + ("" if "Schema" in obj else " (missing)"))

        groups: list[str] = []
        has_names, has_arns = "LogGroupNames" in obj, "LogGroupARNs" in obj
        if has_names and has_arns:
            self.err("", "give LogGroupNames or LogGroupARNs, not both")
        elif not has_names and not has_arns:
            self.err("", "LogGroupNames (or LogGroupARNs) is required")
        for key in ("LogGroupNames", "LogGroupARNs"):
            if key not in obj:
                continue
            val = obj[key]
            if not isinstance(val, list) or not val:
                self.err(f".{key}", f"must be a non-empty array of strings, got {_show(val)}")
                continue
            for i, g in enumerate(val):
                if not isinstance(g, str) or not g:
                    self.err(f".{key}[{i}]", f"must be a non-empty string, got {_show(g)}")
                elif key == "LogGroupNames" and "*" in g[:-1]:
                    self.err(f".{key}[{i}]", f"{g!r}: '*' is only allowed at the end (prefix match)")
                elif key == "LogGroupARNs" and not g.startswith("arn:"):
                    self.err(f".{key}[{i}]", f"{g!r} is not an ARN (arn:aws:logs:REGION:ACCOUNT:log-group:NAME)")
                else:
                    groups.append(g)

        log_format = obj.get("LogFormat")
        if log_format not in ("JSON", "CLF"):
            self.err(".LogFormat", f"must be \"JSON\" or \"CLF\", got {_show(log_format)}" + ("" if "LogFormat" in obj else " (missing)"))
            log_format = None

        aliases: dict[str, int] = {}
        if "Fields" in obj:
            fields = obj["Fields"]
            if log_format == "JSON":
                self.err(".Fields", "is only used with LogFormat CLF (JSON rules name fields with $.paths)")
            elif not isinstance(fields, dict):
                self.err(".Fields", f"must be an object mapping a CLF position to an alias, got {_show(fields)}")
            else:
                for pos, alias in fields.items():
                    where = f".Fields.{pos}"
                    if not (pos.isdigit() and pos.isascii() and 1 <= int(pos) <= MAX_CLF_POSITION):
                        self.err(where, f"position {pos!r} must be a number 1..{MAX_CLF_POSITION} (CLF fields count from 1)")
                    elif not isinstance(alias, str) or not alias:
                        self.err(where, f"alias must be a non-empty string, got {_show(alias)}")
                    elif alias in aliases:
                        self.err(where, f"alias {alias!r} is already used for position {aliases[alias]}")
                    elif alias.isdigit():
                        self.err(where, f"alias {alias!r} must not be a number (it would hide a position)")
                    else:
                        aliases[alias] = int(pos)

        contrib = obj.get("Contribution")
        key_getters: list[Getter | None] = []
        key_names: list[str] = []
        filters: list = []
        self.status_filters: list[tuple[str, Any]] = []
        value_get: Getter | None = None
        value_of = None
        if not isinstance(contrib, dict):
            self.err(".Contribution", f"must be an object with Keys (and optional Filters, ValueOf), got {_show(contrib)}"
                     + ("" if "Contribution" in obj else " (missing)"))  # fmt: skip
            contrib = {}
        else:
            for k in contrib:
                if k not in _CONTRIB_KEYS:
                    self.problems.append(_unknown_key_problem(f"{self.path}.Contribution", k, _CONTRIB_KEYS))
            keys = contrib.get("Keys")
            if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
                n = f"{len(keys)} keys" if isinstance(keys, list) else _show(keys)
                self.err(".Contribution.Keys", f"must be an array of 1 to {MAX_KEYS} fields, got {n}")
            else:
                for i, ref in enumerate(keys):
                    key_getters.append(self.field(f".Contribution.Keys[{i}]", ref, log_format, aliases))
                    key_names.append(ref if isinstance(ref, str) else str(ref))
                if len(set(map(str, keys))) != len(keys):
                    self.err(".Contribution.Keys", "lists the same field twice")
            raw_filters = contrib.get("Filters", [])
            if not isinstance(raw_filters, list):
                self.err(".Contribution.Filters", f"must be an array of filters, got {_show(raw_filters)}")
            elif len(raw_filters) > MAX_FILTERS:
                self.err(".Contribution.Filters", f"has {len(raw_filters)} filters; at most {MAX_FILTERS} are allowed")
            else:
                for i, flt in enumerate(raw_filters):
                    filters.append(self.filter(f".Contribution.Filters[{i}]", flt, log_format, aliases))
            if "ValueOf" in contrib:
                value_of = contrib["ValueOf"]
                value_get = self.field(".Contribution.ValueOf", value_of, log_format, aliases)

        agg = obj.get("AggregateOn")
        if agg not in ("Count", "Sum"):
            self.err(".AggregateOn", f"must be \"Count\" or \"Sum\", got {_show(agg)}" + ("" if "AggregateOn" in obj else " (missing)"))
        elif agg == "Sum" and "ValueOf" not in contrib:
            self.err(".Contribution.ValueOf", "is required when AggregateOn is Sum (the numeric field to add up)")
        elif agg == "Count" and "ValueOf" in contrib:
            self.err(".Contribution.ValueOf", "is only used with AggregateOn Sum; remove it or set AggregateOn to Sum")

        if self.problems:
            return None
        return CompiledRule(
            name=name,
            log_format=log_format,
            key_names=tuple(key_names),
            aggregate_on=agg,
            value_of=value_of,
            log_groups=tuple(groups),
            definition=obj,
            apply=_make_apply(filters, key_getters, value_get if agg == "Sum" else None),
            reads=frozenset(self.reads) if self.reads is not None else None,
            status_filters=self.status_filters,
        )

    def filter(self, where: str, flt: Any, log_format: str | None, aliases: dict[str, int]):
        if not isinstance(flt, dict):
            self.err(where, f"must be an object like {{\"Match\": \"$.status\", \"GreaterThan\": 499}}, got {_show(flt)}")
            return None
        for k in flt:
            if k != "Match" and k not in _OPS:
                self.problems.append(_unknown_key_problem(f"{self.path}{where}", k, ("Match",) + _OPS))
        get = None
        if "Match" not in flt:
            self.err(where, "Match (the field to test) is required")
        else:
            get = self.field(f"{where}.Match", flt["Match"], log_format, aliases)
        ops = [k for k in flt if k in _OPS]
        if len(ops) != 1:
            self.err(where, f"needs exactly one operator ({', '.join(_OPS)}), got {len(ops)}")
            return None
        op = ops[0]
        arg = flt[op]
        if op in _STRING_OPS:
            if not isinstance(arg, list) or not arg:
                self.err(where, f"{op} must be an array of 1 to {MAX_FILTER_STRINGS} strings, got {_show(arg)}")
                return None
            if len(arg) > MAX_FILTER_STRINGS:
                self.err(where, f"{op} has {len(arg)} strings; at most {MAX_FILTER_STRINGS} are allowed")
                return None
            bad = [i for i, s in enumerate(arg) if not isinstance(s, str)]
            if bad:
                self.err(where, f"{op}[{bad[0]}] must be a string, got {_show(arg[bad[0]])}"
                         + (f" (write \"{_text(arg[bad[0]])}\")" if _is_number(arg[bad[0]]) else ""))  # fmt: skip
                return None
        elif op in _NUMBER_OPS:
            if isinstance(arg, list):
                self.err(where, f"{op} must be a single number, not an array (use In: [...] to match several values)")
                return None
            if not _is_number(arg) or type(arg) is bool:
                self.err(where, f"{op} must be a number, got {_show(arg)}")
                return None
        elif type(arg) is not bool:
            self.err(where, f"IsPresent must be true or false, got {_show(arg)}")
            return None
        if get is None:
            return None
        if op in _NUMBER_OPS and (self.last_read == "status" if log_format == "CLF" else
                                  flt.get("Match") == "$.status"):  # fmt: skip
            self.status_filters.append((op, arg))
        return _filter(op, arg, get)


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v[:60])
    if v is None:
        return "null"
    try:
        text = orjson.dumps(v).decode()
    except TypeError:
        text = type(v).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def compile_rule(obj: Any, name: str, path_prefix: str | None = None) -> CompiledRule:
    """Validate a rule definition and compile it. Raises ConfigError with every problem found,
    each prefixed with `path_prefix` (default: the rule name), e.g.
    `pipelines.logs.rules[2].Contribution.Filters[0]: GreaterThan must be a number`."""
    prefix = path_prefix if path_prefix is not None else str(name)
    c = _Compiler(prefix)
    try:
        rule = c.compile(obj, name)
    except orjson.JSONEncodeError as exc:  # from YAML: an integer past 64 bits, bytes (!!binary), ...
        c.err("", f"not representable as rule JSON: {exc}")
        rule = None
    if c.problems or rule is None:
        raise ConfigError(prefix, c.problems or [f"{prefix}: invalid rule"])
    return rule


def rules_from_json(data: bytes, *, source: str, stem: str, path_prefix: str | None = None) -> list[CompiledRule]:
    """Rules from the bytes of a rule file (the caller reads it; `source` names it in errors, `stem` is the
    default rule name). Accepted shapes:

    * a bare rule definition (name = file stem);
    * one rule as CloudWatch exports it: `{"Name"|"RuleName": ..., "Definition"|"RuleDefinition":
      "<rule JSON as a string>" or an object}` (describe-insight-rules entry, put-insight-rule input);
    * `{"InsightRules": [...]}`, the whole `aws cloudwatch describe-insight-rules` output.

    Problems are prefixed with `path_prefix` (default: `source`)."""
    base = path_prefix if path_prefix is not None else source
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(source, [f"{base}: {source} is not valid JSON: {exc}"]) from exc
    if isinstance(doc, dict) and isinstance(doc.get("InsightRules"), list):
        entries = [(e, f"{base}.InsightRules[{i}]") for i, e in enumerate(doc["InsightRules"])]
        if not entries:
            raise ConfigError(source, [f"{base}: InsightRules in {source} is empty"])
    else:
        entries = [(doc, base)]
    rules, problems = [], []
    for entry, where in entries:
        name, definition = stem, entry
        if isinstance(entry, dict) and ("Definition" in entry or "RuleDefinition" in entry):
            name = entry.get("Name") or entry.get("RuleName") or stem
            definition = entry.get("Definition", entry.get("RuleDefinition"))
            if isinstance(definition, str):
                try:
                    definition = orjson.loads(definition)
                except orjson.JSONDecodeError as exc:
                    problems.append(f"{where}.Definition: not valid JSON: {exc}")
                    continue
        try:
            rules.append(compile_rule(definition, name, path_prefix=where))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(source, problems)
    return rules
