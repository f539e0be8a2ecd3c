"""Lambda entry point for the llama.cpp analyser (container image: infra/llama-lambda/Dockerfile).

Event:   {"system": str, "user": str, "max_tokens": int, "json_schema": object | null}
Returns: {"text", "model_id", "tokens_in", "tokens_out", "latency_ms"}

A thin wrapper over `processors.adapters.llama.LlamaChat`, loaded once per container (on the first
invocation, then reused). A bad event raises ValueError, which Lambda reports as a FunctionError that
`LambdaInvokeAnalyser` turns into a typed error. Prompts and answers are never logged.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from aws_lambda_powertools import Logger

from processors.adapters.llama import LlamaChat, loaded_cpu_variant

logger = Logger(service="sieve-llama")

MAX_TOKENS_LIMIT = int(os.environ.get("SIEVE_LLAMA_MAX_TOKENS", "1024"))

_chat: LlamaChat | None = None
_chat_lock = threading.Lock()


def get_chat() -> LlamaChat:
    """The container's model, loaded on first use (SIEVE_MODEL_PATH, SIEVE_LLAMA_THREADS)."""
    global _chat
    with _chat_lock:
        if _chat is None:
            _chat = LlamaChat()
            logger.info(
                "model loaded",
                extra={"model": _chat.model_path.name, "load_s": round(_chat.load_seconds, 2), "cpu_variant": loaded_cpu_variant()},
            )
        return _chat


def parse_event(event: Any) -> tuple[str, str, int, dict | None]:
    if not isinstance(event, dict):
        raise ValueError(f"event must be a JSON object, got {type(event).__name__}")
    unknown = set(event) - {"system", "user", "max_tokens", "json_schema"}
    if unknown:
        raise ValueError(f"event has unknown keys {sorted(unknown)}; allowed: system, user, max_tokens, json_schema")
    system, user = event.get("system", ""), event.get("user")
    if not isinstance(system, str):
        raise ValueError("event.system must be a string")
    if not isinstance(user, str) or not user:
        raise ValueError("event.user must be a non-empty string")
    max_tokens = event.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise ValueError(f"event.max_tokens must be an integer in 1..{MAX_TOKENS_LIMIT}, got {max_tokens!r}")
    schema = event.get("json_schema")
    if schema is not None and not isinstance(schema, dict):
        raise ValueError("event.json_schema must be a JSON Schema object or null")
    return system, user, max_tokens, schema


def handler(event: dict, context: Any) -> dict:
    request_id = getattr(context, "aws_request_id", None)  # None when a test calls the handler directly
    logger.append_keys(request_id=request_id)
    system, user, max_tokens, schema = parse_event(event)
    reply = get_chat().complete(system, user, max_tokens=max_tokens, json_schema=schema)
    logger.info(
        "completed",
        extra={"tokens_in": reply.tokens_in, "tokens_out": reply.tokens_out, "latency_ms": reply.latency_ms, "schema": schema is not None},
    )
    return {
        "text": reply.text,
        "model_id": reply.model_id,
        "tokens_in": reply.tokens_in,
        "tokens_out": reply.tokens_out,
        "latency_ms": reply.latency_ms,
    }
