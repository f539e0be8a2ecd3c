"""Explanation of selected groups (processors/core/explain.py): contrast facts, onset and change, exact on
hand-counted logs (CLF, JSON, ALB), mergeable across shards in any order, bounded with a stated error
beyond capacity, deterministic ties; the finaliser's and `sieve topn --explain --json`'s contracts."""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from collections import Counter
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.core.aggregate import DEFAULT_MAX_STATE_BYTES, Accumulator, WindowAggregate, merge
from processors.core.explain import (ExplainConfig, change_of, client_network, explain_groups, explain_selected,
                                     onset_of, plans_for)
from processors.core.ingest import IngestConfig, ShardState
from processors.core.records import selected_to_dict
from processors.core.rules import compile_rule
from processors.core.types import ContrastFact, Contributor, Onset, TopNReport, Window
from processors.errors import ConfigError

W = Window(1709546400, 1709546460)
SCHEMA = {"Name": "CloudWatchLogRule", "Version": 1}


def rule(name, fmt, keys, filters=(), aggregate="Count", value_of=None, fields=None):
    body = {"Schema": SCHEMA, "LogGroupNames": ["/web*"], "LogFormat": fmt,
            "Contribution": {"Keys": list(keys), **({"Filters": list(filters)} if filters else {}),
                             **({"ValueOf": value_of} if value_of else {})},
            "AggregateOn": aggregate}
    if fields:
        body["Fields"] = fields
    return compile_rule(body, name)


ERRORS_BY_PATH = rule("errors-by-path", "CLF", ["path"], [{"Match": "status", "GreaterThan": 499}], fields={"6": "status"})
NOT_FOUND_BY_CLIENT = rule("404-by-client", "CLF", ["client"], [{"Match": "status", "EqualTo": 404}],
                           fields={"1": "client", "6": "status"})
ALL_BY_PATH = rule("all-by-path", "CLF", ["path"])
BYTES_BY_PATH = rule("bytes-by-path", "CLF", ["path"], aggregate="Sum", value_of="bytes", fields={"7": "bytes"})
JSON_BY_PATH = rule("json-by-path", "JSON", ["$.path"])

EXACT = ExplainConfig(min_events=1, max_facts=5, min_difference=0.0)


def clf(t, client, method, path, status, ua="Mozilla/5.0", ref="https://ex.com/", size=10):
    ts = datetime.fromtimestamp(W.start + t, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'{client} - - [{ts}] "{method} {path} HTTP/1.1" {status} {size} "{ref}" "{ua}"'


def hand_counted_clf() -> list[str]:
    lines = [clf(t, f"10.0.0.{t}", "GET", "/home", 200) for t in range(10)]  # 10 normal requests
    lines += [clf(t, "192.168.1.5", "POST", "/api/orders/1", 503, ua="OrdersWorker/3.4.1", ref="-")
              for t in (30, 31, 32, 40, 41, 50)]  # the incident: one worker, from t=30
    lines += [clf(t, "10.0.0.7", "GET", "/api/orders/2", 503) for t in (5, 15, 25, 35)]  # background errors
    return lines


def run(lines, rules, config=EXACT, shard="s", **kw) -> Accumulator:
    acc = Accumulator(rules, period=60, shard=shard, explain=config, **kw)
    for line in lines:
        acc.add_line(line)
    return acc


def explain_of(acc: Accumulator, rule_name: str, config=EXACT, keys=None):
    agg = acc.partials[(rule_name, W)]
    report = merge([agg], 10)
    keys = [c.keys for c in report.contributors] if keys is None else keys
    return report, explain_groups([agg.explain], keys, config)


def facts(e):
    return [(c.field, c.value, round(c.group_share, 4), round(c.baseline_share, 4)) for c in e.contrast]


# ------------------------------------------------------------------------------------ hand-counted


def test_clf_contrast_onset_hand_counted():
    acc = run(hand_counted_clf(), [ERRORS_BY_PATH], ExplainConfig(min_events=1))
    report, found = explain_of(acc, "errors-by-path", ExplainConfig(min_events=1))
    assert report.contributors == (Contributor(("/api/orders/1",), 6), Contributor(("/api/orders/2",), 4))
    incident = found[("/api/orders/1",)]
    # 6 events in the group, 14 other events in the window. Every field below scores 1.0 (100% vs 0%) except
    # protocol (the same everywhere); path_template is the rule's key and status is read by its filter, so
    # neither is a contrast dimension (a status contrast would only restate `status > 499`).
    # Ties on the score are broken by field name; three facts are kept.
    assert facts(incident) == [("client_network", "192.168.1.0/24", 1.0, 0.0), ("method", "POST", 1.0, 0.0),
                               ("referer", "-", 1.0, 0.0)]
    assert incident.contrast[0] == ContrastFact("client_network", "192.168.1.0/24", 1.0, 0.0, 6, 0, 0.0)
    assert (incident.events, incident.missed) == (6, 0)
    assert incident.onset == Onset(W.start + 30, 10, (0, 0, 0, 3, 2, 1), 0.0, 2.0)
    background = found[("/api/orders/2",)]
    assert background.onset is None  # one per 10 s from the start: no rise
    # 4 events, 16 others: 4/4 vs 10/16 for all it shares with /home, ties broken by field name
    assert facts(background) == [("client_network", "10.0.0.0/24", 1.0, 0.625), ("method", "GET", 1.0, 0.625),
                                 ("referer", "https://ex.com/", 1.0, 0.625)]


def test_clf_all_facts_and_no_fact_restates_the_rule():
    acc = run(hand_counted_clf(), [ERRORS_BY_PATH])
    _, found = explain_of(acc, "errors-by-path")
    incident = found[("/api/orders/1",)]
    # room for 5 facts, but only 4 differ: protocol is the same everywhere, and status (6/6 "503" vs 4/14) is
    # what the rule's filter selected on, so it is never a dimension of this rule
    assert facts(incident) == [("client_network", "192.168.1.0/24", 1.0, 0.0), ("method", "POST", 1.0, 0.0),
                               ("referer", "-", 1.0, 0.0), ("user_agent", "OrdersWorker/3.4.1", 1.0, 0.0)]
    assert all(c.error == 0 for c in incident.contrast)


def test_min_difference_min_events_and_max_facts():
    lines = hand_counted_clf()
    acc = run(lines, [ERRORS_BY_PATH])
    _, found = explain_of(acc, "errors-by-path", ExplainConfig(min_events=1, min_difference=0.8, max_facts=5))
    assert [c.field for c in found[("/api/orders/1",)].contrast] == ["client_network", "method", "referer", "user_agent"]
    _, found = explain_of(acc, "errors-by-path", ExplainConfig())  # min_events 5: the 4-event group gets no facts
    assert found[("/api/orders/2",)].contrast == () and len(found[("/api/orders/1",)].contrast) == 3


def test_json_and_alb_hand_counted():
    def js(t, path, upstream, latency, size, client, ua="svc/1"):
        return json.dumps({"time": W.start + t, "status": 200, "method": "GET", "path": path, "client": client,
                           "user_agent": ua, "upstream": upstream, "host": "api.example.com",
                           "latency_ms": latency, "bytes": size})

    def alb(t, path):
        ts = datetime.fromtimestamp(W.start + t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        return (f'https {ts} app/lb/1 192.168.131.39:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 '
                f'"GET https://www.example.com:443{path} HTTP/1.1" "curl/7.46.0" ECDHE TLSv1.2 arn:tg "Root=1" '
                f'"www.example.com" "arn:cert" 1 {ts} "forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID')

    lines = [js(t, "/slow", "10.0.0.9:8080", 1200, 5000, "10.1.2.3") for t in (1, 2, 3, 4)]
    lines += [js(t, "/fast", "10.0.0.8:8080", 50, 0, "10.1.2.4") for t in (5, 6)]
    lines += [alb(t, "/alb") for t in (7, 8, 9, 10)]
    acc = run(lines, [JSON_BY_PATH])
    report, found = explain_of(acc, "json-by-path")
    assert report.total_events == 10 and not acc.stats.rejected
    # /slow: 4 of 10 events. target, response time and bytes: 100% vs 0%; then 4/4 vs 2/6 (0.667) for
    # client_network, host, protocol ("-": the JSON lines have no protocol field), user_agent
    assert facts(found[("/slow",)]) == [
        ("bytes", "1-10KB", 1.0, 0.0), ("response_time", "1-5s", 1.0, 0.0), ("target", "10.0.0.9:8080", 1.0, 0.0),
        ("client_network", "10.1.2.0/24", 1.0, 0.3333), ("host", "api.example.com", 1.0, 0.3333)]
    # /alb: host = domain_name, target, 0.086 + 0.048 + 0.037 s = 171 ms, 57 bytes sent: all 100% vs 0%
    assert facts(found[("/alb",)]) == [
        ("bytes", "<1KB", 1.0, 0.0), ("client_network", "192.168.131.0/24", 1.0, 0.0),
        ("host", "www.example.com", 1.0, 0.0), ("protocol", "HTTP/1.1", 1.0, 0.0), ("response_time", "100-500ms", 1.0, 0.0)]
    assert found[("/fast",)].contrast[0] == ContrastFact("bytes", "0B", 1.0, 0.0, 2, 0, 0.0)


def test_dimensions_a_rule_fixes_are_not_counted_for_it():
    plans = plans_for([ERRORS_BY_PATH, NOT_FOUND_BY_CLIENT], ExplainConfig())
    errors, not_found = plans["errors-by-path"], plans["404-by-client"]
    assert errors.dims == not_found.dims  # one scope, one baseline: the dimensions either rule uses
    # keyed on path (no path_template), status read by its filter (`> 499`): neither can distinguish a group
    assert [errors.dims[i] for i in errors.key_dims] == ["method", "user_agent", "referer", "client_network",
                                                         "protocol"]
    # keyed on client, status fixed by EqualTo 404: neither can distinguish a group
    assert [not_found.dims[i] for i in not_found.key_dims] == ["method", "user_agent", "referer", "path_template",
                                                               "protocol"]
    alone = plans_for([ERRORS_BY_PATH], ExplainConfig())["errors-by-path"]
    assert "path_template" not in alone.dims  # no rule of the scope can use it: not counted at all
    assert "status" not in errors.dims  # both rules filter on it: not counted at all
    assert plans_for([ERRORS_BY_PATH], ExplainConfig(rules=("other",)))["errors-by-path"] is None
    assert plans_for([ERRORS_BY_PATH], None)["errors-by-path"] is None


def test_two_rules_share_one_baseline_and_count_each_event_once():
    lines = hand_counted_clf() + [clf(20, "10.9.9.9", "GET", "/nope", 404) for _ in range(3)]
    acc = run(lines, [ERRORS_BY_PATH, NOT_FOUND_BY_CLIENT])
    a, b = acc.partials[("errors-by-path", W)].explain, acc.partials[("404-by-client", W)].explain
    assert a.baseline is b.baseline
    a.settle()
    assert a.baseline.events == len(lines) == acc.partials[("404-by-client", W)].total_events
    _, found = explain_of(acc, "404-by-client", keys=[("10.9.9.9",)])
    assert ("path_template", "/nope", 1.0, 0.0) in facts(found[("10.9.9.9",)])
    assert "status" not in [c.field for c in found[("10.9.9.9",)].contrast]


def test_values_client_networks_and_buckets():
    assert client_network("203.0.113.7") == "203.0.113.0/24"
    assert client_network("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert client_network("::ffff:198.51.100.9") == "198.51.100.0/24"
    assert client_network("crawler.example.com") == "crawler.example.com" and client_network(None) == "-"
    only_ua = ExplainConfig(min_events=1, dimensions=("user_agent",))
    acc = run([clf(1, "1.2.3.4", "GET", "/x", 500, ua="a" * 400)], [ERRORS_BY_PATH], only_ua)
    _, found = explain_of(acc, "errors-by-path", only_ua)
    ua = [c.value for c in found[("/x",)].contrast if c.field == "user_agent"][0]
    assert len(ua) == 256 and ua.startswith("a" * 200) and "#" in ua  # bounded, still distinct per value


# ------------------------------------------------------------------------------------ onset and change


def test_onset_rule():
    assert onset_of((0, 0, 0, 3, 2, 1), 0, 10) == Onset(30, 10, (0, 0, 0, 3, 2, 1), 0.0, 2.0)
    assert onset_of((5, 4, 6, 10, 11, 12), 0, 10) == Onset(30, 10, (5, 4, 6, 10, 11, 12), 5.0, 11.0)
    assert onset_of((0, 0, 0, 10, 10, 0), 0, 10).at == 30  # a burst that ended inside the window
    assert onset_of((0, 1, 0, 5, 5, 5), 0, 10).at == 30  # a lone event is not the onset
    assert onset_of((10, 10, 10, 10, 10, 10), 0, 10) is None  # steady
    assert onset_of((10, 10, 5, 0, 0, 0), 0, 10) is None  # falling
    assert onset_of((5, 4, 6, 9, 11, 12), 0, 10) is None  # a ramp that never doubles what came before
    assert onset_of((5, 4, 6, 9, 11, 12), 0, 10, factor=1.5).at == 30


def test_onset_needs_exact_buckets():
    # a one-slot tracker: the incident key enters late (after other keys took the slot), so what it
    # missed is not in its buckets and no onset is stated
    cfg = ExplainConfig(keys=1, min_events=1)
    lines = [clf(1, "10.0.0.1", "GET", "/a", 500), clf(2, "10.0.0.1", "GET", "/a", 500)]
    lines += [clf(t, "10.0.0.2", "GET", "/b", 500) for t in (3, 35, 36, 37, 45, 46)]
    acc = run(lines, [ERRORS_BY_PATH], cfg)
    _, found = explain_of(acc, "errors-by-path", cfg)
    e = found[("/b",)]
    # /b's first two events came while /a (2 events) held the slot: it enters at its third, with exactly
    # those 2 missed, so its buckets are incomplete and no onset is stated
    assert (e.events, e.missed) == (4, 2) and e.onset is None
    assert (e.buckets, e.bucket_seconds) == ((), 0)  # nor is a rate drawn from incomplete buckets
    assert ("/a",) not in found


def test_change_against_earlier_windows():
    def rep(start, *contributors):
        return TopNReport("r", Window(start, start + 60), ("path",), "Count", tuple(Contributor((k,), v) for k, v in contributors),
                          len(contributors), 0, 0, 0)

    before = [rep(W.start - 120, ("/a", 10), ("/b", 50)), rep(W.start - 60, ("/a", 12))]
    assert change_of(("/a",), 48, before) == "count change x4.0"  # against the latest window that had it: 12
    assert change_of(("/a",), 20, before) == "known pattern"
    assert change_of(("/a",), 5, before) == "count change x0.42"
    assert change_of(("/b",), 60, before) == "known pattern"  # absent last window, 50 the one before
    assert change_of(("/c",), 60, before) == "new pattern"
    assert change_of(("/c",), 60, []) == ""  # nothing to compare with
    assert change_of(("/a",), 30, before, factor=3.0) == "known pattern"


# ------------------------------------------------------------------------------------ merge, restore, bounds

_PATHS = ["/a", "/b", "/c", "/api/1", "/api/2"]
_UAS = ["Mozilla/5.0", "curl/8", "OrdersWorker/3.4.1", "-"]
_CLIENTS = ["10.0.0.1", "10.0.0.2", "10.0.1.1", "192.168.7.7", "2001:db8::1"]
_event = st.tuples(st.integers(0, 59), st.sampled_from(_CLIENTS), st.sampled_from(["GET", "POST"]),
                   st.sampled_from(_PATHS), st.sampled_from([200, 404, 500, 503]), st.sampled_from(_UAS))


def _line(e):
    t, client, method, path, status, ua = e
    return clf(t, client, method, path, status, ua=ua)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, min_size=1, max_size=120), st.lists(st.integers(0, 3), min_size=120, max_size=120),
       st.booleans(), st.randoms(use_true_random=False))
def test_merged_shards_equal_one_pass_while_under_capacity(events, shard_of, serialise, rnd):
    lines = [_line(e) for e in events]
    rules = [ERRORS_BY_PATH, ALL_BY_PATH, BYTES_BY_PATH]
    one = run(lines, rules)
    shards = [run([x for i, x in enumerate(lines) if shard_of[i] == s], rules, shard=f"s{s}") for s in range(4)]
    for r in rules:
        if (r.name, W) not in one.partials:
            continue
        parts = [acc.partials[(r.name, W)] for acc in shards if (r.name, W) in acc.partials]
        if serialise:
            parts = [WindowAggregate.from_bytes(p.to_bytes()) for p in parts]
        rnd.shuffle(parts)
        report = merge(parts, 10)
        keys = [c.keys for c in report.contributors]
        merged = explain_groups([p.explain for p in parts], keys, EXACT)
        alone = explain_groups([one.partials[(r.name, W)].explain], keys, EXACT)
        assert merged == alone
        for e in merged.values():
            assert e.missed == 0 and all(c.error == 0 for c in e.contrast)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_event, min_size=1, max_size=80), st.integers(1, 79))
def test_restored_state_continues_exactly(events, cut):
    lines = [_line(e) for e in events]
    config = IngestConfig(rules=(ERRORS_BY_PATH, NOT_FOUND_BY_CLIENT, ALL_BY_PATH), samples_k=0, explain=EXACT)
    straight = ShardState.new(config, "s")
    for x in lines:
        straight.acc.add_line(x)
    first = ShardState.new(config, "s")
    first.note("1")
    for x in lines[:cut]:
        first.acc.add_line(x)
    second = ShardState.from_state(first.to_state(), config, "s")
    for x in lines[cut:]:
        second.acc.add_line(x)
    for key, agg in straight.acc.partials.items():
        other = second.acc.partials[key]
        assert agg.to_bytes() == other.to_bytes()  # the explanation included
    explains = [a.explain for (_, w), a in second.acc.partials.items()]
    by_scope = {id(e.baseline) for e in explains}
    assert len(by_scope) == 1  # the restored partials share one baseline again


def _truth(lines, r):
    """(events per key, events per (key, field, value), events per (field, value), total), by brute force
    from the parser and the dimension functions, not from the counters under test."""
    from processors.core.explain import _CLF_DIM_FIELD, _FINISH, FORMAT_DIMENSIONS, _as_text
    from processors.core.parse import parse_clf

    keys, by_value, base, total = Counter(), Counter(), Counter(), 0
    for x in lines:
        _, rec = parse_clf(x)
        total += 1
        vals = {d: _FINISH.get(d, _as_text)(rec.get(_CLF_DIM_FIELD[d])) for d in FORMAT_DIMENSIONS["CLF"]}
        for d, v in vals.items():
            base[(d, v)] += 1
        hit = r.apply(rec)
        if hit:
            keys[hit[0]] += 1
            for d, v in vals.items():
                by_value[(hit[0], d, v)] += 1
    return keys, by_value, base, total


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_overflow_states_a_true_error_bound(seed, nshards):
    rng = random.Random(seed)
    clients = [f"10.{rng.randrange(4)}.{rng.randrange(30)}.{i}" for i in range(40)]
    uas = [f"agent/{i}" for i in range(12)]
    paths = [f"/p{i}" for i in range(25)]
    lines = []
    for _ in range(600):
        heavy = rng.random() < 0.3
        lines.append(clf(rng.randrange(60), clients[0] if heavy else rng.choice(clients), "GET",
                         "/p0" if heavy else rng.choice(paths), 500 if heavy or rng.random() < 0.3 else 200,
                         ua=uas[0] if heavy else rng.choice(uas)))
    tight = ExplainConfig(keys=4, values_per_key=3, baseline_values=5, min_events=1, min_difference=0.0, max_facts=5)
    shards = [run(lines[i::nshards], [ALL_BY_PATH], tight, shard=f"s{i}") for i in range(nshards)]
    parts = [WindowAggregate.from_bytes(a.partials[("all-by-path", W)].to_bytes()) for a in shards]
    report = merge(parts, 10)
    found = explain_groups([p.explain for p in parts], [c.keys for c in report.contributors], tight)
    keys, by_value, base, total = _truth(lines, ALL_BY_PATH)
    assert all(p.explain.approximate or any(t.approximate for t in p.explain.baseline.tallies) for p in parts)
    for key, e in found.items():
        n = keys[key]
        assert e.events <= n <= e.events + e.missed
        for c in e.contrast:
            g = by_value[(key, c.field, c.value)]
            true_group = g / n
            true_other = (base[(c.field, c.value)] - g) / (total - n) if total > n else 0.0
            assert abs(c.group_share - true_group) <= c.error + 1e-9, (key, c)
            assert abs(c.baseline_share - true_other) <= c.error + 1e-9, (key, c)
            assert abs(c.group_share - c.baseline_share) > 2 * c.error  # kept only if it cannot be 0
        if e.onset is not None:
            assert e.missed == 0
    assert ("/p0",) in found  # the heavy key is always tracked
    assert found[("/p0",)].contrast[0].value in ("10." + clients[0].split(".", 1)[1].rsplit(".", 1)[0] + ".0/24",
                                                 "agent/0")


def test_merge_counts_the_floor_of_a_partial_that_lacks_a_value():
    # shard A counts user agent "x" exactly (the group /g); shard B saw "x" twice on other paths but
    # evicted it among many agents: the merged share of "x" in other traffic must carry B's floor
    cfg = ExplainConfig(baseline_values=3, min_events=1, max_facts=5, min_difference=0.0)
    a = [clf(t, "10.0.0.1", "GET", "/g", 200, ua="x") for t in range(5)] + \
        [clf(t, "10.0.0.2", "GET", "/h", 200, ua="y") for t in range(5)]
    b = [clf(1, "10.0.0.3", "GET", "/h", 200, ua="x") for _ in range(2)] + \
        [clf(2 + i % 50, "10.0.0.4", "GET", "/h", 200, ua=f"z{i % 10}") for i in range(30)]
    parts = [WindowAggregate.from_bytes(run(lines, [ALL_BY_PATH], cfg, shard=s).partials[("all-by-path", W)].to_bytes())
             for s, lines in (("a", a), ("b", b))]
    ua = [c for c in explain_groups([p.explain for p in parts], [("/g",)], cfg)[("/g",)].contrast
          if c.field == "user_agent"][0]
    assert (ua.value, ua.group_share, ua.baseline_share) == ("x", 1.0, 0.0)
    true_other = 2 / (len(a) + len(b) - 5)
    assert ua.error >= true_other  # reported 0, truly 2 of the 37 other events


def test_state_stays_within_its_byte_budgets():
    rng = random.Random(7)
    cfg = ExplainConfig()
    acc = Accumulator([ALL_BY_PATH], period=60, explain=cfg)
    for i in range(60_000):  # every client, path and user agent distinct: the worst case for the counters
        ua = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(120))
        acc.add_line(clf(i % 60, f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                         "GET", f"/item/{i}x/{rng.randrange(10**9)}", 200, ua=ua, ref=f"https://r{i}.example/"))
    agg = acc.partials[("all-by-path", W)]
    blob = agg.to_bytes()
    assert len(blob) <= DEFAULT_MAX_STATE_BYTES
    ex = agg.explain
    import zlib

    import orjson

    assert len(zlib.compress(orjson.dumps(ex.to_doc()), 6)) <= cfg.max_state_bytes
    back = WindowAggregate.from_bytes(blob)
    assert back == agg and back.explain.approximate
    report = merge([back], 3)
    assert explain_groups([back.explain], [c.keys for c in report.contributors], cfg) is not None


def test_partials_without_explanation_explain_nothing():
    acc = run(hand_counted_clf(), [ERRORS_BY_PATH], None)
    agg = acc.partials[("errors-by-path", W)]
    assert agg.explain is None and WindowAggregate.from_bytes(agg.to_bytes()).explain is None
    with_ex = run(hand_counted_clf(), [ERRORS_BY_PATH]).partials[("errors-by-path", W)]
    assert explain_groups([with_ex.explain, None], [("/api/orders/1",)], EXACT) == {}
    # explanation off: a restored partial's explanation is dropped, its counts kept
    off = Accumulator([ERRORS_BY_PATH], period=60, explain=ExplainConfig(enabled=False))
    off.restore(WindowAggregate.from_bytes(with_ex.to_bytes()))
    assert off.partials[("errors-by-path", W)].explain is None


# ------------------------------------------------------------------------------------ config, finaliser, CLI


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown 'colour'"):
        ExplainConfig(dimensions=("method", "colour"))
    with pytest.raises(ConfigError, match="max_facts"):
        ExplainConfig(max_facts=9)
    with pytest.raises(ValueError, match="bucket_seconds"):
        Accumulator([ERRORS_BY_PATH], period=60, explain=ExplainConfig(bucket_seconds=7))
    with pytest.raises(ValueError, match="no such rule"):
        Accumulator([ERRORS_BY_PATH], period=60, explain=ExplainConfig(rules=("nope",)))


def test_config_section_in_pipelines_yaml(tmp_path):
    from pathlib import Path

    from processors import wiring
    from processors.config.loader import load_text

    root = Path(__file__).resolve().parents[2]
    text = (root / "pipelines.yaml").read_text()
    loaded = load_text(text, base_dir=root)
    assert wiring.ingest_config(loaded).explain == wiring.finalise_config(loaded, b"k").explain
    assert loaded.config.pipelines.logs.explain.bucket_seconds == 10
    bad = text.replace("      bucket_seconds: 10 ", "      bucket_seconds: 7 ")
    with pytest.raises(ConfigError, match="bucket_seconds 7 must divide"):
        load_text(bad, base_dir=root)
    bad = text.replace("      max_facts: 3 ", "      max_facts: 3\n      dimensions: [method, colour]\n      x: 1 ")
    with pytest.raises(ConfigError):
        load_text(bad, base_dir=root)
    unknown_rule = text.replace("      max_facts: 3 ", "      rules: [no-such-rule]\n      max_facts: 3 ")
    with pytest.raises(ConfigError, match="no rule named 'no-such-rule'"):
        wiring.ingest_config(load_text(unknown_rule, base_dir=root))


def test_finaliser_attaches_facts_and_stores_them():
    from processors.core.boundary import BoundaryConfig
    from processors.core.finalise import slack_safe
    from processors.core.select import SelectionConfig, select_groups
    from processors.core.types import AnalysisOutcome, WindowReport

    lines = hand_counted_clf()
    lines[10] = lines[10].replace('"-" "OrdersWorker', '"https://x/?k=AKIAIOSFODNN7EXAMPLE" "OrdersWorker')
    parts = [WindowAggregate.from_bytes(run(lines[i::2], [ERRORS_BY_PATH], ExplainConfig(), shard=f"s{i}")
                                        .partials[("errors-by-path", W)].to_bytes()) for i in range(2)]
    report = merge(parts, 10)
    selection = select_groups(report, SelectionConfig(min_count=5))
    earlier = [TopNReport("errors-by-path", Window(W.start - 60, W.start), ("path",), "Count",
                          (Contributor(("/api/orders/1",), 2),), 1, 2, 2, 2)]
    groups = explain_selected(selection.selected, [p.explain for p in parts], earlier, ExplainConfig())
    (g,) = groups
    assert g.change == "count change x3.0" and g.onset.at == W.start + 30
    # referer https://ex.com/: 0 of the group's 6, all 14 others (1.0) ties with user_agent and goes first
    assert [(c.field, c.value) for c in g.contrast] == [("client_network", "192.168.1.0/24"), ("method", "POST"),
                                                        ("referer", "https://ex.com/")]
    doc = selected_to_dict(g)
    assert doc["contrast"][0] == {"field": "client_network", "value": "192.168.1.0/24", "group_share": 1,
                                  "baseline_share": 0, "group_count": 6, "baseline_count": 0, "error": 0} or \
        doc["contrast"][0]["value"] == "192.168.1.0/24"
    assert doc["onset"]["counts"] == [0, 0, 0, 3, 2, 1] and doc["change"] == "count change x3.0"
    # the group's exact rate per sub-window, merged from both shards (drawn in Slack even without an onset)
    assert (g.buckets, g.bucket_seconds) == ((0, 0, 0, 3, 2, 1), 10)
    assert (doc["buckets"], doc["bucket_seconds"]) == ([0, 0, 0, 3, 2, 1], 10)
    json.dumps(doc)
    # what people read: contrast values pass the same secret redaction as keys
    secret = dataclasses.replace(g, contrast=g.contrast + (ContrastFact("referer", "https://x/?k=AKIAIOSFODNN7EXAMPLE", 0.5, 0.0, 3, 0),))
    wr = WindowReport("errors-by-path", W, report, (secret,), AnalysisOutcome("disabled"))
    shown = slack_safe(wr, BoundaryConfig(model_id="m", redaction_secret=b"k")).selected[0]
    assert "AKIAIOSFODNN7EXAMPLE" not in shown.contrast[-1].value
    assert shown.contrast[0].value == "192.168.1.0/24"  # client addresses stay visible to people
    # explanation off: nothing attached
    assert explain_selected(selection.selected, [p.explain for p in parts], earlier,
                            ExplainConfig(enabled=False)) == selection.selected


def test_topn_cli_explain_json(tmp_path, capsys):
    from processors.commands import topn

    log = tmp_path / "access.log"
    log.write_text("\n".join(hand_counted_clf()) + "\n")
    rule_file = tmp_path / "errors-by-path.json"
    rule_file.write_text(json.dumps(ERRORS_BY_PATH.definition))
    args = argparse.Namespace(rule=[str(rule_file)], period=60, top=10, capacity=1000, json=True, explain=True,
                              config=str(tmp_path / "missing.yaml"), files=[str(log)])
    (tmp_path / "missing.yaml").write_text("")
    assert topn.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    first, second = out["reports"][0]["contributors"]
    assert first["keys"] == ["/api/orders/1"]
    assert first["contrast"][0] == {"field": "client_network", "value": "192.168.1.0/24", "group_share": 1.0,
                                    "baseline_share": 0.0, "group_count": 6, "baseline_count": 0, "error": 0.0}
    assert [c["field"] for c in first["contrast"]] == ["client_network", "method", "referer"]
    assert first["onset"] == {"at": W.start + 30, "bucket_seconds": 10, "counts": [0, 0, 0, 3, 2, 1],
                              "before_rate": 0.0, "after_rate": 2.0}
    assert second["contrast"] == [] and second["onset"] is None  # 4 events: below min_events
    args.explain = False
    topn.run(args)
    plain = json.loads(capsys.readouterr().out)["reports"][0]["contributors"][0]
    assert "contrast" not in plain and "onset" not in plain
