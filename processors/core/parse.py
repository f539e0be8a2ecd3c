"""Parse one access-log line into a flat record the rule engine can read. Pure and hot.

Three formats:

* **CLF / combined** (Apache `%h %l %u %t \\"%r\\" %>s %b [\\"%{Referer}i\\" \\"%{User-Agent}i\\"]`,
  nginx's default `combined`). `parse_clf(line)` returns `(epoch_seconds, ClfRecord)`. A
  `ClfRecord` is a tuple of strings laid out as `CLF_INDEX` says (the hot path reads it by index),
  with `.get(name)` and `.as_dict()` for everyone else. Its fields::

      client ident user time request method path query protocol status bytes referer user_agent extra

  plus `request_uri` and `path_template`, derived from `path` and `query` when read (`.get`,
  `.as_dict`, rules: `CLF_DERIVED`); see below.

  **Positions.** Contributor Insights addresses CLF fields by position starting at 1 but does not
  document how it splits a line. We follow CloudWatch Logs' documented rule for space-delimited
  events: *characters between square brackets or double quotes are one field*. So the bracketed
  timestamp is ONE field and the quoted request is ONE field::

      1 client  2 ident  3 user  4 time  5 request  6 status  7 bytes  8 referer  9 user_agent
      10, 11, ... further space-delimited tokens (`extra`, e.g. nginx's `$request_time`)

  Positions count fields as written: in a common-format line (no quoted referer / user agent)
  the tokens after `bytes` are positions 8, 9, ...

  `CLF_POSITIONS` holds this table; `rules.py` translates a rule's `Fields` positions through it.
  `method`, `request_uri`, `path`, `query`, `protocol` and `path_template` are Sieve extensions:
  they have no position, but rules may name them directly (`"Keys": ["path"]`).

  **The request target** (the same three fields in every format, see `split_target`):

  - `request_uri`: the target with its query string, as logged (no decoding). An absolute-form
    target (`http://host:80/a?b`, proxies) loses its scheme and host; an empty path is `/`.
  - `path`: `request_uri` up to (not including) the first `?`: never contains `?`, and
    `request_uri == path + ("?" + query if there is one)`. Key on this, not on the request line:
    every distinct query string would be a contributor of its own, and carries its secrets.
  - `path_template`: `path` with id-like segments replaced by `{id}` (see `path_template()`): decimal
    numbers, UUIDs, hex of 8+ characters with a digit, base64-ish tokens, e-mail addresses.
  - CLF only: `query`, the text after the first `?` (absent when there is no `?`).

  A CLF record stores `path` and `query` (the fast pattern splits them); `request_uri` and
  `path_template` are computed only when something reads them, so rules that do not use them
  cost nothing.

  Missing values stay as CLF writes them (`-`): the rule engine treats `-` as a present,
  non-numeric string, so numeric filters and `Sum` skip it. Quoted fields are unescaped
  (`\\"` -> `"`, `\\\\` -> `\\`) only when the line contains a backslash.

* **JSON lines**: `parse_json(line, fields)` returns `(epoch_seconds | None, object)`: the decoded
  object itself (rules address it with JSON paths). `JsonFields` says which fields hold the time,
  status, path, ... so they can be validated; the time may be epoch seconds, epoch milliseconds,
  ISO 8601 or a CLF timestamp. A line without a time field gets `None` (the caller falls back to
  the transport's timestamp). When the configured `path` field holds a string (a path, a path
  with a query, or a whole URL), the object gets the top-level `path` (no query) and
  `request_uri` derived from it, as for CLF; `$.path_template` is derived from `$.path` when a
  rule reads it.

* **AWS Application Load Balancer access logs**: `parse_alb(line)` returns `(epoch_seconds,
  dict)`: a flat dict with AWS's field names (`ALB_RECORD_KEYS`; see `parse_alb`). JSON-format
  rules read ALB entries too: `parse_json_or_alb` sends a line starting with an ALB type (`https `,
  `h2 `, ...) to `parse_alb` and anything else to `parse_json` (an ALB entry is never JSON). The
  URL gives `path`, `request_uri` and (when read) `path_template` as for CLF.

A line that cannot be used returns `Rejected(reason, detail)` with a reason from
`REJECT_REASONS`. None of these functions raises on any string.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson

from processors.core.decode import Rejected

__all__ = [
    "CLF_POSITIONS",
    "CLF_NAMED_FIELDS",
    "JsonFields",
    "DEFAULT_JSON_FIELDS",
    "REJECT_REASONS",
    "Rejected",
    "parse_clf",
    "parse_json",
    "parse_clf_time",
    "ClfRecord",
    "CLF_INDEX",
    "ALB_TYPES",
    "ALB_FIELDS",
    "ALB_RECORD_KEYS",
    "looks_like_alb",
    "parse_alb",
    "parse_alb_time",
    "parse_json_or_alb",
    "split_target",
    "CLF_DERIVED",
    "path_template",
    "ID_PLACEHOLDER",
]

REJECT_REASONS = frozenset(
    {
        "empty",
        "malformed_line",
        "malformed_alb_line",
        "malformed_request_line",
        "bad_timestamp",
        "missing_timestamp",
        "bad_status",
        "bad_bytes",
        "bad_latency",
        "bad_json",
        "not_object",
        "too_long",
    }
)

#: Lines longer than this are rejected (`too_long`) before any regex runs.
MAX_LINE_CHARS = 64 * 1024

#: CLF position (as Contributor Insights numbers it, from 1) -> record field name.
CLF_POSITIONS: dict[int, str] = {
    1: "client",
    2: "ident",
    3: "user",
    4: "time",
    5: "request",
    6: "status",
    7: "bytes",
    8: "referer",
    9: "user_agent",
}
#: Every field name a CLF record may have (positions 10+ live in `extra`).
CLF_NAMED_FIELDS = frozenset(CLF_POSITIONS.values()) | {"method", "request_uri", "path", "query", "path_template",
                                                          "protocol", "extra"}  # fmt: skip

# A quoted field with backslash escapes, written as an unrolled loop (no per-char alternation).
_Q = r'[^"\\]*(?:\\.[^"\\]*)*'
_CLF_TAIL = r"(?: +(\S.*?))?\s*\Z"
# The fast pattern (lines without a backslash, well-formed request/status/bytes: almost all) also
# splits the request line and validates status and bytes, so the hot path does no Python-level
# checks. Anything it refuses goes through the escape-aware pattern and named checks.
# The target must be origin-form (`/...`); its groups are path (up to the first `?`) and query
# (after it; None without a `?`). Other targets (`*`, `host:443`, absolute URLs, `?x`) go the slow way.
_CLF_FAST_RE = re.compile(
    r'(\S+) (\S+) (\S+) \[([^\]]*)\] "(([A-Za-z]+) (/[^" ?]*)(?:\?([^" ]*))?(?: ([^" ]+))?)" ([1-5][0-9][0-9]) ([0-9]+|-)'
    r'(?: "([^"]*)" "([^"]*)")?(?: +(\S(?:.*\S)?))?\Z',
    re.DOTALL,
)
_CLF_ESC_RE = re.compile(
    r'(\S+) (\S+) (\S+) \[([^\]]*)\] "(' + _Q + r')" (\S+) (\S+)(?: "(' + _Q + r')" "(' + _Q + r')")?' + _CLF_TAIL,
    re.DOTALL,
)
# `_CLF_FAST_RE` for many lines at once (`clf_chunk_regex`): the same pieces, line-anchored. Its classes
# may run over a newline (as `_CLF_FAST_RE`'s do, on purpose: `[^"]` is faster than `[^"\n]`); a match
# that does is one row for two lines, which the caller detects (rows != lines). The query, referer and
# user agent keep their first character (`?` or `"`) so that an empty value is told apart from an
# absent one in `findall`'s output.
#: Fields whose chunk capture carries its leading `?` / `"` (empty capture: absent).
CLF_CHUNK_PREFIXED = frozenset({"query", "referer", "user_agent"})
#: Fields that are None when absent (an empty capture means absent).
CLF_CHUNK_OPTIONAL = frozenset({"query", "protocol", "referer", "user_agent", "extra"})
_CLF_CHUNK_CACHE: dict[frozenset, tuple] = {}


def clf_chunk_regex(fields) -> tuple[re.Pattern, tuple[str, ...]]:
    """A MULTILINE pattern that `findall`s over many CLF lines (joined by `\n`) and gives one tuple per
    line: the groups of `fields` (in `CLF_INDEX` order, the names returned), then the whole line as
    the last item when the fast pattern of `parse_clf` does not take it (else ""). A line it takes is
    one `_CLF_FAST_RE` takes, with the same groups (`parse_clf` uses that pattern only for lines
    without a backslash: the caller sends lines with one to `parse_clf`); `CLF_CHUNK_PREFIXED`
    fields carry their leading `?` / `"`, and an empty capture of a `CLF_CHUNK_OPTIONAL` field means
    absent (None). `time` and `status` are always captured (status is never empty on a taken line)."""
    want = frozenset(fields) | {"time", "status"}
    got = _CLF_CHUNK_CACHE.get(want)
    if got is not None:
        return got

    def g(name: str, inner: str) -> str:
        return f"({inner})" if name in want else f"(?:{inner})"

    request = (g("method", "[A-Za-z]+") + " " + g("path", '/[^" ?]*') + g("query", r'\?[^" ]*') + "?"
               + "(?: " + g("protocol", '[^" ]+') + ")?")  # fmt: skip
    pattern = ("^(?:" + g("client", r"\S+") + " " + g("ident", r"\S+") + " " + g("user", r"\S+")
               + r" \[" + g("time", r"[^\]]*") + r'\] "' + g("request", request) + '" '
               + g("status", "[1-5][0-9][0-9]") + " " + g("bytes", "[0-9]+|-")
               + "(?: " + g("referer", '"[^"]*') + '" ' + g("user_agent", '"[^"]*') + '")?'
               + "(?: +" + g("extra", r"\S(?:.*\S)?") + ")?"
               + r"|(.*))$")  # fmt: skip
    names = tuple(n for n in CLF_INDEX if n in want)
    got = _CLF_CHUNK_CACHE[want] = (re.compile(pattern, re.MULTILINE), names)
    return got


# Looser shapes, only used to name the reason once the strict pattern failed.
_CLF_HEAD_RE = re.compile(r"\S+ \S+ \S+ \[[^\]]*\] ")

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_CLF_TIME_RE = re.compile(r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})\Z")

# One entry per distinct timestamp string: log lines share their second, so this turns a date
# parse into a dict lookup. Cleared when it grows past the limit (bounded memory).
_TIME_CACHE: dict[str, int | None] = {}
_TIME_CACHE_MAX = 200_000
#: Event times must fall before this epoch second (year 10000): later ones fit no window a date can name.
MAX_EVENT_SECONDS = 253_402_300_800
#: ... and not before the epoch (1970-01-01T00:00:00Z) in any format: a log line dated before 1970 is not
#: real traffic, and a window with a negative start is odd everywhere downstream (keys, reports).
MIN_EVENT_SECONDS = 0


def parse_clf_time(text: str) -> int | None:
    """`10/Oct/2000:13:55:36 -0700` -> epoch seconds (971211336), or None if invalid."""
    got = _TIME_CACHE.get(text, -1)
    if got != -1:
        return got
    value = _parse_clf_time_uncached(text)
    if len(_TIME_CACHE) >= _TIME_CACHE_MAX:
        _TIME_CACHE.clear()
    _TIME_CACHE[text] = value
    return value


def _parse_clf_time_uncached(text: str) -> int | None:
    m = _CLF_TIME_RE.match(text)
    if m is None:
        return None
    day, mon, year, hh, mm, ss, sign, tzh, tzm = m.groups()
    month = _MONTHS.get(mon)
    if month is None or int(tzm) >= 60 or int(tzh) > 23:
        return None
    offset = timedelta(hours=int(tzh), minutes=int(tzm))
    try:
        dt = datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=timezone(-offset if sign == "-" else offset))
    except ValueError:
        return None
    ts = int(dt.timestamp())
    return ts if MIN_EVENT_SECONDS <= ts < MAX_EVENT_SECONDS else None


def _unescape(s: str | None) -> str | None:
    if s is None or "\\" not in s:
        return s
    return s.replace('\\"', '"').replace("\\\\", "\\")


# ------------------------------------------------------------------------------ request target

#: What an id-like path segment becomes in `path_template`.
ID_PLACEHOLDER = "{id}"

_ABSOLUTE_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")


def split_target(target: str) -> tuple[str, str]:
    """A request target -> `(request_uri, path)`.

    `request_uri` is the target as logged, except that an absolute-form target
    (`https://host:443/a?b`) loses its scheme and authority, and an empty path becomes `/`
    (`?x` -> `/?x`, `https://host` -> `/`). `path` is `request_uri` up to the first `?`, so
    `request_uri == path + ("?" + query if "?" in request_uri else "")`. Nothing is decoded."""
    if target[:1] != "/":
        m = _ABSOLUTE_RE.match(target)
        if m is not None:
            target = target[m.end():]
            if target[:1] != "/":  # `https://host`, `https://host?x`
                target = "/" + target
        elif target[:1] == "?":
            target = "/" + target
    q = target.find("?")
    return target, (target if q < 0 else target[:q])


# A whole path segment (between `/` and the next `/` or the end) that is id-like. Every kind
# needs a digit, or `@` / `%40` for e-mail addresses, which `_MAYBE_ID` checks first.
_ID_SEGMENT_RE = re.compile(
    r"(?<=/)(?:"
    r"[0-9]+"  # decimal id
    r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"  # UUID
    r"|(?=[A-Fa-f]*[0-9])[0-9A-Fa-f]{8,}"  # hex, 8+ characters, at least one digit
    # base64-ish token: 16+ of [A-Za-z0-9_-] (+ `=` padding) with a digit and a letter, and either
    # both cases or no `-`/`_` (so lowercase slugs like `release-notes-2024` are kept)
    r"|(?=[^/]*[0-9])(?=[^/]*[A-Za-z])(?:(?=[^/]*[a-z])(?=[^/]*[A-Z])|(?![^/]*[-_]))[A-Za-z0-9_-]{16,}={0,2}"
    r"|[^/@]+(?:@|%40)[^/@]+\.[A-Za-z]{2,}"  # e-mail address (also percent-encoded)
    r")(?=/|\Z)"
)
_MAYBE_ID = re.compile(r"[0-9@]|%40").search
_TEMPLATE_CACHE: dict[str, str] = {}
_TEMPLATE_CACHE_MAX = 100_000


def path_template(path: str) -> str:
    """`/api/v1/orders/41/items/9f1c0c2e-...` -> `/api/v1/orders/{id}/items/{id}`: every whole path
    segment that is a decimal number, a UUID, hex of 8+ characters with a digit, a base64-ish
    token (16+ of `[A-Za-z0-9_-]` with `=` padding, with a digit and a letter, and either both
    cases or no `-`/`_`) or an e-mail address (`@` or `%40`) becomes `{id}`. Other segments stay
    as they are (`/img/hero-12.jpg`, `/v1`, `/blog/release-notes-2024`). A query string, if
    given, is dropped first. Deterministic; cached per distinct path (bounded)."""
    got = _TEMPLATE_CACHE.get(path)
    if got is not None:
        return got
    q = path.find("?")
    base = path if q < 0 else path[:q]
    out = _ID_SEGMENT_RE.sub(ID_PLACEHOLDER, base) if _MAYBE_ID(base) is not None else base
    if len(_TEMPLATE_CACHE) >= _TEMPLATE_CACHE_MAX:
        _TEMPLATE_CACHE.clear()
    _TEMPLATE_CACHE[path] = out
    return out


#: ClfRecord tuple layout: field name -> index (`CLF_DERIVED` fields are computed, not stored).
CLF_INDEX: dict[str, int] = {
    "client": 0, "ident": 1, "user": 2, "time": 3, "request": 4, "method": 5, "path": 6, "query": 7,
    "protocol": 8, "status": 9, "bytes": 10, "referer": 11, "user_agent": 12, "extra": 13,
}  # fmt: skip
_CLF_NAMES = tuple(CLF_INDEX)


def _clf_request_uri(rec, _p=CLF_INDEX["path"], _q=CLF_INDEX["query"]) -> str:
    q = rec[_q]
    return rec[_p] if q is None else rec[_p] + "?" + q


def _clf_path_template(rec, _p=CLF_INDEX["path"]) -> str:
    return path_template(rec[_p])


#: CLF fields computed from the stored ones when read: name -> getter(record).
CLF_DERIVED = {"request_uri": _clf_request_uri, "path_template": _clf_path_template}


class ClfRecord(tuple):
    """A parsed CLF line: a plain tuple (index access is what the hot path uses, through
    `CLF_INDEX`) with read-only name access. Absent optional fields (referer and user agent in
    common format, extra tokens, the protocol of an HTTP/0.9 request) are None. `path_template`
    is computed from `path` when asked for."""

    __slots__ = ()

    def get(self, name: str, default=None):
        i = CLF_INDEX.get(name)
        if i is None:
            derive = CLF_DERIVED.get(name)
            return default if derive is None else derive(self)
        v = tuple.__getitem__(self, i)
        return default if v is None else v

    def as_dict(self) -> dict[str, str]:
        """The record as a dict of the fields that are present, derived ones included."""
        out = {k: v for k, v in zip(_CLF_NAMES, self) if v is not None}
        for name, derive in CLF_DERIVED.items():
            out[name] = derive(self)
        return out


_new_record = tuple.__new__
_time_cache_get = _TIME_CACHE.get


def parse_clf(line: str, fields: object = None) -> tuple[int, ClfRecord] | Rejected:
    """Parse a Common / Combined Log Format line. Returns `(epoch_seconds, ClfRecord)` or `Rejected`.
    (`fields` is unused: it keeps the signature of every parser in `PARSERS`.)

    The record's values are the raw field strings (see the module docstring for names and
    positions); `status` is validated as a 3-digit code (100-599), `bytes` as digits or `-`."""
    if len(line) > MAX_LINE_CHARS:
        return Rejected("too_long", f"line has {len(line)} characters, limit {MAX_LINE_CHARS}")
    if "\\" not in line:
        m = _CLF_FAST_RE.match(line)
        if m is not None:
            g = m.groups()
            ts = _time_cache_get(g[3], -1)
            if ts == -1:
                ts = parse_clf_time(g[3])
            if ts is None:
                return Rejected("bad_timestamp", f"timestamp [{g[3][:40]}] is not dd/Mon/yyyy:HH:MM:SS +zzzz in 1970-9999")
            return ts, _new_record(ClfRecord, g)
    return _parse_clf_slow(line)


def _parse_clf_slow(line: str) -> tuple[int, ClfRecord] | Rejected:
    m = _CLF_ESC_RE.match(line)
    if m is None:
        return _diagnose_clf(line)
    client, ident, user, time_, request, status, size, referer, agent, extra = m.groups()
    ts = parse_clf_time(time_)
    if ts is None:
        return Rejected("bad_timestamp", f"timestamp [{time_[:40]}] is not dd/Mon/yyyy:HH:MM:SS +zzzz in 1970-9999")
    if not (len(status) == 3 and status.isdigit() and status.isascii() and "1" <= status[0] <= "5"):
        return Rejected("bad_status", f"status {status[:20]!r} is not a 3-digit HTTP code")
    if size != "-" and not (size.isdigit() and size.isascii()):
        return Rejected("bad_bytes", f"bytes {size[:20]!r} is not a number or '-'")
    request, referer, agent = _unescape(request), _unescape(referer), _unescape(agent)
    if extra is not None:
        extra = extra.rstrip() or None
    parts = request.split(" ")
    if len(parts) == 2:
        parts.append(None)  # HTTP/0.9: no protocol
    if len(parts) != 3 or not parts[1] or not (parts[0].isalpha() and parts[0].isascii()):
        return Rejected("malformed_request_line", f"request {request[:60]!r} is not 'METHOD PATH [PROTOCOL]'")
    method, target, protocol = parts
    request_uri, path = split_target(target)
    query = request_uri[len(path) + 1:] if len(request_uri) > len(path) else None
    return ts, _new_record(ClfRecord, (client, ident, user, time_, request, method, path, query, protocol,
                                       status, size, referer, agent, extra))  # fmt: skip


def _diagnose_clf(line: str) -> Rejected:
    if not line.strip():
        return Rejected("empty", "blank line")
    head = _CLF_HEAD_RE.match(line)
    if head is None:
        if re.match(r"\S+ \S+ \S+ \[", line):
            return Rejected("bad_timestamp", "unterminated [timestamp]")
        return Rejected("malformed_line", "not 'client ident user [time] \"request\" status bytes'")
    rest = line[head.end():]
    if not rest.startswith('"'):
        return Rejected("malformed_request_line", "request is not a double-quoted string")
    if re.match(r'"' + _Q + r'"', rest) is None:
        return Rejected("malformed_request_line", "unterminated quoted request")
    return Rejected("malformed_line", "status/bytes or quoted referer/user-agent are malformed")


@dataclass(frozen=True, slots=True)
class JsonFields:
    """Which top-level (or dotted) JSON fields hold the well-known values. A field set to "" is
    not validated. Only `time` changes the output (it becomes the event time)."""

    time: str = "time"
    status: str = "status"
    path: str = "path"
    method: str = "method"
    client: str = "client"
    bytes: str = "bytes"
    latency: str = "latency_ms"


DEFAULT_JSON_FIELDS = JsonFields()
_MISSING = object()


def _lookup(obj: dict, dotted: str):
    if "." not in dotted:
        return obj.get(dotted, _MISSING)
    cur = obj
    for part in dotted.split("."):
        if type(cur) is not dict:
            return _MISSING
        cur = cur.get(part, _MISSING)
        if cur is _MISSING:
            return _MISSING
    return cur


_ISO_CACHE: dict[str, int | float | None] = {}


def _json_time(value) -> float | int | None | Rejected:
    t = type(value)
    if t is int or t is float:
        if not math.isfinite(value) or value < 0:
            return Rejected("bad_timestamp", f"time {value!r} is not a positive epoch")
        secs = value / 1000 if value >= 100_000_000_000 else value  # ms after ~1973 in s-units
        if secs >= MAX_EVENT_SECONDS:
            return Rejected("bad_timestamp", f"time {value!r} is after the year 9999")
        return secs
    if t is str:
        got = _ISO_CACHE.get(value, -1)
        if got != -1:
            return got if got is not None else Rejected("bad_timestamp", f"time {value[:40]!r} is not ISO 8601 or CLF in 1970-9999")
        parsed: int | float | None
        if value[:1].isdigit() and "/" in value[:7]:
            parsed = parse_clf_time(value)
        else:
            try:
                dt = datetime.fromisoformat(value)
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=timezone.utc)
                parsed = dt.timestamp()
                if parsed.is_integer():
                    parsed = int(parsed)
                if not MIN_EVENT_SECONDS <= parsed < MAX_EVENT_SECONDS:
                    parsed = None
            except (ValueError, OverflowError, OSError):
                parsed = None
        if len(_ISO_CACHE) >= _TIME_CACHE_MAX:
            _ISO_CACHE.clear()
        _ISO_CACHE[value] = parsed
        return parsed if parsed is not None else Rejected("bad_timestamp", f"time {value[:40]!r} is not ISO 8601 or CLF in 1970-9999")
    return Rejected("bad_timestamp", f"time is a {t.__name__}, expected a string or number")


def parse_json(line: str | bytes, fields: JsonFields = DEFAULT_JSON_FIELDS) -> tuple[int | float | None, dict] | Rejected:
    """Parse one JSON log line. Returns `(epoch_seconds or None, object)` or `Rejected`.

    Validates the configured well-known fields when present: status must be an integer 100-599
    (number or digit string), bytes a non-negative integer, `-` or null, latency a non-negative
    number. When the configured path field holds a non-empty string, `split_target` of it gives
    the top-level `path` (replacing the logged one when `path` is the configured field, else only
    when the object has no `path`) and `request_uri` (unless logged). Other fields are left exactly
    as logged."""
    if len(line) > MAX_LINE_CHARS:
        return Rejected("too_long", f"line has {len(line)} characters, limit {MAX_LINE_CHARS}")
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if not line.strip():
            return Rejected("empty", "blank line")
        return Rejected("bad_json", str(exc)[:120])
    if type(obj) is not dict:
        return Rejected("not_object", f"JSON line is a {type(obj).__name__}, expected an object")
    ts = None
    if fields.time:
        raw = _lookup(obj, fields.time)
        if raw is not _MISSING and raw is not None:
            ts = _json_time(raw)
            if type(ts) is Rejected:
                return ts
    if fields.status:
        st = _lookup(obj, fields.status)
        if st is not _MISSING and not _valid_status(st):
            return Rejected("bad_status", f"{fields.status} {str(st)[:20]!r} is not an HTTP status 100-599")
    if fields.bytes:
        b = _lookup(obj, fields.bytes)
        if b is not _MISSING and b is not None and b != "-" and not _nonneg_int(b):
            return Rejected("bad_bytes", f"{fields.bytes} {str(b)[:20]!r} is not a non-negative integer or '-'")
    if fields.latency:
        lat = _lookup(obj, fields.latency)
        if lat is not _MISSING and lat is not None and not _nonneg_number(lat):
            return Rejected("bad_latency", f"{fields.latency} {str(lat)[:20]!r} is not a non-negative number")
    if fields.path:
        target = _lookup(obj, fields.path)
        if type(target) is str and target:
            _derive_target(obj, fields.path, target)
    return ts, obj


def _derive_target(obj: dict, field: str, target: str) -> None:
    """Top-level `path` (no query string) and `request_uri` from the configured path field. `path`
    replaces the logged value when `path` is that field (the query goes), else it is added when
    the object has none; a logged `request_uri` is kept as it is."""
    request_uri, path = split_target(target)
    if field == "path" or "path" not in obj:
        obj["path"] = path
    if "request_uri" not in obj:
        obj["request_uri"] = request_uri


def _valid_status(v) -> bool:
    if type(v) is int:
        return 100 <= v <= 599
    if type(v) is str and len(v) == 3 and v.isascii() and v.isdigit():
        return 100 <= int(v) <= 599
    return False


def _nonneg_int(v) -> bool:
    if type(v) is int:
        return v >= 0
    return type(v) is str and v.isascii() and v.isdigit()


def _nonneg_number(v) -> bool:
    t = type(v)
    if t is int or t is float:
        return math.isfinite(v) and v >= 0
    if t is str:
        try:
            f = float(v)
        except ValueError:
            return False
        return math.isfinite(f) and f >= 0
    return False


# ------------------------------------------------------------------------------------------ ALB

#: The request/connection types an ALB access-log entry starts with (AWS: "ignore any other values").
ALB_TYPES = ("http", "https", "h2", "grpcs", "ws", "wss")
_ALB_PREFIXES = tuple(t + " " for t in ALB_TYPES)
_ALB_PREFIXES_B = tuple(p.encode() for p in _ALB_PREFIXES)

#: ALB entry fields in the order AWS writes them, as named in Sieve's record (`client:port` ->
#: `client` + `client_port`, `target:port` -> `target`, `target:port_list` -> `target_port_list`),
#: and whether the field is written double-quoted.
ALB_FIELDS: tuple[tuple[str, bool], ...] = (
    ("type", False), ("time", False), ("elb", False), ("client:port", False), ("target:port", False),
    ("request_processing_time", False), ("target_processing_time", False), ("response_processing_time", False),
    ("elb_status_code", False), ("target_status_code", False), ("received_bytes", False), ("sent_bytes", False),
    ("request", True), ("user_agent", True), ("ssl_cipher", False), ("ssl_protocol", False),
    ("target_group_arn", False), ("trace_id", True), ("domain_name", True), ("chosen_cert_arn", True),
    ("matched_rule_priority", False), ("request_creation_time", False), ("actions_executed", True),
    ("redirect_url", True), ("error_reason", True), ("target_port_list", True), ("target_status_code_list", True),
    ("classification", True), ("classification_reason", True), ("conn_trace_id", False),
)  # fmt: skip
#: Entries must carry at least type .. user_agent (14 fields); later fields, added by AWS over the
#: years, are None when an older entry does not have them.
ALB_MIN_FIELDS = 14
_ALB_PLAIN = ("elb", "ssl_cipher", "ssl_protocol", "target_group_arn", "trace_id", "domain_name", "chosen_cert_arn",
              "request_creation_time", "actions_executed", "redirect_url", "error_reason", "target_port_list",
              "target_status_code_list", "classification", "classification_reason", "conn_trace_id")  # fmt: skip
_ALB_INDEX = {name: i for i, (name, _) in enumerate(ALB_FIELDS)}
_ALB_PLAIN_IDX = tuple((name, _ALB_INDEX[name]) for name in _ALB_PLAIN)
_ALB_QUOTED = frozenset(i for i, (_, q) in enumerate(ALB_FIELDS) if q)
#: Every key of a parsed ALB record (all present; None where the entry has `-` or lacks the field).
ALB_RECORD_KEYS = ("type", "time", "elb", "client", "client_port", "target", "target_ip", "target_port",
                   "request_processing_time", "target_processing_time", "response_processing_time",
                   "elb_status_code", "target_status_code", "received_bytes", "sent_bytes", "request", "method",
                   "url", "request_uri", "path", "protocol", "user_agent") + _ALB_PLAIN + ("matched_rule_priority", "extra")  # fmt: skip

_ALB_LINE_RE = re.compile(r'(?:"' + _Q + r'"|[^\s"]\S*)(?: +(?:"' + _Q + r'"|[^\s"]\S*))*[ \t\r\n]*\Z', re.DOTALL)
_ALB_TOKEN_RE = re.compile(r'"(' + _Q + r')"|([^\s"]\S*)', re.DOTALL)
_ALB_TIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z\Z")
_ALB_SECOND_CACHE: dict[str, int | None] = {}
_ALB_NUM_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?\Z")


def looks_like_alb(line: str | bytes) -> bool:
    """Whether a line starts like an ALB access-log entry (`http `, `https `, `h2 `, ...)."""
    return line.startswith(_ALB_PREFIXES if type(line) is str else _ALB_PREFIXES_B)


def parse_alb_time(text: str) -> float | int | None:
    """ALB's ISO 8601 UTC time `2018-07-02T22:23:00.186641Z` -> epoch seconds (fraction kept), or None."""
    m = _ALB_TIME_RE.match(text)
    if m is None:
        return None
    whole = text[:19]
    sec = _ALB_SECOND_CACHE.get(whole, -1)
    if sec == -1:
        y, mo, d, hh, mi, ss = (int(g) for g in m.groups()[:6])
        try:
            sec = int(datetime(y, mo, d, hh, mi, ss, tzinfo=timezone.utc).timestamp())
        except ValueError:
            sec = None
        if sec is not None and sec < MIN_EVENT_SECONDS:
            sec = None
        if len(_ALB_SECOND_CACHE) >= _TIME_CACHE_MAX:
            _ALB_SECOND_CACHE.clear()
        _ALB_SECOND_CACHE[whole] = sec
    if sec is None:
        return None
    frac = m.group(7)
    return sec + int(frac) / 10 ** len(frac) if frac and frac.strip("0") else sec


def _split_host_port(text: str) -> tuple[str, int] | None:
    """`1.2.3.4:80` / `[2001:db8::1]:80` / `2001:db8::1:80` -> (host, port) or None."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isdigit() and port.isascii() and len(port) <= 5):
        return None
    return host, int(port)


def _alb_seconds(name: str, text: str):
    """A processing time: seconds as a float; `-1` (not applicable) and `-` -> None."""
    if text == "-1" or text == "-":
        return None
    if _ALB_NUM_RE.match(text) is None or text[0] == "-":
        return Rejected("bad_latency", f"{name} {text[:20]!r} is not a number of seconds or -1")
    return float(text)


def parse_alb(line: str) -> tuple[float | int, dict] | Rejected:
    """Parse one Application Load Balancer access-log entry (the format AWS documents under
    "Access log entries"). Returns `(epoch_seconds, record)` or `Rejected`; never raises.

    The record is a flat dict with every key in `ALB_RECORD_KEYS`: the AWS field names (`:` in a
    name becomes `_`, e.g. `target_port_list`), plus `client` (IP without port; IPv6 brackets
    removed) and `client_port`, `target` (`ip:port` as logged) with `target_ip` / `target_port`,
    and the request split into `method`, `url` (as logged, usually absolute), `request_uri` (the
    URL's path and query string, without scheme and host), `path` (the same without the query
    string; see `split_target`) and `protocol`; `path_template` is derived from `path` when a rule
    reads it. Status codes, byte counts, `client_port`,
    `target_port` and `matched_rule_priority` are ints; the three processing times are float
    seconds. `-` is None, as is a processing time of `-1` (not applicable: it must not count in a
    Sum). Fields an older entry lacks are None; fields AWS appended after `conn_trace_id` are kept
    as strings in `extra` (None when there are none)."""
    if type(line) is not str:
        if type(line) is bytes:
            line = line.decode("utf-8", "surrogateescape")
        else:
            return Rejected("malformed_alb_line", f"expected text, got {type(line).__name__}")
    if len(line) > MAX_LINE_CHARS:
        return Rejected("too_long", f"line has {len(line)} characters, limit {MAX_LINE_CHARS}")
    if not line.strip():
        return Rejected("empty", "blank line")
    if not line.startswith(_ALB_PREFIXES):
        return Rejected("malformed_alb_line", f"type must be one of {', '.join(ALB_TYPES)} followed by a space")
    if _ALB_LINE_RE.match(line) is None:
        return Rejected("malformed_alb_line", "not space-separated fields and \"quoted\" strings (unterminated quote?)")
    tokens = _ALB_TOKEN_RE.findall(line)
    n = len(tokens)
    if n < ALB_MIN_FIELDS:
        return Rejected("malformed_alb_line", f"{n} fields; an ALB entry has at least {ALB_MIN_FIELDS} (type .. user_agent)")
    vals: list[str] = []
    for i, (quoted, bare) in enumerate(tokens):
        if i < len(ALB_FIELDS):
            want_quoted = i in _ALB_QUOTED
            if want_quoted != (bare == ""):
                how = "double-quoted" if want_quoted else "unquoted"
                return Rejected("malformed_alb_line", f"field {i + 1} ({ALB_FIELDS[i][0]}) must be {how}")
        if bare:
            vals.append(bare)
        else:
            vals.append(quoted.replace('\\"', '"').replace("\\\\", "\\") if "\\" in quoted else quoted)
    vals.extend(["-"] * (len(ALB_FIELDS) - n))

    ts = parse_alb_time(vals[1])
    if ts is None:
        return Rejected("bad_timestamp", f"time {vals[1][:40]!r} is not ISO 8601 UTC (yyyy-mm-ddTHH:MM:SS.ffffffZ) in 1970-9999")
    client = _split_host_port(vals[3])
    if client is None:
        return Rejected("malformed_alb_line", f"client:port {vals[3][:60]!r} is not ip:port")
    target_text = vals[4]
    if target_text == "-":
        target = target_ip = target_port = None
    else:
        hp = _split_host_port(target_text)
        if hp is None:
            return Rejected("malformed_alb_line", f"target:port {target_text[:60]!r} is not ip:port or '-'")
        target, (target_ip, target_port) = target_text, hp
    times = []
    for i, name in ((5, "request_processing_time"), (6, "target_processing_time"), (7, "response_processing_time")):
        t = _alb_seconds(name, vals[i])
        if type(t) is Rejected:
            return t
        times.append(t)
    codes = []
    for i, name in ((8, "elb_status_code"), (9, "target_status_code")):
        s = vals[i]
        if s == "-":
            codes.append(None)
        elif len(s) == 3 and s.isdigit() and s.isascii() and "1" <= s[0] <= "5":
            codes.append(int(s))
        else:
            return Rejected("bad_status", f"{name} {s[:20]!r} is not a 3-digit HTTP code or '-'")
    sizes = []
    for i, name in ((10, "received_bytes"), (11, "sent_bytes")):
        s = vals[i]
        if s == "-":
            sizes.append(None)
        elif s.isdigit() and s.isascii():
            sizes.append(int(s))
        else:
            return Rejected("bad_bytes", f"{name} {s[:20]!r} is not a number or '-'")
    request = vals[12]
    parts = request.split()
    if len(parts) >= 3:
        method, url, protocol = parts[0], " ".join(parts[1:-1]), parts[-1]
    elif len(parts) == 2:
        method, url, protocol = parts[0], parts[1], None
    elif parts == ["-"]:
        method = url = protocol = None
    else:
        return Rejected("malformed_request_line", f"request {request[:60]!r} is not 'METHOD URL PROTOCOL'")
    method = None if method == "-" else method
    protocol = None if protocol == "-" else protocol
    if url is None or url == "-":
        url = request_uri = path = None
    else:
        request_uri, path = split_target(url)
    prio = vals[20]
    if prio == "-":
        priority = None
    elif _ALB_NUM_RE.match(prio) is not None and "." not in prio:
        priority = int(prio)
    else:
        return Rejected("malformed_alb_line", f"matched_rule_priority {prio[:20]!r} is not an integer or '-'")

    rec = {
        "type": vals[0],
        "time": vals[1],
        "client": client[0],
        "client_port": client[1],
        "target": target,
        "target_ip": target_ip,
        "target_port": target_port,
        "request_processing_time": times[0],
        "target_processing_time": times[1],
        "response_processing_time": times[2],
        "elb_status_code": codes[0],
        "target_status_code": codes[1],
        "received_bytes": sizes[0],
        "sent_bytes": sizes[1],
        "request": None if request == "-" else request,
        "method": method,
        "url": url,
        "request_uri": request_uri,
        "path": path,
        "protocol": protocol,
        "user_agent": None if vals[13] == "-" else vals[13],
        "matched_rule_priority": priority,
        "extra": vals[len(ALB_FIELDS):] or None,
    }
    for name, i in _ALB_PLAIN_IDX:
        v = vals[i]
        rec[name] = None if v == "-" else v
    return ts, rec


def parse_json_or_alb(line: str | bytes, fields: JsonFields = DEFAULT_JSON_FIELDS):
    """What a `"LogFormat": "JSON"` rule reads: an ALB access-log entry (a line starting with an ALB
    type such as `https `) goes through `parse_alb`, anything else through `parse_json`. An ALB
    entry is never valid JSON, so no JSON line changes meaning; rules address ALB fields with
    the same `$.name` paths (`$.elb_status_code`, `$.target`, `$.path`)."""
    if line.startswith(_ALB_PREFIXES if type(line) is str else _ALB_PREFIXES_B):  # looks_like_alb, inlined
        return parse_alb(line)
    return parse_json(line, fields)


#: The parser for each LogFormat a Contributor Insights rule can name: `parser(line, json_fields)`
#: returns `(event time or None, record)` or `Rejected`. The Accumulator reads this registry.
PARSERS = {
    "CLF": parse_clf,
    "JSON": parse_json_or_alb,
}
