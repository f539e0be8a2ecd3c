"""Backoff: the one retry schedule of push, the OpenSearch bulk writer and the Slack notifier."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.adapters.retry import Backoff


@given(st.floats(0, 10), st.floats(0, 60), st.integers(0, 200))
def test_each_wait_is_within_half_and_all_of_the_capped_exponential(initial, maximum, retry):
    ceiling = min(maximum, initial * 2.0 ** min(retry, 64))
    wait = Backoff(initial, maximum, 3).delay(retry)
    assert ceiling / 2 <= wait <= ceiling


def test_waits_double_until_the_cap_and_are_spread_out():
    b = Backoff(0.1, 1.0, 10)
    for n, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        waits = {b.delay(n) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1, "no jitter: parallel writers would retry in lockstep"


def test_attempts_sleep_between_tries_and_never_after_the_last():
    slept: list[float] = []
    b = Backoff(0.1, 10.0, 3, sleep=slept.append)
    seen = []
    for attempt in b.attempts():
        seen.append((attempt, len(slept)))  # how many sleeps came before this try
    assert seen == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert len(slept) == 3  # retries, not attempts: nothing after the last failure
    for n, wait in enumerate(slept):
        assert 0.1 * 2**n / 2 <= wait <= 0.1 * 2**n


def test_breaking_out_on_success_sleeps_no_more():
    slept: list[float] = []
    for attempt in Backoff(0.1, 10.0, 5, sleep=slept.append).attempts():
        if attempt == 1:
            break
    assert len(slept) == 1


def test_zero_retries_is_one_try_and_no_sleep():
    slept: list[float] = []
    assert list(Backoff(0.1, 1.0, 0, sleep=slept.append).attempts()) == [0] and slept == []


def test_a_huge_retry_number_stays_at_the_cap():
    assert 5.0 <= Backoff(1.0, 10.0, 3).delay(10_000) <= 10.0


@pytest.mark.parametrize("args, message", [
    ((-0.1, 1.0, 3), "initial must be a finite number >= 0, got -0.1"),
    ((0.1, math.inf, 3), "maximum must be a finite number >= 0, got inf"),
    ((0.1, 1.0, -1), "retries must be an integer >= 0, got -1"),
    ((0.1, 1.0, 2.0), "retries must be an integer >= 0, got 2.0"),
    (("0.1", 1.0, 3), "initial must be a finite number >= 0, got '0.1'"),
])
def test_bad_numbers_are_refused_with_the_field_named(args, message):
    with pytest.raises(ValueError, match=message):
        Backoff(*args)


def test_a_negative_retry_number_is_refused():
    with pytest.raises(ValueError, match="retry must be >= 0"):
        Backoff(0.1, 1.0, 3).delay(-1)
