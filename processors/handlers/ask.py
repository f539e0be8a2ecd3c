"""The ask handler: a Slack slash command behind API Gateway (HTTP API, payload v2) -> an FAQ answer.

    POST /slack/ask   (Slack: application/x-www-form-urlencoded, X-Slack-Signature, X-Slack-Request-Timestamp)

1. The request is verified before anything else (`adapters.slack.verify_slack`: 5-minute staleness,
   v0 HMAC of the raw body under the signing secret from Secrets Manager). Failures answer 401.
2. The Slack user is mapped to an index role (`pipelines.faq.slack_user_roles`, else `default_role`).
3. `Asker` (processors/core/answer.py) retrieves from that role's index only and answers with
   citations, or "not in the knowledge base" without calling a model.
4. The reply is Block Kit, ephemeral (`core.slack_blocks.answer_blocks`).

Slack wants an answer within 3 s. Without a model the answer is the HTTP response. With a model the
handler acknowledges at once and hands the question to an asynchronous run of itself
(`{"sieve_ask": {...}}`: a Lambda Event invoke of this function on AWS, a thread locally), which posts
the answer to the command's `response_url` (only a Slack URL; loopback too outside Lambda).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger

from processors import wiring
from processors.adapters.slack import allowed_response_url, dispatch_async, post_to_response_url, verify_slack
from processors.core.answer import Answer
from processors.core.slack_blocks import answer_blocks, escape

logger = Logger(service="sieve-ask", logger_handler=None)

_app: wiring.PerContainer[wiring.AskApp] = wiring.PerContainer(wiring.ask_app)
reset_runtime = _app.reset


def handler(event: dict, context: Any, *, now: Callable[[], float] = time.time) -> dict:
    app = _app.get()
    if "sieve_ask" in event:  # the asynchronous half: only ever created below, after verification
        return _follow_up(app, event["sieve_ask"])
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw).decode("utf-8") if event.get("isBase64Encoded") else raw
    except (ValueError, UnicodeDecodeError):
        return _response(400, "bad request")
    problem = verify_slack(app.signing_secret(), body, headers.get("x-slack-request-timestamp"),
                           headers.get("x-slack-signature"), now=now)
    if problem:
        logger.warning("slack request refused", extra={"reason": problem})
        return _response(401, "invalid request")
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    user = form.get("user_id", "")
    role = app.asker.role_of(user)
    question = form.get("text", "").strip()
    if not question:
        return _response(200, {"response_type": "ephemeral", "text": f"Usage: {escape(form.get('command', '/ask'))} your question"})
    if app.asker.analyser is not None:  # a model may take longer than Slack's 3 s: acknowledge, answer later
        job = {"question": question, "role": role, "user": user, "response_url": form.get("response_url", "")}
        (app.dispatch or _dispatch)({"sieve_ask": job}, context)
        return _response(200, {"response_type": "ephemeral", "text": ":mag: Looking that up in the knowledge base…"})
    result = app.asker.ask(question, role)
    _log_answer(user, role, result)
    return _response(200, answer_blocks(result, role))


def _dispatch(payload: dict, context: Any) -> None:
    dispatch_async(handler, payload, context)


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
