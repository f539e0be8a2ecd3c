"""Tumbling windows: state carried between invokes, the final invoke, early termination, restarts.

Every runner here runs on the test's FakeClock: windows are aligned on its time, which starts on a
900-second boundary and moves only when the test moves it, so no test waits for the wall clock.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from aws_lambda_powertools.utilities.data_classes import KinesisStreamEvent

from processors.runtime.checkpoints import JsonCheckpointStore
from tests.runtime.conftest import FakeClock, Recorder, make_stream, mapping, put, runner_for


def next_window(clock: FakeClock, width: int, slack: float = 0.1) -> float:
    """Move the clock to just after the next multiple of `width` seconds; returns that window's start."""
    start = math.floor(clock.time() / width) * width + width
    clock.advance(start + slack - clock.time())
    return start


def counting(event, n):
    """A window aggregator: counts records and remembers their sequence numbers in `state`."""
    state = dict(event["state"])
    if event["isFinalInvokeForWindow"]:
        return None
    state["count"] = state.get("count", 0) + len(event["Records"])
    state["seqs"] = state.get("seqs", []) + [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    return {"state": state, "batchItemFailures": []}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_state_flows_between_invokes_and_the_final_invoke_is_flagged(kinesis, store, clock):
    arn = make_stream(kinesis)
    rec = Recorder(counting)
    runner = runner_for([mapping(rec, arn, batch_size=2, tumbling_window_seconds=2)], store, clock)
    a = next_window(clock, 2)
    first = [s for _, s in put(kinesis, arn, [b"a1", b"a2", b"a3"])]
    b = next_window(clock, 2)
    second = [s for _, s in put(kinesis, arn, [b"b1", b"b2"])]
    runner.run_until_idle(10)

    ev = rec.events
    shapes = [(e["window"]["start"], len(e["Records"]), e["isFinalInvokeForWindow"], e["state"].get("count")) for e in ev]
    assert shapes == [
        (iso(a), 2, False, None),  # a new window starts with an empty state
        (iso(a), 1, False, 2),  # the state returned by the first invoke
        (iso(a), 0, True, 3),  # a record of the next window closes this one
        (iso(b), 2, False, None),  # and the next window starts afresh
    ]
    assert ev[2]["state"]["seqs"] == first
    for e in ev:
        assert e["window"]["end"] == iso(datetime.fromisoformat(e["window"]["start"].replace("Z", "+00:00")).timestamp() + 2)
        assert e["shardId"] == "shardId-000000000000"
        assert e["eventSourceARN"] == arn
        assert e["isWindowTerminatedEarly"] is False
    parsed = KinesisStreamEvent(ev[2])
    assert parsed.is_final_invoke_for_window is True and parsed.window.start == iso(a) and parsed.state["count"] == 3

    # no more records: the window still closes once its end has passed, with its state
    clock.advance(5)
    runner.run_until_idle(10)
    last = rec.events[-1]
    assert len(rec.events) == 5
    assert last["isFinalInvokeForWindow"] is True and last["Records"] == []
    assert last["window"]["start"] == iso(b) and last["state"]["seqs"] == second
    runner.run_until_idle(10)
    assert len(rec.events) == 5, "the state is dropped after the final invoke: nothing more to close"
    assert store.get("test-mapping", "shardId-000000000000").window_start is None


def test_a_response_without_state_is_a_failed_invoke(kinesis, store, clock):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"x"])
    rec = Recorder(lambda e, n: {"batchItemFailures": []} if n == 1 else {"state": {"ok": True}})
    report = runner_for([mapping(rec, arn, tumbling_window_seconds=900)], store, clock).run_until_idle(10)
    assert [i.outcome for i in report.invocations][:2] == ["invalid_response", "success"]
    assert len(rec.events[1]["Records"]) == 1


def test_state_over_one_megabyte_ends_the_window_early(kinesis, store, clock):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"one", b"two"])
    big = "x" * (1024 * 1024 + 10)

    def respond(event, n):
        if event["isFinalInvokeForWindow"]:
            return None
        return {"state": {"big": big} if n == 1 else {"n": 1}}

    rec = Recorder(respond)
    runner_for([mapping(rec, arn, batch_size=1, tumbling_window_seconds=900)], store, clock).run_until_idle(10)

    first, final, after = rec.events[:3]
    assert len(first["Records"]) == 1 and first["state"] == {}
    assert final["isFinalInvokeForWindow"] is True and final["isWindowTerminatedEarly"] is True
    assert final["Records"] == [] and final["state"] == {"big": big}
    assert len(after["Records"]) == 1 and after["state"] == {}, "the same window goes on with a fresh state"
    assert after["window"] == first["window"]


def test_window_state_is_checkpointed_with_the_sequence_number(kinesis, tmp_path, clock):
    arn = make_stream(kinesis)
    path = tmp_path / "cp.json"
    [(_, one)] = put(kinesis, arn, [b"one"])
    runner_for([mapping(Recorder(counting), arn, tumbling_window_seconds=900)], JsonCheckpointStore(path), clock).run_until_idle(10)

    [(_, two)] = put(kinesis, arn, [b"two"])
    rec = Recorder(counting)
    runner_for([mapping(rec, arn, tumbling_window_seconds=900)], JsonCheckpointStore(path), clock).run_until_idle(10)
    [event] = rec.events
    assert [r["kinesis"]["sequenceNumber"] for r in event["Records"]] == [two]
    assert event["state"] == {"count": 1, "seqs": [one]}
