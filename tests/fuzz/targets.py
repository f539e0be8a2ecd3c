"""The fuzz targets: for every decoder and parser, a Hypothesis strategy of near-valid inputs (real
samples, mutated; structured inputs with fuzzed fields) and a `check(input)` that asserts the
properties. Used by tests/fuzz/test_*.py (a small budget, fixed seed) and bench/bench_fuzz.py
(100,000 inputs a target).

Properties checked everywhere:
* no crash: only the documented outcomes come out (a result, a `Rejected` with a reason from the
  module's reason set, a `ConfigError` listing problems, `PageError` / `SitemapError`, an HTTP answer);
  anything else raised is a bug (the check lets it propagate);
* bounded: decompressed and fetched sizes stay under their limits (gzip bombs included);
* every rejection is counted with a reason: in a batch, counted + rejected == records in;
* round-trips where they exist (a valid line parses back to the fields it was built from, a stored
  partial decodes to what was stored, a signed Slack form comes back field for field).

Each target also has `from_bytes(data)` so that atheris (coverage-guided, libFuzzer) can drive the
same check from raw bytes: bench/bench_fuzz.py --engine atheris.
"""

from __future__ import annotations

import base64
import copy
import functools
import gzip
import hashlib
import hmac
import io
import json
import math
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import orjson
from hypothesis import strategies as st

from tests.fuzz import corpus
from tests.fuzz.mutate import (any_token, gzip_bomb, gzip_variants, json_values, mutated_bytes, mutated_json,
                               mutated_text, nasty)  # fmt: skip


#: What the checks saw, by outcome: "rejected:<reason>" for every rejection with its reason, else what was
#: accepted; bench/bench_fuzz.py reports it per target (every rejection counted with a reason).
OUTCOMES: Counter = Counter()


def note(outcome: str, n: int = 1) -> None:
    if n:
        OUTCOMES[outcome] += n


def note_all(prefix: str, counts) -> None:
    for k, n in counts.items():
        if n:
            OUTCOMES[f"{prefix}{k}"] += n


@dataclass(frozen=True)
class Target:
    name: str
    strategy: Callable[[], st.SearchStrategy]
    check: Callable[[Any], None]
    from_bytes: Callable[[bytes], Any]
    seeds: Callable[[], list[bytes]]  # starting corpus for atheris


# ===================================================================================== decode (Kinesis)

from processors.core import decode as decode_mod  # noqa: E402

SMALL_LIMIT = 4096  # a decompressed-size limit small enough that generated bombs reach it


@st.composite
def _cwl_doc(draw):
    fmt = draw(st.sampled_from(("combined", "json", "alb")))
    msgs = draw(st.lists(st.one_of(st.sampled_from(corpus.log_lines(fmt)), st.text(max_size=60),
                                   mutated_text(st.sampled_from(corpus.log_lines(fmt)), 2)), max_size=6))
    doc = corpus.cwl_payload(msgs, message_type=draw(st.sampled_from(("DATA_MESSAGE", "DATA_MESSAGE", "CONTROL_MESSAGE"))))
    return draw(mutated_json(st.just(doc), 2)) if draw(st.booleans()) else doc


@st.composite
def decode_input(draw) -> tuple[bytes, int]:
    kind = draw(st.sampled_from(("text", "text", "cwl", "cwl", "bomb", "gzip_any", "binary")))
    limit = decode_mod.MAX_DECODED_BYTES if draw(st.booleans()) else SMALL_LIMIT
    if kind == "text":
        fmt = draw(st.sampled_from(("combined", "json", "alb")))
        lines = draw(st.lists(mutated_text(st.sampled_from(corpus.log_lines(fmt)), 2), min_size=0, max_size=5))
        sep = draw(st.sampled_from(("\n", "\r\n", "\n\n", "\n \n")))
        text = draw(st.sampled_from(("", "\ufeff", "  "))) + sep.join(lines) + draw(st.sampled_from(("", "\n", "\r\n")))
        data = text.encode("utf-8")
        if draw(st.integers(0, 9)) == 0:
            data = draw(mutated_bytes(st.just(data), 2))
    elif kind == "cwl":
        doc = draw(_cwl_doc())
        data = draw(gzip_variants(json.dumps(doc).encode()))
    elif kind == "bomb":
        size = draw(st.sampled_from((limit - 1, limit, limit + 1, 2 * limit, 64 * 1024 * 1024 if limit == SMALL_LIMIT else limit + 1)))
        fill = draw(st.sampled_from((b"0", b" ", b"\x00")))
        data = draw(gzip_variants(b"", gzip_bomb(size, fill)))
    elif kind == "gzip_any":
        data = draw(gzip_variants(json.dumps(draw(json_values())).encode()))
    else:
        data = draw(st.binary(max_size=200))
    return data, limit


def check_decode(arg: tuple[bytes, int]) -> None:
    data, limit = arg
    res = decode_mod.decode_record(data, max_bytes=limit)
    if isinstance(res, decode_mod.Rejected):
        assert res.reason in decode_mod.REJECT_REASONS, res
        assert isinstance(res.detail, str) and len(res.detail) <= 300
        note(f"rejected:{res.reason}")
        return
    assert isinstance(res, decode_mod.Decoded) and res.kind in ("cwl", "control", "text", "json")
    note(f"decoded:{res.kind}")
    if res.kind in ("text", "json"):
        # every line is an event or a counted blank line; nothing vanishes
        text = data.decode("utf-8").removeprefix("\ufeff")
        parts = text.split("\n")
        if text.endswith("\n"):
            parts = parts[:-1]
        lines = [p[:-1] if p.endswith("\r") else p for p in parts]
        kept = [p for p in lines if p.strip()]
        assert [e.message for e in res.events] == kept
        assert res.blank_lines == len(lines) - len(kept)
    elif res.kind == "cwl":
        # the gzip bomb bound: what was decoded fits the limit
        assert sum(len(e.message.encode("utf-8", "surrogatepass")) for e in res.events) <= limit
        assert _whole_gzip(data), "bytes after the gzip stream were ignored"
        doc = json.loads(gzip.decompress(data))
        if True:
            want = [e["message"].rstrip("\r\n") if e["message"].endswith("\n") else e["message"] for e in doc["logEvents"]]
            assert [e.message for e in res.events] == want  # round trip


def _whole_gzip(data: bytes) -> bool:
    try:
        d = __import__("zlib").decompressobj(32 + 15)
        d.decompress(data)
        return d.eof and not d.unused_data
    except Exception:
        return False


def _seeds_decode() -> list[bytes]:
    out = [("\n".join(corpus.log_lines(f)[:3])).encode() for f in ("combined", "json", "alb")]
    out.append(corpus.gzip_json(corpus.cwl_payload(corpus.log_lines("combined")[:3])))
    out.append(gzip.compress(b"0" * 100_000, 9))
    return out


DECODE = Target("decode", decode_input, check_decode, lambda b: (b, SMALL_LIMIT if b[:1] == b"\x00" else decode_mod.MAX_DECODED_BYTES),
                _seeds_decode)


# ===================================================================================== ingest (batch)

from processors.adapters.memory import MemoryWindowStore  # noqa: E402
from processors.core.aggregate import WindowAggregate  # noqa: E402
from processors.core.ingest import IngestConfig, LogIngest, StreamBatch, StreamRecord  # noqa: E402
from processors.core.parse import REJECT_REASONS as PARSE_REASONS  # noqa: E402


@functools.cache
def _ingest_rules():
    from processors.config.rule_files import load_rules_file

    names = ["rules/errors-by-path.json", "rules/404-by-client.json", "rules/bytes-by-client.json",
             "rules/json/errors-by-path.json", "rules/alb/slow-by-path.json"]
    rules = []
    for i, n in enumerate(names):
        r = load_rules_file(corpus.ROOT / n)[0]
        r.name = f"{r.name}-{i}"
        rules.append(r)
    return tuple(rules)


class ListSink:
    def __init__(self):
        self.sent: list[dict] = []

    def send(self, rejects):
        self.sent.extend(rejects)


@st.composite
def _record_data(draw) -> bytes:
    kind = draw(st.sampled_from(("line", "line", "line", "lines", "cwl", "garbage")))
    fmt = draw(st.sampled_from(("combined", "json", "alb")))
    line = st.one_of(mutated_text(st.sampled_from(corpus.log_lines(fmt)), 3),
                     json_obj().map(lambda o: json.dumps(o, allow_nan=True)))
    if kind == "line":
        return draw(line).encode()
    if kind == "lines":
        return "\n".join(draw(st.lists(line, max_size=4))).encode()
    if kind == "cwl":
        group = draw(st.sampled_from(("/sieve/access/nginx", "/sieve/alb/x", "/other")))
        doc = corpus.cwl_payload(draw(st.lists(line, max_size=4)), group=group,
                                 ts=draw(st.sampled_from((1_709_546_400_000, 0, 2**53, 2**63 - 1))))
        return draw(gzip_variants(json.dumps(doc).encode()))
    return draw(st.binary(max_size=64))


@st.composite
def ingest_input(draw):
    datas = draw(st.lists(_record_data(), min_size=1, max_size=8))
    return datas, draw(st.booleans())  # windowed: the state round-trips through Lambda's JSON


def _events_in(data: bytes) -> tuple[int, int]:
    """(events, events from a log group no rule reads) the decoder yields for one record."""
    res = decode_mod.decode_record(data)
    if isinstance(res, decode_mod.Rejected):
        return 0, 0
    unread = sum(1 for e in res.events if e.log_group is not None
                 and not any(r.matches_log_group(e.log_group) for r in _ingest_rules()))
    return len(res.events), unread


def check_ingest(arg) -> None:
    datas, windowed = arg
    rules = _ingest_rules()
    store, sink = MemoryWindowStore(clock=lambda: 1_800_000_000), ListSink()
    ingest = LogIngest(IngestConfig(rules=rules), store, sink, clock=lambda: 1_800_000_000)
    records = tuple(StreamRecord(str(10**20 + i), base64.b64encode(d).decode()) for i, d in enumerate(datas))
    if windowed:
        half = len(records) // 2
        r1 = ingest.process(StreamBatch("shardId-000000000000", records[:half], windowed=True, state={}))
        assert r1.failed_sequence is None, "a record was reported as failed"
        state = orjson.loads(orjson.dumps(r1.state))  # as Lambda hands it back
        res = ingest.process(StreamBatch("shardId-000000000000", records[half:], windowed=True, state=state, final=True))
    else:
        res = ingest.process(StreamBatch("shardId-000000000000", records))
    assert res.failed_sequence is None, "a record was reported as failed"
    st_ = res.flushed
    assert st_ is not None
    c = st_.counters
    rejected_records = sum(n for k, n in c.items() if k.startswith("rejected_record:"))
    # every record counted once; every rejected one sent to the reject sink with its reason
    assert c["records"] == len(records), c
    assert rejected_records == len(sink.sent)
    note("records", len(records))
    note_all("rejected_record:", Counter(m["reason"] for m in sink.sent))
    note("events", st_.stats.events)
    note("parsed", st_.stats.parsed)
    note_all("rejected:", st_.stats.rejected)
    assert all(m["reason"] in decode_mod.REJECT_REASONS for m in sink.sent)
    events = [_events_in(d) for d in datas]
    assert st_.stats.events == sum(e for e, _ in events)
    assert set(st_.stats.rejected) <= PARSE_REASONS | {"missing_timestamp"}
    # an event that no parser used was rejected (counted) by at least one, or came from a group no rule reads
    assert st_.stats.events - st_.stats.parsed <= sum(st_.stats.rejected.values()) + sum(u for _, u in events)
    # what was stored decodes to what was stored (the finaliser reads these blobs)
    for rule in rules:
        for start in store.open_windows(rule.name) if hasattr(store, "open_windows") else ():
            for p in store.partials(rule.name, start):
                agg = WindowAggregate.from_bytes(p.blob)
                assert agg.to_bytes() == p.blob or WindowAggregate.from_bytes(agg.to_bytes()) == agg
                assert agg.total_events >= 0 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in agg.values.values())
                assert math.isfinite(agg.sum)


def _ingest_from_bytes(data: bytes):
    parts = data.split(b"\x00\x01")[:8] or [b""]
    return parts, bool(data[:1] == b"w")


INGEST = Target("ingest", ingest_input, check_ingest, _ingest_from_bytes,
                lambda: [b"\x00\x01".join(ln.encode() for ln in corpus.log_lines(f)[:3]) for f in ("combined", "json", "alb")])


# ===================================================================================== CLF / combined

from processors.core import parse as parse_mod  # noqa: E402

_no_space = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: not any(c.isspace() for c in s))
_quotable = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20).filter(
    lambda s: "\n" not in s and "\r" not in s)


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


@st.composite
def clf_valid(draw):
    """A valid combined/common line built from its parts, and the parts (for the round trip)."""
    dt = draw(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 1)))
    off = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    tz = timezone(timedelta(minutes=off))
    dt = dt.replace(tzinfo=tz, microsecond=0)
    sign = "-" if off < 0 else "+"
    stamp = dt.strftime("%d/%b/%Y:%H:%M:%S ") + f"{sign}{abs(off) // 60:02d}{abs(off) % 60:02d}"
    method = draw(st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True))
    path = "/" + draw(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Cc", "Zl", "Zp")), max_size=20)
                      .filter(lambda s: "?" not in s and not any(c.isspace() for c in s)))
    query = draw(st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=15)
                                               .filter(lambda s: not any(c.isspace() for c in s))))
    protocol = draw(st.one_of(st.none(), st.sampled_from(("HTTP/1.0", "HTTP/1.1", "HTTP/2.0")), _no_space))
    status = str(draw(st.integers(100, 599)))
    size = draw(st.one_of(st.just("-"), st.integers(0, 10**12).map(str)))
    combined = draw(st.booleans())
    referer, agent = (draw(_quotable), draw(_quotable)) if combined else (None, None)
    client, ident, user = draw(_no_space), draw(_no_space), draw(_no_space)
    target = path + ("" if query is None else "?" + query)
    request = f"{method} {target}" + ("" if protocol is None else f" {protocol}")
    line = f'{client} {ident} {user} [{stamp}] "{_esc(request)}" {status} {size}'
    if combined:
        line += f' "{_esc(referer)}" "{_esc(agent)}"'
    parts = {"client": client, "ident": ident, "user": user, "method": method, "path": path, "query": query,
             "protocol": protocol, "status": status, "bytes": size, "referer": referer, "user_agent": agent,
             "request": request}
    return line, parts, int(dt.timestamp())


@st.composite
def clf_input(draw):
    kind = draw(st.sampled_from(("valid", "valid", "mutated_valid", "sample", "text")))
    if kind == "valid":
        return draw(clf_valid())
    if kind == "mutated_valid":
        line, _, _ = draw(clf_valid())
        return draw(mutated_text(st.just(line), 3)), None, None
    if kind == "sample":
        return draw(mutated_text(st.sampled_from(corpus.log_lines("combined")), 4)), None, None
    return draw(st.text(max_size=120)), None, None


def check_clf(arg) -> None:
    line, parts, ts = arg
    res = parse_mod.parse_clf(line)
    if isinstance(res, parse_mod.Rejected):
        assert res.reason in PARSE_REASONS, res
        assert parts is None, f"a valid line was rejected: {res}"
        note(f"rejected:{res.reason}")
        return
    note("parsed")
    got_ts, rec = res
    assert type(got_ts) is int and len(rec) == len(parse_mod.CLF_INDEX)
    assert 0 <= got_ts < MAX_EVENT_SECONDS, f"event time {got_ts} out of 1970-9999"
    d = rec.as_dict()
    assert "?" not in d["path"]
    assert d["request_uri"] == d["path"] + ("" if rec.get("query") is None else "?" + rec.get("query"))
    assert len(d["status"]) == 3 and "1" <= d["status"][0] <= "5" and d["status"].isdigit()
    assert d["bytes"] == "-" or d["bytes"].isdigit()
    if parts is not None:  # round trip
        assert got_ts == ts, (got_ts, ts)
        for k, v in parts.items():
            assert rec.get(k) == v, (k, rec.get(k), v)


CLF = Target("clf", clf_input, check_clf, lambda b: (b.decode("utf-8", "replace"), None, None),
             lambda: [ln.encode() for ln in corpus.log_lines("combined")[:10]])


# ===================================================================================== JSON lines

_time_values = st.one_of(st.integers(-(2**63), 2**64 - 1), st.floats(), st.sampled_from(
    ("2024-03-04T10:00:00Z", "2024-03-04T10:00:00.123+09:00", "04/Mar/2024:10:00:00 +0000", "9999-12-31T23:59:59",
     "0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "99/Mar/2024:10:00:00 +0000",
     "", "now", "1e400")), json_values(3))
_json_fields = st.builds(parse_mod.JsonFields, time=st.sampled_from(("time", "ts", "a.b", "")),
                         status=st.sampled_from(("status", "s", "")), path=st.sampled_from(("path", "url", "req.path", "")),
                         bytes=st.sampled_from(("bytes", "")), latency=st.sampled_from(("latency_ms", "")))


@st.composite
def json_obj(draw):
    obj = {}
    for key, values in (("time", _time_values), ("ts", _time_values),
                        ("status", st.one_of(st.integers(0, 1000), st.text(max_size=4), json_values(2))),
                        ("bytes", st.one_of(st.integers(-5, 2**63), st.just("-"), json_values(2))),
                        ("latency_ms", st.one_of(st.floats(), st.text(max_size=6), json_values(2))),
                        ("path", st.one_of(any_token, st.from_regex(r"(https?://[a-z.]+(:[0-9]+)?)?(/[a-z0-9?&=%]*)*", fullmatch=True))),
                        ("url", any_token), ("req", st.dictionaries(st.sampled_from(("path", "b")), any_token, max_size=2)),
                        ("a", st.dictionaries(st.sampled_from(("b", "c")), _time_values, max_size=2))):
        if draw(st.booleans()):
            obj[key] = draw(values)
    obj.update(draw(st.dictionaries(st.text(max_size=8), json_values(4), max_size=3)))
    return obj


@st.composite
def json_input(draw):
    fields = draw(_json_fields)
    kind = draw(st.sampled_from(("obj", "obj", "sample", "text")))
    if kind == "obj":
        obj = draw(json_obj())
        try:
            line = json.dumps(obj, ensure_ascii=draw(st.booleans()), allow_nan=True)
        except ValueError:
            line = "{}"
        return line, fields
    if kind == "sample":
        return draw(mutated_text(st.sampled_from(corpus.log_lines("json")), 4)), fields
    return draw(st.text(max_size=80)), fields


#: the largest event time any parser may hand on (the end of year 9999): beyond it no window fits
MAX_EVENT_SECONDS = parse_mod.MAX_EVENT_SECONDS


def check_json(arg) -> None:
    line, fields = arg
    res = parse_mod.parse_json_or_alb(line, fields)
    if isinstance(res, parse_mod.Rejected):
        assert res.reason in PARSE_REASONS, res
        note(f"rejected:{res.reason}")
        return
    note("parsed")
    ts, obj = res
    assert type(obj) is dict
    if ts is not None:
        assert type(ts) in (int, float) and math.isfinite(ts)
        assert 0 <= ts < MAX_EVENT_SECONDS, f"event time {ts} out of 1970-9999"
    if fields.path and not parse_mod.looks_like_alb(line):
        raw = orjson.loads(line)
        target = parse_mod._lookup(raw, fields.path)
        if type(target) is str and target:
            assert "?" not in obj["path"] or fields.path != "path"
        # every other field is left exactly as logged (round trip)
        for k, v in raw.items():
            if k not in ("path", "request_uri"):
                assert obj[k] == v


JSON = Target("json", json_input, check_json, lambda b: (b.decode("utf-8", "replace"), parse_mod.DEFAULT_JSON_FIELDS),
              lambda: [ln.encode() for ln in corpus.log_lines("json")[:10]])


# ===================================================================================== ALB

import re as _re  # noqa: E402

_ALB_TOK = _re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


@st.composite
def alb_input(draw):
    line = draw(st.sampled_from(corpus.log_lines("alb")))
    kind = draw(st.sampled_from(("sample", "tokens", "tokens", "text")))
    if kind == "sample":  # the generated entries are valid; tests/core/data/alb-small.log has broken ones on purpose
        return line, line in corpus.log_lines("alb")[:60]
    if kind == "text":
        return draw(mutated_text(st.just(line), 4)), False
    toks = _ALB_TOK.findall(line)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(toks) - 1))
        op = draw(st.sampled_from(("replace", "quote", "drop", "append", "dash")))
        if op == "replace":
            toks[i] = draw(st.one_of(any_token, st.from_regex(r"[0-9.:\[\]a-f-]{1,20}", fullmatch=True))).replace(" ", "") or "x"
        elif op == "quote":
            toks[i] = '"' + _esc(draw(any_token)) + '"'
        elif op == "drop" and len(toks) > 1:
            del toks[i]
        elif op == "append":
            toks.append(draw(st.sampled_from(('"x"', "y", "-", '"-"'))))
        else:
            toks[i] = "-" if not toks[i].startswith('"') else '"-"'
    return " ".join(toks), False


def check_alb(arg) -> None:
    line, valid = arg
    res = parse_mod.parse_alb(line)
    if isinstance(res, parse_mod.Rejected):
        assert res.reason in PARSE_REASONS, res
        assert not valid, f"a sample entry was rejected: {res}"
        note(f"rejected:{res.reason}")
        return
    note("parsed")
    ts, rec = res
    assert set(rec) == set(parse_mod.ALB_RECORD_KEYS)
    assert math.isfinite(ts) and 0 <= ts < MAX_EVENT_SECONDS  # years 1970-9999, as for JSON and CLF
    for k in ("elb_status_code", "target_status_code"):
        assert rec[k] is None or 100 <= rec[k] <= 599
    for k in ("request_processing_time", "target_processing_time", "response_processing_time"):
        assert rec[k] is None or (math.isfinite(rec[k]) and rec[k] >= 0), (k, rec[k])
    assert rec["path"] is None or "?" not in rec["path"]


ALB = Target("alb", alb_input, check_alb, lambda b: (b.decode("utf-8", "replace"), False),
             lambda: [ln.encode() for ln in corpus.log_lines("alb")[:10]])


# ===================================================================================== rules

from processors.core import rules as rules_mod  # noqa: E402
from processors.errors import ConfigError  # noqa: E402

_rule_values = st.one_of(json_values(4), st.integers(-(2**80), 2**80), st.sampled_from((b"x", 10**30, -(10**30), 1e400)), st.sampled_from(
    ("CLF", "JSON", "Count", "Sum", "$.a", "$.a[0]", "$.", "$..a", "$.a[99999999999999999999]", "6", "0", "64", "65", "status",
     "path_template", "request_uri", "*", "/sieve/access*", "arn:aws:logs:us-east-1:1:log-group:/a:*")),
    st.lists(st.sampled_from(("$.a", "6", "status", "path", "$.b.c")), max_size=6),
    st.dictionaries(st.sampled_from(("Match", "In", "NotIn", "StartsWith", "GreaterThan", "LessThan", "EqualTo", "NotEqualTo",
                                     "IsPresent", "match", "Comparison")), json_values(2), max_size=3))


@st.composite
def rule_input(draw):
    doc = draw(mutated_json(st.sampled_from(corpus.rule_docs()), 4, values=_rule_values))
    as_bytes = draw(st.integers(0, 3)) == 0
    if as_bytes:
        raw = json.dumps(doc, default=repr).encode() if draw(st.booleans()) else draw(mutated_bytes(st.sampled_from([b for _, b in corpus.rule_files()]), 3))
        return ("bytes", raw)
    return ("doc", doc)


@functools.cache
def _sample_records():
    out = {"CLF": [], "JSON": []}
    for fmt, key in (("combined", "CLF"), ("json", "JSON"), ("alb", "JSON")):
        parser = parse_mod.PARSERS[key]
        for ln in corpus.log_lines(fmt)[:15]:
            r = parser(ln, parse_mod.DEFAULT_JSON_FIELDS)
            if not isinstance(r, parse_mod.Rejected):
                out[key].append(r[1])
    return out


def check_rules(arg) -> None:
    kind, value = arg
    try:
        if kind == "bytes":
            compiled = rules_mod.rules_from_json(value, source="fuzz.json", stem="fuzz")
        else:
            compiled = [rules_mod.compile_rule(value, "fuzz", path_prefix="pipelines.logs.rules[0]")]
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        if kind == "doc":
            assert all(p.startswith("pipelines.logs.rules[0]") for p in exc.problems), exc.problems
        note("rejected:config_error")
        return
    note("compiled", len(compiled))
    for rule in compiled:
        assert rule.log_format in ("CLF", "JSON")
        for rec in _sample_records()[rule.log_format]:
            hit = rule.apply(rec)
            if hit is not None:
                keys, v = hit
                assert len(keys) == len(rule.key_names) and all(type(k) is str for k in keys)
                assert all(len(k) <= rules_mod.MAX_KEY_CHARS + 80 for k in keys)
                assert type(v) in (int, float) and math.isfinite(v)


RULES = Target("rules", rule_input, check_rules, lambda b: ("bytes", b), lambda: [b for _, b in corpus.rule_files()])


# ===================================================================================== pipelines.yaml

import yaml  # noqa: E402

from processors.config import loader  # noqa: E402

_yaml_values = st.one_of(json_values(4), st.sampled_from(
    ("rules/errors-by-path.json", "rules/none.json", "/dev/null", "rules", "x\x00y", "${HOME}", "${UNSET:-d}", "sieve-state",
     "processors.handlers.logs.handler", "bot", "none", "bedrock", -1, 0, 59, 60, 604801, 10**30)))


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.cache
def _pipelines_doc():
    return yaml.safe_load(corpus.pipelines_yaml())


@st.composite
def config_input(draw):
    kind = draw(st.sampled_from(("structured", "structured", "lines", "yaml_text")))
    if kind == "structured":
        base = copy.deepcopy(_pipelines_doc())  # parsed once (7 ms a parse with pure-Python PyYAML)
        if draw(st.booleans()):  # inline rules (Python values from YAML: big ints, bytes, dates ...)
            rules = [draw(mutated_json(st.sampled_from(corpus.rule_docs()), 3, values=_rule_values)) for _ in range(draw(st.integers(1, 2)))]
            base["pipelines"]["logs"]["rules"] = [{**r, "Name": f"r{i}"} if isinstance(r, dict) else r for i, r in enumerate(rules)]
        doc = draw(mutated_json(st.just(base), 4, values=_yaml_values))
        unicode = draw(st.booleans())
        try:  # libyaml's emitter where present: 10x faster, the same kind of YAML text (generation only)
            return yaml.dump(doc, Dumper=_DUMPER, allow_unicode=unicode)
        except UnicodeEncodeError:  # libyaml writes UTF-8: a lone surrogate in a value; PyYAML's own emitter keeps it
            try:
                return yaml.safe_dump(doc, allow_unicode=unicode)
            except yaml.YAMLError:
                return "{}"
        except yaml.YAMLError:
            return "{}"
    if kind == "lines":
        lines = corpus.pipelines_yaml().splitlines()
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(lines) - 1))
            op = draw(st.sampled_from(("delete", "dup", "edit", "indent")))
            if op == "delete":
                del lines[i]
            elif op == "dup":
                lines.insert(i, lines[i])
            elif op == "edit":
                lines[i] = draw(mutated_text(st.just(lines[i]), 2))
            else:
                lines[i] = " " + lines[i]
        return "\n".join(lines)
    return draw(st.one_of(st.text(max_size=80), st.sampled_from((
        "a: &a [1, 2]\nb: *a\n", "!!python/object:os.system {}", "version: !!binary aGk=", "pipelines: {logs: {rules: [{1: 2}]}}",
        "- 1\n- 2", "? [a]\n: b", "version: 1\nversion: 2", "a: &x {b: *x}", "%YAML 1.1\n---\n---\n",
        "pipelines:\n  logs:\n    rules:\n      - Schema: {Name: CloudWatchLogRule, Version: 1}\n        LogFormat: CLF\n"
        "        Contribution: {Keys: [path], Filters: [{Match: status, GreaterThan: 99999999999999999999999}]}\n"
        "        AggregateOn: Count\n"))))


def check_config(text: str) -> None:
    try:
        loaded = loader.load_text(text, source="pipelines.yaml", base_dir=corpus.ROOT)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems), exc.problems
        note("rejected:config_error")
        return
    assert loaded.config is not None
    note("loaded")
    if loaded.config.pipelines.logs is not None:
        assert len(loaded.rules) == len(loaded.config.pipelines.logs.rules)


CONFIG = Target("config", config_input, check_config, lambda b: b.decode("utf-8", "replace"),
                lambda: [corpus.pipelines_yaml().encode()])


# ===================================================================================== DynamoDB stream images (FAQ)

from decimal import Decimal  # noqa: E402

from processors.adapters import aws as aws_adapter  # noqa: E402
from processors.core import faq as faq_mod  # noqa: E402
from processors.core.faq_index import FaqIndexer, FaqRouting  # noqa: E402
from processors.ports import TransientFailure, WriteResult  # noqa: E402

ROLES = {"public": ["public"], "staff": ["public", "staff"]}


@functools.cache
def _attr():
    num = st.one_of(st.integers(-(10**40), 10**40).map(str), st.sampled_from(("1.5", "-0", "1e125", "1e-130", "NaN", "sNaN",
                                                                             "Infinity", "x", "", "1e999999999", "0x10")))
    scal = st.one_of(st.builds(lambda s: {"S": s}, any_token), st.builds(lambda n: {"N": n}, num),
                     st.builds(lambda b: {"BOOL": b}, st.one_of(st.booleans(), any_token)), st.just({"NULL": True}),
                     st.builds(lambda s: {"B": s}, any_token), st.builds(lambda xs: {"SS": xs}, st.lists(any_token, max_size=3)),
                     st.builds(lambda xs: {"NS": xs}, st.lists(num, max_size=3)), json_values(2),
                     st.builds(lambda k, v: {k: v}, st.sampled_from(("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS", "s")),
                               json_values(3)))
    return st.recursive(scal, lambda kids: st.one_of(st.builds(lambda d: {"M": d}, st.dictionaries(st.text(max_size=5), kids, max_size=3)),
                                                     st.builds(lambda xs: {"L": xs}, st.lists(kids, max_size=3))), max_leaves=6)


@st.composite
def stream_record(draw, seq: int):
    doc_id = draw(st.sampled_from(("q1", "q2", "")))
    good = {
        "id": {"S": doc_id or "q3"}, "question": {"S": "How do I reset my password?"},
        "answer": {"S": "Use the link on the login page."}, "role": {"S": draw(st.sampled_from(("public", "staff", "admin")))},
        "source_url": {"S": "https://example.com/faq#reset"}, "updated_at": {"S": "2024-05-01T12:00:00Z"}, "lang": {"S": "en"},
    }
    rec = {"eventID": f"e{seq}", "eventName": draw(st.sampled_from(("INSERT", "MODIFY", "REMOVE"))), "eventSource": "aws:dynamodb",
           "dynamodb": {"ApproximateCreationDateTime": 1_714_564_800 + seq, "Keys": {"id": {"S": doc_id or "q3"}},
                        "NewImage": good, "OldImage": dict(good), "SequenceNumber": str(10**20 + seq),
                        "StreamViewType": "NEW_AND_OLD_IMAGES"}}
    values = st.one_of(_attr(), st.sampled_from((1e300, -1, 2**63, "123", "", None, True, float("nan"), float("inf"))))
    return draw(mutated_json(st.just(rec), 4, values=values))


@st.composite
def ddb_input(draw):
    n = draw(st.integers(1, 5))
    recs = [draw(stream_record(i)) for i in range(n)]
    plain = draw(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=10),
                                        st.floats(-(2.0**53), 2.0**53, allow_nan=False)),
                              lambda k: st.one_of(st.lists(k, max_size=3), st.dictionaries(st.text(max_size=5), k, max_size=3)),
                              max_leaves=8))  # the audit / state adapters' Decimal round trip
    return recs, plain


class FakeEmbedder:
    dimension = 3

    def embed(self, texts):
        return [[float(len(t) % 7), 1.0, 0.5] for t in texts]


class FakeIndex:
    def __init__(self):
        self.writes: list[tuple] = []

    def ensure(self):
        pass

    def upsert(self, role, document, version):
        assert isinstance(document["id"], str) and type(version) is int and 0 <= version < 2**63
        self.writes.append(("upsert", role, document["id"], version))
        return WriteResult(succeeded=[document["id"]])

    def delete(self, role, doc_id, version):
        assert isinstance(doc_id, str) and type(version) is int and 0 <= version < 2**63
        self.writes.append(("delete", role, doc_id, version))
        return WriteResult(succeeded=[doc_id])


def check_ddb(arg) -> None:
    recs, plain = arg
    routing = FaqRouting(ROLES)
    for r in recs:
        plan = routing.plan(r)
        assert not (plan.upsert & plan.delete)
        if plan.record is not None:
            assert plan.rejection is None and plan.upsert
            assert faq_mod.parse_item(plan.record.document()) == plan.record  # the record re-validates
        if plan.version is not None and plan.doc_id is not None and plan.rejection is None and plan.event_name in ("INSERT", "MODIFY"):
            assert plan.upsert | plan.delete == frozenset(ROLES)
    index = FakeIndex()
    indexer = FaqIndexer(routing, FakeEmbedder(), index)
    batch = indexer.prepare(recs)
    failed = 0
    for r in recs:
        try:
            indexer.apply(batch, r)
        except TransientFailure:
            failed += 1
    indexer.finish(batch)
    c = batch.counters
    planned = [routing.plan(r) for r in recs]
    assert failed == 0
    assert c["rejected"] == sum(1 for p in planned if p.rejection is not None)
    note("records", len(recs))
    # the reason is a message ("dynamodb.Keys: no string key 'id'"): counted by what it names (bounded labels)
    note_all("rejected:", Counter(str(p.rejection.reason).split(":")[0][:40] for p in planned if p.rejection is not None))
    note_all("", {k: v for k, v in c.items() if k != "rejected" and isinstance(v, int)})
    assert c["unrouted"] == sum(1 for p in planned if p.rejection is None and p.unrouted is not None)
    assert c["upsert_ok"] + c["delete_ok"] == len(index.writes) == sum(p.writes for p in planned if p.doc_id and p.version is not None)
    # the audit / state adapters' Decimal round trip
    back = aws_adapter.from_ddb(aws_adapter.to_ddb(plain))
    assert back == plain


def _ddb_from_bytes(b: bytes):
    try:
        recs = json.loads(b)
    except ValueError:
        recs = [{"dynamodb": b.decode("utf-8", "replace")}]
    return (recs if isinstance(recs, list) else [recs]), None


DDB = Target("ddb", ddb_input, check_ddb, _ddb_from_bytes, lambda: [b"[]"])


# ===================================================================================== Slack requests

from processors import wiring  # noqa: E402
from processors.adapters import slack as slack_adapter  # noqa: E402
from processors.core.incidents import ACK_ACTION, MUTE_ACTIONS, incident_id  # noqa: E402
from processors.handlers import slack_actions  # noqa: E402

SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_800_000_000
INCIDENT = incident_id("5xx-by-ip", ("10.0.0.1", "500"))


class FakeStore:
    def __init__(self):
        self.acks, self.mutes = [], []

    def put_ack(self, rule, incident, ack, *, ttl_seconds):
        self.acks.append((rule, incident, ack))

    def put_mute(self, rule, incident, mute):
        self.mutes.append((rule, incident, mute))


def _click(button: str) -> dict:
    value = json.dumps({"rule": "5xx-by-ip", "incident": INCIDENT})
    return {"type": "block_actions", "user": {"id": "U0ONCALL", "username": "alice", "team_id": "T0"},
            "container": {"type": "message", "message_ts": "1.2", "channel_id": "C1"}, "channel": {"id": "C1", "name": "oncall"},
            "message": {"type": "message", "ts": "1.2", "text": "x", "blocks": [{"type": "section", "block_id": "b",
                                                                                 "text": {"type": "mrkdwn", "text": "hi"}}]},
            "response_url": "https://hooks.slack.com/actions/T0/123/abc", "trigger_id": "1.2.3",
            "actions": [{"action_id": button, "block_id": "sieve_actions", "type": "button", "value": value, "action_ts": str(NOW)}]}


def _sign(body: str, ts: str, secret: str = SIGNING) -> str:
    return "v0=" + hmac.new(secret.encode(), f"v0:{ts}:{body}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


@st.composite
def slack_input(draw):
    payload = draw(mutated_json(st.sampled_from([_click(b) for b in (ACK_ACTION, *MUTE_ACTIONS)]), 3))
    try:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    except ValueError:
        body = "payload=%7B%7D"
    if draw(st.integers(0, 4)) == 0:
        body = draw(mutated_text(st.just(body), 3, allow_surrogates=draw(st.booleans())))
    ts = str(NOW - draw(st.sampled_from((0, 10, 299, 301, -400))))
    signed = draw(st.sampled_from(("good", "good", "good", "bad", "other_secret", "missing")))
    sig = _sign(body, ts) if signed == "good" else _sign(body, ts, "x") if signed == "other_secret" else draw(
        st.one_of(any_token, st.just("v0=" + "0" * 64))) if signed == "bad" else None
    headers = {"X-Slack-Request-Timestamp": ts, "content-type": "application/x-www-form-urlencoded"}
    if sig is not None:
        headers["x-slack-signature"] = sig
    if draw(st.integers(0, 5)) == 0:  # mutate the headers themselves
        headers = draw(mutated_json(st.just(headers), 2, values=st.one_of(any_token, st.text(max_size=20))))
    b64 = draw(st.integers(0, 3)) == 0
    if b64:
        raw = body.encode("utf-8", "surrogatepass")
        body_field = base64.b64encode(raw).decode() if draw(st.booleans()) else draw(mutated_text(st.just(base64.b64encode(raw).decode()), 2))
    else:
        body_field = body
    event = {"version": "2.0", "routeKey": "POST /slack/actions", "headers": headers, "body": body_field, "isBase64Encoded": b64}
    return event, signed


def _slack_app():
    store = FakeStore()
    posts = []
    slack_actions.reset_runtime(wiring.SlackActionsApp(store, lambda: SIGNING, lambda url, p: posts.append((url, p)) or 200,
                                                       ack_ttl_seconds=3600))
    return store, posts


def check_slack(arg) -> None:
    event, _ = arg
    store, posts = _slack_app()
    level = slack_actions.logger.log_level
    slack_actions.logger.setLevel("CRITICAL")  # thousands of refused requests: keep the output readable
    try:
        out = slack_actions.handler(event, None, now=lambda: NOW)
    finally:
        slack_actions.logger.setLevel(level)
        slack_actions.reset_runtime()
    assert isinstance(out, dict) and out["statusCode"] in (200, 400, 401), out
    note("accepted:200" if out["statusCode"] == 200 else f"rejected:http_{out['statusCode']}")
    # only a genuine, fresh request ever changes state
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()} if isinstance(event.get("headers"), dict) else {}
    genuine = False
    body = event.get("body") or ""
    try:
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8")
        ts = headers.get("x-slack-request-timestamp")
        sig = headers.get("x-slack-signature")
        genuine = (isinstance(ts, str) and isinstance(sig, str) and abs(NOW - int(ts)) <= 300
                   and hmac.compare_digest(sig.encode("utf-8", "surrogatepass"),
                                           _sign(body, ts).encode("utf-8", "surrogatepass")))
    except (ValueError, UnicodeError, TypeError):
        genuine = False
    if not genuine:
        assert out["statusCode"] in (400, 401) and not store.acks and not store.mutes and not posts, out
    if store.acks or store.mutes:
        assert out["statusCode"] == 200 and len(store.acks) + len(store.mutes) == 1
    for url, _ in posts:
        assert slack_adapter.allowed_response_url(url)


def _slack_from_bytes(b: bytes):
    body = b.decode("utf-8", "replace")
    ts = str(NOW)
    return {"headers": {"x-slack-request-timestamp": ts, "x-slack-signature": _sign(body, ts)}, "body": body}, True


SLACK = Target("slack", slack_input, check_slack, _slack_from_bytes,
               lambda: [urllib.parse.urlencode({"payload": json.dumps(_click(ACK_ACTION))}).encode()])


# ===================================================================================== crawled HTML

from processors.core import crawl as crawl_mod  # noqa: E402

_SOURCE = crawl_mod.CrawlSource(url="https://example.com/faq/", role="public", passage_chars=200, passage_overlap=40,
                                max_passages=3)
_html_tags = st.sampled_from(("<details>", "</details>", "<summary>", "</summary>", "<dl>", "<dt>", "<dd>", "</dl>", "<h2>",
                              "</h2>", "<h3 id=q>", "<p>", "</p>", '<script type="application/ld+json">', "</script>",
                              '<div itemscope itemtype="https://schema.org/Question">', '<span itemprop="name">', "</span>",
                              '<meta name="robots" content="noindex">', '<base href="//evil/">', '<a href="../x?b=1&a=2#f">',
                              '<a href="javascript:alert(1)">', "</a>", '<link rel="canonical" href="/faq/other">',
                              '<html lang="ja">', '<p lang="fr">', "Q1: Why?", "What is it?", "ですか", "<![CDATA[", "<!--",
                              "\x00", "&#0;", "&#xD800;", "<template>", "<nav>", '{"@type":"Question","name":"Q?","acceptedAnswer":{"text":"<b>A</b>"}}',
                              '{"@graph":[{"@type":"FAQPage","mainEntity":[{"@type":"Question","name":"Why?","acceptedAnswer":[{"text":"Because."}]}]}]}'))  # fmt: skip


@st.composite
def html_input(draw):
    kind = draw(st.sampled_from(("page", "page", "tags", "bytes")))
    if kind == "page":
        body = draw(mutated_bytes(st.sampled_from(corpus.html_pages()), 3))
        text = body.decode("utf-8", "replace")
        text = draw(mutated_text(st.just(text), 2)) if draw(st.booleans()) else text
    elif kind == "tags":
        text = "".join(draw(st.lists(st.one_of(_html_tags, st.text(max_size=20)), max_size=30)))
    else:
        text = draw(st.binary(max_size=200)).decode("latin-1")
    ctype = draw(st.sampled_from(("text/html", "text/html; charset=utf-8", "text/html; charset=shift_jis", "text/html; charset=bogus",
                                  "", "text/html; charset=utf-16", "text/html; charset=latin-1")))
    return text, ctype, draw(st.sampled_from(("https://example.com/faq/", "https://example.com/faq/a/b.html?x=1")))


def check_html(arg) -> None:
    text, ctype, url = arg
    body = text.encode("utf-8", "surrogatepass")
    decoded, why = crawl_mod.decode_html(body, ctype)
    assert isinstance(why, str) and why and (decoded is None or isinstance(decoded, str))
    for t in {text.encode("utf-8", "replace").decode("utf-8"), decoded or ""}:
        try:
            page = crawl_mod.extract_page(t, url)
        except crawl_mod.PageError as exc:
            note(f"rejected:page_error:{str(exc).split(':')[0][:40]}")
            continue
        note("page")
        for link in page.links:
            assert link.startswith(("http://", "https://")) and crawl_mod.canonical_url(link) == link, link
        for qa in page.qas:
            assert qa.answer and crawl_mod.question_key(qa.question)
        items, skipped = crawl_mod.page_items(url, page.qas, _SOURCE, "2024-05-01T12:00:00Z")
        ids = [i["id"] for i in items]
        assert len(ids) == len(set(ids))
        for item in items:
            assert isinstance(faq_mod.parse_item(item), faq_mod.FaqRecord)
        assert all(s.reason for s in skipped)
        note("qa_items", len(items))
        note_all("rejected:skipped:", Counter(s.reason for s in skipped))


HTML = Target("html", html_input, check_html, lambda b: (b.decode("utf-8", "replace"), "text/html", "https://example.com/faq/"),
              lambda: list(corpus.html_pages()))


# ----------------------------------------------------------------------------- sitemaps, robots.txt, URLs

@st.composite
def sitemap_input(draw):
    kind = draw(st.sampled_from(("xml", "xml", "xml", "gzip", "gzip", "text", "text", "bomb")))
    if kind == "xml":
        data = draw(mutated_bytes(st.sampled_from(corpus.sitemap_docs()), 4))
    elif kind == "gzip":
        data = draw(gzip_variants(draw(st.sampled_from(corpus.sitemap_docs()))))
    elif kind == "bomb":
        data = draw(gzip_variants(b"", gzip_bomb(crawl_mod.MAX_DECOMPRESSED + draw(st.sampled_from((-100, 1, 10_000))), b" ")))
    else:
        data = "\n".join(draw(st.lists(st.one_of(st.sampled_from(("https://example.com/faq/a", "http://x/", "ftp://y")),
                                                 mutated_text(st.just("https://example.com/faq/b?x=1"), 2)), max_size=5))).encode()
    url = draw(st.one_of(mutated_text(st.sampled_from(("https://example.com/faq/a", "http://[::1]:8080/x?b=2&a=1#f",
                                                        "HTTPS://EXAMPLE.com:443/%7efaq/", "//other/x", "../../up")), 3),
                         st.text(max_size=30)))
    return data, url


def check_sitemap(arg) -> None:
    data, url = arg
    try:
        pages, children = crawl_mod.parse_sitemap(data)
        assert len(pages) <= crawl_mod.MAX_SITEMAP_URLS and len(children) <= crawl_mod.MAX_SITEMAP_URLS
        assert all(isinstance(u, str) for u in pages + children)
        note("sitemap")
    except crawl_mod.SitemapError as exc:
        note(f"rejected:sitemap_error:{str(exc).split(':')[0][:40]}")
    robots = crawl_mod.RobotsPolicy.from_response(200, data, "SieveFaqCrawler/0.1")
    assert robots.reason(url) in (None, "robots_disallowed")
    assert robots.crawl_delay >= 0 and isinstance(robots.sitemaps, list)
    c = crawl_mod.canonical_url(url, "https://example.com/faq/")
    if c is not None:
        assert c.startswith(("http://", "https://"))
        assert crawl_mod.canonical_url(c) == c, (url, c, crawl_mod.canonical_url(c))  # idempotent
        assert crawl_mod.Scope.of(_SOURCE).reason(c) in (None, "off_site", "out_of_scope", "not_http")


SITEMAP = Target("sitemap", sitemap_input, check_sitemap, lambda b: (b, b[:200].decode("utf-8", "replace")),
                 lambda: list(corpus.sitemap_docs()))


# ===================================================================================== web fetcher

import requests  # noqa: E402
import urllib3  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402

from processors.adapters.web import HttpFetcher  # noqa: E402
from processors.core.types import FetchLimits  # noqa: E402

WEB_LIMITS = FetchLimits(timeout_seconds=5, max_bytes=64 * 1024, max_redirects=3)


class ScriptedAdapter(HTTPAdapter):
    """Answers every request with the next scripted (status, headers, body) without any network."""

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)

    def send(self, request, **kwargs):
        if not self.answers:
            raise requests.ConnectionError("no more answers")
        status, headers, body = self.answers.pop(0)
        if status is None:
            raise requests.ConnectionError("reset")
        raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=status, preload_content=False,
                                   decode_content=True, request_method="GET")
        return self.build_response(request, raw)


@st.composite
def web_input(draw):
    answers = []
    for _ in range(draw(st.integers(1, 5))):
        status = draw(st.sampled_from((200, 200, 301, 302, 307, 404, 500, 206, 999, 100, None)))
        headers = {"Content-Type": draw(st.sampled_from(("text/html", "text/html; charset=utf-8", "application/pdf", "")))}
        if status in (301, 302, 307) or draw(st.integers(0, 5)) == 0:
            headers["Location"] = draw(st.one_of(st.sampled_from(("/faq/next", "https://example.com/faq/", "//other.example/x",
                                                                 "ftp://x", "http://[::1", "", " ", "https://example.com:99999/")),
                                                 st.text(st.characters(codec="latin-1"), max_size=20)))
        body = draw(st.one_of(st.sampled_from(corpus.html_pages()), st.binary(max_size=100)))
        enc = draw(st.sampled_from((None, None, "gzip", "gzip-bomb", "gzip-truncated", "deflate-bad")))
        if enc == "gzip":
            body = gzip.compress(body, mtime=0)
        elif enc == "gzip-bomb":
            body = gzip_bomb(WEB_LIMITS.max_bytes * draw(st.sampled_from((1, 4, 64))), b"a")
        elif enc == "gzip-truncated":
            body = gzip.compress(body, mtime=0)[:-9]
        elif enc == "deflate-bad":
            body = b"not deflate"
        if enc is not None:
            headers["Content-Encoding"] = "deflate" if enc == "deflate-bad" else "gzip"
        cl = draw(st.sampled_from((None, None, "len", "huge", "-1", "abc", "１２")))
        if cl is not None:
            headers["Content-Length"] = str(len(body)) if cl == "len" else str(10**12) if cl == "huge" else cl
        answers.append((status, headers, body))
    return answers


def check_web(answers) -> None:
    session = requests.Session()
    session.mount("http://", ScriptedAdapter(answers))
    session.mount("https://", ScriptedAdapter(answers))
    fetcher = HttpFetcher(session=session, sleep=lambda s: None)
    allow = lambda u: None if u.startswith("https://example.com/") else "off_site"  # noqa: E731
    f = fetcher.fetch("https://example.com/faq/", limits=WEB_LIMITS, delay=0, allow=allow)
    assert f.reason is None or f.reason in crawl_mod.SKIP_REASONS or f.reason.startswith("http_"), f.reason
    assert len(f.body) <= WEB_LIMITS.max_bytes
    assert len(f.redirects) <= WEB_LIMITS.max_redirects + 2  # the URL asked, the redirects followed, the one refused
    if f.reason is None and f.status is not None and 200 <= f.status < 300:
        assert isinstance(f.body, bytes)
    note(f"rejected:{f.reason}" if f.reason else f"fetched:{f.status}")
    return f


SKIP_REASONS_OK = crawl_mod.SKIP_REASONS


def _web_from_bytes(b: bytes):
    return [(200, {"Content-Type": "text/html", "Content-Encoding": "gzip"} if b[:2] == b"\x1f\x8b" else {"Content-Type": "text/html"}, b)]


WEB = Target("web", web_input, check_web, _web_from_bytes, lambda: [gzip.compress(p) for p in corpus.html_pages()[:3]])


TARGETS: dict[str, Target] = {t.name: t for t in (DECODE, INGEST, CLF, JSON, ALB, RULES, CONFIG, DDB, SLACK, HTML, SITEMAP, WEB)}


# ===================================================================================== chunked fast path (sieve topn)

from tests.fuzz.target_fastpath import check_fastpath, fastpath_from_bytes, fastpath_input, fastpath_seeds  # noqa: E402

FASTPATH = Target("fastpath", fastpath_input, check_fastpath, fastpath_from_bytes, fastpath_seeds)
TARGETS["fastpath"] = FASTPATH
