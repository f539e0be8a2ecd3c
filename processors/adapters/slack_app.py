"""The FAQ bot in Slack: a slack-bolt app for the `/faq` slash command and `app_mention` events.

    FaqSlackApp(asker, signing_secret=..., bot_token=..., api_url=..., claims=...)
        .handle_lambda(event, context)   API Gateway (HTTP API v2 or REST v1) -> Lambda response
        .wsgi                            the same app as a WSGI application (`sieve slack serve`)

How a request is answered (slack-bolt, `process_before_response=True`, lazy listeners):

* bolt's own middleware verifies the signature under the signing secret and rejects a timestamp more
  than 5 minutes away (slack_sdk's SignatureVerifier): 401, nothing else runs.
* then `guard` (bolt's before_authorize slot, so after verification): a request whose signature was
  seen before is a replay (401); an event whose `event_id` was claimed before is a Slack retry
  (X-Slack-Retry-Num) of an event already being answered: 200 at once, no second answer. Claims live in
  `slack_events_table` (DynamoDB, conditional put) or, without one, in this process.
* the ack half answers within Slack's 3 s: the slash command gets an ephemeral "Looking that up…",
  an event an empty 200.
* the lazy half answers: on Lambda, bolt's aws_lambda adapter invokes this very function again
  asynchronously (InvocationType Event, the same request with `x-slack-bolt-lazy-only`), which runs only
  the lazy listener; elsewhere bolt runs it on a thread of this process. It maps the user to an index
  role (`RoleMap`: user, user group via usergroups.users.list with the bot token, channel, default),
  asks `core.answer.Asker`, and posts the answer: to the command's response_url (ephemeral; a Slack URL
  only, loopback too outside Lambda) or in the mention's thread (chat.postMessage with the bot token).

bolt trusts the `x-slack-bolt-lazy-*` headers it sets for its own self-invocation. They are not covered
by Slack's signature, so they are removed from every request that does not come from that
self-invocation (on Lambda: an event without bolt's top-level `"method": "NONE"`, which API Gateway never
sends; locally: every HTTP request), and the lazy half claims the event once more before posting.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web import WebClient

from processors.adapters.slack import _MASKER, allowed_response_url, post_to_response_url
from processors.core.answer import Answer, Asker
from processors.core.slack_blocks import answer_blocks, escape

logger = logging.getLogger(__name__)
logger.addFilter(_MASKER)
_http_logger = logging.getLogger(f"{__name__}.http")  # slack-sdk's WebClient logs here (token masked)
_http_logger.addFilter(_MASKER)

LAZY_HEADERS = ("x-slack-bolt-lazy-only", "x-slack-bolt-lazy-function-name")
CLAIM_SECONDS = 3600  # Slack retries within minutes; a signature is valid for 5
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
ACK_TEXT = ":mag: Looking that up in the knowledge base…"


# --------------------------------------------------------------------------------------- claims


class MemoryClaims:
    """Claims kept in this process (local runs; a Lambda container forgets them on a cold start)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def claim(self, key: str, seconds: int = CLAIM_SECONDS) -> bool:
        now = self._clock()
        with self._lock:
            if self._until.get(key, 0.0) > now:
                return False
            self._until[key] = now + seconds
            if len(self._until) > 10_000:
                self._until = {k: v for k, v in self._until.items() if v > now}
            return True


class DynamoClaims:
    """Claims as conditional puts in a DynamoDB table with key `id` and TTL attribute `expiration` (the
    Powertools idempotency table's layout): the first claim of a key wins, across every container."""

    def __init__(self, table: str, *, client, clock: Callable[[], float] = time.time):
        self.table, self.client, self._clock = table, client, clock

    def claim(self, key: str, seconds: int = CLAIM_SECONDS) -> bool:
        now = int(self._clock())
        try:
            self.client.put_item(
                TableName=self.table,
                Item={"id": {"S": f"sieve-slack-claim#{key}"}, "expiration": {"N": str(now + seconds)}},
                ConditionExpression="attribute_not_exists(id) OR expiration < :now",
                ExpressionAttributeValues={":now": {"N": str(now)}})
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True


# --------------------------------------------------------------------------------------- user groups


class GroupMembers:
    """Members of a Slack user group (usergroups.users.list with the bot token), each list kept for
    `cache_seconds`. A list that cannot be read is None: the group grants nothing (fail closed)."""

    def __init__(self, client_for: Callable[[], WebClient], cache_seconds: int = 60,
                 clock: Callable[[], float] = time.monotonic):
        self._client_for, self.cache_seconds, self._clock = client_for, cache_seconds, clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(self, group: str) -> frozenset[str] | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(group)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            self.calls += 1
            data = self._client_for().usergroups_users_list(usergroup=group).data
        except Exception as exc:  # noqa: BLE001 - Slack down, missing scope, unknown group: no role from it
            logger.warning("user group %s not readable (%s); it grants no role", group, _MASKER(str(exc))[:200])
            return None
        members = frozenset(str(u) for u in data.get("users") or ())
        with self._lock:
            self._cache[group] = (now + self.cache_seconds, members)
        return members


# --------------------------------------------------------------------------------------- the app


class FaqSlackApp:
    """The bolt app, its Lambda entry and its WSGI entry. See the module docstring."""

    def __init__(self, asker: Asker, *, signing_secret: str, bot_token: Callable[[], str],
                 api_url: str = "https://slack.com/api/", command: str = "/faq", claims=None,
                 group_cache_seconds: int = 60, lambda_client=None):
        self.asker = asker
        self.roles = asker.role_map()
        self.claims = claims or MemoryClaims()
        self.command = command
        self._bot_token = bot_token
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self._auth: dict[str, dict] = {}  # auth.test per token (bot user id, team)
        self._auth_lock = threading.Lock()
        self.members = GroupMembers(self.web_client, group_cache_seconds)
        # bolt injects arguments by the listener's parameter names (bound methods would expose `self`),
        # and finds a lazy listener again by its __name__ in the self-invocation: plain named functions
        def authorize(enterprise_id, team_id):
            return self._authorize(enterprise_id, team_id)

        def guard(req, body, next):  # noqa: A002 - bolt's middleware argument name
            return self._guard(req, body, next)

        def ack_command(ack, command):
            self._ack_command(ack, command)

        def answer_command(command):
            self._answer_command(command)

        def ack_mention(ack):
            ack()

        def answer_mention(event, client, context):
            self._answer_mention(event, client, context)

        self.app = App(signing_secret=signing_secret, process_before_response=True, authorize=authorize,
                       before_authorize=guard, client=WebClient(base_url=self.api_url, logger=_http_logger),
                       logger=logger, name="sieve-faq")
        self.app.command(command)(ack=ack_command, lazy=[answer_command])
        self.app.event("app_mention")(ack=ack_mention, lazy=[answer_mention])
        self._lambda_client = lambda_client
        self._lambda_handler = None
        self.posted: deque[dict] = deque(maxlen=100)  # what the lazy half posted lately (status per answer)

    # --- entry points ---------------------------------------------------------------------

    def handle_lambda(self, event: dict, context: Any) -> dict:
        """An API Gateway event (or bolt's own asynchronous self-invocation) -> Lambda's HTTP response.
        On Lambda (a context with invoked_function_arn) the lazy half runs in a new invocation of this
        function through bolt's aws_lambda adapter; elsewhere on a thread of this process."""
        if event.get("method") != "NONE":  # not bolt's self-invocation: nobody else may set its headers
            event = {**event, "headers": strip_lazy_headers(event.get("headers") or {})}
        on_lambda = getattr(context, "invoked_function_arn", None) and (
            os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or self._lambda_client is not None)
        if on_lambda:
            return self._lambda().handle(event, context)
        from slack_bolt.adapter.aws_lambda.handler import to_aws_response
        from slack_bolt.request import BoltRequest

        body = event.get("body") or ""
        if event.get("isBase64Encoded"):
            body = base64.b64decode(body).decode("utf-8")
        return to_aws_response(self.app.dispatch(BoltRequest(body=body, query=event.get("queryStringParameters") or {},
                                                             headers=dict(event.get("headers") or {}))))

    def _lambda(self):
        if self._lambda_handler is None:
            from slack_bolt.adapter.aws_lambda import SlackRequestHandler
            from slack_bolt.adapter.aws_lambda.lazy_listener_runner import LambdaLazyListenerRunner

            handler = SlackRequestHandler(self.app)  # installs bolt's Lambda lazy runner (self-invocation)
            if self._lambda_client is not None:
                self.app.listener_runner.lazy_listener_runner = LambdaLazyListenerRunner(handler.logger, self._lambda_client)
            self._lambda_handler = handler
        return self._lambda_handler

    @property
    def wsgi(self):
        """The app as a WSGI application at /slack/events (commands and events), lazy headers removed."""
        from slack_bolt.adapter.wsgi import SlackRequestHandler

        inner = SlackRequestHandler(self.app, path="/slack/events")

        def application(environ, start_response):
            for name in LAZY_HEADERS:
                environ.pop("HTTP_" + name.upper().replace("-", "_"), None)
            return inner(environ, start_response)

        return application

    def web_client(self) -> WebClient:
        token = self._bot_token()
        _MASKER.add(token)
        return WebClient(token=token, base_url=self.api_url, logger=_http_logger, timeout=10)

    # --- middleware -----------------------------------------------------------------------

    def _authorize(self, enterprise_id, team_id) -> AuthorizeResult:
        """The bot token from Secrets Manager (cached by the reader) and, once per token, auth.test."""
        token = self._bot_token()
        _MASKER.add(token)
        with self._auth_lock:
            info = self._auth.get(token)
        if info is None:
            info = WebClient(token=token, base_url=self.api_url, logger=_http_logger, timeout=10).auth_test().data
            with self._auth_lock:
                self._auth[token] = info
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id or info.get("team_id"), bot_token=token,
                               bot_user_id=info.get("user_id"), bot_id=info.get("bot_id"))

    def _guard(self, req, body, next):  # noqa: A002
        """After bolt verified signature and timestamp: a retry of a claimed event -> 200 and nothing
        more; a signature seen before (a replay within the 5 minutes) -> 401."""
        if req.lazy_only:  # bolt's own self-invocation (its lazy headers are stripped from anything else)
            return next()
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not self.claims.claim(f"event#{event_id}"):
            retry = (req.headers.get("x-slack-retry-num") or ["-"])[0]
            logger.info("slack event %s already being answered (retry %s): acknowledged, not answered again", event_id, retry)
            return BoltResponse(status=200, body="")
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        if not event_id and signature and not self.claims.claim(f"signature#{signature}"):
            logger.warning("slack request refused: replayed signature")
            return BoltResponse(status=401, body={"error": "replayed request"})
        return next()

    # --- the slash command ----------------------------------------------------------------

    def _ack_command(self, ack, command):
        if not (command.get("text") or "").strip():
            ack(response_type="ephemeral", text=f"Usage: {escape(self.command)} your question")
            return
        ack(response_type="ephemeral", text=ACK_TEXT)

    def _answer_command(self, command):
        question = (command.get("text") or "").strip()
        url = str(command.get("response_url") or "")
        if not question:
            return
        if not allowed_response_url(url):
            logger.error("follow-up refused: response_url is not a Slack URL")
            self.posted.append({"posted": False, "reason": "response_url is not a Slack URL"})
            return
        role, why = self.roles.role_for(command.get("user_id"), command.get("channel_id"), self.members)
        result = self.asker.ask(question, role)
        self._log(command.get("user_id"), role, why, result)
        status = post_to_response_url(url, answer_blocks(result, role))
        self.posted.append({"posted": status < 300, "status": status, "answer": result.status, "role": role})

    # --- @mentions ------------------------------------------------------------------------

    def _answer_mention(self, event, client, context):
        if event.get("bot_id") or event.get("user") in (None, context.bot_user_id):
            return
        key = event.get("client_msg_id") or f"{event.get('channel')}:{event.get('ts')}"
        if not self.claims.claim(f"answer#{key}"):  # one answer per mention, whatever was delivered twice
            logger.info("mention %s already answered", key)
            return
        question = " ".join(_MENTION.sub(" ", event.get("text") or "").split())
        thread = event.get("thread_ts") or event.get("ts")
        if not question:
            client.chat_postMessage(channel=event["channel"], thread_ts=thread,
                                    text="Ask me a question after the mention, e.g. @sieve how do I reset my password?")
            return
        role, why = self.roles.role_for(event.get("user"), event.get("channel"), self.members)
        result = self.asker.ask(question, role)
        self._log(event.get("user"), role, why, result)
        message = answer_blocks(result, role)
        message.pop("response_type", None)
        reply = client.chat_postMessage(channel=event["channel"], thread_ts=thread, unfurl_links=False,
                                        unfurl_media=False, **message)
        self.posted.append({"posted": bool(reply.get("ok")), "ts": reply.get("ts"), "thread_ts": thread,
                            "answer": result.status, "role": role})

    @staticmethod
    def _log(user, role: str, why: str, result: Answer) -> None:
        logger.info("faq answer", extra={"user": user, "role": role, "role_from": why, "status": result.status,
                                         "reason": result.reason, "entries": [c.id for c in result.entries],
                                         "model": result.model_id, "audit_id": result.audit_id})


def strip_lazy_headers(headers: dict) -> dict:
    return {k: v for k, v in headers.items() if str(k).lower() not in LAZY_HEADERS}


def serve(slack: FaqSlackApp, host: str = "127.0.0.1", port: int = 3000):
    """A threading WSGI server for the app on `host:port` (not started; call serve_forever())."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class _Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the app logs what matters
            pass

    return make_server(host, port, slack.wsgi, server_class=_Server, handler_class=_Quiet)
