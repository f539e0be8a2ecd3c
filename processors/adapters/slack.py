"""Slack incoming-webhook notifier: resilient, idempotent, and careful with its secret.

`SlackWebhookNotifier` implements the `Notifier` port with slack-sdk's `WebhookClient`:

* retries: 429 waits exactly ``Retry-After`` (bounded by `max_retry_after`; longer waits are not
  retried), 5xx and connection errors wait as `processors.adapters.retry.Backoff` says (from
  `backoff_factor`, doubling, capped at `max_retry_after`); at most `max_retries` retries in all.
  `sleep` is injectable.
* the webhook URL comes from ``webhook_url=``, a Secrets Manager secret through Powertools
  parameters (cached for `secret_max_age` seconds; the secret is the URL or a JSON object with
  ``webhook_url``), or the ``SLACK_WEBHOOK_URL`` environment variable. It is a secret: it is masked
  in every log record and error this module produces, and botocore's DEBUG dump of
  GetSecretValue responses is redacted.
* exactly once per idempotency key (the caller passes rule + window + digest hash, see
  `processors.core.slack_blocks.delivery_key`) through Powertools ``idempotent_function`` with a
  ``DynamoDBPersistenceLayer`` (``idempotency_table=``), or a process-local store when no table is
  configured. A second `send` with the same key returns the first result and posts nothing.
* a post that still fails goes to the failure destination (SQS, payload + error) and raises
  `SlackDeliveryFailed` for the caller's batch-failure handling. Nothing is lost.

`SlackBotNotifier` (notifier kind ``bot``) implements the same port with a bot token and slack-sdk's
`WebClient` (chat.postMessage, chat.update): one thread per incident, Acknowledge / Mute buttons, the
same retries, delivery key, idempotency and failure queue (see its docstring). The token is a secret
like the webhook URL. `verify_slack` checks Slack's inbound signatures (slash commands, interactivity).
"""

from __future__ import annotations

import dataclasses
import base64
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Protocol

import boto3
import orjson
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryIntervalCalculator,
)
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from processors.adapters.aws import Secrets
from processors.adapters.retry import Backoff
from processors.core.incidents import (
    DEFAULT_GAP_SECONDS,
    Ack,
    Incident,
    Mute,
    Thread,
    actions_block,
    advance,
    muted,
    new_thread,
    parent_message,
    plan,
    split_by_incident,
    status_block,
)
from processors.core.slack_blocks import delivery_key, render
from processors.core.types import Delivery, WindowReport
from processors.errors import ConfigError
from processors.ports import NotificationFailed, TransientFailure

logger = logging.getLogger(__name__)

ENV_WEBHOOK_URL = "SLACK_WEBHOOK_URL"
ENV_WEBHOOK_SECRET = "SIEVE_SLACK_WEBHOOK_SECRET"
ENV_IDEMPOTENCY_TABLE = "SIEVE_SLACK_IDEMPOTENCY_TABLE"
ENV_FAILURE_QUEUE_URL = "SIEVE_SLACK_FAILURE_QUEUE_URL"
ENV_BOT_TOKEN = "SLACK_BOT_TOKEN"
ENV_API_URL = "SLACK_API_URL"
DEFAULT_API_URL = "https://slack.com/api/"
MASK = "***"


# --- errors -----------------------------------------------------------------------------------


class SlackDeliveryError(NotificationFailed):
    """A Slack post did not happen. `retryable` says whether trying again later can help."""


class SlackDeliveryFailed(SlackDeliveryError):
    """Slack refused the post or could not be reached after every retry. The payload and the error
    went to the failure destination when one is configured (`dead_lettered`)."""


class SlackDeliveryInProgress(SlackDeliveryError):
    """Another worker is posting the same idempotency key right now; try again later."""


class SlackPayloadError(SlackDeliveryError):
    """The payload is not something Slack accepts (not a dict with `text` or `blocks`)."""


class _PostFailed(Exception):
    """`transient` overrides the status-code rule (Web API errors come with HTTP 200); `request` (which
    method, channel, thread) and `payload` (the message that failed) go to the failure queue."""

    def __init__(self, status_code: int | None, error: str, attempts: int, *, transient: bool | None = None,
                 request: dict | None = None, payload: dict | None = None):
        self.status_code = status_code
        self.error = error
        self.attempts = attempts
        self.transient = transient
        self.request = request or {}
        self.payload = payload
        super().__init__(error)


# --- secret masking ---------------------------------------------------------------------------


class _Masker(logging.Filter):
    """Replaces every known secret (and its URL path) in log records and error text."""

    def __init__(self):
        super().__init__("sieve-slack-mask")
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, url: str) -> None:
        path = url.split("://", 1)[-1].partition("/")[2]
        new = {url, "/" + path} if len(path) >= 8 else {url}
        with self._lock:  # readers use the tuple they got; no lock on the hot path
            self._secrets = tuple(sorted(set(self._secrets) | new, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, mask_url(s) if "://" in s else "/" + MASK if s.startswith("/") else MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def mask_url(url: str) -> str:
    """`https://hooks.slack.com/services/T0/B0/xyz` -> `https://hooks.slack.com/services/***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return MASK
    host, _, path = rest.partition("/")
    first = path.split("/", 1)[0]
    return f"{scheme}://{host}/{first + '/' if first and first != path else ''}{MASK}"


class _SecretResponseRedactor(logging.Filter):
    """botocore logs every response body at DEBUG, GetSecretValue's included. Redact those."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        if "SecretString" in message or "SecretBinary" in message:
            record.msg, record.args = "<redacted by Sieve: a Secrets Manager request or response body>", ()
        return True


# One masker for the process: a secret seen once stays masked in this module's logs for good.
_MASKER = _Masker()
_http_logger = logging.getLogger(f"{__name__}.http")  # slack-sdk's WebhookClient logs here
for _log in (logger, _http_logger):
    _log.addFilter(_MASKER)


def _install_botocore_redactor() -> None:
    """botocore's DEBUG logs dump request params and response bodies, secret values included."""
    for name in ("botocore.parsers", "botocore.endpoint"):
        target = logging.getLogger(name)
        if not any(isinstance(f, _SecretResponseRedactor) for f in target.filters):
            target.addFilter(_SecretResponseRedactor())


_install_botocore_redactor()


# --- retry handlers (slack-sdk's, with the shared Backoff, an injectable sleep and a bounded Retry-After)


class _BackoffInterval(RetryIntervalCalculator):
    """slack-sdk asks its interval calculator for each wait; ours answers from the shared Backoff."""

    def __init__(self, backoff: Backoff):
        self.backoff = backoff

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        return self.backoff.delay(current_attempt)


class _Attempts:
    def __init__(self, sleep: Callable[[float], None]):
        self.sleep = sleep
        self.count = 1
        self.waits: list[float] = []

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.count += 1
        self.sleep(seconds)


class _BackoffMixin(RetryHandler):
    attempts: _Attempts

    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        state.next_attempt_requested = True
        self.attempts.wait(self.interval_calculator.calculate_sleep_duration(state.current_attempt))
        state.increment_current_attempt()


class _ServerErrorRetry(_BackoffMixin, ServerErrorRetryHandler):
    def __init__(self, attempts: _Attempts, backoff: Backoff):
        super().__init__(backoff.retries, _BackoffInterval(backoff))
        self.attempts = attempts

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return response is not None and 500 <= response.status_code <= 599


class _ConnectionRetry(_BackoffMixin, ConnectionErrorRetryHandler):
    def __init__(self, attempts: _Attempts, backoff: Backoff):
        super().__init__(backoff.retries, _BackoffInterval(backoff))
        self.attempts = attempts


class _RateLimitRetry(RateLimitErrorRetryHandler):
    """429: wait exactly what Retry-After says. A wait longer than `max_retry_after` is not retried
    here (a Lambda would time out); the message goes to the failure destination instead."""

    def __init__(self, attempts: _Attempts, max_retries: int, max_retry_after: float):
        super().__init__(max_retries)
        self.attempts = attempts
        self.max_retry_after = max_retry_after

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return response is not None and response.status_code == 429 and _retry_after(response.headers) <= self.max_retry_after

    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
        state.next_attempt_requested = True
        self.attempts.wait(_retry_after(response.headers) if response is not None else 1.0)
        state.increment_current_attempt()


def _retry_after(headers: dict) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); 1 s when absent or bad."""
    for k, v in headers.items():
        if k.lower() != "retry-after":
            continue
        value = (v[0] if isinstance(v, list) and v else v) or ""
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            return max((parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        except (TypeError, ValueError):
            return 1.0
    return 1.0


# --- a process-local idempotency store, for runs without a DynamoDB table ---------------------


class InMemoryPersistenceLayer(BasePersistenceLayer):
    """Powertools persistence kept in this process (local runs and `sieve demo`). In Lambda use
    DynamoDB: a process-local store forgets everything on a cold start."""

    def __init__(self):
        super().__init__()
        self._items: dict[str, DataRecord] = {}
        self._lock = threading.Lock()

    def _get_record(self, idempotency_key) -> DataRecord:
        with self._lock:
            record = self._items.get(idempotency_key)
        if record is None:
            raise IdempotencyItemNotFoundError
        return record

    def _put_record(self, data_record: DataRecord) -> None:
        now_ms = int(time.time() * 1000)
        with self._lock:
            old = self._items.get(data_record.idempotency_key)
            if old is not None and not old.is_expired:
                stale = (old.status == "INPROGRESS" and old.in_progress_expiry_timestamp is not None
                         and old.in_progress_expiry_timestamp < now_ms)
                if not stale:
                    raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self._items[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._items[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._items.pop(data_record.idempotency_key, None)


def create_idempotency_table(table_name: str, *, client=None) -> None:
    """Create the DynamoDB table Powertools idempotency expects (key `id`, TTL on `expiration`).
    Does nothing when it exists already."""
    client = client or boto3.client("dynamodb")
    try:
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    except client.exceptions.ResourceInUseException:
        return
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    client.update_time_to_live(TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"})


# --- what both notifiers share: exactly once per delivery key, counts, the failure queue ---------


class _SlackSender:
    """Powertools idempotency on the delivery key (`_post` runs at most once per key; raising lets a
    later send retry), counts, retry handlers and the failure destination. Subclasses define `_post`."""

    def _setup(self, *, idempotency_table, idempotency_expires_after, idempotency_key_prefix, failure_queue_url,
               max_retries, backoff_factor, max_retry_after, timeout, sleep, dynamodb_client, sqs_client) -> None:
        self._masker = _MASKER
        self._http_logger = _http_logger
        self.idempotency_table = idempotency_table
        self.failure_queue_url = failure_queue_url
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.max_retry_after = max_retry_after
        Backoff(backoff_factor, max_retry_after, max_retries)  # a bad number fails here, not at the first send
        self.timeout = timeout
        self._sleep = sleep
        self._sqs = sqs_client
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()

        if idempotency_table:
            self._persistence: BasePersistenceLayer = DynamoDBPersistenceLayer(
                table_name=idempotency_table, boto3_client=dynamodb_client or boto3.client("dynamodb")
            )
        else:
            self._persistence = InMemoryPersistenceLayer()
        self._idempotency_config = IdempotencyConfig(
            event_key_jmespath="key",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=idempotency_expires_after,
            response_hook=lambda response, record: {**response, "duplicate": True},
        )
        self._post_once = idempotent_function(
            self._post,
            data_keyword_argument="delivery",
            persistence_store=self._persistence,
            config=self._idempotency_config,
            key_prefix=idempotency_key_prefix,
        )

    def _post(self, *, delivery: dict, **kwargs) -> dict:
        raise NotImplementedError

    def bind_invocation(self, context) -> None:
        """In Lambda: lets an in-progress record expire when the invocation times out."""
        self._idempotency_config.register_lambda_context(context)

    @property
    def counts(self) -> dict[str, int]:
        """posted, duplicate, failed, dead_lettered, in_progress, rejected (since construction)."""
        with self._counts_lock:
            return dict(self._counts)

    def _count(self, what: str) -> None:
        with self._counts_lock:
            self._counts[what] += 1

    def _retry_handlers(self) -> tuple[_Attempts, list[RetryHandler]]:
        # No backoff wait longer than the longest Retry-After we accept: a Lambda would time out.
        backoff = Backoff(self.backoff_factor, self.max_retry_after, self.max_retries, sleep=self._sleep)
        attempts = _Attempts(backoff.sleep)
        return attempts, [
            _RateLimitRetry(attempts, backoff.retries, self.max_retry_after),
            _ServerErrorRetry(attempts, backoff),
            _ConnectionRetry(attempts, backoff),
        ]

    def _deliver(self, idempotency_key: str, dead_letter: dict, **kwargs) -> Delivery:
        """Run `_post(**kwargs)` once per key; `dead_letter` goes to the failure queue if it fails (unless
        the failure names the message that failed)."""
        failure: _PostFailed | None = None
        try:
            result = self._post_once(delivery={"key": idempotency_key}, **kwargs)
        except _PostFailed as exc:
            failure = exc
        except IdempotencyAlreadyInProgressError:
            self._count("in_progress")
            raise SlackDeliveryInProgress(
                f"slack notifier: {idempotency_key!r} is being posted by another worker right now; "
                "retry later (it will then be reported as a duplicate)",
                idempotency_key=idempotency_key, retryable=True) from None
        except IdempotencyPersistenceLayerError as exc:
            self._count("store_error")
            where = f"DynamoDB table {self.idempotency_table!r}" if self.idempotency_table else "the in-memory store"
            raise SlackDeliveryError(
                f"slack notifier: idempotency store {where} failed for {idempotency_key!r}: {self._masker(str(exc))}; "
                "check the table exists (processors.adapters.slack.create_idempotency_table) and the role can use it",
                idempotency_key=idempotency_key, retryable=True) from None
        except TransientFailure as exc:  # the state table (threads, acks, mutes) of the bot notifier
            self._count("store_error")
            raise SlackDeliveryError(f"slack notifier: {idempotency_key!r} not posted: {exc}",
                                     idempotency_key=idempotency_key, retryable=True) from None
        if failure is not None:
            raise self._fail(dead_letter, idempotency_key, failure)
        duplicate = bool(result.get("duplicate"))
        self._count("duplicate" if duplicate else "posted")
        if duplicate:
            logger.info("slack post skipped: duplicate", extra={"idempotency_key": idempotency_key})
        return Delivery(idempotency_key, "duplicate" if duplicate else "posted", int(result.get("http_status", 200)),
                        0 if duplicate else int(result.get("attempts", 1)))

    def _fail(self, payload: dict, key: str, failure: _PostFailed) -> SlackDeliveryFailed:
        self._count("failed")
        transient = failure.transient if failure.transient is not None else (
            failure.status_code is None or failure.status_code == 429 or failure.status_code >= 500)
        what = f"HTTP {failure.status_code} {failure.error}" if failure.status_code else failure.error
        dead_lettered, dlq_note = self._dead_letter(key, failure, payload)
        logger.error("slack post failed", extra={"idempotency_key": key, "error": what, "attempts": failure.attempts,
                                                 "dead_lettered": dead_lettered})
        return SlackDeliveryFailed(
            f"slack notifier: post {key!r} failed after {failure.attempts} attempt(s): {what}; {dlq_note}"
            + ("; retry later" if transient else "; Slack refused the payload, fix it before retrying"),
            idempotency_key=key, retryable=transient, status_code=failure.status_code, dead_lettered=dead_lettered)

    def _dead_letter(self, key: str, failure: _PostFailed, payload: dict) -> tuple[bool, str]:
        """Payload and error to the failure queue: (sent, what happened)."""
        if not self.failure_queue_url:
            return False, "no failure destination configured"
        what = f"HTTP {failure.status_code} {failure.error}" if failure.status_code else failure.error
        try:
            self._sqs_client().send_message(
                QueueUrl=self.failure_queue_url,
                MessageBody=orjson.dumps({
                    "idempotency_key": key,
                    "error": what,
                    "status_code": failure.status_code,
                    "attempts": failure.attempts,
                    "failed_at": datetime.now(timezone.utc).isoformat(),
                    **failure.request,
                    "payload": failure.payload if failure.payload is not None else payload,
                }).decode(),
                MessageAttributes={
                    "idempotency_key": {"DataType": "String", "StringValue": key},
                    "source": {"DataType": "String", "StringValue": "sieve-slack"},
                },
            )
        except Exception as exc:
            self._count("dead_letter_failed")
            return False, f"the failure queue also failed: {self._masker(f'{type(exc).__name__}: {exc}')}"
        self._count("dead_lettered")
        return True, "payload and error sent to the failure queue"

    def _sqs_client(self):
        if self._sqs is None:
            self._sqs = boto3.client("sqs")
        return self._sqs


# --- the webhook notifier ---------------------------------------------------------------------


class SlackWebhookNotifier(_SlackSender):
    """Posts Block Kit payloads to a Slack incoming webhook, once per idempotency key."""

    def __init__(
        self,
        *,
        webhook_url: str | None = None,
        secret_id: str | None = None,
        secret_max_age: int = 300,
        secret_key: str = "webhook_url",
        idempotency_table: str | None = None,
        idempotency_expires_after: int = 7 * 24 * 3600,
        idempotency_key_prefix: str = "sieve-slack",
        failure_queue_url: str | None = None,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        max_retry_after: float = 30.0,
        timeout: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        secrets: Secrets | None = None,
        dynamodb_client=None,
        sqs_client=None,
    ):
        if webhook_url:
            _MASKER.add(webhook_url)
            _check_url(webhook_url, "webhook_url", _MASKER)
        self._static_url = webhook_url
        self.secret_id = secret_id
        self.secret_max_age = secret_max_age
        self.secret_key = secret_key
        self._secrets = None
        if secret_id and not webhook_url:
            self._secrets = secrets or Secrets(max_age=secret_max_age)
        self._setup(idempotency_table=idempotency_table, idempotency_expires_after=idempotency_expires_after,
                    idempotency_key_prefix=idempotency_key_prefix, failure_queue_url=failure_queue_url,
                    max_retries=max_retries, backoff_factor=backoff_factor, max_retry_after=max_retry_after,
                    timeout=timeout, sleep=sleep, dynamodb_client=dynamodb_client, sqs_client=sqs_client)

    @classmethod
    def from_env(cls, **overrides) -> SlackWebhookNotifier:
        """Configuration from SLACK_WEBHOOK_URL or SIEVE_SLACK_WEBHOOK_SECRET (a secret id),
        SIEVE_SLACK_IDEMPOTENCY_TABLE and SIEVE_SLACK_FAILURE_QUEUE_URL; keyword arguments win."""
        settings = {
            "webhook_url": os.environ.get(ENV_WEBHOOK_URL) or None,
            "secret_id": os.environ.get(ENV_WEBHOOK_SECRET) or None,
            "idempotency_table": os.environ.get(ENV_IDEMPOTENCY_TABLE) or None,
            "failure_queue_url": os.environ.get(ENV_FAILURE_QUEUE_URL) or None,
        }
        settings.update(overrides)
        return cls(**settings)

    # --- the Notifier port ----------------------------------------------------------------

    def send(self, payload: dict, *, idempotency_key: str) -> Delivery:
        if not idempotency_key:
            self._count("rejected")
            raise SlackPayloadError("slack notifier: idempotency_key is empty; pass rule#window#digest "
                                    "(processors.core.slack_blocks.delivery_key)", idempotency_key="", retryable=False)
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            self._count("rejected")
            raise SlackPayloadError(f"slack notifier: payload for {idempotency_key!r} needs `text` or `blocks` "
                                    "(render it with processors.core.slack_blocks.render)",
                                    idempotency_key=idempotency_key, retryable=False)
        url = self._webhook_url()
        return self._deliver(idempotency_key, payload, payload=payload, url=url)

    def post_report(self, report, *, max_rows: int = 10) -> Delivery:
        """Render a WindowReport and send it keyed by rule#window#digest."""
        return self.send(render(report, max_rows=max_rows), idempotency_key=delivery_key(report))

    # --- internals ------------------------------------------------------------------------

    def _post(self, *, delivery: dict, payload: dict, url: str) -> dict:
        """Runs at most once per key (Powertools idempotency); raising lets a later send retry."""
        attempts, handlers = self._retry_handlers()
        client = WebhookClient(url, timeout=self.timeout, logger=self._http_logger, retry_handlers=handlers)
        error: str | None = None
        try:
            response = client.send_dict(payload)
        except Exception as exc:  # connection refused, timeout, bad URL: all after retries
            error = self._masker(f"{type(exc).__name__}: {exc}")
        if error is not None:
            raise _PostFailed(None, error, attempts.count)
        if response.status_code != 200:
            raise _PostFailed(response.status_code, self._masker(str(response.body)[:500]), attempts.count)
        return {"status": "posted", "http_status": response.status_code, "attempts": attempts.count}

    def _webhook_url(self) -> str:
        if self._static_url:
            return self._static_url
        if self._secrets is None:
            url = os.environ.get(ENV_WEBHOOK_URL, "")
            if not url:
                raise ConfigError("slack notifier", [
                    f"no webhook URL: pass webhook_url= or secret_id=, or set {ENV_WEBHOOK_URL} or {ENV_WEBHOOK_SECRET}"])
            self._masker.add(url)
            _check_url(url, ENV_WEBHOOK_URL, self._masker)
            return url
        where = f"secret {self.secret_id!r}"
        try:
            url = self._secrets.get(self.secret_id, self.secret_key, plain_ok=True).strip()
        except ConfigError as exc:
            raise ConfigError("slack notifier", [self._masker(p) for p in exc.problems]) from None
        self._masker.add(url)
        _check_url(url, where, self._masker)
        return url


# --- the bot notifier: one thread per incident ---------------------------------------------------

#: ok:false errors of the Web API that say "try again later", not "this request is wrong"
_TRANSIENT_API_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}


class IncidentState(Protocol):
    """Where the bot notifier keeps threads and reads acks and mutes (adapters/state_store.StateStore)."""

    def thread(self, rule: str, incident: str) -> Thread | None: ...

    def put_thread(self, rule: str, incident: str, thread: Thread, *, ttl_seconds: int) -> None: ...

    def ack(self, rule: str, incident: str) -> Ack | None: ...

    def mutes(self, rule: str) -> dict[str, Mute]: ...


class SlackBotNotifier(_SlackSender):
    """Posts with a bot token through Slack's Web API, one thread per incident (processors/core/incidents.py).

    Per selected group of a window (an incident: rule + contributor key): a muted incident is skipped;
    the first window posts the parent (chat.postMessage: the window, a status line, Acknowledge / Mute
    buttons) and stores its ts in the state table; a later window of the same ongoing incident replies
    in the thread (thread_ts) and updates the parent's status line (chat.update; who acknowledged, if
    anyone did). The whole window runs at most once per delivery key (the webhook's: rule#window#digest,
    Powertools idempotency); on a retry, incidents whose thread already has the window are skipped. A
    message that cannot be posted goes to the failure queue; a failed status update is dead-lettered
    too but does not fail the window (the next window updates the status line again).

    The token comes from ``token=``, a Secrets Manager secret (`token_secret`, JSON key `token_key` or
    the plain token), or SLACK_BOT_TOKEN; it is masked in every log record and error of this module."""

    def __init__(
        self,
        *,
        state: IncidentState,
        channel: str,
        channels: Mapping[str, str] | None = None,
        token: str | None = None,
        token_secret: str | None = None,
        token_key: str = "bot_token",
        secret_max_age: int = 300,
        api_url: str = DEFAULT_API_URL,
        incident_gap_seconds: int = DEFAULT_GAP_SECONDS,
        idempotency_table: str | None = None,
        idempotency_expires_after: int = 7 * 24 * 3600,
        idempotency_key_prefix: str = "sieve-slack",
        failure_queue_url: str | None = None,
        max_retries: int = 3,
        backoff_factor: float = 0.5,
        max_retry_after: float = 30.0,
        timeout: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        secrets: Secrets | None = None,
        dynamodb_client=None,
        sqs_client=None,
        charts: bool = True,
    ):
        if not channel:
            raise ConfigError("slack notifier", ["bot: a default channel is required"])
        if state is None:
            raise ConfigError("slack notifier", ["bot: threads need the state table (state=StateStore(...))"])
        if not (api_url.startswith("https://") or api_url.startswith("http://")):
            raise ConfigError("slack notifier", [f"bot: api_url must be an http(s) URL, got {api_url!r}"])
        if token:
            _MASKER.add(token)
        self.state = state
        self.channel = channel
        self.channels = dict(channels or {})
        self._static_token = token
        self.token_secret = token_secret
        self.token_key = token_key
        self._secrets = (secrets or Secrets(max_age=secret_max_age)) if token_secret and not token else None
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.incident_gap_seconds = incident_gap_seconds
        self.thread_ttl_seconds = incident_gap_seconds + 86400  # a thread outlives its gap by a day, for people
        self.charts = charts  # a PNG of the group's rate in its thread (files:write scope)
        self._clock = clock
        self._setup(idempotency_table=idempotency_table, idempotency_expires_after=idempotency_expires_after,
                    idempotency_key_prefix=idempotency_key_prefix, failure_queue_url=failure_queue_url,
                    max_retries=max_retries, backoff_factor=backoff_factor, max_retry_after=max_retry_after,
                    timeout=timeout, sleep=sleep, dynamodb_client=dynamodb_client, sqs_client=sqs_client)

    def channel_for(self, rule: str) -> str:
        return self.channels.get(rule, self.channel)

    # --- the Notifier port ----------------------------------------------------------------

    def post_report(self, report: WindowReport, *, max_rows: int = 10) -> Delivery:
        """Post (or reply, and update the parent) for every incident of the window, once per rule#window#digest."""
        key = delivery_key(report)
        return self._deliver(key, {"rule": report.rule, "window": report.window.key},
                             report=report, max_rows=max_rows, token=self._token())

    # --- internals ------------------------------------------------------------------------

    def _post(self, *, delivery: dict, report: WindowReport, max_rows: int, token: str) -> dict:
        attempts, handlers = self._retry_handlers()
        client = WebClient(token=token, base_url=self.api_url, timeout=self.timeout, logger=self._http_logger,
                           retry_handlers=handlers)
        rule, window = report.rule, report.window
        mutes = self.state.mutes(rule)
        messages = []
        for incident, part in split_by_incident(report):
            if muted(incident.id, mutes, self._clock()):
                self._count("muted")
                messages.append({"incident": incident.id, "action": "muted"})
                continue
            thread = self.state.thread(rule, incident.id)
            step = plan(thread, window, self.incident_gap_seconds)
            if step == "done":
                messages.append({"incident": incident.id, "action": "done", "thread_ts": thread.ts})
                continue
            body = render(part, max_rows=max_rows)
            value = part.selected[0].value
            if step == "parent" or thread is None:
                fresh = new_thread(self.channel_for(rule), window, value, body)
                message = parent_message(body, status_block(incident, fresh), actions_block(incident))
                answer = self._call(client, attempts, "chat.postMessage", channel=fresh.channel,
                                    unfurl_links=False, unfurl_media=False, **message)
                thread = dataclasses.replace(fresh, ts=answer["ts"], channel=answer.get("channel") or fresh.channel)
                self.state.put_thread(rule, incident.id, thread, ttl_seconds=self.thread_ttl_seconds)
            else:
                answer = self._call(client, attempts, "chat.postMessage", channel=thread.channel, thread_ts=thread.ts,
                                    unfurl_links=False, unfurl_media=False, **body)
                thread = advance(thread, window, value)
                self.state.put_thread(rule, incident.id, thread, ttl_seconds=self.thread_ttl_seconds)
                self._update_status(client, attempts, delivery["key"], incident, thread)
            chart = self._post_chart(client, part, thread) if self.charts else None
            messages.append({"incident": incident.id, "action": step, "ts": answer["ts"], "thread_ts": thread.ts,
                             **({"chart": chart} if chart else {})})
        return {"status": "posted", "http_status": 200, "attempts": attempts.count, "messages": messages}

    def _post_chart(self, client: WebClient, part: WindowReport, thread: Thread) -> str | None:
        """The group's rate as a PNG in the incident's thread (core/chart.py). A picture is a courtesy:
        when it cannot be drawn or uploaded the window is still delivered; the failure is counted and logged."""
        from processors.core.chart import rate_chart

        g = part.selected[0]
        try:
            chart = rate_chart(g, part.topn.aggregate_on == "Count", part.rule)
        except Exception as exc:  # Pillow missing or a drawing error: say so, never fail the delivery
            self._count("chart_failed")
            logger.warning("slack chart not drawn", extra={"rule": part.rule, "error": f"{type(exc).__name__}: {exc}"})
            return None
        if chart is None:
            return None
        try:
            answer = client.files_upload_v2(channel=thread.channel, thread_ts=thread.ts, content=chart.png,
                                            filename=chart.filename, title=chart.title, alt_txt=chart.alt_text)
        except Exception as exc:
            self._count("chart_failed")
            logger.warning("slack chart not uploaded", extra={"rule": part.rule, "channel": thread.channel,
                                                              "error": self._masker(f"{type(exc).__name__}: {exc}")})
            return None
        self._count("chart_posted")
        files = answer.get("files") or [answer.get("file") or {}]
        return str(files[0].get("id") or "") or None

    def _update_status(self, client, attempts: _Attempts, key: str, incident: Incident, thread: Thread) -> None:
        ack = self.state.ack(incident.rule, incident.id)
        update = parent_message(thread.parent, status_block(incident, thread, ack), actions_block(incident))
        try:
            self._call(client, attempts, "chat.update", channel=thread.channel, ts=thread.ts, **update)
        except _PostFailed as exc:  # the reply is posted; the next window updates the status line again
            self._count("status_update_failed")
            dead_lettered, note = self._dead_letter(key, exc, update)
            logger.warning("slack status line not updated", extra={"idempotency_key": key, "error": exc.error,
                                                                   "dead_lettered": dead_lettered, "note": note})

    def _call(self, client: WebClient, attempts: _Attempts, method: str, **args) -> dict:
        where = {"slack_method": method, "channel": args.get("channel"), "thread_ts": args.get("thread_ts"),
                 "ts": args.get("ts")}
        payload = {k: args[k] for k in ("text", "blocks") if k in args}
        try:
            return client.api_call(method, json=args).data
        except SlackApiError as exc:
            response = exc.response
            data = response.data if isinstance(response.data, dict) else {}
            error = str(data.get("error") or str(response.data)[:500])
            status = response.status_code
            transient = status == 429 or status >= 500 or error in _TRANSIENT_API_ERRORS
            raise _PostFailed(status, self._masker(error), attempts.count, transient=transient, request=where,
                              payload=payload) from None
        except Exception as exc:  # connection refused, timeout, bad URL: all after retries
            raise _PostFailed(None, self._masker(f"{type(exc).__name__}: {exc}"), attempts.count, request=where,
                              payload=payload) from None

    def _token(self) -> str:
        if self._static_token:
            return self._static_token
        if self._secrets is None:
            token = os.environ.get(ENV_BOT_TOKEN, "")
            if not token:
                raise ConfigError("slack notifier", [f"bot: no token: pass token= or token_secret=, or set {ENV_BOT_TOKEN}"])
        else:
            try:
                token = self._secrets.get(self.token_secret, self.token_key, plain_ok=True).strip()
            except ConfigError as exc:
                raise ConfigError("slack notifier", [self._masker(p) for p in exc.problems]) from None
        self._masker.add(token)
        return token


def _check_url(url: str, where: str, masker: _Masker) -> None:
    if not (url.startswith("https://") or url.startswith("http://")) or "/" not in url.split("://", 1)[1]:
        raise ConfigError("slack notifier", [f"{where}: not an http(s) webhook URL ({masker(mask_url(url))})"])


# --- Slack in: request signatures, response_url follow-ups -------------------------------------

#: Slack's replay window for signed requests
MAX_SKEW_SECONDS = 5 * 60


def verify_slack(signing_secret: str, body: str, timestamp: str | None, signature: str | None,
                 *, now: Callable[[], float] = time.time) -> str | None:
    """None if the request is genuine and fresh, else the reason (for the log; the caller says only 401)."""
    from slack_sdk.signature import Clock, SignatureVerifier

    if not timestamp or not signature or not isinstance(timestamp, str) or not isinstance(signature, str):
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not (timestamp.isascii() and signature.isascii()):  # hmac.compare_digest refuses non-ASCII text
        return "timestamp or signature is not ASCII"
    if not isinstance(body, str) or not body.isascii() and _not_utf8(body):
        return "body is not UTF-8 text"
    try:
        ts = int(timestamp)
    except ValueError:
        return "timestamp is not an integer"
    if abs(now() - ts) > MAX_SKEW_SECONDS:
        return f"stale timestamp ({int(now() - ts)} s old)"

    class _Clock(Clock):
        def now(self) -> float:  # the same clock for the skew check above and inside the verifier
            return now()

    if not SignatureVerifier(signing_secret, clock=_Clock()).is_valid(body, timestamp, signature):
        return "bad signature"
    return None


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON \ud800 escape in the event
        return True
    return False


def verified_form(event: dict, signing_secret: str, *, now: Callable[[], float] = time.time
                  ) -> tuple[dict[str, str] | None, int, str]:
    """The form fields of a Slack request behind API Gateway (HTTP API, payload v2) once its signature and
    timestamp check out: (form, 200, ""); else (None, 400 or 401, the reason, for the log only)."""
    from urllib.parse import parse_qs

    headers = event.get("headers") or {}
    headers = {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, dict) else {}
    raw = event.get("body") or ""
    if not isinstance(raw, str):
        return None, 400, "body is not text"
    try:
        body = base64.b64decode(raw).decode("utf-8") if event.get("isBase64Encoded") else raw
    except (ValueError, UnicodeDecodeError):
        return None, 400, "body is not base64 UTF-8"
    problem = verify_slack(signing_secret, body, headers.get("x-slack-request-timestamp"),
                           headers.get("x-slack-signature"), now=now)
    if problem:
        return None, 401, problem
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}, 200, ""


def _in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def allowed_response_url(url: str) -> bool:
    """Only Slack's own response URLs are ever posted to (loopback too, outside Lambda, for local receivers)."""
    if url.startswith("https://hooks.slack.com/"):
        return True
    return not _in_lambda() and (url.startswith("http://127.0.0.1:") or url.startswith("http://localhost:"))


def post_to_response_url(url: str, payload: dict) -> int:
    """Post a slash command's delayed answer; returns the HTTP status. The caller checked the URL."""
    if not allowed_response_url(url):
        raise ValueError("response_url is not a Slack URL")
    return WebhookClient(url, timeout=10).send_dict(payload).status_code
