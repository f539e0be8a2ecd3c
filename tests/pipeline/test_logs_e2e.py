"""Generated traffic -> Kinesis (raw and CloudWatch-wrapped, 2 shards) -> runner -> logs handler ->
finaliser: the stored top-N must equal the generator's ground truth exactly."""

from __future__ import annotations

import base64
import dataclasses
import json

import boto3

from processors import wiring
from processors.adapters.state_store import StateStore
from processors.commands.push import push_file
from processors.core.generate import AccessLogGenerator, GeneratorConfig, parse_incident
from processors.handlers import finaliser, logs
from processors.runtime.checkpoints import MemoryCheckpointStore
from processors.runtime.mappings import build_mappings
from processors.runtime.runner import Runner
from processors.runtime.slack_receiver import SlackReceiver

from .conftest import local_notifier, truth_of


def generate(tmp_path, lines=6000, seed=11):
    out = tmp_path / "access.log"
    gen = AccessLogGenerator(GeneratorConfig(seed=seed, lines=lines, duration=600, period=60,
                                             incidents=(parse_incident("burst500"), parse_incident("scan404"))))
    with open(out, "w") as fh:
        for line in gen.lines():
            fh.write(line + "\n")
    (tmp_path / "access.log.truth.json").write_text(json.dumps(gen.truth()))
    all_lines = out.read_text().splitlines()
    half = len(all_lines) // 2
    (tmp_path / "raw.log").write_text("\n".join(all_lines[:half]) + "\n")
    (tmp_path / "cwl.log").write_text("\n".join(all_lines[half:]) + "\n")
    return out


def run_all(stack, *, handler=None, mutate_mapping=None):
    loaded = stack.loaded()
    mappings = build_mappings(loaded, {"logs-processor"})
    if handler is not None or mutate_mapping is not None:
        mappings = [dataclasses.replace(m, **({"function": handler} if handler else {}), **(mutate_mapping or {}))
                    for m in mappings]
    runner = Runner(mappings, MemoryCheckpointStore(), poll_interval_seconds=0.05, retry_delay_seconds=0)
    report = runner.run_until_idle(120)
    assert not report.timed_out
    return report


def finalise(stack, receiver):
    loaded = stack.loaded()
    notifier = local_notifier(receiver.url)
    rt = wiring.finaliser(loaded, notifier=notifier)
    return rt.run(flush=True)


def stored_reports(rule: str) -> dict[int, dict]:
    store = StateStore("sieve-state")
    return {int(r["sk"]): r for r in store.reports(rule, limit=1000)}


def assert_matches_truth(log_path):
    truth = truth_of(log_path)
    for rule, windows in truth["rules"].items():
        if rule == "bytes-by-client":
            continue  # not configured in pipelines.yaml
        got = stored_reports(rule)
        for tw in windows:
            start = tw["window"][0]
            assert start in got, f"{rule}: window {start} was not finalised"
            topn = got[start]["topn"]
            expect = [(tuple(c["keys"]), c["value"]) for c in tw["top"]]
            have = [(tuple(c["keys"]), int(c["value"])) for c in topn["contributors"]]
            assert have == expect, f"{rule} {start}"
            for field in ("sample_count", "unique_contributors", "total_events", "max_contributor_value"):
                assert int(topn[field]) == tw[field], f"{rule} {start} {field}"
            assert topn["approximate"] is False


def push_both(tmp_path):
    r1 = push_file(str(tmp_path / "raw.log"), "sieve-access-logs", "lines")
    r2 = push_file(str(tmp_path / "cwl.log"), "sieve-access-logs", "cwl")
    assert r1.failed == r2.failed == 0


def test_topn_equals_ground_truth_raw_and_cwl_over_two_shards(make_stack, tmp_path):
    stack = make_stack()
    log_path = generate(tmp_path)
    push_both(tmp_path)
    run_all(stack)
    with SlackReceiver() as receiver:
        result = finalise(stack, receiver)
        assert_matches_truth(log_path)
        # the incidents were selected and posted once each, the quiet windows were not posted
        truth = truth_of(log_path)
        posted = {(d["rule"], d["window"]) for d in result["finalised"] if d["delivery"] == "posted"}
        for inc in truth["incidents"]:
            w = inc["windows"][0]["window"]
            assert (inc["rule"], f"{w[0]}-{w[1]}") in posted
        assert len(receiver.accepted) == len(posted)
        # each incident's message names its cause in the computed section: as a contrast fact, or as the
        # group's own key when the rule keys on the cause (a scanning client inside the scanning network)
        computed = [next(b["text"]["text"] for b in p["blocks"] if b.get("block_id") == "computed-selected")
                    for p in receiver.accepted]
        for inc in truth["incidents"]:
            field, value = inc["cause"]["field"], inc["cause"]["value"]
            if field == "client_network":
                named = any(f"client={c}" in t for t in computed for c in inc["key"].values()
                            if c.startswith(value.rsplit(".", 1)[0] + "."))
            else:
                named = any(f"`{field}={value}`" in t for t in computed)
            assert named, (inc["kind"], field, value, computed)
    store = StateStore("sieve-state")
    assert set(store.progress()) == {"shardId-000000000000", "shardId-000000000001"}


def test_tumbling_window_state_gives_the_same_result(make_stack, tmp_path):
    def tumbling(doc):
        doc["functions"]["logs-processor"]["events"][0]["tumbling_window_seconds"] = 1
    stack = make_stack(tumbling)
    log_path = generate(tmp_path, lines=3000, seed=5)
    push_both(tmp_path)
    run_all(stack)
    with SlackReceiver() as receiver:
        finalise(stack, receiver)
    assert_matches_truth(log_path)


def test_redelivery_and_a_crash_mid_batch_leave_counts_unchanged(make_stack, tmp_path):
    stack = make_stack()
    log_path = generate(tmp_path, lines=3000, seed=3)
    push_both(tmp_path)
    calls = {"n": 0, "crashed": 0}

    def crashing(event, context):
        """The real handler, then a crash after its writes on every 3rd invocation: the runner
        retries (bisecting), so the same records arrive again in different batches."""
        calls["n"] += 1
        resp = logs.handler(event, context)
        if calls["n"] % 3 == 0 and event.get("Records"):
            calls["crashed"] += 1
            raise TimeoutError("simulated crash after the flush")
        return resp

    run_all(stack, handler=crashing, mutate_mapping={"maximum_retry_attempts": 10})
    assert calls["crashed"] >= 2
    # and a plain redelivery of an already-counted batch changes nothing
    k = boto3.client("kinesis")
    shard = k.list_shards(StreamName="sieve-access-logs")["Shards"][0]["ShardId"]
    it = k.get_shard_iterator(StreamName="sieve-access-logs", ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    recs = k.get_records(ShardIterator=it, Limit=50)["Records"]
    event = {"Records": [{"eventID": f"{shard}:{r['SequenceNumber']}", "eventSourceARN": "arn",
                          "kinesis": {"sequenceNumber": r["SequenceNumber"], "partitionKey": r["PartitionKey"],
                                      "data": base64.b64encode(r["Data"]).decode()}} for r in recs]}
    assert logs.handler(event, None) == {"batchItemFailures": []}
    with SlackReceiver() as receiver:
        finalise(stack, receiver)
    assert_matches_truth(log_path)


def test_undecodable_records_are_rejected_counted_and_kept(make_stack, tmp_path):
    stack = make_stack()
    k = boto3.client("kinesis")
    k.put_records(StreamName="sieve-access-logs", Records=[
        {"Data": b"\x1f\x8bnot really gzip", "PartitionKey": "a"},
        {"Data": b"\xff\xfe\xfa binary", "PartitionKey": "b"},
        {"Data": b'127.0.0.1 - - [04/Mar/2024:10:00:01 +0000] "GET /x HTTP/1.1" 500 1 "-" "ua"', "PartitionKey": "c"},
    ])
    report = run_all(stack)
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="sieve-logs-rejects")["QueueUrl"]
    msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    bodies = sorted(json.loads(m["Body"])["reason"] for m in msgs)
    assert bodies == ["bad_gzip", "not_utf8"]
    for m in msgs:
        body = json.loads(m["Body"])
        assert body["sequenceNumber"] and body["shardId"].startswith("shardId-") and body["data"]
    # the good line was still counted
    store = StateStore("sieve-state")
    assert store.open_windows("errors-by-path") == [1709546400]
    assert not report.discards  # rejected records are not failures: nothing went to the failure queue


def test_records_for_a_finalised_window_are_counted_as_late(make_stack, tmp_path):
    stack = make_stack()
    line = '198.51.100.5 - - [04/Mar/2024:10:00:{:02d} +0000] "GET /late HTTP/1.1" 503 1 "-" "ua"'
    k = boto3.client("kinesis")
    k.put_records(StreamName="sieve-access-logs", Records=[{"Data": line.format(i).encode(), "PartitionKey": str(i)}
                                                           for i in range(30)])
    run_all(stack)
    with SlackReceiver() as receiver:
        first = finalise(stack, receiver)
        assert {(d["rule"], d["window"]) for d in first["finalised"]} >= {("errors-by-path", "1709546400-1709546460")}
        k.put_records(StreamName="sieve-access-logs", Records=[{"Data": line.format(50 + i).encode(), "PartitionKey": "x"}
                                                               for i in range(3)])
        run_all(stack)
        second = finalise(stack, receiver)
        assert len(receiver.accepted) == 1  # the late records do not post the window again
    late = [d for d in second["finalised"] if d["rule"] == "errors-by-path"]
    assert late == [{"rule": "errors-by-path", "window": "1709546400-1709546460", "status": "late", "late_events": 3}]
    stored = StateStore("sieve-state").report("errors-by-path", 1709546400)
    assert int(stored["late_events"]) == 3
    assert int(stored["topn"]["sample_count"]) == 30  # the finalised report itself is not rewritten


def test_sieve_run_cli_until_idle_and_flush(make_stack, tmp_path):
    import os
    import subprocess
    import sys

    make_stack()
    line = '192.0.2.1 - - [04/Mar/2024:10:00:{:02d} +0000] "GET /api/x HTTP/1.1" 500 1 "-" "ua"'
    boto3.client("kinesis").put_records(StreamName="sieve-access-logs", Records=[
        {"Data": line.format(i).encode(), "PartitionKey": str(i)} for i in range(25)])
    with SlackReceiver() as receiver:
        env = {**os.environ, "SLACK_WEBHOOK_URL": receiver.url, "SIEVE_STATE_DIR": str(tmp_path / "state")}
        proc = subprocess.run([sys.executable, "-m", "processors.cli", "run", "--until-idle", "60", "--flush"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "logs-finaliser: 2 window(s) finalised" in proc.stdout
        assert len(receiver.accepted) == 1 and "/api/x" in json.dumps(receiver.accepted[0])
    assert (tmp_path / "state" / "checkpoints.json").exists()


def test_state_table_unavailable_is_a_retryable_batch_failure_not_a_loss(make_stack, tmp_path):
    stack = make_stack()
    line = '192.0.2.9 - - [04/Mar/2024:10:00:{:02d} +0000] "GET /t HTTP/1.1" 500 1 "-" "ua"'
    boto3.client("kinesis").put_records(StreamName="sieve-access-logs", Records=[
        {"Data": line.format(i).encode(), "PartitionKey": "p"} for i in range(5)])
    k = boto3.client("kinesis")
    shard = None
    recs = []
    for s in k.list_shards(StreamName="sieve-access-logs")["Shards"]:
        it = k.get_shard_iterator(StreamName="sieve-access-logs", ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        got = k.get_records(ShardIterator=it)["Records"]
        if got:
            shard, recs = s["ShardId"], got
    event = {"Records": [{"eventID": f"{shard}:{r['SequenceNumber']}", "eventSourceARN": "arn",
                          "kinesis": {"sequenceNumber": r["SequenceNumber"], "partitionKey": r["PartitionKey"],
                                      "data": base64.b64encode(r["Data"]).decode()}} for r in recs]}
    ddb = boto3.client("dynamodb")
    ddb.delete_table(TableName="sieve-state")
    resp = logs.handler(event, None)
    assert resp == {"batchItemFailures": [{"itemIdentifier": recs[0]["SequenceNumber"]}]}
    from processors.runtime.provision import provision

    provision(stack.loaded().config, emulator=True)  # the table is back
    assert logs.handler(event, None) == {"batchItemFailures": []}
    assert logs.handler(event, None) == {"batchItemFailures": []}  # and a redelivery counts nothing twice
    parts = StateStore("sieve-state").partials("errors-by-path", 1709546400)
    from processors.core.aggregate import WindowAggregate, merge

    assert merge([WindowAggregate.from_bytes(p.blob) for p in parts]).sample_count == 5


def test_watermark_finalises_only_closed_windows(make_stack, tmp_path):
    stack = make_stack()
    log_path = generate(tmp_path, lines=2000, seed=9)
    assert push_file(str(log_path), "sieve-access-logs", "lines").failed == 0  # one record per line: both shards
    run_all(stack)
    with SlackReceiver() as receiver:
        result = finalise_at_watermark(stack, receiver)
    # event time reaches ~10:09:59 on both shards (the slowest shard sets the watermark); allowed
    # lateness is 30 s: the window ending 10:10:00 is still open, the nine before it are closed
    by_rule = {}
    for d in result["finalised"]:
        by_rule.setdefault(d["rule"], []).append(d["window"])
    assert {r: len(ws) for r, ws in by_rule.items()} == {"errors-by-path": 9, "404-by-client": 9}
    store = StateStore("sieve-state")
    assert store.open_windows("errors-by-path") == [1709546940]
    assert result["watermark_ms"] // 1000 >= 1709546940 + 29


def finalise_at_watermark(stack, receiver):
    notifier = local_notifier(receiver.url)
    rt = wiring.finaliser(stack.loaded(), notifier=notifier)
    return rt.run(flush=False)


def test_finaliser_reads_the_webhook_from_secrets_manager(make_stack, tmp_path, monkeypatch):
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    with SlackReceiver() as receiver:
        monkeypatch.setenv("SIEVE_LOCAL_SLACK_URL", receiver.url)  # provisioned into the sieve/slack secret
        stack = make_stack()
        line = '192.0.2.7 - - [04/Mar/2024:10:00:{:02d} +0000] "GET /s HTTP/1.1" 502 1 "-" "ua"'
        boto3.client("kinesis").put_records(StreamName="sieve-access-logs", Records=[
            {"Data": line.format(i).encode(), "PartitionKey": str(i)} for i in range(21)])
        run_all(stack)
        from processors.runtime.lambda_context import LambdaContext
        from processors.runtime.mappings import scheduled_event

        ctx = LambdaContext(function_name="logs-finaliser", timeout_seconds=300,
                            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:logs-finaliser")
        # the production entry point: the scheduled handler, wired from pipelines.yaml
        result = finaliser.handler(scheduled_event("logs-finaliser", "us-east-1", "123456789012", flush=True), ctx)
        assert [d["delivery"] for d in result["finalised"] if d["selected"]] == ["posted"]
        assert len(receiver.accepted) == 1


def test_finaliser_leaves_windows_for_the_next_run_when_time_runs_out(make_stack, tmp_path):
    stack = make_stack()
    line = '192.0.2.3 - - [04/Mar/2024:10:0{}:00 +0000] "GET /d HTTP/1.1" 500 1 "-" "ua"'
    boto3.client("kinesis").put_records(StreamName="sieve-access-logs", Records=[
        {"Data": line.format(m).encode(), "PartitionKey": str(m)} for m in range(3)])
    run_all(stack)
    with SlackReceiver() as receiver:
        notifier = local_notifier(receiver.url)
        rt = wiring.finaliser(stack.loaded(), notifier=notifier)
        budget = iter([200_000, 10_000] + [10_000] * 10)  # ms left: enough for one window, then not
        first = rt.run(flush=True, time_left_ms=lambda: next(budget))
        assert len(first["finalised"]) == 1 and first["deferred"] == 5  # 3 windows x 2 rules
        second = rt.run(flush=True)
        assert len(second["finalised"]) == 5 and second["deferred"] == 0
    assert StateStore("sieve-state").open_windows("errors-by-path") == []


def test_sieve_run_keeps_polling_and_finalises_on_its_schedule(make_stack, tmp_path):
    """`sieve run` without --until-idle: the mode a user leaves running. Records pushed while it runs
    are processed, the scheduled finaliser runs on its own, and Ctrl-C stops it cleanly."""
    import os
    import signal
    import subprocess
    import sys
    import time

    def fast_schedule(doc):
        doc["functions"]["logs-finaliser"]["schedule_seconds"] = 1
        doc["pipelines"]["logs"]["window"]["allowed_lateness_seconds"] = 0

    make_stack(fast_schedule)
    with SlackReceiver() as receiver:
        env = {**os.environ, "SLACK_WEBHOOK_URL": receiver.url, "SIEVE_STATE_DIR": str(tmp_path / "state")}
        proc = subprocess.Popen([sys.executable, "-m", "processors.cli", "run"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # a burst in the 10:00 window, then a line at 10:02 on every shard moves the watermark past it
            line = '192.0.2.{} - - [04/Mar/2024:10:{}:{:02d} +0000] "GET /live HTTP/1.1" 500 1 "-" "ua"'
            records = [{"Data": line.format(1, "00", i).encode(), "PartitionKey": str(i)} for i in range(25)]
            records += [{"Data": line.format(2, "02", i).encode(), "PartitionKey": str(i)} for i in range(40)]
            boto3.client("kinesis").put_records(StreamName="sieve-access-logs", Records=records)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not receiver.accepted:
                time.sleep(0.5)
            assert len(receiver.accepted) == 1, "the scheduled finaliser did not post the closed window"
            assert "/live" in json.dumps(receiver.accepted[0])
            # the report is stored right after the post: wait for it (the assertion below is about state)
            while time.monotonic() < deadline and 1709546400 in StateStore("sieve-state").open_windows("errors-by-path"):
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err[-2000:]
    assert StateStore("sieve-state").open_windows("errors-by-path") == [1709546520]  # 10:02 is still open
