"""SlackWebhookNotifier against the real local receiver and the moto server (SQS, DynamoDB,
Secrets Manager): retries, failure destination, exactly-once, the secret kept out of logs."""

from __future__ import annotations

import json
import logging
import threading

import boto3
import pytest

from processors.adapters.slack import (
    SlackDeliveryFailed,
    SlackDeliveryInProgress,
    SlackPayloadError,
    SlackWebhookNotifier,
    create_idempotency_table,
)
from processors.core.slack_blocks import delivery_key, render
from processors.errors import ConfigError
from processors.runtime.slack_receiver import SlackReceiver
from tests.slack.slack_factories import report

pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

TABLE = "sieve-slack-idempotency"


def payload_and_key(**kw):
    r = report(**kw)
    return render(r), delivery_key(r)


@pytest.fixture()
def queue_url(aws):
    return boto3.client("sqs").create_queue(QueueName="sieve-slack-failures")["QueueUrl"]


@pytest.fixture()
def table(aws):
    create_idempotency_table(TABLE)
    return TABLE


def drain(queue_url: str) -> list[dict]:
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   MessageAttributeNames=["All"]).get("Messages", [])
    return [dict(json.loads(m["Body"]), _attributes=m.get("MessageAttributes", {})) for m in messages]


# --- retries --------------------------------------------------------------------------------


def test_posts_once(receiver):
    payload, key = payload_and_key()
    delivery = SlackWebhookNotifier(webhook_url=receiver.url).send(payload, idempotency_key=key)
    assert (delivery.status, delivery.http_status, delivery.attempts) == ("posted", 200, 1)
    assert receiver.accepted == [payload]


def test_429_waits_for_retry_after(receiver):
    receiver.fail_next(1, 429, retry_after=1)
    payload, key = payload_and_key()
    delivery = SlackWebhookNotifier(webhook_url=receiver.url).send(payload, idempotency_key=key)
    first, second = receiver.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 1.0, "the retry came before Retry-After elapsed"
    assert delivery.attempts == 2 and receiver.accepted == [payload]


def test_429_longer_than_the_cap_is_not_waited_for(receiver, recording_sleep):
    receiver.fail_next(1, 429, retry_after=3600)
    notifier = SlackWebhookNotifier(webhook_url=receiver.url, max_retry_after=30, sleep=recording_sleep)
    with pytest.raises(SlackDeliveryFailed) as err:
        notifier.send({"text": "hi"}, idempotency_key="k")
    assert err.value.retryable and err.value.status_code == 429
    assert recording_sleep.waits == [] and len(receiver.requests) == 1


def test_5xx_is_retried_with_exponential_backoff(receiver, recording_sleep):
    receiver.fail_next(2, 500)
    receiver.fail_next(1, 503)
    notifier = SlackWebhookNotifier(webhook_url=receiver.url, backoff_factor=0.04, max_retries=3, sleep=recording_sleep)
    delivery = notifier.send({"text": "hi"}, idempotency_key="k")
    assert [r.status for r in receiver.requests] == [500, 500, 503, 200]
    assert delivery.attempts == 4
    # equal jitter: attempt i waits within [f*2^i/2, f*2^i]
    for i, wait in enumerate(recording_sleep.waits):
        assert 0.04 * 2**i / 2 <= wait <= 0.04 * 2**i, (i, wait)
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:])]
    assert all(gap >= wait for gap, wait in zip(gaps, recording_sleep.waits))


def test_connection_errors_are_retried_then_fail_without_the_url(recording_sleep):
    with SlackReceiver() as rx:
        url = rx.url
    notifier = SlackWebhookNotifier(webhook_url=url, backoff_factor=0.01, max_retries=2, sleep=recording_sleep)
    with pytest.raises(SlackDeliveryFailed) as err:
        notifier.send({"text": "hi"}, idempotency_key="k")
    assert len(recording_sleep.waits) == 2 and err.value.retryable and err.value.status_code is None
    assert "after 3 attempt(s)" in str(err.value) and "Connection refused" in str(err.value)
    assert url not in str(err.value) and url.rsplit("/", 1)[1] not in str(err.value)


# --- failure destination ----------------------------------------------------------------------


def test_still_failing_goes_to_the_failure_queue_and_raises(receiver, queue_url, recording_sleep):
    receiver.fail_next(10, 500)
    payload, key = payload_and_key()
    notifier = SlackWebhookNotifier(webhook_url=receiver.url, failure_queue_url=queue_url, max_retries=2,
                                    backoff_factor=0.01, sleep=recording_sleep)
    with pytest.raises(SlackDeliveryFailed) as err:
        notifier.send(payload, idempotency_key=key)
    assert err.value.dead_lettered and err.value.retryable and err.value.idempotency_key == key
    assert len(receiver.requests) == 3
    [message] = drain(queue_url)
    assert message["payload"] == payload
    assert message["idempotency_key"] == key and message["_attributes"]["idempotency_key"]["StringValue"] == key
    assert message["status_code"] == 500 and "internal_error" in message["error"] and message["attempts"] == 3
    assert receiver.token not in json.dumps(message)
    assert notifier.counts == {"failed": 1, "dead_lettered": 1}

    # a failed post leaves no idempotency record behind: the redelivery posts
    receiver._script.clear()
    assert notifier.send(payload, idempotency_key=key).status == "posted"
    assert receiver.accepted == [payload]


def test_payload_slack_refuses_is_not_retried(receiver, queue_url, recording_sleep):
    bad = {"text": "x", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "a"}}] * 51}
    notifier = SlackWebhookNotifier(webhook_url=receiver.url, failure_queue_url=queue_url, sleep=recording_sleep)
    with pytest.raises(SlackDeliveryFailed) as err:
        notifier.send(bad, idempotency_key="bad")
    assert (err.value.status_code, err.value.retryable, err.value.dead_lettered) == (400, False, True)
    assert "invalid_blocks" in str(err.value) and recording_sleep.waits == []
    assert [m["payload"] for m in drain(queue_url)] == [bad]


def test_a_payload_without_text_or_blocks_is_rejected_and_counted(receiver):
    notifier = SlackWebhookNotifier(webhook_url=receiver.url)
    with pytest.raises(SlackPayloadError, match="needs `text` or `blocks`"):
        notifier.send({"attachments": None}, idempotency_key="k")
    with pytest.raises(SlackPayloadError, match="idempotency_key is empty"):
        notifier.send({"text": "x"}, idempotency_key="")
    assert notifier.counts == {"rejected": 2} and receiver.requests == []


# --- exactly once -----------------------------------------------------------------------------


def test_same_key_twice_posts_once_across_workers(receiver, table):
    payload, key = payload_and_key()
    first = SlackWebhookNotifier(webhook_url=receiver.url, idempotency_table=table)
    other_worker = SlackWebhookNotifier(webhook_url=receiver.url, idempotency_table=table)
    assert first.send(payload, idempotency_key=key).status == "posted"
    assert first.send(payload, idempotency_key=key).status == "duplicate"
    assert other_worker.send(payload, idempotency_key=key).status == "duplicate"
    assert len(receiver.requests) == 1
    other_payload, other_key = payload_and_key(rule="another-rule")
    assert other_worker.send(other_payload, idempotency_key=other_key).status == "posted"
    assert len(receiver.accepted) == 2
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    assert sorted(i["status"]["S"] for i in items) == ["COMPLETED", "COMPLETED"]
    assert all(i["id"]["S"].startswith("sieve-slack#") for i in items)


@pytest.mark.parametrize("store", ["dynamodb", "memory"])
def test_concurrent_sends_post_once(store, request, tmp_path):
    table = request.getfixturevalue("table") if store == "dynamodb" else None
    payload, key = payload_and_key()
    with SlackReceiver(delay=0.5) as rx:  # the first post is still in flight when the others arrive
        notifier = SlackWebhookNotifier(webhook_url=rx.url, idempotency_table=table)
        workers = 6
        barrier = threading.Barrier(workers)
        outcomes: list[str] = []

        def worker():
            barrier.wait()
            try:
                outcomes.append(notifier.send(payload, idempotency_key=key).status)
            except SlackDeliveryInProgress as exc:
                assert exc.retryable
                outcomes.append("in_progress")

        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert sorted(outcomes).count("posted") == 1, outcomes
        assert len(outcomes) == workers and set(outcomes) <= {"posted", "in_progress", "duplicate"}
        assert notifier.send(payload, idempotency_key=key).status == "duplicate"  # the redelivery after
        assert len(rx.requests) == 1


# --- the secret -------------------------------------------------------------------------------


def test_webhook_url_from_secrets_manager(receiver, aws):
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="sieve/slack", SecretString=json.dumps({"webhook_url": receiver.url}))
    sm.create_secret(Name="sieve/slack-plain", SecretString=receiver.url)
    assert SlackWebhookNotifier(secret_id="sieve/slack").send({"text": "a"}, idempotency_key="a").status == "posted"
    assert SlackWebhookNotifier(secret_id="sieve/slack-plain").send({"text": "b"}, idempotency_key="b").status == "posted"
    assert [p["text"] for p in receiver.accepted] == ["a", "b"]


def test_secret_is_cached_for_max_age(aws):
    sm = boto3.client("secretsmanager")
    with SlackReceiver() as old, SlackReceiver() as new:
        sm.create_secret(Name="sieve/slack", SecretString=json.dumps({"webhook_url": old.url}))
        cached = SlackWebhookNotifier(secret_id="sieve/slack", secret_max_age=300)
        fresh = SlackWebhookNotifier(secret_id="sieve/slack", secret_max_age=0)
        cached.send({"text": "1"}, idempotency_key="1")
        fresh.send({"text": "2"}, idempotency_key="2")
        sm.put_secret_value(SecretId="sieve/slack", SecretString=json.dumps({"webhook_url": new.url}))
        cached.send({"text": "3"}, idempotency_key="3")
        fresh.send({"text": "4"}, idempotency_key="4")
        assert [p["text"] for p in old.accepted] == ["1", "2", "3"]
        assert [p["text"] for p in new.accepted] == ["4"]


def test_bad_secrets_are_config_errors(aws):
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="no-url", SecretString=json.dumps({"token": "xoxb-123"}))
    sm.create_secret(Name="not-a-url", SecretString="xoxb-not-a-url-secret")
    with pytest.raises(ConfigError, match="'missing'.*could not be read"):
        SlackWebhookNotifier(secret_id="missing").send({"text": "a"}, idempotency_key="a")
    with pytest.raises(ConfigError, match="no `webhook_url` key"):
        SlackWebhookNotifier(secret_id="no-url").send({"text": "a"}, idempotency_key="a")
    with pytest.raises(ConfigError, match="not an http") as err:
        SlackWebhookNotifier(secret_id="not-a-url").send({"text": "a"}, idempotency_key="a")
    assert "xoxb-not-a-url-secret" not in str(err.value)


def test_url_from_environment(receiver, monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
    assert SlackWebhookNotifier.from_env().send({"text": "env"}, idempotency_key="e").status == "posted"
    monkeypatch.delenv("SLACK_WEBHOOK_URL")
    with pytest.raises(ConfigError, match="no webhook URL"):
        SlackWebhookNotifier.from_env().send({"text": "env"}, idempotency_key="e2")


def test_the_webhook_url_never_reaches_logs_errors_or_the_failure_queue(receiver, queue_url, caplog, recording_sleep):
    caplog.set_level(logging.DEBUG)  # everything: ours, slack_sdk's, botocore's wire dumps, Powertools'
    boto3.client("secretsmanager").create_secret(Name="sieve/slack", SecretString=json.dumps({"webhook_url": receiver.url}))
    notifier = SlackWebhookNotifier(secret_id="sieve/slack", failure_queue_url=queue_url, max_retries=2,
                                    backoff_factor=0.01, sleep=recording_sleep)
    receiver.fail_next(1, 429, retry_after=0)
    notifier.send({"text": "ok after a 429"}, idempotency_key="a")
    receiver.fail_next(5, 500)
    with pytest.raises(SlackDeliveryFailed) as failed:
        notifier.send({"text": "fails"}, idempotency_key="b")
    errors = [str(failed.value), json.dumps(drain(queue_url))]
    with SlackReceiver() as gone:
        dead_url = gone.url
    with pytest.raises(SlackDeliveryFailed) as refused:
        SlackWebhookNotifier(webhook_url=dead_url, max_retries=1, backoff_factor=0.01).send({"text": "x"}, idempotency_key="c")
    errors.append(str(refused.value))

    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert "A retry handler found" in logged and "GetSecretValue" in logged, "the test must see the chatty logs"
    assert "redacted by Sieve" in logged
    for secret in (receiver.url, receiver.token, dead_url, dead_url.rsplit("/", 1)[1]):
        assert secret not in logged
        for text in errors:
            assert secret not in text
    assert "/services/***" in logged
