"""The chunked fast path of the top-N engine: many lines per step, same result as line by line. Pure.

`Accumulator.add_chunk(data)` hands a block of complete lines (bytes) to `FastPath.feed`, which
computes exactly what `Accumulator.add_line` would have done for each of its lines, in far fewer
Python steps, and commits it to the accumulator at once. It runs only when it can be exact: one
LogFormat for all rules, no explanation counters, no samples, lines without a transport time
(files and raw text records); otherwise `plan()` returns None and every line goes through
`add_line` (the reference implementation the tests compare against).

How one chunk is done:

* **CLF / combined**: one regular expression over the whole decoded chunk (`parse.clf_chunk_regex`,
  the fast line pattern of `parse_clf` made line-anchored) returns, per line, only the fields the
  rules read; lines it does not take (escapes, odd targets, malformed, blank) come back whole and
  go through `parse_clf` one by one (so do lines with a backslash: `parse_clf` reads those with its
  escape-aware pattern). Times are parsed once per distinct string; a rule's status filter picks the
  rows it can match (a set lookup per line, in C) before anything else; a plain rule (one key, Count or
  a Sum of bytes) is counted in C / summed in one loop, any other rule is applied once per distinct
  row (`CompiledRule.apply` on a `ClfRecord`).
* **JSON lines** (needs `msgspec`, else the reference path): the chunk is decoded by msgspec into
  structs that hold only the fields the rules and `JsonFields` read, checked as `parse_json` checks
  them (status an integer 100-599, bytes and latency non-negative, ...); every other key must be one
  the first lines showed, with one of the types they showed (`forbid_unknown_fields`), so msgspec
  validates each value as orjson would (a number orjson reads as infinity is refused by both). A line
  msgspec refuses for any reason (each line is decoded alone, as `parse_json` reads it), a time that
  is not `YYYY-MM-DDTHH:MM:SS[.ffffff]Z` is handed to `parse_json` alone. The event time's second
  (the first 19 characters) gives the window; lines are counted per second in C; the status filter
  picks candidate rows in C; only candidates are applied (specialised loops for plain keys and Sum).

Exactness: contributions are summed per (rule, window, key) and committed only when the order of the
events cannot matter: every touched aggregate is exact and stays within its capacity, and every
value is an integer (floats are added in line order by the reference path instead). Otherwise the
whole chunk goes line by line through `add_line`, in order. Rejected lines are counted per reason,
blank lines are skipped and counted (as `sieve topn` and `decode_record` do), and a line longer than
`parse.MAX_LINE_CHARS` is always parsed alone (`too_long`)."""

from __future__ import annotations

import re
from collections import Counter
from itertools import compress
from operator import attrgetter, itemgetter, not_
from typing import Any

from processors.core import parse as P
from processors.core.decode import Rejected
from processors.core.rules import MAX_KEY_CHARS, CompiledRule, _key_text

try:  # optional: without it, JSON lines take the reference path
    import msgspec
except ImportError:  # pragma: no cover - msgspec is a declared dependency
    msgspec = None

__all__ = ["FastPath", "plan", "split_lines", "CHUNK_BYTES"]

#: What `sieve topn` reads per step (lines are never split across chunks).
CHUNK_BYTES = 1 << 22
_STRIDE = P.MAX_LINE_CHARS // 2  # every stretch of this many bytes must hold a newline (no long line)
_BLANK = "blank"
_OPS = {"GreaterThan": lambda c, a: c > a, "LessThan": lambda c, a: c < a, "EqualTo": lambda c, a: c == a,
        "NotEqualTo": lambda c, a: c != a}  # fmt: skip
_U64 = 2**63 - 1  # msgspec bounds must fit an int64; larger integers (orjson: ints up to 2**64 - 1) take parse_json
_I64 = -(2**63)


def split_lines(data: bytes) -> list[str]:
    """The lines of a chunk as the reference reads them (`sieve topn`'s text mode with newline="\\n"):
    split on `\\n` only (a final `\\n` ends the last line), decoded as UTF-8 with surrogateescape,
    trailing `\\r`/`\\n` removed."""
    if not data:
        return []
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    return [p.decode("utf-8", "surrogateescape").rstrip("\r\n") for p in parts]


def _no_long_line(body: bytes) -> bool:
    """True when no line of `body` is longer than MAX_LINE_CHARS bytes (so none has more characters)."""
    n = len(body)
    if n <= P.MAX_LINE_CHARS:
        return True
    find = body.find
    for start in range(0, n - _STRIDE + 1, _STRIDE):
        if find(b"\n", start, start + _STRIDE) < 0:
            return False
    return True


def _status_set(filters) -> frozenset[int] | None:
    if not filters:
        return None
    return frozenset(c for c in range(100, 600) if all(_OPS[op](c, arg) for op, arg in filters))


def plan(acc) -> "FastPath | None":
    """The fast path for this accumulator, or None when only the reference path is exact for it."""
    if acc.explain is not None or acc.samples_k > 0 or len(acc._formats) != 1:
        return None
    if any(r.reads is None for r in acc.rules):
        return None
    fmt = acc._formats[0]
    if fmt == "CLF":
        return _ClfPath(acc)
    if fmt == "JSON" and msgspec is not None:
        f = acc.json_fields
        named = [f.time, f.status, f.bytes, f.latency, f.path]
        if not f.time or any("." in n for n in named if n) or f.path not in ("path", ""):
            return None
        if any(_UNNAMEABLE.search(n) for n in [*named, *(k for r in acc.rules for k in r.reads)] if n):
            return None  # a field msgspec cannot be told the name of (learned keys like that go to parse_json)
        return _JsonPath(acc)
    return None


class FastPath:
    """Shared bookkeeping: the reference for single lines, and the commit."""

    def __init__(self, acc):
        self.acc = acc
        self.rules: list[CompiledRule] = list(acc.rules)
        self.parser = acc._parsers[0][0]
        self.period = acc.period
        self.chunks_fast = 0  # chunks committed at once
        self.chunks_reference = 0  # chunks that went line by line through add_line

    # -- entry -----------------------------------------------------------------------------------

    def feed(self, data: bytes) -> int:
        """Count every line of `data` (complete lines; see `split_lines`). Returns the blank lines."""
        if not data:
            return 0
        got = None
        if b"\r" not in data and data != b"\n":
            got = self._chunk(data) if _no_long_line(data) else self._around_long_lines(data)
        if got is not None and self._commit(*got):
            self.chunks_fast += 1
            return got[0]
        return self.reference(data)

    def reference(self, data: bytes) -> int:
        """`add_line` for every line, in order (the reference path)."""
        self.chunks_reference += 1
        blank = 0
        add = self.acc.add_line
        for line in split_lines(data):
            if not line.strip():
                blank += 1
                continue
            add(line)
        return blank

    def _around_long_lines(self, body: bytes):
        """A chunk with a line too long for any parser: that line alone, the runs between at once."""
        st = self.new_state()
        run: list[bytes] = []
        lines = body.split(b"\n")
        if body.endswith(b"\n"):
            lines.pop()
        for raw in lines + [None]:
            if raw is not None and len(raw) <= P.MAX_LINE_CHARS:
                run.append(raw)
                continue
            if run:
                got = self._chunk(b"\n".join(run) + b"\n")  # each line ended: an empty last line stays a blank line
                if got is None:
                    return None
                _merge(st, got)
                run = []
            if raw is not None:
                self.add_ref(st, raw.decode("utf-8", "surrogateescape"))
        return tuple(st)

    # -- pieces ----------------------------------------------------------------------------------

    def _chunk(self, body: bytes):
        """(blank, events, parsed, rejected, windows, contrib) of a chunk (complete lines, the last one
        with or without its `\\n`), or None: the reference path."""
        return None

    def ref_line(self, line: str):
        """What add_line would do with one line, without doing it: BLANK, a reject reason, or
        (ts, window start, [hit or None per rule])."""
        if not line.strip():
            return _BLANK
        res = self.parser(line, self.acc.json_fields)
        if type(res) is Rejected:
            return res.reason
        ts, rec = res
        if ts is None:
            return "missing_timestamp"
        return ts, int(ts // self.period) * self.period, [r.apply(rec) for r in self.rules]

    @staticmethod
    def new_state():
        # blank, events, parsed, rejected, windows {start: [count, min_ts, max_ts]}, contrib {(rule i, start): {key: [sum, n]}}
        return [0, 0, 0, Counter(), {}, {}]

    def add_ref(self, st, line: str) -> None:
        got = self.ref_line(line)
        if got is _BLANK:
            st[0] += 1
            return
        st[1] += 1
        if type(got) is str:
            st[3][got] += 1
            return
        ts, start, hits = got
        st[2] += 1
        w = st[4].get(start)
        if w is None:
            st[4][start] = [1, ts, ts]
        else:
            w[0] += 1
            if w[1] is None or ts < w[1]:
                w[1] = ts
            if w[2] is None or ts > w[2]:
                w[2] = ts
        contrib = st[5]
        for i, hit in enumerate(hits):
            if hit is not None:
                d = contrib.get((i, start))
                if d is None:
                    d = contrib[(i, start)] = {}
                cur = d.get(hit[0])
                if cur is None:
                    d[hit[0]] = [hit[1], 1]
                else:
                    cur[0] += hit[1]
                    cur[1] += 1

    def _commit(self, blank, events, parsed, rejected, windows, contrib) -> bool:
        """Apply a chunk's totals if the order of its events cannot matter; else change nothing."""
        acc = self.acc
        cache = acc._cache
        for (i, start), kv in contrib.items():
            agg = cache.get((self.rules[i].name, start))
            held, cap = (0, acc.capacity) if agg is None else (len(agg.values), agg.capacity)
            if agg is not None and (agg.approximate or agg.explain is not None):
                return False
            new = len(kv) if agg is None else sum(1 for k in kv if k not in agg.values)
            if held + new > cap:
                return False
            for s, _ in kv.values():
                if type(s) is not int:
                    return False
        for start in windows:
            for r in self.rules:
                agg = cache.get((r.name, start))
                if agg is not None and agg.explain is not None:
                    return False
        stats = acc.stats
        stats.events += events
        stats.parsed += parsed
        if rejected:
            stats.rejected.update(rejected)
        for start in sorted(windows):
            n, lo, hi = windows[start]
            for r in self.rules:
                agg = cache.get((r.name, start))
                if agg is None:
                    agg = acc._partial(r, start)
                agg.total_events += n
                if lo is not None and (agg.min_ts is None or lo < agg.min_ts):
                    agg.min_ts = lo
                if hi is not None and (agg.max_ts is None or hi > agg.max_ts):
                    agg.max_ts = hi
        for (i, start), kv in contrib.items():
            agg = cache[(self.rules[i].name, start)]
            values = agg.values
            total, samples, inserted = 0, 0, 0
            for k, (s, n) in kv.items():
                cur = values.get(k)
                if cur is None:
                    values[k] = s
                    inserted += 1
                else:
                    values[k] = cur + s
                total += s
                samples += n
            agg.sum += total
            agg.sample_count += samples
            agg.inserted += inserted
        return True


def _merge(st: list, got) -> None:
    """Add one chunk state to another (the parts of a chunk cut around a long line)."""
    st[0] += got[0]
    st[1] += got[1]
    st[2] += got[2]
    st[3].update(got[3])
    for start, (n, lo, hi) in got[4].items():
        w = st[4].get(start)
        if w is None:
            st[4][start] = [n, lo, hi]
        else:
            w[0] += n
            w[1] = lo if w[1] is None else w[1] if lo is None else min(w[1], lo)
            w[2] = hi if w[2] is None else w[2] if hi is None else max(w[2], hi)
    for ik, kv in got[5].items():
        d = st[5].setdefault(ik, {})
        for k, (v, n) in kv.items():
            cur = d.get(k)
            if cur is None:
                d[k] = [v, n]
            else:
                cur[0] += v
                cur[1] += n


# ------------------------------------------------------------------------------------------ CLF


class _ClfPath(FastPath):
    def __init__(self, acc):
        super().__init__(acc)
        need = {"time", "status"}
        for r in self.rules:
            need |= r.reads
        self.regex, self.names = P.clf_chunk_regex(need)
        idx = {n: i for i, n in enumerate(self.names)}
        self.i_time, self.i_status, self.i_fb = idx["time"], idx["status"], len(self.names)
        # (slot, how): 0 as captured, 1 optional (empty: None), 2 optional with its leading `?`/`"`
        self.slots = [(P.CLF_INDEX[n], 2 if n in P.CLF_CHUNK_PREFIXED else 1 if n in P.CLF_CHUNK_OPTIONAL else 0)
                      for n in self.names]  # fmt: skip
        self.allowed = [frozenset(map(str, s)) if (s := _status_set(r.status_filters)) is not None else None
                        for r in self.rules]  # fmt: skip
        # rules done without building a record: one key read as captured, Count or a Sum of bytes, and
        # no filter but status filters (decided by `allowed`)
        self.plain = []
        for r, ok in zip(self.rules, self.allowed):
            n_filters = len(r.definition["Contribution"].get("Filters", ()))
            key = next(iter(r.reads - {"status"} - ({"bytes"} if r.aggregate_on == "Sum" else set())), None)
            simple = (len(r.key_names) == 1 and key is not None and key in idx and key not in P.CLF_CHUNK_OPTIONAL
                      and (not n_filters or (ok is not None and len(r.status_filters) == n_filters))
                      and len(r.reads - {"status", "bytes"}) == 1 and (r.aggregate_on == "Count" or "bytes" in idx)
                      and self._probe(r, key) is not None)  # fmt: skip
            self.plain.append((idx[key], idx.get("bytes") if r.aggregate_on == "Sum" else None) if simple else None)
        self._times: dict[str, Any] = {}

    def _probe(self, r: CompiledRule, key: str):
        """A record on which the rule must hit with key ("k",) (value 7 for a Sum): checks that the rule
        reads `key` as its key and `bytes` as its value, whatever aliases or positions it used."""
        fields = [None] * len(P.CLF_INDEX)
        fields[P.CLF_INDEX[key]] = "k"
        fields[P.CLF_INDEX["bytes"]] = "7"
        ok = self.allowed[self.rules.index(r)]
        fields[P.CLF_INDEX["status"]] = min(ok) if ok else "200"
        rec = tuple.__new__(P.ClfRecord, fields)
        hit = r.apply(rec)
        want = (("k",), 7 if r.aggregate_on == "Sum" else 1)
        return rec if hit == want else None

    def _chunk(self, body: bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        st = self.new_state()
        rows = self.regex.findall(text)
        if len(rows) == text.count("\n") + 1:
            if text.endswith("\n"):
                rows.pop()  # the empty "line" after the final newline
            self._rows(st, text, rows)
            return tuple(st)
        # a match ran over a line end (a malformed line): blocks of lines, and line by line where that happens
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        for b in range(0, len(lines), _BLOCK):
            part = "\n".join(lines[b:b + _BLOCK])
            rows = self.regex.findall(part)
            if len(rows) == part.count("\n") + 1:
                self._rows(st, part, rows)
            else:
                for line in lines[b:b + _BLOCK]:
                    self.add_ref(st, line)
        return tuple(st)

    def _rows(self, st, text: str, rows: list) -> None:
        i_status, i_time, i_fb = self.i_status, self.i_time, self.i_fb
        if "\\" in text:  # parse_clf reads lines with a backslash with its escape-aware pattern: alone
            find, count = text.find, text.count
            pos, line, last = find("\\"), 0, 0
            while pos >= 0:
                line += count("\n", last, pos)
                start = text.rfind("\n", 0, pos) + 1
                end = find("\n", pos)
                end = len(text) if end < 0 else end
                rows[line] = ("",) * i_fb + (text[start:end],)
                last = end
                pos = find("\\", end)
        statuses = list(map(itemgetter(i_status), rows))
        if "" in statuses:  # lines the fast pattern did not take (or with a backslash): parse_clf, one by one
            keep = list(map(bool, statuses))
            for row in compress(rows, map(not_, keep)):
                self.add_ref(st, row[i_fb])
            rows, statuses = list(compress(rows, keep)), list(compress(statuses, keep))
        if not rows:
            return
        times = list(map(itemgetter(i_time), rows))
        per_time = Counter(times)
        cache, period = self._times, self.period
        windows = st[4]
        wof: dict[str, int] = {}
        bad = []
        for t, n in per_time.items():
            got = cache.get(t)
            if got is None:
                ts = P.parse_clf_time(t)
                if len(cache) > 100_000:
                    cache.clear()
                got = cache[t] = (ts, None if ts is None else int(ts // period) * period)
            ts, start = got
            st[1] += n
            if ts is None:
                st[3]["bad_timestamp"] += n
                bad.append(t)
                continue
            st[2] += n
            wof[t] = start
            w = windows.get(start)
            if w is None:
                windows[start] = [n, ts, ts]
            else:
                w[0] += n
                if ts < w[1]:
                    w[1] = ts
                if ts > w[2]:
                    w[2] = ts
        if bad:
            keep = list(map(wof.__contains__, times))
            rows, statuses, times = list(compress(rows, keep)), list(compress(statuses, keep)), list(compress(times, keep))
        starts = set(wof.values())
        single = next(iter(starts)) if len(starts) == 1 else None
        for i, r in enumerate(self.rules):
            ok = self.allowed[i]
            if ok is not None:
                pick = list(map(ok.__contains__, statuses))
                sel = list(compress(rows, pick))
                sel_times = list(compress(times, pick)) if single is None else None
            else:
                sel, sel_times = rows, times
            if sel:
                self._apply(st, i, r, sel, single if single is not None else list(map(wof.__getitem__, sel_times)))

    def _apply(self, st, i: int, r: CompiledRule, rows: list, starts) -> None:
        """Add rule i's contributions of rows that passed its status filter (`starts`: their windows, or
        the one window of them all)."""
        contrib = st[5]
        single = starts if type(starts) is int else None
        p = self.plain[i]
        if p is not None:
            ki, bi = p
            keys = map(itemgetter(ki), rows)
            if bi is None:
                counted = Counter(keys) if single is not None else Counter(zip(starts, keys))
                groups: dict = {}
                for k, n in counted.items():
                    w, k = (single, k) if single is not None else k
                    groups.setdefault(w, []).append((k, n, n))
            else:
                acc: dict = {}
                get = acc.get
                if single is not None:
                    for k, b in zip(keys, map(itemgetter(bi), rows)):
                        if b != "-":
                            cur = get(k)
                            if cur is None:
                                acc[k] = [int(b), 1]
                            else:
                                cur[0] += int(b)
                                cur[1] += 1
                    groups = {single: [(k, v, n) for k, (v, n) in acc.items()]}
                else:
                    for w, k, b in zip(starts, keys, map(itemgetter(bi), rows)):
                        if b != "-":
                            cur = get((w, k))
                            if cur is None:
                                acc[(w, k)] = [int(b), 1]
                            else:
                                cur[0] += int(b)
                                cur[1] += 1
                    groups = {}
                    for (w, k), (v, n) in acc.items():
                        groups.setdefault(w, []).append((k, v, n))
            limit = MAX_KEY_CHARS
            for w, items in groups.items():
                d = contrib.get((i, w))
                if d is None:
                    d = contrib[(i, w)] = {}
                for k, v, n in items:
                    key = (k,) if len(k) <= limit else (_key_text(k),)
                    cur = d.get(key)
                    if cur is None:
                        d[key] = [v, n]
                    else:
                        cur[0] += v
                        cur[1] += n
            return
        # any other shape: the rule itself on each distinct row, as a ClfRecord (fields not captured stay
        # None: the rule does not read them)
        slots = self.slots
        new_record, Record = tuple.__new__, P.ClfRecord
        blank_record = [None] * len(P.CLF_INDEX)
        counted = Counter(rows) if single is not None else Counter(zip(starts, rows))
        for item, n in counted.items():
            w, row = (single, item) if single is not None else item
            fields = blank_record[:]
            for (slot, how), v in zip(slots, row):
                if how and not v:
                    v = None
                elif how == 2:
                    v = v[1:]
                fields[slot] = v
            hit = r.apply(new_record(Record, fields))
            if hit is None:
                continue
            d = contrib.get((i, w))
            if d is None:
                d = contrib[(i, w)] = {}
            cur = d.get(hit[0])
            if cur is None:
                d[hit[0]] = [hit[1] * n, n]
            else:
                cur[0] += hit[1] * n
                cur[1] += n


# ----------------------------------------------------------------------------------------- JSON

_HEAD = itemgetter(slice(0, 19))
_TAIL = itemgetter(slice(19, None))
_HEAD_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
_TAIL_RE = re.compile(r"(?:\.([0-9]{1,6}))?Z\Z")
_H0, _H0_SECONDS = "2000-01-01T00:00:00", 946684800
_MAX_FAST_SECONDS = 4_000_000_000  # below this a float holds a microsecond fraction below the next second
_LEARN_LINES = 256
_UNNAMEABLE = re.compile(r'["\\\x00-\x1f]')  # what msgspec refuses in a renamed field name
_BLOCK = 64
_MAX_BUILDS = 16  # the struct is rebuilt at most this often when lines show new keys or types


def _tail_us(tail: str) -> int | None:
    """The microseconds a time's tail (`.123Z`, `Z`) adds to its second, if the reference reads
    `head + tail` as the head's second plus that fraction (checked once per tail); else None."""
    m = _TAIL_RE.match(tail)
    if m is None:
        return None
    us = int((m.group(1) or "").ljust(6, "0"))
    want = (_H0_SECONDS * 10**6 + us) / 10**6
    if want.is_integer():
        want = int(want)
    got = P._json_time(_H0 + tail)
    return us if type(got) is type(want) and got == want else None


class _JsonPath(FastPath):
    def __init__(self, acc):
        super().__init__(acc)
        f = acc.json_fields
        self.f = f
        self.reads: set[str] = set()
        for r in self.rules:
            self.reads |= r.reads
        self.dec = None  # built from the lines seen (their keys and value types)
        self.builds = 0
        self.keys: dict[str, str] = {}  # JSON key -> struct attribute
        self.learned: dict[str, set] = {}
        self.tails: dict[str, int | None] = {}  # tail -> microseconds (None: not one the fast path takes)
        self.heads: dict[str, int | None] = {}  # head -> second (None: not one the fast path takes)
        on_status = f.status == "status"
        self.allowed = [_status_set(r.status_filters) if on_status else None for r in self.rules]
        self.plain = [self._plain(i, r) for i, r in enumerate(self.rules)]
        self._derived: dict[str, tuple[str, str]] = {}

    def _plain(self, i: int, r: CompiledRule) -> bool:
        """One top-level key (not a derived one), every filter a status filter the prefilter decides
        exactly, and Count or a Sum over integers: the specialised loop gives what `apply` would."""
        n_filters = len(r.definition["Contribution"].get("Filters", ()))
        if n_filters and (self.allowed[i] is None or len(r.status_filters) != n_filters):
            return False
        if len(r.key_names) != 1 or r.key_names[0][2:] in ("path", "request_uri", "path_template"):
            return False
        if r.aggregate_on == "Sum":
            v = r.value_of[2:]
            return v == self.f.bytes or v == self.f.status
        return True

    # -- the struct ------------------------------------------------------------------------------

    def _learn(self, raws) -> bool:
        """Note the keys and value types of these lines; True if any is new."""
        import orjson

        new = False
        learned = self.learned
        for raw in raws:
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if type(obj) is dict:
                for k, v in obj.items():
                    seen = learned.get(k)
                    if seen is None:
                        seen = learned[k] = set()
                    if type(v) not in seen:
                        seen.add(type(v))
                        new = True
        return new

    def _build(self) -> None:
        from typing import Annotated, Union

        from msgspec import UNSET, Meta, UnsetType

        self.builds += 1
        f = self.f
        Int = Annotated[int, Meta(ge=_I64, le=_U64)]  # orjson reads larger integers as floats
        special = {
            f.status: Union[Annotated[int, Meta(ge=100, le=599)], UnsetType],
            f.bytes: Union[Annotated[int, Meta(ge=0, le=_U64)], None, UnsetType],
            f.latency: Union[Annotated[int, Meta(ge=0, le=_U64)], Annotated[float, Meta(ge=0)], None, UnsetType],
            f.path: Union[str, None, UnsetType],
        }
        special.pop("", None)
        # values no rule reads only need to be valid JSON as orjson reads it: numbers as floats (msgspec
        # refuses what orjson reads as infinity), arrays and objects one level deep (deeper: parse_json)
        scalar = Union[str, float, bool, None]
        loose = {str: str, int: float, float: float, bool: bool, type(None): None, dict: dict[str, scalar],
                 list: list[scalar]}  # fmt: skip
        exact = {str: str, int: Int, float: float, bool: bool, type(None): None}  # read by a rule: as orjson gives it
        # msgspec cannot rename a field to a key holding a backslash, a quote or a control character: such
        # keys are left out, so lines that have one are not taken by the struct and go to parse_json
        learned = [k for k in self.learned if not _UNNAMEABLE.search(k)]
        keys = dict.fromkeys([f.time, *special, *sorted(self.reads - {"path_template"}), *learned])
        if "path_template" in self.reads:
            keys["path_template"] = None
            keys.setdefault("request_uri", None)
        if "request_uri" in self.reads:
            keys.setdefault("request_uri", None)
        fields = []
        self.keys = {}
        for n, k in enumerate(keys):
            attr = f"f{n}"
            self.keys[k] = attr
            if k == f.time:
                fields.append((attr, str))
            elif k in special:
                fields.append((attr, special[k], UNSET))
            else:
                seen = self.learned.get(k) or {str}
                table = exact if k in self.reads or k in ("path_template", "request_uri") else loose
                types = tuple(dict.fromkeys(table[t] for t in seen if t in table)) or (str,)
                fields.append((attr, Union[types + (UnsetType,)], UNSET))  # type: ignore[valid-type]
        cls = msgspec.defstruct("Row", fields, rename=dict(zip(self.keys.values(), self.keys)), gc=False,
                                forbid_unknown_fields=True)  # fmt: skip
        self.dec = msgspec.json.Decoder(cls)
        self.get = {k: attrgetter(a) for k, a in self.keys.items()}
        self.UNSET = UNSET

    # -- one chunk -------------------------------------------------------------------------------

    def _decode(self, lines: list[bytes]):
        """The rows of these lines, one each (msgspec on each line alone, as `parse_json` reads each line
        alone), or None when msgspec refuses any of them."""
        try:
            return list(map(self.dec.decode, lines))
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None

    def _chunk(self, body: bytes):
        lines = body.split(b"\n")
        if body.endswith(b"\n"):
            lines.pop()
        if self.dec is None:
            self._learn(lines[:_LEARN_LINES])
            self._build()
        st = self.new_state()
        rows = self._decode(lines)
        if rows is not None and self._rows(st, rows):
            return tuple(st)
        # in blocks: blocks msgspec takes go fast, the lines of the others through parse_json
        st = self.new_state()
        for b in range(0, len(lines), _BLOCK):
            part = lines[b:b + _BLOCK]
            rows = self._decode(part)
            if rows is None and self.builds < _MAX_BUILDS and self._learn(part):
                self._build()  # keys or types the first lines did not show
                rows = self._decode(part)
            if rows is not None and self._rows(st, rows):
                continue
            for raw in part:
                self.add_ref(st, raw.decode("utf-8", "surrogateescape"))
        return tuple(st)

    def _rows(self, st, rows) -> bool:
        """Add decoded rows to the chunk state; False (nothing added) if a time is not one the fast path takes."""
        times = list(map(self.get[self.f.time], rows))
        heads = list(map(_HEAD, times))
        per_head = Counter(heads)
        tail_us = self.tails
        for t in set(map(_TAIL, times)):
            if t not in tail_us:
                tail_us[t] = _tail_us(t)
            if tail_us[t] is None:
                return False
        secs = self.heads
        period = self.period
        wof: dict[str, int] = {}
        by_window: dict[int, list[str]] = {}
        for h in per_head:
            s = secs.get(h, -1)
            if s == -1:
                s = None
                if _HEAD_RE.match(h):
                    got = P._json_time(h + "Z")
                    if type(got) is int and 0 <= got < _MAX_FAST_SECONDS:
                        s = got
                if len(secs) > 100_000:
                    secs.clear()
                secs[h] = s
            if s is None:
                return False
            start = int(s // period) * period
            wof[h] = start
            by_window.setdefault(start, []).append(h)
        # each window's earliest and latest time, only where it can move what is known already (the
        # times of one second differ in their tails only: the largest fraction is the latest time)
        json_time = P._json_time
        cache, name = self.acc._cache, self.rules[0].name
        found = []
        for start, hs in by_window.items():
            lo_h, hi_h = min(hs), max(hs)
            agg, w = cache.get((name, start)), st[4].get(start)
            known = [x for x in (agg.min_ts if agg else None, w[1] if w else None) if x is not None]
            lo = None
            if not known or min(known) > secs[lo_h]:
                tails = set(map(_TAIL, compress(times, map(lo_h.__eq__, heads))))
                lo = json_time(lo_h + min(tails, key=tail_us.__getitem__))
            known = [x for x in (agg.max_ts if agg else None, w[2] if w else None) if x is not None]
            hi = None
            if not known or max(known) < secs[hi_h] + 1:
                tails = set(map(_TAIL, compress(times, map(hi_h.__eq__, heads))))
                hi = json_time(hi_h + max(tails, key=tail_us.__getitem__))
            if type(lo) is Rejected or type(hi) is Rejected:
                return False
            found.append((start, sum(per_head[h] for h in hs), lo, hi))
        n = len(rows)
        st[1] += n
        st[2] += n
        windows = st[4]
        for start, count, lo, hi in found:
            w = windows.get(start)
            if w is None:
                windows[start] = [count, lo, hi]
            else:
                w[0] += count
                if lo is not None and (w[1] is None or lo < w[1]):
                    w[1] = lo
                if hi is not None and (w[2] is None or hi > w[2]):
                    w[2] = hi
        single = next(iter(by_window)) if len(by_window) == 1 else None
        for i, r in enumerate(self.rules):
            self._apply(st, i, r, rows, heads, wof, single)
        return True

    def _apply(self, st, i: int, r: CompiledRule, rows, heads, wof, single) -> None:
        ok = self.allowed[i]
        if ok is not None:
            pick = list(map(ok.__contains__, map(self.get[self.f.status], rows)))
            rows = list(compress(rows, pick))
            if not rows:
                return
            if single is None:
                heads = list(compress(heads, pick))
        contrib = st[5]
        starts = [single] * len(rows) if single is not None else list(map(wof.__getitem__, heads))
        UNSET = self.UNSET
        if self.plain[i]:
            ks = list(map(self.get[r.key_names[0][2:]], rows))
            if r.aggregate_on == "Sum":
                vs = list(map(self.get[r.value_of[2:]], rows))
                if vs.count(None) or vs.count(UNSET):  # rows without a value do not count
                    keep = [v is not None and v is not UNSET for v in vs]
                    ks, vs = list(compress(ks, keep)), list(compress(vs, keep))
                    starts = list(compress(starts, keep))
            groups = [(single, ks, vs if r.aggregate_on == "Sum" else None)] if single is not None else \
                [(w, list(compress(ks, m)), list(compress(vs, m)) if r.aggregate_on == "Sum" else None)
                 for w in set(starts) for m in [list(map(w.__eq__, starts))]]  # fmt: skip
            for start, ks, vs in groups:
                counts = Counter(ks)
                counts.pop(None, None)
                counts.pop(UNSET, None)
                if not counts:
                    continue
                if vs is None:
                    sums = counts
                else:
                    sums = {}
                    get = sums.get
                    for k, v in zip(ks, vs):
                        sums[k] = get(k, 0) + v
                d = contrib.get((i, start))
                if d is None:
                    d = contrib[(i, start)] = {}
                for k, n in counts.items():
                    if type(k) is not str or len(k) > MAX_KEY_CHARS:
                        key = (_key_text(k),)
                    else:
                        key = (k,)
                    cur = d.get(key)
                    if cur is None:
                        d[key] = [sums[k], n]
                    else:
                        cur[0] += sums[k]
                        cur[1] += n
            return
        # any other shape: the rule itself on a dict of what it reads (as parse_json would give it)
        get = self.get
        readers = [(k, get[k]) for k in sorted(r.reads | {"path", "request_uri"}) if k in get]
        apply = r.apply
        derive = self._derive
        derives = self.f.path == "path"  # parse_json derives path and request_uri from the configured path field
        for start, row in zip(starts, rows):
            rec = {}
            for k, g in readers:
                v = g(row)
                if v is not UNSET:
                    rec[k] = v
            p = rec.get("path") if derives else None
            if type(p) is str and p:
                request_uri, rec["path"] = derive(p)
                if "request_uri" not in rec:
                    rec["request_uri"] = request_uri
            hit = apply(rec)
            if hit is None:
                continue
            d = contrib.get((i, start))
            if d is None:
                d = contrib[(i, start)] = {}
            cur = d.get(hit[0])
            if cur is None:
                d[hit[0]] = [hit[1], 1]
            else:
                cur[0] += hit[1]
                cur[1] += 1

    def _derive(self, target: str) -> tuple[str, str]:
        got = self._derived.get(target)
        if got is None:
            got = P.split_target(target)
            if len(self._derived) > 100_000:
                self._derived.clear()
            self._derived[target] = got
        return got

