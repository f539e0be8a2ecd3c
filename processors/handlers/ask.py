"""The ask handler: a Slack slash command behind API Gateway (HTTP API, payload v2) -> an FAQ answer.

Verify the request (`adapters.slack.verify_slack`: signature under the signing secret, 5-minute
staleness; 401 otherwise) -> map the Slack user to an index role -> `Asker` (core/answer.py) answers
from that role's index only, with citations, or "not in the knowledge base" without a model call ->
ephemeral Block Kit (`core.slack_blocks.answer_blocks`). With a model, Slack's 3 s would be at risk: the
handler acknowledges at once and an asynchronous run of itself (`{"sieve_ask": ...}`) posts the answer
to the command's `response_url` (a Slack URL only; loopback too outside Lambda).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from processors import wiring
from processors.adapters.slack import allowed_response_url, dispatch_async, post_to_response_url, verified_form
from processors.core.answer import Answer
from processors.core.slack_blocks import answer_blocks, escape

logger = Logger(service="sieve-ask", logger_handler=None)

COMPONENT = wiring.ASK
_app: wiring.PerContainer[wiring.AskApp] = wiring.PerContainer(COMPONENT)
reset_runtime = _app.reset


def handler(event: dict, context: Any, *, now: Callable[[], float] = time.time) -> dict:
    app = _app.get()
    if "sieve_ask" in event:  # the asynchronous half: only ever created below, after verification
        return _follow_up(app, event["sieve_ask"])
    form, status, problem = verified_form(event, app.signing_secret(), now=now)
    if form is None:
        logger.warning("slack request refused", extra={"reason": problem})
        return _response(status, "invalid request" if status == 401 else "bad request")
    user = form.get("user_id", "")
    role = app.asker.role_of(user)
    question = form.get("text", "").strip()
    if not question:
        return _response(200, {"response_type": "ephemeral", "text": f"Usage: {escape(form.get('command', '/ask'))} your question"})
    if app.asker.analyser is not None:  # a model may take longer than Slack's 3 s: acknowledge, answer later
        job = {"question": question, "role": role, "user": user, "response_url": form.get("response_url", "")}
        if app.dispatch is not None:
            app.dispatch({"sieve_ask": job}, context)
        else:  # a Lambda Event invoke of this function on AWS, a thread locally
            dispatch_async(handler, {"sieve_ask": job}, context)
        return _response(200, {"response_type": "ephemeral", "text": ":mag: Looking that up in the knowledge base…"})
    result = app.asker.ask(question, role)
    _log_answer(user, role, result)
    return _response(200, answer_blocks(result, role))


def _follow_up(app: wiring.AskApp, job: dict) -> dict:
    url = str(job.get("response_url") or "")
    if not allowed_response_url(url):
        logger.error("follow-up refused: not a Slack response_url", extra={"user": job.get("user")})
        return {"posted": False, "reason": "response_url is not a Slack URL"}
    role = str(job.get("role") or app.asker.default_role)
    result = app.asker.ask(str(job.get("question") or ""), role)
    _log_answer(job.get("user"), role, result)
    status = post_to_response_url(url, answer_blocks(result, role))
    if status >= 300:
        logger.error("follow-up post failed", extra={"status": status})
        return {"posted": False, "status": status}
    return {"posted": True, "status": status, "answer": result.status}


def _log_answer(user, role, result: Answer) -> None:
    logger.info("faq answer", extra={"user": user, "role": role, "status": result.status, "reason": result.reason,
                                     "entries": [c.id for c in result.entries], "model": result.model_id,
                                     "prompt_sha256": result.prompt_sha256})


def _response(status: int, payload: dict | str) -> dict:
    if isinstance(payload, str):
        return {"statusCode": status, "headers": {"content-type": "text/plain; charset=utf-8"}, "body": payload}
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(payload, ensure_ascii=False)}
