"""The Slack interactivity handler: Acknowledge / Mute clicks on incident threads (notifier kind `bot`).

API Gateway (HTTP API, payload v2) -> verify the request (`adapters.slack.verify_slack`: signature under
the signing secret, 5-minute staleness; 401 otherwise) -> the form body's ``payload=`` (a Slack
`block_actions` payload) -> `core.incidents.parse_action` and `decide` -> the ack or mute in the state
table (who, when, until) -> the clicked message gets the decision on its status line (its response_url,
``replace_original``). Selection honours a mute (`core.incidents.apply_mutes`); an acknowledged incident
still posts in its thread and the parent's status line says who acknowledged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from processors import wiring

logger = Logger(service="sieve-slack-actions", logger_handler=None)

COMPONENT = wiring.SLACK_ACTIONS
_app: wiring.PerContainer[wiring.SlackActionsApp] = wiring.PerContainer(COMPONENT)
reset_runtime = _app.reset


def handler(event: dict, context: Any, *, now: Callable[[], float] = time.time) -> dict:
    # slack-sdk, boto3 and the incident model load with the use case (first invocation), not at import
    from processors.adapters.slack import allowed_response_url, verified_form
    from processors.core.incidents import Ack, InvalidAction, acted_message, decide, parse_action

    app = _app.get()
    form, status, problem = verified_form(event, app.signing_secret(), now=now)
    if form is None:
        logger.warning("slack interactivity request refused", extra={"reason": problem})
        return _response(status, "invalid request" if status == 401 else "bad request")
    try:
        payload = json.loads(form.get("payload", ""))
        action = parse_action(payload)
        decision = decide(action, now()) if action is not None else None
    except (ValueError, InvalidAction) as exc:
        logger.warning("slack interactivity payload refused", extra={"reason": str(exc)[:200]})
        return _response(400, "bad request")
    if action is None or decision is None:
        return _response(200, "")  # not one of our buttons: nothing to do
    if isinstance(decision, Ack):
        app.store.put_ack(action.rule, action.incident, decision, ttl_seconds=app.ack_ttl_seconds)
    else:
        app.store.put_mute(action.rule, action.incident, decision)
    logger.info("incident action", extra={"action": action.kind, "rule": action.rule, "incident": action.incident,
                                          "user": action.user, "until": getattr(decision, "until", None)})
    if action.message and allowed_response_url(action.response_url):
        try:
            app.respond(action.response_url, acted_message(action.message, decision))
        except Exception as exc:  # the decision is stored; the status line catches up with the next window
            logger.warning("status line not updated", extra={"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return _response(200, "")


def _response(status: int, text: str) -> dict:
    return {"statusCode": status, "headers": {"content-type": "text/plain; charset=utf-8"}, "body": text}
