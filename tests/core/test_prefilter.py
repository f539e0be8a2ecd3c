"""The chunked fast path (processors/core/fastpath.py) against the reference, line by line.

Every test feeds the same bytes twice: once through `FastPath.reference` (`Accumulator.add_line` per
line, the reference implementation) and once through `Accumulator.add_chunk` with the plan the
rules allow, cut into chunks at line ends, and requires the same state: every partial's serialised
form (keys, values, counts, sums, event-time range, approximation), the stats (events, parsed,
rejected per reason) and the blank lines."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.config.rule_files import load_rule_file
from processors.core import fastpath
from processors.core.aggregate import Accumulator
from processors.core.generate import AccessLogGenerator, GeneratorConfig, IncidentSpec
from processors.core.parse import _CLF_FAST_RE, JsonFields, clf_chunk_regex
from processors.core.rules import compile_rule

ROOT = Path(__file__).resolve().parents[2]
RULE_DIRS = {"combined": ROOT / "rules", "json": ROOT / "rules" / "json", "alb": ROOT / "rules" / "alb"}


def rules_of(fmt: str) -> list:
    return [load_rule_file(p) for p in sorted(RULE_DIRS[fmt].glob("*.json"))]


def generated(fmt: str, lines: int = 3000, seed: int = 7) -> bytes:
    cfg = GeneratorConfig(seed=seed, lines=lines, duration=600, format=fmt,
                          incidents=tuple(IncidentSpec(k) for k in ("burst500", "scan404", "bytes_hog")))
    return ("\n".join(AccessLogGenerator(cfg).lines()) + "\n").encode()


def state(acc: Accumulator, blank: int):
    parts = {k: agg._encode() for k, agg in sorted(acc.partials.items(), key=lambda kv: (kv[0][1].start, kv[0][0]))}
    return parts, acc.stats.events, acc.stats.parsed, dict(acc.stats.rejected), blank


def cut(data: bytes, size: int) -> list[bytes]:
    """Chunks of about `size` bytes, each ending at a line end (the last one may not)."""
    out, i = [], 0
    while i < len(data):
        j = data.find(b"\n", i + size)
        j = len(data) if j < 0 else j + 1
        out.append(data[i:j])
        i = j
    return out


def both(rules, data: bytes, size: int = 1 << 16, **kw):
    ref = Accumulator(rules, period=60, shard="t", **kw)
    ref._fast = fastpath.FastPath(ref)  # the reference: add_line per line, in order
    ref_blank = sum(ref.add_chunk(c) for c in cut(data, size))
    fast = Accumulator(rules, period=60, shard="t", **kw)
    fast_blank = sum(fast.add_chunk(c) for c in cut(data, size))
    return state(ref, ref_blank), state(fast, fast_blank), fast._fast


@pytest.mark.parametrize("fmt", ["combined", "json", "alb"])
def test_every_shipped_rule_gives_the_reference_result_on_generated_logs(fmt):
    data = generated(fmt)
    rules = rules_of(fmt)
    ref, fast, path = both(rules, data)
    assert ref == fast
    assert ref[1] == data.count(b"\n") and ref[2] > 0
    for r in rules:  # and each rule alone (other struct, other regex)
        ref1, fast1, path1 = both([r], data, size=4096)
        assert ref1 == fast1, r.name
        if fmt != "alb":
            assert path1.chunks_fast > 0 and path1.chunks_reference == 0, (r.name, type(path1).__name__)


def test_the_fast_path_is_taken_for_clf_and_json_and_not_with_explain_or_samples():
    from processors.core.explain import ExplainConfig

    for fmt, name in (("combined", "_ClfPath"), ("json", "_JsonPath")):
        acc = Accumulator(rules_of(fmt), period=60)
        acc.add_chunk(generated(fmt, 200))
        assert type(acc._fast).__name__ == name
    for kw in ({"explain": ExplainConfig()}, {"samples_k": 3}):
        acc = Accumulator(rules_of("combined"), period=60, **kw)
        acc.add_chunk(generated("combined", 200))
        assert type(acc._fast) is fastpath.FastPath


def test_chunk_size_does_not_matter():
    data = generated("json", 1500)
    rules = rules_of("json")
    results = {size: both(rules, data, size=size)[1] for size in (1, 200, 5000, 1 << 20)}
    assert len({repr(v) for v in results.values()}) == 1


def test_capacity_overflow_falls_back_to_the_reference_order():
    """Space-Saving depends on the order of events: a chunk that would pass the capacity goes line by line."""
    data = generated("combined", 3000)
    for r in rules_of("combined"):
        ref, fast, path = both([r], data, capacity=5)
        assert ref == fast, r.name
    ref, fast, path = both(rules_of("combined"), data, capacity=5)
    assert ref == fast
    assert path.chunks_reference > 0  # it did have to fall back


CLF_EDGE = [
    '1.2.3.4 - - [04/Mar/2024:10:00:01 +0000] "GET /a?x=1 HTTP/1.1" 500 12 "-" "curl/8"',
    '1.2.3.4 - - [04/Mar/2024:10:00:01 +0000] "GET /a? HTTP/1.1" 503 12 "" ""',
    '1.2.3.4 - - [04/Mar/2024:10:00:02 +0000] "GET /a HTTP/1.1" 502 - "-" "UA with \\"quotes\\""',
    '1.2.3.4 - - [04/Mar/2024:10:00:02 +0000] "GET /b\\\\c HTTP/1.1" 500 1 "-" "x"',
    '1.2.3.4 - - [04/Mar/2024:10:00:03 +0000] "GET /c HTTP/1.1" 500 1',
    '1.2.3.4 - - [04/Mar/2024:10:00:03 +0000] "GET /c HTTP/1.1" 500 1 "r" "u" 0.003 upstream',
    '1.2.3.4 - - [04/Mar/2024:10:00:03 +0000] "GET /c" 500 1',
    '1.2.3.4 - - [04/Mar/2024:10:00:04 +0000] "GET http://h.example/d?q HTTP/1.1" 500 1 "-" "-"',
    '1.2.3.4 - - [04/Mar/2024:10:00:04 +0000] "GET /e HTTP/1.1" 500 1 "-" "-"   ',
    '1.2.3.4 - - [31/Feb/2024:10:00:04 +0000] "GET /f HTTP/1.1" 500 1 "-" "-"',
    '1.2.3.4 - - [04/Mar/2024:10:00:05 +0000] "GET /g HTTP/1.1" 600 1 "-" "-"',
    '1.2.3.4 - - [04/Mar/2024:10:00:05 +0000] "GET /g HTTP/1.1" 500 1x "-" "-"',
    '1.2.3.4 - - [04/Mar/2024:10:00:05 +0000] "BAD" 500 1 "-" "-"',
    '1.2.3.4 - - [04/Mar/2024:10:00:05 +0000 "GET /h HTTP/1.1" 500 1',
    '2001:db8::1 - - [04/Mar/2024:11:00:05 -0700] "POST /h/é HTTP/2.0" 500 7 "-" "ü"',
    '1.2.3.4 - - [04/Mar/2024:10:00:05 +0000] "GET /' + "x" * 70000 + ' HTTP/1.1" 500 1',
    "", "   ", "garbage", "\t",
]


def test_clf_edge_cases_match_the_reference():
    rules = rules_of("combined") + [compile_rule({
        "Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/a"], "LogFormat": "CLF",
        "Contribution": {"Keys": ["user_agent", "query"], "Filters": [{"Match": "status", "GreaterThan": 499}]},
        "AggregateOn": "Count"}, "ua-query"), compile_rule({
        "Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/a"], "LogFormat": "CLF",
        "Contribution": {"Keys": ["10", "request_uri"]}, "AggregateOn": "Count"}, "extra-uri")]  # fmt: skip
    lines = CLF_EDGE * 3
    random.Random(3).shuffle(lines)
    data = ("\n".join(lines) + "\n").encode() + b"bad \xff\xfe utf8\r\n" + b'1.2.3.4 - - [04/Mar/2024:10:00:05 +0000] "GET /crlf HTTP/1.1" 500 1\r\n'
    for size in (1, 300, 1 << 20):
        ref, fast, _ = both(rules, data, size=size)
        assert ref == fast
    assert ref[3]  # some lines were rejected, each with its reason
    assert ref[4] == 3 * 3  # blank lines ("", "   ", "\t") skipped and counted
    clean = ("\n".join(line for line in CLF_EDGE if "\\" not in line and "x" * 100 not in line) + "\n").encode()
    ref, fast, path = both(rules, clean)
    assert ref == fast and path.chunks_fast > 0


def _json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))  # big integers and all


BASE = {"time": "2024-03-04T10:00:00.123Z", "client": "10.0.0.1", "method": "GET", "path": "/a/1?x=2", "status": 500,
        "bytes": 10, "latency_ms": 1.5, "user_agent": "curl/8"}  # fmt: skip


def json_edge_lines() -> list[str]:
    def v(**kw):
        d = dict(BASE)
        d.update(kw)
        return _json({k: x for k, x in d.items() if x is not ...})

    return [
        v(), v(status=200), v(status=404, client="10.0.0.2"),
        v(user_agent='UA with "quotes" and \\ backslash'), v(client="ünïcödé", path="/ü/é?q=ñ"),
        v(status="500"), v(status="abc"), v(status=None), v(status=700), v(status=...), v(status=True),
        v(bytes="-"), v(bytes=None), v(bytes=-1), v(bytes="12"), v(bytes=1.5), v(bytes=2**70), v(bytes=...),
        v(latency_ms=-1), v(latency_ms="3"), v(latency_ms=None), v(latency_ms=2**65),
        v(client=None), v(client=...), v(client=5), v(client="x" * 400), v(client={"ip": "1"}),
        v(nested={"status": 200, "path": "/nested"}), v(extra=[1, 2, {"a": 3}]), v(deep={"a": {"b": {"c": 1}}}),
        v(time="2024-03-04T10:00:01Z"), v(time="2024-03-04T10:00:01.999999Z"), v(time="2024-03-04T11:00:01+01:00"),
        v(time=1709546402), v(time=1709546402123), v(time="04/Mar/2024:10:00:03 +0000"), v(time="nope"),
        v(time=...), v(time=None), v(time="2024-03-04T10:00:59.9999995Z"), v(time="2024-03-04 10:00:04Z"),
        v(path="https://h.example/abs?q=1"), v(path=""), v(path=None), v(path=7), v(request_uri=None),
        v(path_template="/logged/{id}"),
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/big","x":1e400}',
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/big","x":' + "9" * 400 + "}",
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/big2","x":[' + "9" * 400 + "]}",
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/dup","status":200}',
        '{"time":"2024-03-04T10:00:05Z","st\\u0061tus":503,"path":"/esc\\u002fkey"}',
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/sur\\ud800"}',
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/ws"}   ',
        '  {"time":"2024-03-04T10:00:05Z","status":500,"path":"/lead"}',
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/two"}{"time":"2024-03-04T10:00:05Z"}',
        '{"time":"2024-03-04T10:00:05Z", "status" : 500 , "path" : "/spaced"}',
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/ctl\x01"}',
        '[1, 2]', '"str"', '{"time":"2024-03-04T10:00:05Z","status":500,', '{', '}', 'http 2024 bad alb',
        '{"time":"2024-03-04T10:00:05Z","status":500,"path":"/' + "x" * 70000 + '"}',
        "", "  ",
    ]  # fmt: skip


JSON_EXTRA_RULES = [
    {"Keys": ["$.path_template"], "Filters": [{"Match": "$.status", "GreaterThan": 499}]},
    {"Keys": ["$.request_uri", "$.client"], "Filters": [{"Match": "$.method", "In": ["GET"]}]},
    {"Keys": ["$.client"], "Filters": [{"Match": "$.status", "LessThan": 450}, {"Match": "$.status", "NotEqualTo": 200}]},
    {"Keys": ["$.nested.path"], "Filters": [{"Match": "$.nested.status", "EqualTo": 200}]},
    {"Keys": ["$.client"], "ValueOf": "$.latency_ms", "AggregateOn": "Sum"},
    {"Keys": ["$.client"], "ValueOf": "$.bytes", "AggregateOn": "Sum", "Filters": [{"Match": "$.status", "EqualTo": 500}]},
]


def json_rules():
    out = rules_of("json")
    for i, c in enumerate(JSON_EXTRA_RULES):
        c = dict(c)
        agg = c.pop("AggregateOn", "Count")
        value = {"ValueOf": c.pop("ValueOf")} if "ValueOf" in c else {}
        out.append(compile_rule({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/a"],
                                 "LogFormat": "JSON", "Contribution": {**c, **value}, "AggregateOn": agg}, f"extra{i}"))
    return out


def test_json_edge_cases_match_the_reference():
    lines = json_edge_lines() * 2
    random.Random(5).shuffle(lines)
    data = ("\n".join(lines) + "\n").encode() + b'{"time":"2024-03-04T10:00:05Z","status":500,"path":"/\xff"}\n' \
        + b'{"time":"2024-03-04T10:00:05Z","status":500,"path":"/crlf"}\r\n'
    # an object cut over two lines next to a line of two objects: as many objects as lines, none of them a line
    data += b'{"time":"2024-03-04T10:00:06Z","status":500,\n"path":"/span"}\n' \
        + b'{"time":"2024-03-04T10:00:06Z","status":500,"path":"/a"} {"time":"2024-03-04T10:00:06Z","status":500}\n'
    rules = json_rules()
    for group in (rules, *[[r] for r in rules]):
        for size in (1, 700, 1 << 20):
            ref, fast, _ = both(group, data, size=size)
            assert ref == fast, ([r.name for r in group], size)
    assert ref[3]  # rejected lines are counted with their reasons
    # the same lines with a background of generated ones (so most blocks decode at once)
    bg = generated("json", 800).decode().splitlines()
    mixed = bg[:400] + lines + bg[400:]
    # a rule reading $.nested.path keeps everything on add_line; a Sum of floats adds in line order (reference)
    flat = [r for r in rules if r.reads is not None and r.value_of != "$.latency_ms"]
    assert len(flat) == len(rules) - 2
    ref, fast, path = both(flat, ("\n".join(mixed) + "\n").encode(), size=1 << 20)
    assert ref == fast and path.chunks_fast > 0


def test_json_fields_configured_elsewhere_take_the_reference_path_or_match_it():
    lines = [_json({"ts": "2024-03-04T10:00:00Z", "code": 500, "path": "/a"}), _json({"ts": "2024-03-04T10:00:00Z", "code": 200})]
    data = ("\n".join(lines * 5) + "\n").encode()
    fields = JsonFields(time="ts", status="code")
    rule = compile_rule({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/a"],
                         "LogFormat": "JSON", "Contribution": {"Keys": ["$.path"], "Filters": [
                             {"Match": "$.code", "GreaterThan": 499}]}, "AggregateOn": "Count"}, "r")  # fmt: skip
    ref, fast, _ = both([rule], data, json_fields=fields)
    assert ref == fast and ref[2] == 10
    no_path = JsonFields(path="")  # parse_json derives nothing: $.path keeps its query string
    tpl = compile_rule({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/a"],
                        "LogFormat": "JSON", "Contribution": {"Keys": ["$.path", "$.method"]}, "AggregateOn": "Count"}, "t")
    q = ("\n".join(_json({"time": "2024-03-04T10:00:00Z", "path": f"/a?{i}", "method": "GET"}) for i in range(9)) + "\n").encode()
    ref, fast, path = both([tpl], q, json_fields=no_path)
    assert ref == fast and path.chunks_fast > 0 and len(next(iter(ref[0].values()))) > 0
    dotted = JsonFields(time="meta.ts")
    ref, fast, path = both([rule], data, json_fields=dotted)
    assert ref == fast and type(path) is fastpath.FastPath
    quoted = JsonFields(time='t"s', status="code")  # a name msgspec cannot rename a field to: the reference path
    qdata = data.replace(b'"ts"', b'"t\\"s"')
    ref, fast, path = both([rule], qdata, json_fields=quoted)
    assert ref == fast and ref[2] == 10 and type(path) is fastpath.FastPath


def test_clf_chunk_regex_is_built_from_the_fast_line_pattern():
    """`clf_chunk_regex` copies the pieces of `_CLF_FAST_RE`: when that pattern changes, so must it."""
    assert _CLF_FAST_RE.pattern == (
        r'(\S+) (\S+) (\S+) \[([^\]]*)\] "(([A-Za-z]+) (/[^" ?]*)(?:\?([^" ]*))?(?: ([^" ]+))?)" ([1-5][0-9][0-9]) ([0-9]+|-)'
        r'(?: "([^"]*)" "([^"]*)")?(?: +(\S(?:.*\S)?))?\Z')
    regex, names = clf_chunk_regex({"client", "referer", "query"})
    assert names == ("client", "time", "query", "status", "referer")
    line = '1.2.3.4 - - [04/Mar/2024:10:00:01 +0000] "GET /a? HTTP/1.1" 500 12 "" "x"'
    assert regex.findall(line) == [("1.2.3.4", "04/Mar/2024:10:00:01 +0000", "?", "500", '"', "")]


_CLF_PIECES = st.sampled_from(CLF_EDGE[:15] + ['9.9.9.9 - u [04/Mar/2024:10:01:00 +0000] "DELETE /x/{0} HTTP/1.0" 404 3 "-" "-"'])
_JSON_PIECES = st.sampled_from(json_edge_lines()[:-3])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_CLF_PIECES, st.text(max_size=30)), min_size=1, max_size=40), st.integers(1, 2000),
       st.integers(0, 3))
def test_property_clf_any_mix_of_lines_and_chunk_sizes(lines, size, seed):
    rules = rules_of("combined")
    rng = random.Random(seed)
    lines = [line.replace("{0}", str(rng.randrange(5))) for line in lines]
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    ref, fast, _ = both(rules, data, size=size)
    assert ref == fast


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_JSON_PIECES, st.text(max_size=30), st.dictionaries(
    st.sampled_from(["time", "status", "path", "client", "bytes", "latency_ms", "x"]),
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), st.text(max_size=8),
              st.sampled_from(["2024-03-04T10:00:07Z", "2024-03-04T10:01:07.5Z", "/p?q", "500"])),
    max_size=7).map(_json)), min_size=1, max_size=40), st.integers(1, 3000))
def test_property_json_any_mix_of_lines_and_chunk_sizes(lines, size):
    rules = json_rules()
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    ref, fast, _ = both(rules, data, size=size)
    assert ref == fast


def test_split_lines_is_how_sieve_topn_reads_text():
    assert fastpath.split_lines(b"a\r\nb\n\nc\r\r") == ["a", "b", "", "c"]
    assert fastpath.split_lines(b"a\n") == ["a"] and fastpath.split_lines(b"") == []
    assert fastpath.split_lines(b"\xff\n") == ["\udcff"]


def test_sieve_topn_reads_plain_and_gzip_files_in_chunks_as_line_by_line(tmp_path, monkeypatch):
    import gzip

    from processors.commands.topn import feed_file

    from processors.commands import topn

    long_line = b"x" * 3000  # longer than the small chunks below: a chunk is never cut inside a line
    data = generated("combined", 2000) + b"\n   \nnot a log line\n" + long_line + b"\n" \
        + generated("combined", 500, seed=8).rstrip(b"\n")
    plain, gz = tmp_path / "a.log", tmp_path / "a.log.gz"
    plain.write_bytes(data)
    gz.write_bytes(gzip.compress(data))
    rules = rules_of("combined")
    ref = Accumulator(rules, period=60)
    ref._fast = fastpath.FastPath(ref)
    want = state(ref, ref.add_chunk(data))
    for chunk in (topn.CHUNK_BYTES, 1000, 4096):  # plain files are cut from a memory map, gzip is read
        monkeypatch.setattr(topn, "CHUNK_BYTES", chunk)
        for f in (plain, gz):
            acc = Accumulator(rules, period=60)
            assert state(acc, feed_file(f, acc, {})) == want, (f.name, chunk)
    assert want[4] == 2 and want[3] == {"malformed_line": 2}
