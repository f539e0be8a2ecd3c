"""Fuzzing the Common / Combined Log Format parser (processors/core/parse.py parse_clf): lines built from
fuzzed parts parse back to those parts; mutated real lines parse or are rejected with a reason."""

from __future__ import annotations

from hypothesis import given

from processors.core.parse import Rejected, parse_clf
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import CLF


@fuzz_settings(400)
@given(CLF.strategy())
def test_clf_fuzz(arg):
    CLF.check(arg)


def test_regression_clf_time_past_year_9999_is_rejected():
    res = parse_clf('1.2.3.4 - - [31/Dec/9999:23:59:59 -2359] "GET / HTTP/1.1" 200 1')
    assert isinstance(res, Rejected) and res.reason == "bad_timestamp"
    ok = parse_clf('1.2.3.4 - - [31/Dec/9999:23:59:59 +0000] "GET / HTTP/1.1" 200 1')
    assert not isinstance(ok, Rejected) and ok[0] == 253_402_300_799
