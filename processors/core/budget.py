"""Token and call budgets for model calls. Pure logic plus the ledger protocol.

Three limits, all from pipelines.yaml `ai.budgets`:

    tokens_per_call    estimated prompt tokens + max_output_tokens must fit, or no call is made
    calls_per_window   how many times one window's digest may be analysed. A validation retry
                       belongs to the same analysis and is not counted again (it is counted in
                       tokens). This is what stops a redelivered or re-run window from paying twice.
    tokens_per_day     all calls of one UTC day (by the injected clock), reserved *before* each
                       call (estimate in + max out) and corrected to the actual usage afterwards

Token estimate: UTF-8 bytes / `bytes_per_token` (default 3, rounded up), a deliberate
over-estimate for English and Japanese log text with BPE tokenisers (English prose is ~4 bytes
per token, digits and symbols fewer, Japanese ~3 bytes per character and 1-2 characters per
token). Pass `tokenizer` (text -> token count) when the model's tokenizer is at hand.

The ledger reserves atomically: `processors.adapters.budget_store.DynamoDBBudgetStore` uses
conditional `ADD` updates in one transaction, so two finalisers racing for the last tokens cannot
both win. `InMemoryBudgetLedger` has the same semantics for a single process (local runs, tests).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from processors.core.types import Reservation
from processors.errors import ConfigError


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    tokens_per_call: int = 2000
    calls_per_window: int = 1
    tokens_per_day: int = 200_000
    max_output_tokens: int = 300
    bytes_per_token: float = 3.0

    def __post_init__(self) -> None:
        problems = []
        if self.max_output_tokens < 16:
            problems.append(f"budgets.max_output_tokens: {self.max_output_tokens} is below 16")
        if self.tokens_per_call <= self.max_output_tokens:
            problems.append(
                f"budgets.tokens_per_call ({self.tokens_per_call}) must exceed max_output_tokens ({self.max_output_tokens}),"
                " or no prompt fits"
            )
        if self.calls_per_window < 0 or self.tokens_per_day < 0:
            problems.append("budgets.calls_per_window and tokens_per_day must not be negative (0 disables calls)")
        if self.bytes_per_token <= 0:
            problems.append(f"budgets.bytes_per_token: {self.bytes_per_token} must be positive")
        if problems:
            raise ConfigError("budgets", problems)


def estimate_tokens(text: str, *, tokenizer: Callable[[str], int] | None = None, bytes_per_token: float = 3.0) -> int:
    if tokenizer is not None:
        return int(tokenizer(text))
    return math.ceil(len(text.encode("utf-8")) / bytes_per_token)


def utc_day(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).strftime("%Y-%m-%d")


def per_call_refusal(estimated_prompt_tokens: int, config: BudgetConfig) -> str | None:
    """Why one call may not be made at all, or None."""
    need = estimated_prompt_tokens + config.max_output_tokens
    if need > config.tokens_per_call:
        return (
            f"tokens_per_call: estimated {estimated_prompt_tokens} prompt + {config.max_output_tokens} output = {need}"
            f" > {config.tokens_per_call}"
        )
    return None


class BudgetExhausted(Exception):
    """The ledger refused a reservation. `reason` names the limit, the usage and the key."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class InMemoryBudgetLedger:
    """Single-process ledger with the same semantics as the DynamoDB store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.day_tokens: dict[str, int] = {}
        self.window_calls: dict[str, int] = {}
        self.window_tokens: dict[str, int] = {}

    def reserve(self, *, day: str, window_id: str, tokens: int, config: BudgetConfig, new_call: bool) -> Reservation:
        with self._lock:
            used = self.day_tokens.get(day, 0)
            calls = self.window_calls.get(window_id, 0)
            if new_call and calls >= config.calls_per_window:
                raise BudgetExhausted(f"calls_per_window: {calls} of {config.calls_per_window} used for {window_id}")
            if used + tokens > config.tokens_per_day:
                raise BudgetExhausted(
                    f"tokens_per_day: {used} used + {tokens} reserved > {config.tokens_per_day} on {day}"
                )
            self.day_tokens[day] = used + tokens
            if new_call:
                self.window_calls[window_id] = calls + 1
            return Reservation(day, window_id, tokens)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        with self._lock:
            self.day_tokens[reservation.day] = self.day_tokens.get(reservation.day, 0) - reservation.tokens + actual_tokens
            self.window_tokens[reservation.window_id] = self.window_tokens.get(reservation.window_id, 0) + actual_tokens
