"""The runner's clock: the real one leaves the streams' timestamps as they are; the tests' FakeClock
stands still until moved and places moto's real-time stamps on its own time line."""

from __future__ import annotations

import time

from processors.runtime.runner import Clock
from tests.runtime.conftest import FakeClock, drain_queue, make_queue, make_stream, mapping, put, runner_for


def test_the_real_clock_is_the_real_time_and_leaves_stream_timestamps_alone():
    clock = Clock()
    before = time.time()
    assert before <= clock.time() <= time.time()
    assert clock.arrival(1_764_170_000.123) == 1_764_170_000.123
    assert clock.stream_time(1_764_170_000.123) == 1_764_170_000.123
    m0 = time.monotonic()
    assert m0 <= clock.monotonic() <= time.monotonic()


def test_the_fake_clock_moves_only_when_told_and_maps_real_stamps_to_its_time():
    clock = FakeClock()
    assert clock.time() == FakeClock.START and FakeClock.START % 900 == 0
    mono = clock.monotonic()
    stamp_before = time.time()
    clock.advance(5)
    stamp_after = time.time()
    assert clock.time() == FakeClock.START + 5 and clock.monotonic() == mono + 5
    assert clock.arrival(stamp_before) == FakeClock.START
    assert clock.arrival(stamp_after) == FakeClock.START + 5
    assert stamp_before < clock.stream_time(FakeClock.START + 5) < stamp_after
    assert clock.stream_time(FakeClock.START) == 0.0, "the clock's first reading holds since forever"


def test_a_bare_callable_still_serves_as_the_clock(kinesis, sqs, store):
    arn = make_stream(kinesis)
    url, qarn = make_queue(sqs)
    put(kinesis, arn, [b"old"])
    runner = runner_for([mapping(lambda e, c: None, arn, maximum_record_age_seconds=60, on_failure_destination=qarn)],
                        store, lambda: time.time() + 120)
    report = runner.run_until_idle(10)
    assert [d.condition for d in report.discards] == ["RecordAgeExceeded"]
    assert [m["requestContext"]["condition"] for m in drain_queue(sqs, url)] == ["RecordAgeExceeded"]
