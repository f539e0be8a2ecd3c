"""What a Lambda container builds once: each handler's runtime, made from pipelines.yaml on the first
invocation (cold start) and reused by every later one."""

from __future__ import annotations

import os
from typing import Callable, Generic, TypeVar

from processors.config import LoadedConfig, load

T = TypeVar("T")


class PerContainer(Generic[T]):
    """`build(loaded_config)` once, on first use; `reset()` (tests) forgets it or installs a given one."""

    def __init__(self, build: Callable[[LoadedConfig], T]):
        self._build = build
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._build(load(os.environ.get("SIEVE_CONFIG")))
        return self._value

    def reset(self, value: T | None = None) -> None:
        self._value = value
