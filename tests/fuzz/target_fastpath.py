"""The fuzz target of the chunked fast path (processors/core/fastpath.py, `Accumulator.add_chunk`, what
`sieve topn` feeds files through) against its documented reference: `add_line` on every line of the
same bytes, in order, on another Accumulator with the same rules.

Inputs: chunks of CLF / combined or JSON lines (with ALB entries among the JSON ones): real generated
lines, moved to other windows and to odd times (before 1970, year 1 and 9999, leap seconds, 31 February,
offsets, numeric epochs of every size), mutated (tests/fuzz/mutate.py), and edge lines: blank lines,
`\\r`, lines over `parse.MAX_LINE_CHARS`, invalid UTF-8, JSON lines that are not objects, duplicate keys,
huge integers. Rules: 1-4 of the shipped ones (rules/, rules/json/, rules/alb/) and extra ones with status
filters, Count and Sum, one and two keys; capacities from 1 to the default (Space-Saving eviction), periods
from 1 s to an hour.

The property: the same blank-line count, the same stats (events, parsed, rejected per reason), the same
set of (rule, window) partials and, per partial, the same serialised form (values and their types, sum,
sample_count, total_events, min_ts, max_ts, approximate, floor, errors, inserted, capacity). A difference
is a `FastPathMismatch` naming the first field that differs.

The reference is written here from `add_chunk`'s docstring (split on `\\n`, a final `\\n` ends the last
line, UTF-8 with surrogateescape, trailing `\\r`/`\\n` removed, blank lines skipped and counted), not
taken from fastpath.py."""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

from tests.fuzz import corpus
from tests.fuzz.mutate import any_token, mutated_text

RULE_SCHEMA = {"Name": "CloudWatchLogRule", "Version": 1}

#: extra rules beside the shipped ones: status filters of every operator, Count and Sum, one and two keys
CLF_EXTRA = [
    {"Keys": ["client", "path"], "Filters": [{"Match": "status", "In": ["500", "503"]}]},
    {"Keys": ["client"], "ValueOf": "bytes", "AggregateOn": "Sum", "Filters": [{"Match": "status", "LessThan": 400}]},
    {"Keys": ["request_uri"], "Filters": [{"Match": "status", "NotEqualTo": 200}]},
    {"Keys": ["client", "user_agent"], "Filters": [{"Match": "status", "EqualTo": 404}]},
    {"Keys": ["method", "status"]},
    {"Keys": ["path_template"], "ValueOf": "bytes", "AggregateOn": "Sum",
     "Filters": [{"Match": "status", "GreaterThan": 299}, {"Match": "status", "LessThan": 500}]},
]
JSON_EXTRA = [
    {"Keys": ["$.path_template"], "Filters": [{"Match": "$.status", "GreaterThan": 499}]},
    {"Keys": ["$.request_uri", "$.client"], "Filters": [{"Match": "$.method", "In": ["GET"]}]},
    {"Keys": ["$.client"], "Filters": [{"Match": "$.status", "LessThan": 450}, {"Match": "$.status", "NotEqualTo": 200}]},
    {"Keys": ["$.client"], "ValueOf": "$.bytes", "AggregateOn": "Sum", "Filters": [{"Match": "$.status", "EqualTo": 500}]},
    {"Keys": ["$.client", "$.path"], "ValueOf": "$.bytes", "AggregateOn": "Sum"},
    {"Keys": ["$.client"], "ValueOf": "$.latency_ms", "AggregateOn": "Sum"},
    {"Keys": ["$.status"], "Filters": [{"Match": "$.status", "In": ["500", "502", "404"]}]},
]


@functools.cache
def rule_pool(fmt: str) -> tuple:
    """The rules a `fmt` ("clf" / "json") input picks from: the shipped files and the extras, unique names."""
    from processors.config.rule_files import load_rule_file
    from processors.core.rules import compile_rule

    dirs = {"clf": ["rules"], "json": ["rules/json", "rules/alb"]}[fmt]
    out = []
    for d in dirs:
        for p in sorted((corpus.ROOT / d).glob("*.json")):
            r = load_rule_file(p)
            r.name = f"{d.replace('/', '-')}-{p.stem}"
            out.append(r)
    for i, c in enumerate(CLF_EXTRA if fmt == "clf" else JSON_EXTRA):
        c = dict(c)
        agg = c.pop("AggregateOn", "Count")
        value = {"ValueOf": c.pop("ValueOf")} if "ValueOf" in c else {}
        doc = {"Schema": RULE_SCHEMA, "LogGroupNames": ["/a"], "LogFormat": "CLF" if fmt == "clf" else "JSON",
               "Contribution": {**c, **value}, "AggregateOn": agg}
        out.append(compile_rule(doc, f"{fmt}-extra{i}"))
    return tuple(out)


# ----------------------------------------------------------------------------------------- times

_BASE = datetime(2024, 3, 4, 10, 0, 0, tzinfo=timezone.utc)
_ODD_CLF_TIMES = ("01/Jan/1969:23:59:59 +0000", "01/Jan/0001:00:00:00 +0000", "01/Jan/0001:00:00:00 +1400",
                  "31/Dec/9999:23:59:59 +0000", "31/Dec/9999:23:59:59 -1400", "29/Feb/2023:10:00:00 +0000",
                  "31/Feb/2024:10:00:00 +0000", "04/Mar/2024:10:00:60 +0000", "04/Mar/2024:24:00:00 +0000",
                  "04/Mar/2024:10:00:00 +2400", "04/mar/2024:10:00:00 +0000", "01/Jan/1970:00:00:00 +0000",
                  "01/Jan/1970:00:00:00 +0100", "01/Jan/1970:00:59:59 +0100", "31/Dec/1969:23:59:59 -0000",
                  "4/Mar/2024:10:00:00 +0000", "04/Mar/2024:10:00:00", "04/Mar/2024:10:00:00 Z")  # fmt: skip
_ODD_JSON_TIMES = ("1969-12-31T23:59:59Z", "1969-12-31T23:59:59.5Z", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
                   "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-14:00", "2024-03-04T10:00:60Z", "2024-02-30T10:00:00Z",
                   "2024-03-04T10:00:00.1234567Z", "2024-03-04T10:00:00z", "2024-03-04T10:00:00+09:00", "2024-03-04 10:00:00Z",
                   "2024-03-04T10:00:00", "2024-03-04T10:00:59.9999995Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000001Z",
                   "04/Mar/2024:10:00:03 +0000", "01/Jan/1969:00:00:00 +0000", "", "now",
                   0, -1, -0.5, 0.5, 1709546400, 1709546400.25, 1709546400123, 2**53, 2**63, 2**64 - 1, 2**64, 10**30, 1e300,
                   -1e300, 253402300799, 253402300800, True, None, [1], {"t": 1})  # fmt: skip


@st.composite
def _clf_time(draw) -> str:
    if draw(st.integers(0, 4)):
        dt = _BASE + timedelta(seconds=draw(st.integers(-400, 4000)))
        off = draw(st.sampled_from((0, 0, 0, 60, -420, 330, 14 * 60)))
        dt = dt.astimezone(timezone(timedelta(minutes=off)))
        sign = "-" if off < 0 else "+"
        return dt.strftime("%d/%b/%Y:%H:%M:%S ") + f"{sign}{abs(off) // 60:02d}{abs(off) % 60:02d}"
    return draw(st.sampled_from(_ODD_CLF_TIMES))


@st.composite
def _json_time(draw):
    if draw(st.integers(0, 4)):
        dt = _BASE + timedelta(seconds=draw(st.integers(-400, 4000)), microseconds=draw(st.sampled_from((0, 0, 123000, 999999, 1))))
        s = dt.strftime("%Y-%m-%dT%H:%M:%S")
        frac = draw(st.sampled_from(("", ".%03d", ".%06d")))
        if frac == ".%03d":
            s += ".%03d" % (dt.microsecond // 1000)
        elif frac:
            s += ".%06d" % dt.microsecond
        return s + "Z"
    return draw(st.sampled_from(_ODD_JSON_TIMES))


# ----------------------------------------------------------------------------------------- lines

_CLF_TIME_RE = re.compile(r"\[[^\]]*\]")
_BAD_BYTES = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"\xf4\x90\x80\x80", b"\xe2\x82")


def _long_clf(n: int) -> str:
    return '1.2.3.4 - - [04/Mar/2024:10:00:05 +0000] "GET /' + "x" * n + ' HTTP/1.1" 500 1 "-" "-"'


def _long_json(n: int) -> str:
    return '{"time":"2024-03-04T10:00:05Z","status":500,"client":"1.2.3.4","bytes":1,"path":"/' + "x" * n + '"}'


@st.composite
def _clf_line(draw) -> str:
    kind = draw(st.sampled_from(("sample", "sample", "sample", "moved", "moved", "mutated", "edge", "text")))
    line = draw(st.sampled_from(corpus.log_lines("combined")))
    if kind == "sample":
        return line
    if kind == "moved":
        line = _CLF_TIME_RE.sub(lambda m: "[" + draw(_clf_time()) + "]", line, count=1)
        if draw(st.booleans()):  # other statuses and sizes (status filters, Sum of bytes)
            line = re.sub(r'" [0-9]{3} ([0-9]+|-)', lambda m: '" ' + draw(st.sampled_from(("200", "404", "500", "503", "302")))
                          + " " + draw(st.sampled_from(("-", "0", "1", "18446744073709551616", "9" * 30, "12"))), line, count=1)
        return line
    if kind == "mutated":
        return draw(mutated_text(st.just(line), 3, allow_surrogates=draw(st.booleans())))
    if kind == "edge":
        from processors.core.parse import MAX_LINE_CHARS

        return draw(st.sampled_from((
            "", " ", "\t", "  \t ", _long_clf(MAX_LINE_CHARS), _long_clf(MAX_LINE_CHARS - 60), _long_clf(MAX_LINE_CHARS - 100),
            line + "   ", "   " + line, line.replace('"', '\\"', 2), line + " 0.003 upstream", line.replace("GET", "G\\\"ET"),
            line.replace(" HTTP/", "? HTTP/"), line.replace("/", "//", 1), '1.2.3.4 - - [04/Mar/2024:10:00:05 +0000] "GET /c" 500 1',
            "garbage", "-", '"')))
    return draw(st.text(max_size=60))


@st.composite
def _json_obj_line(draw) -> str:
    obj = json.loads(draw(st.sampled_from(corpus.log_lines("json"))))
    if draw(st.booleans()):
        obj["time"] = draw(_json_time())
    for key, values in (("status", st.sampled_from((200, 404, 500, 503, "500", 500.0, 2**64, -500, None, True, 99, 600))),
                        ("bytes", st.sampled_from((0, 1, -1, "-", 2**63 - 1, 2**63, 2**64, 10**30, 1.5, None, "12"))),
                        ("latency_ms", st.sampled_from((0, 1.5, -1, 1e300, "3", None, 2**70))),
                        ("client", st.sampled_from(("10.0.0.1", "", None, 5, "ü" * 3, "x" * 300))),
                        ("path", st.sampled_from(("/a?b=1", "https://h.example/x?y", "", None, 7, "/ü/é", "/a/123/b")))):
        if draw(st.integers(0, 5)) == 0:
            v = draw(values)
            if v is None and draw(st.booleans()):
                obj.pop(key, None)
            else:
                obj[key] = v
    if draw(st.integers(0, 6)) == 0:
        obj[draw(st.sampled_from(("x", "extra", "nested")))] = draw(st.sampled_from(([1, 2], {"a": 1}, 1e400 if False else 1e300, "s")))
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from(((",", ":"), (", ", ": "), (",", " : ")))))
    extra = draw(st.sampled_from(("", "", "", "dup_status", "dup_time", "huge", "inf")))
    if extra == "dup_status":
        text = text[:-1] + ',"status":' + draw(st.sampled_from(("200", "500", '"x"'))) + "}"
    elif extra == "dup_time":
        text = text[:-1] + ',"time":"2024-03-04T10:30:00Z"}'
    elif extra == "huge":
        text = text[:-1] + ',"big":' + "9" * draw(st.sampled_from((20, 400))) + "}"
    elif extra == "inf":
        text = text[:-1] + ',"big":1e400}'
    return text


@st.composite
def _json_line(draw) -> str:
    kind = draw(st.sampled_from(("sample", "sample", "obj", "obj", "obj", "alb", "mutated", "edge", "text")))
    line = draw(st.sampled_from(corpus.log_lines("json")))
    if kind == "sample":
        return line
    if kind == "obj":
        return draw(_json_obj_line())
    if kind == "alb":
        alb = draw(st.sampled_from(corpus.log_lines("alb")))
        return draw(mutated_text(st.just(alb), 1)) if draw(st.integers(0, 3)) == 0 else alb
    if kind == "mutated":
        return draw(mutated_text(st.just(line), 3, allow_surrogates=draw(st.booleans())))
    if kind == "edge":
        from processors.core.parse import MAX_LINE_CHARS

        return draw(st.sampled_from((
            "", " ", "\t", _long_json(MAX_LINE_CHARS), _long_json(MAX_LINE_CHARS - 80), _long_json(MAX_LINE_CHARS - 120),
            "[1, 2]", '"str"', "1", "null", "true", "{}", "{", "}", "[]", '{"time":"2024-03-04T10:00:05Z"}',
            line + "   ", "  " + line, line + line, line[:-1], line + ",", '{"time":"2024-03-04T10:00:05Z", "status" : 500 , "path" : "/s"}',
            '{"time":"2024-03-04T10:00:05Z","st\\u0061tus":503,"path":"/esc\\u002fkey","client":"c"}',
            '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/sur\\ud800","client":"c"}',
            '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/ctl\x01","client":"c"}',
            "http 2024 bad alb")))
    return draw(st.one_of(st.text(max_size=60), any_token))


@st.composite
def fastpath_input(draw):
    """(fmt, rule indices, capacity, period, chunks): chunks of complete lines (the last may lack its `\\n`)."""
    fmt = draw(st.sampled_from(("clf", "json")))
    pool = rule_pool(fmt)
    rules = tuple(sorted(draw(st.sets(st.integers(0, len(pool) - 1), min_size=1, max_size=4))))
    capacity = draw(st.sampled_from((10_000, 10_000, 10_000, 1, 2, 3, 5, 50)))
    period = draw(st.sampled_from((60, 60, 60, 1, 300, 3600)))
    line = _clf_line() if fmt == "clf" else _json_line()
    lines = draw(st.lists(line, min_size=1, max_size=40))
    if draw(st.integers(0, 3)) == 0:  # behind a background of clean lines: the JSON struct is learnt from the
        # first 256 lines, then odd lines bring new keys and types (rebuilds, fallbacks); long CLF blocks
        clean = corpus.log_lines("combined" if fmt == "clf" else "json")
        n = draw(st.sampled_from((100, 300, 700)))
        background = [clean[i % len(clean)] for i in range(n)]
        at = draw(st.sampled_from((0, n // 2, n)))
        lines = background[:at] + lines + background[at:]
    out = []
    cr = draw(st.integers(0, 5)) == 0  # \r only in some inputs: a chunk holding one goes line by line
    for ln in lines:
        b = ln.encode("utf-8", "surrogatepass") if _has_surrogate(ln) else ln.encode()  # a lone surrogate: invalid UTF-8
        if draw(st.integers(0, 15)) == 0:  # invalid UTF-8
            i = draw(st.integers(0, len(b)))
            b = b[:i] + draw(st.sampled_from(_BAD_BYTES)) + b[i:]
        b = b.replace(b"\n", b" ")  # one line stays one line
        out.append(b + (draw(st.sampled_from((b"\r\n", b"\r", b"\n"))) if cr else b"\n"))
    data = b"".join(out)
    if draw(st.booleans()):
        data = data[:-1]  # no final newline
    # cut at line ends into chunks
    ends = [i + 1 for i, c in enumerate(data) if c == 10]
    cuts = sorted(draw(st.sets(st.sampled_from(ends), max_size=6))) if ends else []
    chunks, prev = [], 0
    for c in cuts:
        if c > prev:
            chunks.append(data[prev:c])
            prev = c
    if prev < len(data):
        chunks.append(data[prev:])
    return fmt, rules, capacity, period, chunks


def _has_surrogate(s: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in s)


# ----------------------------------------------------------------------------------------- check

class FastPathMismatch(AssertionError):
    """add_chunk and add_line on each line disagree."""


def reference_lines(data: bytes) -> list[str]:
    """The lines of a chunk as add_chunk's docstring defines them."""
    if not data:
        return []
    parts = data.split(b"\n")
    if data.endswith(b"\n"):
        parts.pop()
    return [p.decode("utf-8", "surrogateescape").rstrip("\r\n") for p in parts]


def _fields(agg) -> dict:
    return {"values": dict(sorted(agg.values.items())), "value_types": sorted({type(v).__name__ for v in agg.values.values()}),
            "sum": agg.sum, "sum_type": type(agg.sum).__name__, "sample_count": agg.sample_count, "total_events": agg.total_events,
            "min_ts": agg.min_ts, "max_ts": agg.max_ts, "ts_types": (type(agg.min_ts).__name__, type(agg.max_ts).__name__),
            "approximate": agg.approximate, "floor": agg.floor, "errors": dict(sorted(agg.errors.items())),
            "inserted": agg.inserted, "capacity": agg.capacity, "late_events": agg.late_events}


def run_both(fmt: str, rules, capacity: int, period: int, chunks: list[bytes]):
    """(reference accumulator, its blank lines, fast accumulator, its blank lines)."""
    from processors.core.aggregate import Accumulator

    ref = Accumulator(rules, period=period, shard="f", capacity=capacity)
    ref_blank = 0
    for c in chunks:
        for line in reference_lines(c):
            if not line.strip():
                ref_blank += 1
                continue
            ref.add_line(line)
    fast = Accumulator(rules, period=period, shard="f", capacity=capacity)
    fast_blank = sum(fast.add_chunk(c) for c in chunks)
    return ref, ref_blank, fast, fast_blank


def compare(ref, ref_blank: int, fast, fast_blank: int) -> None:
    """Raise FastPathMismatch naming the first difference."""
    if ref_blank != fast_blank:
        raise FastPathMismatch(f"blank lines: add_line {ref_blank}, add_chunk {fast_blank}")
    rs, fs = ref.stats, fast.stats
    for name, a, b in (("events", rs.events, fs.events), ("parsed", rs.parsed, fs.parsed),
                       ("rejected", dict(rs.rejected), dict(fs.rejected))):
        if a != b:
            raise FastPathMismatch(f"stats.{name}: add_line {a}, add_chunk {b}")
    if set(ref.partials) != set(fast.partials):
        raise FastPathMismatch(f"partials: only add_line {sorted(set(ref.partials) - set(fast.partials))}, "
                               f"only add_chunk {sorted(set(fast.partials) - set(ref.partials))}")
    for key in sorted(ref.partials, key=lambda k: (k[1].start, k[0])):
        a, b = ref.partials[key], fast.partials[key]
        fa, fb = _fields(a), _fields(b)
        if fa != fb:  # (not _encode(): a key with a surrogate escape or a sum past 64 bits does not serialise)
            diff = {k: (fa[k], fb[k]) for k in fa if fa[k] != fb[k]}
            raise FastPathMismatch(f"partial {key[0]} {key[1]}: (add_line, add_chunk) {diff}"[:1500])


def check_fastpath(arg):
    """The property; returns the fast accumulator's path (for the bench's counts of fast / reference chunks)."""
    fmt, idx, capacity, period, chunks = arg
    pool = rule_pool(fmt)
    rules = [pool[i] for i in idx]
    ref, ref_blank, fast, fast_blank = run_both(fmt, rules, capacity, period, chunks)
    compare(ref, ref_blank, fast, fast_blank)
    from tests.fuzz.targets import note, note_all

    note("lines", ref.stats.events + ref_blank)
    note("blank", ref_blank)
    note("parsed", ref.stats.parsed)
    note_all("rejected:", ref.stats.rejected)
    path = fast._fast
    note("chunks_fast", getattr(path, "chunks_fast", 0))
    note("chunks_line_by_line", getattr(path, "chunks_reference", 0))
    return ref, fast


def fastpath_from_bytes(data: bytes):
    """atheris: byte 0 picks the format, byte 1 the rules (a bit mask), byte 2 capacity and period; the rest is
    the text, cut into chunks after every line whose index has bit 3 of its first byte set (that is, by the data)."""
    head, body = data[:3].ljust(3, b"\0"), data[3:]
    fmt = "clf" if head[0] % 2 == 0 else "json"
    pool = rule_pool(fmt)
    idx = tuple(i for i in range(len(pool)) if head[1] >> (i % 8) & 1 and i // 8 == head[0] // 2 % 2) or (head[1] % len(pool),)
    capacity = (10_000, 10_000, 1, 2, 3, 5, 50, 10_000)[head[2] % 8]
    period = (60, 60, 1, 300, 3600, 60, 60, 60)[head[2] // 8 % 8]
    parts = body.split(b"\n")
    if body.endswith(b"\n"):
        parts.pop()
    chunks, cur = [], b""
    for i, part in enumerate(parts):
        cur += part + (b"\n" if i < len(parts) - 1 or body.endswith(b"\n") else b"")
        if part[:1] and part[0] & 8:
            chunks.append(cur)
            cur = b""
    if cur:
        chunks.append(cur)
    return fmt, idx[:4], capacity, period, [c for c in chunks if c]


def fastpath_seeds() -> list[bytes]:
    clf = "\n".join(corpus.log_lines("combined")[:20]).encode()
    js = "\n".join(corpus.log_lines("json")[:20] + corpus.log_lines("alb")[-3:]).encode()
    return [b"\x00\x03\x00" + clf, b"\x01\x05\x00" + js, b"\x02\xff\x02" + clf, b"\x03\x0f\x03" + js]
