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
