"""Fuzzing in the test suite: every target of tests/fuzz/targets.py with a small, fixed-seed budget
(`derandomize=True`: the same inputs on every run and machine). SIEVE_FUZZ_SCALE multiplies the budget
(e.g. 10 for a longer local run); bench/bench_fuzz.py runs 100,000 inputs a target."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = float(os.environ.get("SIEVE_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int) -> settings:
    return settings(max_examples=max(1, int(examples * SCALE)), derandomize=True, deadline=None, database=None,
                    print_blob=True, suppress_health_check=list(HealthCheck))
