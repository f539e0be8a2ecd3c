"""Fuzzing the chunked fast path (processors/core/fastpath.py, `Accumulator.add_chunk`, what `sieve topn`
feeds files through) against `add_line` on each line: the same partials (per rule and window: values,
sum, sample_count, total_events, min_ts, max_ts, capacity behaviour) and the same stats (events, parsed,
rejected per reason, blank lines). The target and its inputs: tests/fuzz/target_fastpath.py.

The regressions are bugs this fuzzer found in fastpath.py, now fixed: a blank line right before a line
longer than MAX_LINE_CHARS was not counted, and a JSON key holding a backslash, a quote or a control
character made msgspec refuse the struct (ValueError out of add_chunk)."""

from __future__ import annotations

import pytest
from hypothesis import given

from processors.core.parse import MAX_LINE_CHARS
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.target_fastpath import _long_clf, _long_json, check_fastpath, compare, rule_pool, run_both
from tests.fuzz.targets import FASTPATH

OK_CLF = '1.2.3.4 - - [04/Mar/2024:10:00:05 +0000] "GET /a HTTP/1.1" 500 1 "-" "-"'
OK_JSON = '{"time":"2024-03-04T10:00:05Z","status":500,"client":"1.2.3.4","bytes":1,"path":"/a"}'


def _rules(fmt: str, *names: str):
    pool = {r.name: r for r in rule_pool(fmt)}
    return [pool[n] for n in names]


@fuzz_settings(150)
@given(FASTPATH.strategy())
def test_fastpath_fuzz(arg):
    FASTPATH.check(arg)


@pytest.mark.parametrize("fmt", ["clf", "json"])
def test_the_property_sees_the_fast_path_and_its_reference_agree_on_clean_chunks(fmt):
    """The comparison is not vacuous: clean chunks are committed by the fast path (not line by line),
    several windows and rules are compared, and a difference is caught."""
    from tests.fuzz import corpus

    lines = corpus.log_lines("combined" if fmt == "clf" else "json")
    chunks = [("\n".join(lines[:30]) + "\n").encode(), ("\n".join(lines[30:]) + "\n").encode()]
    rules = list(rule_pool(fmt)[:3])
    ref, fast = check_fastpath((fmt, (0, 1, 2), 10_000, 60, chunks))
    assert fast._fast.chunks_fast == 2 and fast._fast.chunks_reference == 0
    assert len({w for _, w in fast.partials}) > 1 and fast.stats.parsed == len(lines)
    # a single differing count is reported
    ref2, rb, fast2, fb = run_both(fmt, rules, 10_000, 60, chunks)
    next(iter(fast2.partials.values())).total_events += 1
    with pytest.raises(AssertionError, match="total_events"):
        compare(ref2, rb, fast2, fb)


@pytest.mark.parametrize("fmt", ["clf", "json"])
def test_regression_blank_line_before_a_long_line_is_counted(fmt):
    ok, long = (OK_CLF, _long_clf(MAX_LINE_CHARS)) if fmt == "clf" else (OK_JSON, _long_json(MAX_LINE_CHARS))
    data = (ok + "\n\n" + long + "\n").encode()
    rules = _rules(fmt, "rules-errors-by-path" if fmt == "clf" else "rules-json-errors-by-path")
    ref, rb, fast, fb = run_both(fmt, rules, 10_000, 60, [data])
    assert rb == 1 and ref.stats.rejected == {"too_long": 1}
    compare(ref, rb, fast, fb)  # add_chunk returned 0 blank lines


@pytest.mark.parametrize("key", ['"a\\\\b"', '"a\\"b"', '"\\u0001x"', '"\\referer"'])
def test_regression_json_key_with_an_escape_does_not_crash_add_chunk(key):
    line = OK_JSON[:-1] + f",{key}:1}}"
    data = ("\n".join([line, OK_JSON, line]) + "\n").encode()
    rules = _rules("json", "rules-json-errors-by-path", "rules-json-404-by-client")
    ref, rb, fast, fb = run_both("json", rules, 10_000, 60, [data])
    assert ref.stats.parsed == 3
    compare(ref, rb, fast, fb)
