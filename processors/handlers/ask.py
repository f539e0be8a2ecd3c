"""The ask handler: Slack's `/faq` slash command and `app_mention` events behind API Gateway -> FAQ answers.

A slack-bolt app on bolt's AWS Lambda adapter with lazy listeners (processors/adapters/slack_app.py):
bolt verifies the signature and rejects stale requests (401), replays and Slack's retries of an event
already being answered get no second answer, the request is acknowledged at once (Slack's 3 s), and an
asynchronous run of this same function (bolt's self-invocation, lambda:InvokeFunction on itself) maps
the user to an index role (user, user group, channel, default), asks `core.answer.Asker` and posts the
answer to the command's response_url or in the mention's thread (chat.postMessage with the bot token).
Outside Lambda the lazy half runs on a thread (`sieve slack serve` serves the same app).
"""

from __future__ import annotations

from typing import Any

from processors import wiring

COMPONENT = wiring.ASK
_app = wiring.PerContainer(COMPONENT)
reset_runtime = _app.reset


def handler(event: dict, context: Any) -> dict:
    return _app.get().handle_lambda(event, context)
