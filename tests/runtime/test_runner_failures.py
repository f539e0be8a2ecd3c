"""Failure handling: partial batch responses, exceptions, retries, bisect, record age, timeouts,
and the on-failure destination's invocation record."""

from __future__ import annotations

import base64
import re
import time

import pytest

from processors.runtime.runner import EventSourceMapping, Runner
from processors.errors import ConfigError
from tests.runtime.conftest import Recorder, drain_queue, make_queue, make_stream, mapping, put, runner_for

RBIF = ("ReportBatchItemFailures",)


def test_partial_failure_retries_from_the_lowest_failed_record_only(kinesis, store):
    arn = make_stream(kinesis)
    written = put(kinesis, arn, [f"r{i}".encode() for i in range(1, 11)])
    seqs = [s for _, s in written]

    def respond(event, n):
        if n == 1:  # records 7 and 9 fail on the first delivery
            return {"batchItemFailures": [{"itemIdentifier": seqs[8]}, {"itemIdentifier": seqs[6]}]}
        return {"batchItemFailures": []}

    rec = Recorder(respond)
    report = runner_for([mapping(rec, arn, batch_size=10, function_response_types=RBIF)], store).run_until_idle(10)

    assert rec.batches() == [seqs, seqs[6:]], "records 7..10 again, never 1..6"
    assert [i.outcome for i in report.invocations] == ["partial_failure", "success"]
    assert report.invocations[0].failed_sequence_number == seqs[6]
    assert store.get("test-mapping", written[0][0]).sequence_number == seqs[-1]


def test_partial_failure_checkpoints_before_the_failed_record(kinesis, store):
    arn = make_stream(kinesis)
    written = put(kinesis, arn, [f"r{i}".encode() for i in range(1, 11)])
    seqs = [s for _, s in written]
    rec = Recorder(lambda e, n: {"batchItemFailures": [{"itemIdentifier": seqs[6]}]})
    runner = runner_for([mapping(rec, arn, batch_size=10, function_response_types=RBIF)], store)
    runner.poll_once()
    assert store.get("test-mapping", written[0][0]).sequence_number == seqs[5]


def test_batch_item_failures_are_ignored_without_report_batch_item_failures(kinesis, store):
    arn = make_stream(kinesis)
    written = put(kinesis, arn, [b"a", b"b", b"c"])
    rec = Recorder(lambda e, n: {"batchItemFailures": [{"itemIdentifier": written[1][1]}]})
    report = runner_for([mapping(rec, arn)], store).run_until_idle(10)
    assert len(rec.events) == 1 and report.invocations[0].outcome == "success"


@pytest.mark.parametrize(
    "response",
    [
        None,
        {},
        {"batchItemFailures": []},
        {"batchItemFailures": None},
    ],
    ids=["null-response", "empty-response", "empty-list", "null-list"],
)
def test_empty_or_null_responses_mean_success(kinesis, store, response):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"a", b"b"])
    rec = Recorder(lambda e, n: response)
    report = runner_for([mapping(rec, arn, function_response_types=RBIF)], store).run_until_idle(10)
    assert len(rec.events) == 1 and [i.outcome for i in report.invocations] == ["success"]


@pytest.mark.parametrize(
    "bad",
    [
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemId": "SEQ"}]},
        {"batchItemFailures": [{"itemIdentifier": "987654321"}]},
        {"batchItemFailures": [{"itemIdentifier": 3}]},
        {"batchItemFailures": "SEQ"},
        {"batchItemFailures": ["SEQ"]},
        "ok",
    ],
    ids=["null-id", "empty-id", "wrong-key", "unknown-seq", "int-id", "not-a-list", "bare-string-item", "string-response"],
)
def test_malformed_batch_item_failures_fail_the_whole_batch(kinesis, store, bad):
    arn = make_stream(kinesis)
    written = put(kinesis, arn, [f"r{i}".encode() for i in range(1, 6)])
    seqs = [s for _, s in written]

    def respond(event, n):
        if n == 1:
            text = repr(bad).replace("SEQ", seqs[2])
            return eval(text)  # noqa: S307 - the test's own literal
        return None

    rec = Recorder(respond)
    report = runner_for([mapping(rec, arn, function_response_types=RBIF)], store).run_until_idle(10)
    assert rec.batches() == [seqs, seqs], "the whole batch is retried"
    assert [i.outcome for i in report.invocations] == ["invalid_response", "success"]


def test_exhausted_retries_send_lambdas_invocation_record_to_sqs_and_move_on(kinesis, sqs, store):
    arn = make_stream(kinesis)
    url, qarn = make_queue(sqs)
    written = put(kinesis, arn, [b"bad-1", b"bad-2", b"bad-3", b"bad-4"])

    def respond(event, n):
        if any(base64.b64decode(r["kinesis"]["data"]).startswith(b"bad") for r in event["Records"]):
            raise ValueError("cannot handle this")
        return None

    rec = Recorder(respond)
    m = mapping(rec, arn, batch_size=10, maximum_retry_attempts=2, on_failure_destination=qarn)
    runner = runner_for([m], store)
    t0 = time.time()
    report = runner.run_until_idle(10)

    seqs = [s for _, s in written]
    assert rec.batches() == [seqs, seqs, seqs], "1 invoke + 2 retries"
    assert [i.outcome for i in report.invocations] == ["function_error"] * 3
    assert "ValueError: cannot handle this" in report.invocations[0].error
    [msg] = drain_queue(sqs, url)
    assert msg["version"] == "1.0"
    assert msg["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert msg["requestContext"]["approximateInvokeCount"] == 3
    assert msg["requestContext"]["functionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:test-mapping"
    assert msg["requestContext"]["requestId"] == report.invocations[-1].request_id
    assert msg["responseContext"] == {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", msg["timestamp"])
    info = msg["KinesisBatchInfo"]
    assert info["shardId"] == written[0][0]
    assert (int(info["startSequenceNumber"]), int(info["endSequenceNumber"])) == (int(seqs[0]), int(seqs[-1]))
    assert info["batchSize"] == 4 and info["streamArn"] == arn
    for key in ("approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", info[key])
    assert report.discards[0].condition == "RetryAttemptsExhausted"

    # the runner moved past the batch: the next records are delivered, the bad ones never again
    later = put(kinesis, arn, [b"good-1"])
    runner.run_until_idle(10)
    assert rec.batches()[-1] == [later[0][1]]
    assert drain_queue(sqs, url) == []
    assert time.time() - t0 < 10


def test_exhausted_partial_failures_send_the_remaining_records(kinesis, sqs, store):
    arn = make_stream(kinesis)
    url, qarn = make_queue(sqs)
    seqs = [s for _, s in put(kinesis, arn, [f"r{i}".encode() for i in range(1, 7)])]
    rec = Recorder(lambda e, n: {"batchItemFailures": [{"itemIdentifier": seqs[3]}]})
    m = mapping(rec, arn, maximum_retry_attempts=1, on_failure_destination=qarn, function_response_types=RBIF)
    runner_for([m], store).run_until_idle(10)

    assert rec.batches() == [seqs, seqs[3:]]
    [msg] = drain_queue(sqs, url)
    info = msg["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (seqs[3], seqs[5], 3)
    assert msg["responseContext"]["functionError"] is None  # the function returned; it did not raise


def test_bisect_splits_a_failing_batch_down_to_the_poison_record(kinesis, sqs, store):
    arn = make_stream(kinesis)
    url, qarn = make_queue(sqs)
    datas = [b"ok-1", b"ok-2", b"ok-3", b"ok-4", b"poison", b"ok-6", b"ok-7", b"ok-8"]
    seqs = [s for _, s in put(kinesis, arn, datas)]

    def respond(event, n):
        if any(base64.b64decode(r["kinesis"]["data"]) == b"poison" for r in event["Records"]):
            raise RuntimeError("poison")
        return None

    rec = Recorder(respond)
    m = mapping(rec, arn, batch_size=8, bisect_batch_on_function_error=True, maximum_retry_attempts=1, on_failure_destination=qarn)
    runner_for([m], store).run_until_idle(10)

    s = seqs
    assert rec.batches() == [s[0:8], s[0:4], s[4:8], s[4:6], s[4:5], s[4:5], s[5:6], s[6:8]]
    [msg] = drain_queue(sqs, url)
    info = msg["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (s[4], s[4], 1)
    assert msg["requestContext"]["approximateInvokeCount"] == 2
    delivered_ok = [q for b in rec.batches() for q in b if q != s[4]]
    assert sorted(set(delivered_ok), key=int) == [q for q in s if q != s[4]]


def test_records_older_than_maximum_record_age_go_to_the_destination_unsent(kinesis, sqs, store, clock):
    arn = make_stream(kinesis)
    url, qarn = make_queue(sqs)
    seqs = [s for _, s in put(kinesis, arn, [b"a", b"b", b"c"])]
    rec = Recorder()
    runner = runner_for([mapping(rec, arn, maximum_record_age_seconds=60, on_failure_destination=qarn)], store, clock)
    clock.advance(120)
    report = runner.run_until_idle(10)

    assert rec.events == [], "expired records are never sent to the function"
    [msg] = drain_queue(sqs, url)
    assert msg["requestContext"]["condition"] == "RecordAgeExceeded"
    assert msg["requestContext"]["approximateInvokeCount"] == 0
    info = msg["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (seqs[0], seqs[2], 3)
    assert report.discards[0].condition == "RecordAgeExceeded"

    fresh = put(kinesis, arn, [b"d"])  # put at the clock's present: not expired
    runner.run_until_idle(10)
    assert rec.batches() == [[fresh[0][1]]]


def test_records_that_expire_while_retried_stop_being_retried(kinesis, sqs, store, clock):
    arn = make_stream(kinesis)
    url, qarn = make_queue(sqs)
    seqs = [s for _, s in put(kinesis, arn, [b"a", b"b"])]

    def respond(event, n):
        clock.advance(40)  # each failed attempt takes the clock 40 s further
        raise RuntimeError("down")

    rec = Recorder(respond)
    runner = runner_for([mapping(rec, arn, maximum_record_age_seconds=60, on_failure_destination=qarn)], store, clock)
    runner.run_until_idle(10)

    assert len(rec.events) == 2, "invoked at age ~0 and ~40 s, then expired at ~80 s"
    [msg] = drain_queue(sqs, url)
    assert msg["requestContext"]["condition"] == "RecordAgeExceeded"
    assert msg["requestContext"]["approximateInvokeCount"] == 2
    assert msg["responseContext"]["functionError"] == "Unhandled"
    assert msg["KinesisBatchInfo"]["batchSize"] == 2 and msg["KinesisBatchInfo"]["endSequenceNumber"] == seqs[1]


def test_a_handler_running_past_its_timeout_fails_the_batch(kinesis, store, clock):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"slow"])
    remaining = []

    def respond(event, n):
        remaining.append(rec.contexts[-1].get_remaining_time_in_millis())
        if n == 1:
            clock.advance(1.05)  # the handler runs 1.05 s on the runner's clock
        return None

    rec = Recorder(respond)
    report = runner_for([mapping(rec, arn, function_timeout_seconds=1)], store, clock).run_until_idle(10)
    assert [i.outcome for i in report.invocations] == ["timeout", "success"]
    assert report.invocations[0].error == "Task timed out after 1.00 seconds"
    assert 900 <= remaining[0] <= 1000


def test_without_a_destination_exhausted_batches_are_reported_and_skipped(kinesis, store):
    arn = make_stream(kinesis)
    written = put(kinesis, arn, [b"x"])
    rec = Recorder(lambda e, n: (_ for _ in ()).throw(KeyError("nope")))
    report = runner_for([mapping(rec, arn, maximum_retry_attempts=0)], store).run_until_idle(10)
    assert len(rec.events) == 1
    assert [(d.condition, d.destination, d.batch_size) for d in report.discards] == [("RetryAttemptsExhausted", None, 1)]
    assert store.get("test-mapping", written[0][0]).sequence_number == written[0][1]


def test_a_response_that_cannot_be_marshalled_is_a_function_error(kinesis, store):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"x"])
    rec = Recorder(lambda e, n: {"when": object()} if n == 1 else None)
    report = runner_for([mapping(rec, arn)], store).run_until_idle(10)
    assert [i.outcome for i in report.invocations] == ["function_error", "success"]
    assert report.invocations[0].error.startswith("Runtime.MarshalError")


def test_bad_mapping_settings_are_config_errors_naming_each_field(kinesis):
    with pytest.raises(ConfigError) as err:
        EventSourceMapping(
            function=print,
            event_source_arn="arn:aws:sqs:us-east-1:123456789012:queue",
            starting_position="AT_TIMESTAMP",
            batch_size=0,
            maximum_record_age_seconds=10,
            on_failure_destination="arn:aws:sns:us-east-1:123456789012:topic",
            function_response_types=("ReportBatchItemFailure",),
        )
    text = str(err.value)
    for field in ("event_source_arn", "starting_position", "batch_size", "maximum_record_age_seconds",
                  "on_failure_destination", "function_response_types"):
        assert field in text, field
    assert err.value.exit_code == 2


def test_a_stream_that_does_not_exist_is_a_clear_error(aws, store):
    from processors.runtime.runner import EventSourceError

    m = mapping(Recorder(), "arn:aws:kinesis:us-east-1:123456789012:stream/missing")
    with pytest.raises(EventSourceError, match="does not exist"):
        Runner([m], store).poll_once()


def test_an_unreachable_endpoint_is_a_service_error(aws, store, monkeypatch):
    from processors.errors import ServiceError
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    m = mapping(Recorder(), "arn:aws:kinesis:us-east-1:123456789012:stream/events")
    with pytest.raises(ServiceError, match="cannot reach"):
        Runner([m], store).poll_once()
