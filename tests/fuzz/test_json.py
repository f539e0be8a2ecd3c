"""Fuzzing the JSON log-line parser (processors/core/parse.py parse_json / parse_json_or_alb) with
generated objects (well-known fields of every type), mutated real lines and configurable field names."""

from __future__ import annotations

from hypothesis import given

from processors.core.parse import Rejected, parse_json
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import JSON


@fuzz_settings(400)
@given(JSON.strategy())
def test_json_fuzz(arg):
    JSON.check(arg)


def test_regression_event_time_after_year_9999_is_rejected():
    """Found by the fuzzer: a numeric or ISO time past the year 9999 was accepted as an event time that
    no window (and no date) can hold."""
    for line in ('{"time": 253402300800000.0}', '{"time": 1e300}', '{"time": 253402300800000}',
                 '{"time": "9999-12-31T23:59:59-14:00"}'):
        res = parse_json(line)
        assert isinstance(res, Rejected) and res.reason == "bad_timestamp", (line, res)
    assert parse_json('{"time": 253402300799999}')[0] == 253_402_300_799.999  # epoch ms
