"""`sieve demo`: records pushed but none delivered to the logs processor is an error, not an empty
"nothing was selected for Slack"."""

from __future__ import annotations

import pytest

from processors.commands.demo import check_delivered
from processors.errors import SieveError
from processors.runtime.runner import EventSourceMapping, Invocation, PollReport

LOGS = EventSourceMapping(name="logs-processor", function="processors.handlers.logs.handler",
                          event_source_arn="arn:aws:kinesis:us-east-1:123456789012:stream/sieve-access-logs",
                          starting_position="TRIM_HORIZON")
FAQ = EventSourceMapping(name="faq-processor", function="processors.handlers.faq.handler",
                         event_source_arn="arn:aws:dynamodb:us-east-1:123456789012:table/sieve-faq/stream/2026-01-01T00:00:00.000",
                         starting_position="TRIM_HORIZON")


def invocation(mapping: str, seqs: tuple[str, ...], outcome: str = "success") -> Invocation:
    return Invocation(mapping=mapping, shard_id="shardId-000000000000", request_id="r", sequence_numbers=seqs,
                      outcome=outcome, attempt=1, duration_ms=1.0)


def test_pushed_records_with_no_invocation_fail_with_a_clear_reason(tmp_path):
    with pytest.raises(SieveError) as exc:
        check_delivered(3015, "sieve-access-logs", [LOGS, FAQ], PollReport(), tmp_path / "checkpoints.json")
    msg = str(exc.value)
    assert "3015" in msg and "sieve-access-logs" in msg and "none" in msg
    assert str(tmp_path / "checkpoints.json") in msg
    assert exc.value.exit_code != 0


def test_invocations_of_another_mapping_do_not_count(tmp_path):
    report = PollReport(invocations=[invocation("faq-processor", ("1", "2"))])
    with pytest.raises(SieveError):
        check_delivered(10, "sieve-access-logs", [LOGS, FAQ], report, tmp_path / "cp.json")


def test_records_handed_to_the_logs_processor_count_whatever_the_outcome(tmp_path):
    report = PollReport(invocations=[invocation("logs-processor", ("1", "2", "3")),
                                     invocation("logs-processor", ("3", "4"), outcome="function_error"),
                                     invocation("logs-processor", (), outcome="success")])
    assert check_delivered(10, "sieve-access-logs", [LOGS, FAQ], report, tmp_path / "cp.json") == 4


def test_nothing_pushed_nothing_to_deliver(tmp_path):
    assert check_delivered(0, "sieve-access-logs", [LOGS], PollReport(), tmp_path / "cp.json") == 0
