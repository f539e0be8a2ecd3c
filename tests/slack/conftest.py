"""Fixtures for the Slack tests: a real local webhook receiver per test."""

from __future__ import annotations

import time

import pytest

from processors.runtime.slack_receiver import SlackReceiver


@pytest.fixture()
def receiver(tmp_path):
    with SlackReceiver(out=tmp_path / "received.jsonl") as rx:
        yield rx


class RecordingSleep:
    """Really sleeps (so the receiver sees real gaps) and remembers every wait it was asked for."""

    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)


@pytest.fixture()
def recording_sleep():
    return RecordingSleep()


STATE_TABLE = "sieve-state-test"


@pytest.fixture()
def state(aws):
    """The real StateStore on a fresh table of the session's moto server (threads, acks, mutes)."""
    import boto3

    from processors.adapters.state_store import StateStore

    client = boto3.client("dynamodb")
    client.create_table(TableName=STATE_TABLE, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "S"}])
    client.update_time_to_live(TableName=STATE_TABLE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    return StateStore(STATE_TABLE)
