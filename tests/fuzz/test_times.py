"""Event times before 1970 (or at/after year 10000) are a counted rejection, `bad_timestamp`, in every
format: CLF / combined, JSON (numbers, ISO 8601 and CLF-style strings), ALB; through the line parsers,
the Accumulator (add_line and the chunked add_chunk of `sieve topn`) and a Lambda batch (LogIngest).

Why: an access-log line dated 1969 (or year 0001) is not real traffic, and a window with a negative start
is odd everywhere downstream (DynamoDB keys, reports, Slack). Before, only numeric JSON times had to be
>= 0; ISO / ALB / CLF dates from 0001 to 1969 were accepted (found while fuzzing, issue 14)."""

from __future__ import annotations

import base64

import pytest

from processors.adapters.memory import MemoryWindowStore
from processors.core.aggregate import Accumulator
from processors.core.ingest import IngestConfig, LogIngest, StreamBatch, StreamRecord
from processors.core.parse import DEFAULT_JSON_FIELDS, Rejected, parse_alb, parse_clf, parse_json_or_alb
from tests.fuzz import corpus
from tests.fuzz.target_fastpath import compare, rule_pool, run_both
from tests.fuzz.targets import ListSink, _ingest_rules


def clf(stamp: str) -> str:
    return f'1.2.3.4 - - [{stamp}] "GET /a HTTP/1.1" 500 12 "-" "curl/8"'


def js(time) -> str:
    import json

    return json.dumps({"time": time, "status": 500, "path": "/a", "client": "1.2.3.4", "bytes": 3})


def alb(iso: str) -> str:
    line = corpus.log_lines("alb")[0]
    return line.replace("2024-03-04T10:00:00.000000Z", iso, 1)


BEFORE_1970 = [
    ("clf", clf("31/Dec/1969:23:59:59 +0000")), ("clf", clf("01/Jan/1970:00:59:59 +0100")), ("clf", clf("01/Jan/0001:00:00:00 +0000")),
    ("json", js("1969-12-31T23:59:59Z")), ("json", js("1969-12-31T23:59:59.5Z")), ("json", js("1970-01-01T00:00:00+01:00")),
    ("json", js("0001-01-01T00:00:00Z")), ("json", js("31/Dec/1969:23:59:59 +0000")), ("json", js(-1)), ("json", js(-0.5)),
    ("alb", alb("1969-12-31T23:59:59.999999Z")), ("alb", alb("0001-01-01T00:00:00.000000Z")),
]
AT_1970 = [("clf", clf("01/Jan/1970:00:00:00 +0000"), 0), ("clf", clf("01/Jan/1970:01:00:00 +0100"), 0),
           ("json", js("1970-01-01T00:00:00Z"), 0), ("json", js("1970-01-01T00:00:00.000001Z"), 0.000001), ("json", js(0), 0),
           ("alb", alb("1970-01-01T00:00:00.000000Z"), 0)]


def parse(fmt: str, line: str):
    return parse_clf(line) if fmt == "clf" else parse_alb(line) if fmt == "alb" else parse_json_or_alb(line, DEFAULT_JSON_FIELDS)


@pytest.mark.parametrize("fmt,line", BEFORE_1970)
def test_regression_event_time_before_1970_is_bad_timestamp(fmt, line):
    res = parse(fmt, line)
    assert isinstance(res, Rejected) and res.reason == "bad_timestamp", res
    assert "1970" in res.detail or "positive" in res.detail


@pytest.mark.parametrize("fmt,line,ts", AT_1970)
def test_the_epoch_itself_is_accepted(fmt, line, ts):
    res = parse(fmt, line)
    assert not isinstance(res, Rejected), res
    assert res[0] == ts


@pytest.mark.parametrize("fmt", ["clf", "json"])
def test_before_1970_is_counted_the_same_by_add_chunk_and_add_line(fmt):
    lines = [line for f, line in BEFORE_1970 if f == fmt or (fmt == "json" and f == "alb")]
    ok = [line for f, line, _ in AT_1970 if f == fmt] + list(corpus.log_lines("combined" if fmt == "clf" else "json")[:20])
    data = ("\n".join(ok + lines + ok) + "\n").encode()
    rules = list(rule_pool(fmt)[:4])
    ref, rb, fast, fb = run_both(fmt, rules, 10_000, 60, [data])
    compare(ref, rb, fast, fb)
    assert ref.stats.rejected["bad_timestamp"] == len(lines)
    assert all(w.start >= 0 for _, w in ref.partials)


def test_before_1970_in_a_lambda_batch_is_a_counted_rejection():
    lines = [clf("31/Dec/1969:23:59:59 +0000"), js("1969-12-31T23:59:59Z"), alb("1969-12-31T23:59:59.999999Z"),
             clf("04/Mar/2024:10:00:00 +0000")]
    store, sink = MemoryWindowStore(clock=lambda: 1_800_000_000), ListSink()
    ingest = LogIngest(IngestConfig(rules=_ingest_rules()), store, sink, clock=lambda: 1_800_000_000)
    records = tuple(StreamRecord(str(10**20 + i), base64.b64encode(ln.encode()).decode()) for i, ln in enumerate(lines))
    res = ingest.process(StreamBatch("shardId-000000000000", records))
    assert res.failed_sequence is None and res.flushed.counters["records"] == 4
    stats = res.flushed.stats
    assert stats.events == 4 and stats.parsed == 1
    assert stats.rejected["bad_timestamp"] >= 3
