"""The one retry policy of the adapters: exponential backoff with equal jitter.

`sieve push` (PutRecords), the OpenSearch bulk writer and the Slack notifier all wait the same way
between tries. What they retry differs and stays with them: push and bulk resend only the records or
items that failed and count them; Slack retries inside slack-sdk's RetryHandler hooks and honours
Retry-After on 429. A retry library (tenacity) retries a whole call, so it would add a dependency and
still leave those loops to write; what the callers share is the schedule, which is all this holds.
botocore's own retries (standard mode) still cover whole AWS calls underneath.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Up to `retries` retries; before retry n+1 wait a uniformly random time in [d/2, d] with
    d = min(maximum, initial * 2**n). Equal jitter: never (almost) zero, because a throttled service
    needs a real pause, yet spread out so parallel writers do not retry in lockstep."""

    initial: float
    maximum: float
    retries: int
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be a finite number >= 0, got {value!r}"
            for name, value in (("initial", self.initial), ("maximum", self.maximum))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
        ]
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            problems.append(f"retries must be an integer >= 0, got {self.retries!r}")
        if problems:
            raise ValueError("backoff: " + "; ".join(problems))

    def delay(self, retry: int) -> float:
        """Seconds to wait when `retry` retries have been made so far (0 before the first retry)."""
        if retry < 0:
            raise ValueError(f"backoff: retry must be >= 0, got {retry}")
        ceiling = min(self.maximum, self.initial * 2.0 ** min(retry, 64))  # capped exponent: no float overflow
        return ceiling / 2 + random.random() * ceiling / 2

    def attempts(self) -> Iterator[int]:
        """0 for the first try, then, after sleeping `delay(n - 1)`, n for retry n, up to `retries`.

        Break out on success; a loop that runs out (a `for ... else`) has used every retry. No sleep
        comes after the last try."""
        yield 0
        for n in range(1, self.retries + 1):
            self.sleep(self.delay(n - 1))
            yield n
