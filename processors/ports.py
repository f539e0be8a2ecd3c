"""Small protocols the core depends on; adapters implement them (see processors/adapters)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True, slots=True)
class ModelReply:
    text: str
    model_id: str
    tokens_in: int
    tokens_out: int
    latency_ms: int


class Analyser(Protocol):
    """Sends one prompt (system + user text) to a chat model and returns its reply."""

    def complete(self, system: str, user: str, *, max_tokens: int, json_schema: dict | None = None) -> ModelReply: ...


class Embedder(Protocol):
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class Notifier(Protocol):
    def send(self, payload: dict, *, idempotency_key: str) -> None: ...
