"""WindowAggregate, merge, windows and the Accumulator: exactness, tie-breaks, bounds, state size."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.aggregate import (DEFAULT_CAPACITY, DEFAULT_MAX_STATE_BYTES, Accumulator,
                                       WindowAggregate, merge, window_of)
from processors.core.decode import LogEvent
from processors.core.rules import compile_rule
from processors.core.types import Contributor, ShardProgress, Window
from processors.core.watermark import Watermark

W = Window(1709546400, 1709546460)


def agg(shard="s1", capacity=DEFAULT_CAPACITY, aggregate_on="Count", keys=("client",)):
    return WindowAggregate("r", W, keys, aggregate_on, shard, capacity)


def feed(a, items):
    for k, v in items:
        a.observe(W.start)
        a.add(k, v)
    return a


def zipf_stream(n, distinct, seed, weight=lambda r: 1):
    rng = random.Random(seed)
    return [((f"10.0.{(x := int(distinct * rng.random() ** 3)) // 256}.{x % 256}",), weight(rng)) for _ in range(n)]


def test_exact_counts_and_report_metrics():
    a = feed(agg(), [(("a",), 1), (("b",), 1), (("a",), 1), (("c",), 1), (("a",), 1), (("b",), 1)])
    r = a.report(top=2)
    assert r.contributors == (Contributor(("a",), 3), Contributor(("b",), 2))
    assert (r.unique_contributors, r.max_contributor_value, r.sample_count, r.sum, r.total_events) == (3, 3, 6, 6, 6)
    assert not r.approximate and r.error_bound == 0 and r.shards == ("s1",)


def test_ties_break_by_key_tuple():
    a = feed(agg(keys=("p", "s")), [(("/b", "500"), 2), (("/a", "503"), 2), (("/a", "500"), 2), (("/c", "500"), 5)])
    assert [c.keys for c in a.report(top=3).contributors] == [("/c", "500"), ("/a", "500"), ("/a", "503")]


def test_merge_across_shards_equals_single_pass():
    items = zipf_stream(20_000, 3000, seed=3, weight=lambda r: r.randrange(0, 5000))
    single = feed(agg("all", aggregate_on="Sum"), items)
    shards = [agg(f"shard-{i}", aggregate_on="Sum") for i in range(4)]
    for i, it in enumerate(items):
        feed(shards[hash(it[0]) % 4 if i % 3 else i % 4], [it])
    merged = merge(shards, top=25)
    alone = single.report(top=25)
    truth = Counter()
    for k, v in items:
        truth[k] += v
    expected = sorted(truth.items(), key=lambda kv: (-kv[1], kv[0]))[:25]
    assert [(c.keys, c.value) for c in merged.contributors] == expected
    assert merged.contributors == alone.contributors
    assert (merged.unique_contributors, merged.sample_count, merged.sum, merged.total_events) == \
           (len(truth), len(items), sum(truth.values()), len(items))
    assert merged.shards == ("shard-0", "shard-1", "shard-2", "shard-3")


def test_overflow_turns_approximate_with_a_true_error_bound():
    items = zipf_stream(60_000, 20_000, seed=5)
    truth = Counter()
    for k, v in items:
        truth[k] += v
    shards = [agg(f"s{i}", capacity=300) for i in range(3)]
    for i, it in enumerate(items):
        feed(shards[i % 3], [it])
    r = merge(shards, top=20)
    assert r.approximate and r.error_bound > 0
    assert r.sample_count == len(items) and r.sum == len(items)  # these stay exact
    assert r.unique_contributors >= len(truth)  # an upper bound once approximate
    for c in r.contributors:
        assert truth[c.keys] <= c.value <= truth[c.keys] + r.error_bound, c
    # the real heaviest hitters are found: anything whose true count beats the bound is reported
    reported = {c.keys for c in r.contributors}
    for k, v in sorted(truth.items(), key=lambda kv: -kv[1])[:20]:
        if v > r.contributors[-1].value + r.error_bound:
            assert k in reported
    held = set().union(*(s.values for s in shards))
    for k, v in truth.items():
        if k not in held:
            assert v <= r.error_bound


def test_per_partial_space_saving_bounds():
    items = zipf_stream(30_000, 10_000, seed=9)
    truth = Counter()
    for k, v in items:
        truth[k] += v
    a = feed(agg(capacity=200), items)
    assert a.approximate and len(a.values) == 200
    for k, v in a.values.items():
        assert truth[k] <= v <= truth[k] + a.error_of(k)
    bound = a.report(1).error_bound
    for k in truth:
        if k not in a.values:
            assert truth[k] <= a.floor <= bound


def test_serialisation_round_trip_and_determinism():
    items = zipf_stream(5_000, 800, seed=1)
    a = feed(agg(), items)
    b = feed(agg(), list(reversed(items)))
    assert a.to_bytes() == b.to_bytes()  # exact mode: content only, not arrival order
    c = WindowAggregate.from_bytes(a.to_bytes())
    assert c == a and c.report(10) == a.report(10)
    # continuing after a restore behaves exactly like never stopping
    more = zipf_stream(5_000, 5_000, seed=2)
    small, restored = feed(agg(capacity=300), items), None
    restored = WindowAggregate.from_bytes(small.to_bytes())
    feed(small, more)
    feed(restored, more)
    assert small.to_bytes() == restored.to_bytes()


def test_from_bytes_rejects_garbage():
    for blob in (b"", b"not zlib", __import__("zlib").compress(b"[1]"), __import__("zlib").compress(b'{"v": 9}')):
        with pytest.raises(ValueError):
            WindowAggregate.from_bytes(blob)


def test_state_is_bounded_at_one_million_distinct_keys():
    a = agg()
    for i in range(1_000_000):
        a.add((f"{10 + i % 200}.{(i // 200) % 256}.{(i // 51200) % 256}.{i % 251}",), 1)
    blob = a.to_bytes()
    assert a.approximate and len(a.values) == DEFAULT_CAPACITY
    assert len(blob) <= DEFAULT_MAX_STATE_BYTES <= 1_000_000
    assert a.report(5).sample_count == 1_000_000


def test_byte_budget_holds_for_huge_keys():
    rng = random.Random(4)
    a = agg(keys=("a", "b", "c", "d"))
    for _ in range(3000):
        a.add(tuple("".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(250)) for _ in range(4)), 1)
    blob = a.to_bytes(max_bytes=100_000)
    assert len(blob) <= 100_000 and a.approximate and 0 < len(a.values) < 3000
    assert WindowAggregate.from_bytes(blob) == a
    r = a.report(3)
    assert r.sample_count == 3000 and r.error_bound >= 1


def test_merge_rejects_mixed_inputs():
    with pytest.raises(ValueError):
        merge([])
    other = WindowAggregate("r", Window(0, 60), ("client",))
    with pytest.raises(ValueError):
        merge([agg(), other])
    with pytest.raises(ValueError):
        merge([agg()], top=0)


_partial_items = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f"]),
                                    st.one_of(st.integers(0, 50), st.floats(0, 1e6, allow_nan=False))), max_size=40)


@settings(max_examples=150, deadline=None)
@given(st.lists(_partial_items, min_size=1, max_size=5), st.randoms(use_true_random=False), st.integers(1, 4))
def test_merge_is_order_independent(parts, rnd, capacity):
    partials = []
    for i, items in enumerate(parts):
        p = agg(f"s{i % 3}", capacity=capacity, aggregate_on="Sum")
        feed(p, [((k,), v) for k, v in items])
        partials.append(p)
    shuffled = partials[:]
    rnd.shuffle(shuffled)
    assert merge(partials, top=4) == merge(shuffled, top=4)


def test_window_of_and_watermark():
    assert window_of(1709546459.9, 60) == W and window_of(1709546460, 60) == Window(1709546460, 1709546520)
    now = 1_800_000_000
    progress = {"a": ShardProgress((W.end + 29) * 1000, now - 10), "b": ShardProgress((W.end + 45) * 1000, now - 5)}
    wm = Watermark.of(progress, now)
    assert wm.event_ms == (W.end + 29) * 1000  # the slowest active shard holds the stream back
    assert not wm.closes(W, allowed_lateness=30) and wm.closes(W, allowed_lateness=29)
    idle = {**progress, "a": ShardProgress((W.end + 29) * 1000, now - 301)}  # idle for longer than 300 s
    assert Watermark.of(idle, now).closes(W, allowed_lateness=30)
    all_idle = {k: ShardProgress(p.max_event_ms, now - 1000) for k, p in progress.items()}
    assert Watermark.of(all_idle, now).event_ms == (W.end + 29) * 1000
    assert Watermark.of({}, now).event_ms is None and not Watermark.of({}, now).closes(W, 0)


CLF = compile_rule({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/web*"],
                    "LogFormat": "CLF", "Fields": {"6": "status"},
                    "Contribution": {"Keys": ["path"], "Filters": [{"Match": "status", "GreaterThan": 499}]},
                    "AggregateOn": "Count"}, "errors")
JSON = compile_rule({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/api"],
                     "LogFormat": "JSON", "Contribution": {"Keys": ["$.path"]}, "AggregateOn": "Count"}, "paths")


def line(ts, path, status):
    from datetime import datetime, timezone
    t = datetime.fromtimestamp(ts, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
    return f'1.2.3.4 - - [{t}] "GET {path} HTTP/1.1" {status} 10'


def test_accumulator_routes_by_format_and_log_group_and_counts_rejects():
    acc = Accumulator([CLF, JSON], period=60, shard="shardId-0")
    acc.add_line(line(W.start + 1, "/a", 500))
    acc.add_line(line(W.start + 2, "/a", 200))
    acc.add_event(LogEvent(line(W.start + 3, "/b", 503), 1, "/web/access", "s", "e1"))
    acc.add_event(LogEvent(line(W.start + 4, "/c", 503), 1, "/other", "s", "e2"))  # no rule for that group
    acc.add_event(LogEvent('{"path": "/j"}', (W.start + 5) * 1000, "/api", "s", "e3"))  # time from CWL
    acc.add_line('{"path": "/k"}')  # JSON without any time
    acc.add_line("garbage")
    reps = {r.rule: r for r in acc.reports()}
    assert reps["errors"].contributors == (Contributor(("/a",), 1), Contributor(("/b",), 1))
    assert reps["errors"].total_events == 3 and reps["errors"].shards == ("shardId-0",)
    assert reps["paths"].contributors == (Contributor(("/j",), 1),)
    assert acc.stats.rejected == Counter({"missing_timestamp": 1, "malformed_line": 2, "bad_json": 3})
    assert acc.stats.events == 7 and acc.stats.parsed == 4


def test_accumulator_restore_and_samples():
    first = Accumulator([CLF], period=60, shard="s", samples_k=2)
    first.add_line(line(W.start + 1, "/a", 500))
    blob = first.partials[("errors", W)].to_bytes()
    second = Accumulator([CLF], period=60, shard="s", samples_k=2)
    second.restore(WindowAggregate.from_bytes(blob), first.samples_of("errors", W))
    second.add_line(line(W.start + 2, "/a", 502))
    second.add_line(line(W.start + 3, "/b", 200))
    rep = second.reports()[0]
    assert rep.contributors == (Contributor(("/a",), 2),) and rep.total_events == 3
    # matched lines only, bottom-2 by hash: both /a lines; the 200 on /b matched no filter
    assert set(second.samples_of("errors", W).lines(("/a",))) == {line(W.start + 1, "/a", 500), line(W.start + 2, "/a", 502)}
    assert ("/b",) not in second.samples_of("errors", W).by_key
    with pytest.raises(ValueError):
        second.restore(WindowAggregate("other", W, ("k",)))


def test_accumulator_keeps_samples_of_the_heaviest_keys_only():
    acc = Accumulator([CLF], period=60, samples_k=1, sample_keys=2)
    for i, (path, n) in enumerate([("/a", 5), ("/b", 1), ("/c", 3), ("/d", 3), ("/e", 1), ("/f", 2), ("/g", 1), ("/h", 1), ("/i", 1)]):
        for j in range(n):
            acc.add_line(line(W.start + 1 + j, path, 500))
    kept = acc.samples_of("errors", W).by_key
    assert sorted(kept) == [("/a",), ("/c",)]  # value desc, then key asc: /c before /d
    off = Accumulator([CLF], period=60, samples_k=0)
    off.add_line(line(W.start + 1, "/a", 500))
    assert off.samples_of("errors", W) is None



def test_explanation_changes_no_count_and_old_partials_still_load():
    from processors.core.explain import ExplainConfig

    lines = [line(W.start + i % 60, f"/p{i % 7}", 500 if i % 3 else 200) for i in range(500)]
    plain, explained = Accumulator([CLF, JSON], period=60), Accumulator([CLF, JSON], period=60, explain=ExplainConfig())
    for x in lines:
        plain.add_line(x)
        explained.add_line(x)
    assert plain.reports(10) == explained.reports(10) and plain.stats == explained.stats
    with_ex = explained.partials[("errors", W)]
    without = plain.partials[("errors", W)]
    assert with_ex.explain is not None and without.explain is None
    assert WindowAggregate.from_bytes(without.to_bytes()).explain is None  # a partial written before explanations
    back = WindowAggregate.from_bytes(with_ex.to_bytes())
    assert back == with_ex and back.report(10) == without.report(10)
    assert len(with_ex.to_bytes()) <= DEFAULT_MAX_STATE_BYTES
