"""Test doubles for the Analyser port (the real model path is tested in tests/models)."""

from __future__ import annotations

import json

from processors.ports import ModelReply


class ScriptedAnalyser:
    """Answers each call with the next scripted reply (a string, a callable(system, user) -> str, or an
    exception to raise), and records every call."""

    model_id = "scripted.test"

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls: list[dict] = []

    def complete(self, system: str, user: str, *, max_tokens: int, json_schema: dict | None = None) -> ModelReply:
        self.calls.append({"system": system, "user": user, "max_tokens": max_tokens, "json_schema": json_schema})
        reply = self.replies.pop(0) if self.replies else json.dumps({"answer": "ok [E1]", "citations": ["E1"]})
        if isinstance(reply, BaseException):
            raise reply
        text = reply(system, user) if callable(reply) else reply
        return ModelReply(text=text, model_id=self.model_id, tokens_in=len(user) // 4, tokens_out=len(text) // 4, latency_ms=1)


def reply(answer: str, citations: list[str]) -> str:
    return json.dumps({"answer": answer, "citations": citations}, ensure_ascii=False)
