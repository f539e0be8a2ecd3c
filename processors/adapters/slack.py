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
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, Literal

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
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from processors.adapters.aws import Secrets
from processors.adapters.retry import Backoff
from processors.core.slack_blocks import delivery_key, render
from processors.core.types import Delivery
from processors.errors import ConfigError
from processors.ports import NotificationFailed

logger = logging.getLogger(__name__)

ENV_WEBHOOK_URL = "SLACK_WEBHOOK_URL"
ENV_WEBHOOK_SECRET = "SIEVE_SLACK_WEBHOOK_SECRET"
ENV_IDEMPOTENCY_TABLE = "SIEVE_SLACK_IDEMPOTENCY_TABLE"
ENV_FAILURE_QUEUE_URL = "SIEVE_SLACK_FAILURE_QUEUE_URL"
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
    def __init__(self, status_code: int | None, error: str, attempts: int):
        self.status_code = status_code
        self.error = error
        self.attempts = attempts
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
                text = text.replace(s, mask_url(s) if "://" in s else "/" + MASK)
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


# --- the notifier -----------------------------------------------------------------------------


class SlackWebhookNotifier:
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
        self._masker = _MASKER
        self._http_logger = _http_logger
        if webhook_url:
            self._masker.add(webhook_url)
            _check_url(webhook_url, "webhook_url", self._masker)
        self._static_url = webhook_url
        self.secret_id = secret_id
        self.secret_max_age = secret_max_age
        self.secret_key = secret_key
        self._secrets = None
        if secret_id and not webhook_url:
            self._secrets = secrets or Secrets(max_age=secret_max_age)
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
        failure: _PostFailed | None = None
        try:
            result = self._post_once(delivery={"key": idempotency_key}, payload=payload, url=url)
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
        if failure is not None:
            raise self._fail(payload, idempotency_key, failure)
        duplicate = bool(result.get("duplicate"))
        self._count("duplicate" if duplicate else "posted")
        if duplicate:
            logger.info("slack post skipped: duplicate", extra={"idempotency_key": idempotency_key})
        return Delivery(idempotency_key, "duplicate" if duplicate else "posted", int(result.get("http_status", 200)),
                        0 if duplicate else int(result.get("attempts", 1)))

    def post_report(self, report, *, max_rows: int = 10) -> Delivery:
        """Render a WindowReport and send it keyed by rule#window#digest."""
        return self.send(render(report, max_rows=max_rows), idempotency_key=delivery_key(report))

    # --- internals ------------------------------------------------------------------------

    def _post(self, *, delivery: dict, payload: dict, url: str) -> dict:
        """Runs at most once per key (Powertools idempotency); raising lets a later send retry."""
        # No backoff wait longer than the longest Retry-After we accept: a Lambda would time out.
        backoff = Backoff(self.backoff_factor, self.max_retry_after, self.max_retries, sleep=self._sleep)
        attempts = _Attempts(backoff.sleep)
        client = WebhookClient(
            url,
            timeout=self.timeout,
            logger=self._http_logger,
            retry_handlers=[
                _RateLimitRetry(attempts, backoff.retries, self.max_retry_after),
                _ServerErrorRetry(attempts, backoff),
                _ConnectionRetry(attempts, backoff),
            ],
        )
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

    def _fail(self, payload: dict, key: str, failure: _PostFailed) -> SlackDeliveryFailed:
        self._count("failed")
        transient = failure.status_code is None or failure.status_code == 429 or failure.status_code >= 500
        what = f"HTTP {failure.status_code} {failure.error}" if failure.status_code else failure.error
        dead_lettered, dlq_note = False, "no failure destination configured"
        if self.failure_queue_url:
            try:
                self._sqs_client().send_message(
                    QueueUrl=self.failure_queue_url,
                    MessageBody=orjson.dumps({
                        "idempotency_key": key,
                        "error": what,
                        "status_code": failure.status_code,
                        "attempts": failure.attempts,
                        "failed_at": datetime.now(timezone.utc).isoformat(),
                        "payload": payload,
                    }).decode(),
                    MessageAttributes={
                        "idempotency_key": {"DataType": "String", "StringValue": key},
                        "source": {"DataType": "String", "StringValue": "sieve-slack"},
                    },
                )
                dead_lettered, dlq_note = True, "payload and error sent to the failure queue"
                self._count("dead_lettered")
            except Exception as exc:
                dlq_note = f"the failure queue also failed: {self._masker(f'{type(exc).__name__}: {exc}')}"
                self._count("dead_letter_failed")
        logger.error("slack post failed", extra={"idempotency_key": key, "error": what, "attempts": failure.attempts,
                                                 "dead_lettered": dead_lettered})
        return SlackDeliveryFailed(
            f"slack notifier: post {key!r} failed after {failure.attempts} attempt(s): {what}; {dlq_note}"
            + ("; retry later" if transient else "; Slack refused the payload, fix it before retrying"),
            idempotency_key=key, retryable=transient, status_code=failure.status_code, dead_lettered=dead_lettered)

    def _sqs_client(self):
        if self._sqs is None:
            self._sqs = boto3.client("sqs")
        return self._sqs

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

    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
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


def dispatch_async(handler: Callable[[dict, object], object], payload: dict, context) -> None:
    """Run `handler(payload)` asynchronously: a Lambda Event invoke of this very function on AWS, a
    daemon thread elsewhere (local runs)."""
    if _in_lambda() and getattr(context, "invoked_function_arn", None):
        from processors.adapters import aws

        aws.client("lambda").invoke(FunctionName=context.invoked_function_arn, InvocationType="Event",
                                    Payload=orjson.dumps(payload))
        return
    threading.Thread(target=handler, args=(payload, context), name="sieve-ask-followup", daemon=True).start()
