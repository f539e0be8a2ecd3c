"""Fuzzing Slack interactivity requests through the real handler (processors/handlers/slack_actions.py:
adapters/slack.py verified_form / verify_slack, core/incidents.py parse_action): mutated block_actions
payloads, bodies, headers, signatures and timestamps. Only 200 / 400 / 401 come back, and only a genuine,
fresh, well-formed request ever stores an ack or a mute."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest
from hypothesis import given

from processors.adapters.slack import verify_slack
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import ACK_ACTION, NOW, SIGNING, SLACK, _click, _sign, _slack_app
from processors.handlers import slack_actions


@fuzz_settings(300)
@given(SLACK.strategy())
def test_slack_fuzz(arg):
    SLACK.check(arg)


def _call(event):
    store, posts = _slack_app()
    try:
        return slack_actions.handler(event, None, now=lambda: NOW)["statusCode"], store
    finally:
        slack_actions.reset_runtime()


def _signed(payload, *, headers=None, raw_body=None):
    body = raw_body if raw_body is not None else urllib.parse.urlencode({"payload": json.dumps(payload)})
    h = {"x-slack-request-timestamp": str(NOW), "x-slack-signature": _sign(body, str(NOW))}
    return {"headers": headers if headers is not None else h, "body": body, "isBase64Encoded": False}


@pytest.mark.parametrize("patch", [{"actions": [{"action_id": [], "value": "{}"}]}, {"actions": 5},
                                   {"user": "U1"}, {"container": "C1"}, {"message": ["x"]}, {"channel": 3,
                                                                                             "container": {}}])
def test_regression_malformed_payload_is_400_not_a_crash(patch):
    """Found by the fuzzer: an unhashable action_id (TypeError), a non-object user / container (AttributeError)
    escaped the handler as a 500."""
    status, store = _call(_signed({**_click(ACK_ACTION), **patch}))
    assert status in (200, 400) and not store.acks and not store.mutes


def test_regression_headers_that_are_not_an_object_are_401():
    event = _signed(_click(ACK_ACTION))
    event["headers"] = '"'
    assert _call(event)[0] == 401


@pytest.mark.parametrize("signature", ["\x80", "v0=é" + "0" * 60, "v0=\ud800"])
def test_regression_non_ascii_signature_is_401(signature):
    """Found by the fuzzer: hmac.compare_digest raised TypeError on a non-ASCII X-Slack-Signature."""
    event = _signed(_click(ACK_ACTION))
    event["headers"]["x-slack-signature"] = signature
    assert _call(event)[0] == 401
    assert verify_slack(SIGNING, event["body"], str(NOW), signature, now=lambda: NOW) is not None


def test_regression_body_with_lone_surrogate_is_refused():
    body = "payload=\ud800"
    assert verify_slack(SIGNING, body, str(NOW), "v0=" + "0" * 64, now=lambda: NOW) == "body is not UTF-8 text"
    assert _call({"headers": {"x-slack-request-timestamp": str(NOW), "x-slack-signature": "v0=" + "0" * 64},
                  "body": body})[0] == 401


def test_genuine_click_still_stores_its_ack():
    status, store = _call(_signed(_click(ACK_ACTION)))
    assert status == 200 and len(store.acks) == 1
    event = _signed(_click(ACK_ACTION))
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    status, store = _call(event)
    assert status == 200 and len(store.acks) == 1
