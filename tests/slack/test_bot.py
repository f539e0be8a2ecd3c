"""SlackBotNotifier (notifier kind `bot`) against the local receiver's Web API and the moto server: one
thread per incident in the state table, idempotent per window, failures to the queue, the token kept
out of logs; and the wiring that builds a notifier by kind."""

from __future__ import annotations

import json
import logging

import boto3
import pytest
import yaml

from processors.adapters.slack import SlackBotNotifier, SlackDeliveryFailed, SlackWebhookNotifier, create_idempotency_table
from processors.core.incidents import STATUS_BLOCK_ID, Ack, Mute, incident_id
from processors.core.slack_blocks import delivery_key
from tests.slack.slack_factories import WINDOW, incident_report
from tests.slack.test_notifier import drain

pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

IDEMPOTENCY = "sieve-slack-idempotency"
CLOCK = WINDOW.end + 60.0


def bot(receiver, state, **kw) -> SlackBotNotifier:
    kw.setdefault("channel", "#oncall")
    return SlackBotNotifier(state=state, token=receiver.bot_token, api_url=receiver.api_url, clock=lambda: CLOCK,
                            backoff_factor=0.01, **kw)


def status_text(message) -> str:
    block = next(b for b in message.payload["blocks"] if b.get("block_id") == STATUS_BLOCK_ID)
    return " | ".join(e["text"] for e in block["elements"])


def test_first_window_posts_a_parent_and_the_next_one_replies_in_its_thread(receiver, state):
    notifier = bot(receiver, state)
    first = incident_report(n=0)
    assert notifier.post_report(first).status == "posted"
    [(parent, replies)] = receiver.threads()
    assert replies == [] and parent.channel == receiver.channel_id("#oncall")
    assert [b.get("block_id") for b in parent.payload["blocks"]][-2:] == ["incident-status", "incident-actions"]
    assert "1 window since 12:00 UTC" in status_text(parent)
    key = incident_id("5xx-by-ip", ("10.0.0.1", "500"))
    stored = state.thread("5xx-by-ip", key)
    assert (stored.ts, stored.channel, stored.windows) == (parent.ts, parent.channel, 1)
    item = state.table.get_item(Key={"pk": "thread#5xx-by-ip", "sk": key})["Item"]
    assert int(item["expires_at"]) > CLOCK  # the thread item has a TTL

    second = incident_report(value=2400, n=1)
    assert notifier.post_report(second).status == "posted"
    [(parent, replies)] = receiver.threads()
    assert len(replies) == 1 and replies[0].thread_ts == parent.ts
    assert "actions" not in [b["type"] for b in replies[0].payload["blocks"]]  # buttons live on the parent
    assert parent.updates == 1 and "2 windows since 12:00 UTC" in status_text(parent) and "*2,400*" in status_text(parent)
    assert [m for m, _ in receiver.api_calls] == ["chat.postMessage", "chat.postMessage", "chat.update"]
    assert parent.versions[0]["blocks"][:-2] == parent.payload["blocks"][:-2]  # the parent body is the first window's


def test_a_different_key_gets_its_own_thread_and_a_window_with_two_incidents_posts_two(receiver, state):
    notifier = bot(receiver, state)
    notifier.post_report(incident_report("10.0.0.1", n=0))
    notifier.post_report(incident_report("10.0.0.9", "502", 300, n=1))
    assert [len(r) for _, r in receiver.threads()] == [0, 0]
    notifier.post_report(incident_report("10.0.0.1", n=2, extra_groups=(("10.0.0.9", "502", 350),)))
    assert [len(r) for _, r in receiver.threads()] == [1, 1]
    assert {p.updates for p, _ in receiver.threads()} == {1}


def test_the_same_window_is_posted_once_also_after_a_restart(receiver, state, aws):
    create_idempotency_table(IDEMPOTENCY)
    r = incident_report(n=0)
    first = bot(receiver, state, idempotency_table=IDEMPOTENCY).post_report(r)
    again = bot(receiver, state, idempotency_table=IDEMPOTENCY).post_report(r)  # a new container
    assert (first.status, again.status) == ("posted", "duplicate")
    assert first.idempotency_key == again.idempotency_key == delivery_key(r)  # the webhook's key
    assert len(receiver.messages) == 1
    bot(receiver, state, idempotency_table=IDEMPOTENCY).post_report(incident_report(n=1))  # the thread is in DynamoDB
    assert [len(r) for _, r in receiver.threads()] == [1]


def test_an_incident_that_stopped_longer_than_the_gap_starts_a_new_thread(receiver, state):
    notifier = bot(receiver, state, incident_gap_seconds=600)
    notifier.post_report(incident_report(n=0))
    notifier.post_report(incident_report(n=2))   # 300 s after the first window ended: ongoing
    notifier.post_report(incident_report(n=5))   # 600 s after the last one ended: still ongoing
    notifier.post_report(incident_report(n=9))   # 900 s: a new incident of the same key
    assert [len(r) for _, r in receiver.threads()] == [2, 0]


def test_channel_per_rule(receiver, state):
    notifier = bot(receiver, state, channels={"404-by-client": "#web"})
    notifier.post_report(incident_report(n=0))
    notifier.post_report(incident_report("10.0.0.7", "404", 90, n=0, rule="404-by-client"))
    assert [p.channel for p, _ in receiver.threads()] == [receiver.channel_id("#oncall"), receiver.channel_id("#web")]


def test_an_ack_shows_on_the_parent_and_the_incident_still_posts(receiver, state):
    notifier = bot(receiver, state)
    notifier.post_report(incident_report(n=0))
    [(parent, _)] = receiver.threads()
    key = incident_id("5xx-by-ip", ("10.0.0.1", "500"))
    state.put_ack("5xx-by-ip", key, Ack("U0ONCALL", int(CLOCK), parent.ts, "alice"), ttl_seconds=3600)
    notifier.post_report(incident_report(n=1))
    [(parent, replies)] = receiver.threads()
    assert len(replies) == 1 and "Acknowledged by <@U0ONCALL>" in status_text(parent)


def test_a_muted_incident_is_not_posted_by_the_notifier_either(receiver, state):
    key = incident_id("5xx-by-ip", ("10.0.0.1", "500"))
    state.put_mute("5xx-by-ip", key, Mute("U0ONCALL", int(CLOCK) - 10, int(CLOCK) + 3600))
    notifier = bot(receiver, state)
    notifier.post_report(incident_report(n=0, extra_groups=(("10.0.0.9", "502", 300),)))
    assert [p.payload["blocks"][-1]["elements"][0]["value"] for p, _ in receiver.threads()] == [
        json.dumps({"rule": "5xx-by-ip", "incident": incident_id("5xx-by-ip", ("10.0.0.9", "502"))}, separators=(",", ":"))]
    assert notifier.counts["muted"] == 1


def test_a_failed_post_goes_to_the_failure_queue_and_stores_no_thread(receiver, state, aws):
    queue = boto3.client("sqs").create_queue(QueueName="sieve-slack-failures")["QueueUrl"]
    receiver.fail_next(3, 500)
    notifier = bot(receiver, state, failure_queue_url=queue, max_retries=2)
    with pytest.raises(SlackDeliveryFailed) as err:
        notifier.post_report(incident_report(n=0))
    assert err.value.dead_lettered and err.value.retryable and err.value.status_code == 500
    [message] = drain(queue)
    assert (message["slack_method"], message["channel"], message["attempts"]) == ("chat.postMessage", "#oncall", 3)
    assert message["payload"]["blocks"][-1]["block_id"] == "incident-actions"
    assert state.thread("5xx-by-ip", incident_id("5xx-by-ip", ("10.0.0.1", "500"))) is None


def test_a_refused_token_is_not_retried_and_never_logged(receiver, state, caplog):
    caplog.set_level(logging.DEBUG)
    token = "xoxb-0000-wrong-" + "s3cr3t" * 4
    notifier = SlackBotNotifier(state=state, channel="#oncall", token=token, api_url=receiver.api_url)
    with pytest.raises(SlackDeliveryFailed) as err:
        notifier.post_report(incident_report(n=0))
    assert not err.value.retryable and "invalid_auth" in str(err.value)
    assert len(receiver.requests) == 1
    assert token not in caplog.text and token not in str(err.value)


def test_token_from_secrets_manager(receiver, state, aws):
    boto3.client("secretsmanager").create_secret(Name="sieve/slack-bot", SecretString=json.dumps(
        {"bot_token": receiver.bot_token, "signing_secret": "s"}))
    notifier = SlackBotNotifier(state=state, channel="#oncall", token_secret="sieve/slack-bot", api_url=receiver.api_url)
    assert notifier.post_report(incident_report(n=0)).status == "posted"


def test_a_partial_failure_is_retried_without_posting_the_first_incident_twice(receiver, state):
    notifier = bot(receiver, state, max_retries=0)
    two = incident_report(n=0, extra_groups=(("10.0.0.9", "502", 300),))
    receiver.on_message = lambda record: (receiver.fail_next(1, 503), setattr(receiver, "on_message", None))
    with pytest.raises(SlackDeliveryFailed) as err:
        notifier.post_report(two)
    assert err.value.retryable and not err.value.dead_lettered and len(receiver.messages) == 1
    assert notifier.post_report(two).status == "posted"
    assert len(receiver.messages) == 2 and [len(r) for _, r in receiver.threads()] == [0, 0]


def test_a_failed_status_update_does_not_fail_the_window(receiver, state, aws):
    queue = boto3.client("sqs").create_queue(QueueName="sieve-slack-failures")["QueueUrl"]
    notifier = bot(receiver, state, failure_queue_url=queue, max_retries=0)
    notifier.post_report(incident_report(n=0))
    receiver.on_message = lambda record: (receiver.fail_next(1, 500), setattr(receiver, "on_message", None))
    assert notifier.post_report(incident_report(n=1)).status == "posted"  # the reply is there
    [(parent, replies)] = receiver.threads()
    assert len(replies) == 1 and parent.updates == 0
    [message] = drain(queue)
    assert message["slack_method"] == "chat.update" and message["ts"] == parent.ts
    assert notifier.counts["status_update_failed"] == 1
    notifier.post_report(incident_report(n=2))  # the next window catches the status line up
    assert "3 windows" in status_text(receiver.threads()[0][0])


# --- wiring: pipelines.yaml -> the notifier of its kind --------------------------------------------


def write_config(tmp_path, slack: dict):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "pipelines.yaml").read_text())
    doc["pipelines"]["logs"]["rules"] = [str(root / "rules" / "errors-by-path.json")]
    doc["pipelines"]["logs"]["slack"] = slack
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


BOT = {"kind": "bot", "token_secret": "sieve/slack", "channel": "#oncall", "channels": {"errors-by-path": "#web"},
       "idempotency_table": "sieve-idempotency", "failure_queue": "sieve-logs-failures"}


def test_wiring_builds_the_notifier_of_the_kind(tmp_path, aws, monkeypatch, receiver):
    from processors import wiring
    from processors.config import load
    from processors.runtime.provision import provision

    loaded = load(write_config(tmp_path, BOT))
    provision(loaded.config, emulator=True)
    monkeypatch.setenv("SLACK_BOT_TOKEN", receiver.bot_token)
    monkeypatch.setenv("SLACK_API_URL", receiver.api_url)
    notifier = wiring.slack_notifier(loaded)
    assert isinstance(notifier, SlackBotNotifier) and notifier.channel_for("errors-by-path") == "#web"
    assert notifier.post_report(incident_report(n=0, rule="errors-by-path")).status == "posted"
    assert receiver.threads()[0][0].channel == receiver.channel_id("#web")

    finaliser = wiring.needs(loaded.config, "processors.handlers.finaliser.handler")
    assert "sieve/slack" in finaliser.secrets and "sieve-idempotency" in finaliser.tables
    actions = wiring.needs(loaded.config, "processors.handlers.slack_actions.handler")
    assert (actions.tables, actions.secrets) == (["sieve-state"], ["sieve/slack"])

    webhook = load(write_config(tmp_path, {"webhook_secret": "sieve/slack", "idempotency_table": "sieve-idempotency"}))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", receiver.url)
    assert isinstance(wiring.slack_notifier(webhook), SlackWebhookNotifier)
    assert wiring.needs(webhook.config, "processors.handlers.slack_actions.handler").tables == []


def test_the_bot_kind_is_validated(tmp_path):
    from processors.config import load
    from processors.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        load(write_config(tmp_path, {"kind": "bot", "token_secret": "sieve/slack"}))
    assert any("channel" in p for p in err.value.problems)
    with pytest.raises(ConfigError):
        load(write_config(tmp_path, {**BOT, "incident_gap_seconds": 5}))


# ---- the rate chart in the thread (files_upload_v2 against the receiver) ----

def _with_rate(r, buckets=(2, 1, 3, 40, 38, 41), onset_bucket=3):
    import dataclasses

    from processors.core.types import Onset

    g = r.selected[0]
    onset = Onset(g.window.start + onset_bucket * 10, 10, buckets, 2.0, 39.7) if onset_bucket is not None else None
    g = dataclasses.replace(g, buckets=buckets, bucket_seconds=10, onset=onset, trend=(12.0, 18.0))
    return dataclasses.replace(r, selected=(g, *r.selected[1:]))


def test_each_window_puts_a_chart_of_the_rate_in_the_incident_thread(receiver, state):
    from io import BytesIO

    from PIL import Image

    notifier = bot(receiver, state)
    first = notifier.post_report(_with_rate(incident_report(n=0)))
    second = notifier.post_report(_with_rate(incident_report(value=2400, n=1), onset_bucket=None))
    assert (first.status, second.status) == ("posted", "posted")
    [(parent, replies)] = receiver.threads()
    # the thread: window 1's chart, window 2's reply and its chart, all under the parent
    charts = [m for m in replies if m.payload["text"].startswith(":frame_with_picture:")]
    assert len(charts) == 2 and len(replies) == 3
    assert [m for m, _ in receiver.api_calls].count("files.completeUploadExternal") == 2
    files = list(receiver.files.values())
    assert [f["thread_ts"] for f in files] == [parent.ts, parent.ts] and {f["channel"] for f in files} == {parent.channel}
    png = Image.open(BytesIO(files[0]["data"]))
    assert (png.format, png.size) == ("PNG", (640, 220))
    # what a screen reader is told carries the same numbers as the picture
    assert "2, 1, 3, 40, 38, 41" in files[0]["alt_txt"] and "Onset at 12:00:30 UTC" in files[0]["alt_txt"]
    assert "Earlier windows, mean per 10 s: 2, 3." in files[0]["alt_txt"]  # 12 and 18 events over 6 sub-windows
    assert "Onset" not in files[1]["alt_txt"]
    assert "5xx-by-ip · ip=10.0.0.1, status=500: events per 10 s" == files[0]["title"]
    assert notifier.counts["chart_posted"] == 2


def test_no_chart_without_exact_counts_or_when_turned_off(receiver, state):
    bot(receiver, state).post_report(incident_report(n=0))  # no sub-window counts: nothing to draw
    bot(receiver, state, charts=False).post_report(_with_rate(incident_report("10.0.0.9", n=0)))
    assert receiver.files == {} and not [m for m, _ in receiver.api_calls if m.startswith("files.")]
    assert len(receiver.threads()) == 2


def test_a_chart_that_cannot_be_uploaded_does_not_fail_the_window(receiver, state):
    notifier = bot(receiver, state, max_retries=0)
    real = receiver._file_call
    receiver._file_call = lambda method, args: ({"ok": False, "error": "missing_scope", "needed": "files:write"}, None)
    try:
        delivery = notifier.post_report(_with_rate(incident_report(n=0)))
    finally:
        receiver._file_call = real
    assert delivery.status == "posted"
    [(parent, replies)] = receiver.threads()
    assert replies == [] and receiver.files == {}
    assert notifier.counts["chart_failed"] == 1 and notifier.counts.get("chart_posted", 0) == 0
