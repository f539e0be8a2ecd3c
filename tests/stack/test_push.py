"""`sieve push` against a real moto Kinesis stream."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import boto3
import orjson
import pytest

from processors.runtime.push import PushResult, entries, put_all

LINES = [
    f'10.0.0.{i % 7} - - [26/Nov/2026:10:0{i % 10}:00 +0000] "GET /p/{i} HTTP/1.1" {500 if i % 5 == 0 else 200} 12 "-" "ua"'
    for i in range(1, 1201)
]


def read_all(stream: str) -> list[bytes]:
    k = boto3.client("kinesis")
    out = []
    for shard in k.list_shards(StreamName=stream)["Shards"]:
        it = k.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = k.get_records(ShardIterator=it, Limit=10000)
            out.extend(r["Data"] for r in resp["Records"])
            if not resp["Records"]:
                break
            it = resp.get("NextShardIterator")
    return out


@pytest.fixture()
def stream(aws):
    k = boto3.client("kinesis")
    k.create_stream(StreamName="push-test", ShardCount=2)
    k.get_waiter("stream_exists").wait(StreamName="push-test", WaiterConfig={"Delay": 0.2})
    return "push-test"


def run_push(tmp_path, fmt, lines):
    f = tmp_path / "in.log"
    f.write_text("\n".join(lines) + "\n")
    return subprocess.run([sys.executable, "-m", "processors.cli", "push", str(f), "--stream", "push-test", "--format", fmt],
                          capture_output=True, text=True, timeout=120)


def test_lines_every_line_arrives_once_over_both_shards(stream, tmp_path):
    proc = run_push(tmp_path, "lines", LINES)
    assert proc.returncode == 0, proc.stderr
    assert "sent 1200" in proc.stdout and "failed 0" in proc.stdout
    got = sorted(d.decode() for d in read_all(stream))
    assert got == sorted(LINES)
    k = boto3.client("kinesis")
    per_shard = []
    for shard in k.list_shards(StreamName=stream)["Shards"]:
        it = k.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        per_shard.append(len(k.get_records(ShardIterator=it, Limit=10000)["Records"]))
    assert all(n > 0 for n in per_shard)  # partition keys spread records over the shards


def test_cwl_payload_has_the_subscription_shape(stream, tmp_path):
    proc = run_push(tmp_path, "cwl", LINES)
    assert proc.returncode == 0, proc.stderr
    records = read_all(stream)
    assert len(records) == 6  # 200 events per record
    messages = []
    for data in records:
        doc = json.loads(gzip.decompress(data))
        assert doc["messageType"] == "DATA_MESSAGE"
        assert set(doc) == {"messageType", "owner", "logGroup", "logStream", "subscriptionFilters", "logEvents"}
        assert doc["logGroup"] == "/sieve/access/nginx"
        for ev in doc["logEvents"]:
            assert set(ev) == {"id", "timestamp", "message"} and len(ev["id"]) == 56
        messages += [ev["message"] for ev in doc["logEvents"]]
    assert sorted(messages) == sorted(LINES)
    first = json.loads(gzip.decompress(records[0]))["logEvents"][0]
    # event time comes from the access-log timestamp
    assert first["timestamp"] % 60000 == 0


def test_json_format_counts_and_reports_bad_lines(stream, tmp_path):
    lines = ['{"status": 500, "path": "/a"}', "not json", '["an", "array"]', '{"status": 200}']
    proc = run_push(tmp_path, "json", lines)
    assert proc.returncode == 1
    assert "sent 2" in proc.stdout and "invalid 2" in proc.stdout
    assert "line 2: invalid JSON" in proc.stderr and "line 3:" in proc.stderr
    assert sorted(orjson.loads(d)["status"] for d in read_all(stream)) == [200, 500]


class FlakyKinesis:
    """Fault injection in front of the real moto client: PutRecords reports the first `n` calls'
    odd records as throttled (as Kinesis does per record), without sending them."""

    def __init__(self, real, n: int):
        self.real, self.n, self.calls = real, n, 0

    def put_records(self, StreamName, Records):
        self.calls += 1
        if self.calls > self.n:
            return self.real.put_records(StreamName=StreamName, Records=Records)
        keep = [r for i, r in enumerate(Records) if i % 2 == 0]
        resp = self.real.put_records(StreamName=StreamName, Records=keep)
        out, it = [], iter(resp["Records"])
        for i in range(len(Records)):
            out.append(next(it) if i % 2 == 0 else {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "Rate exceeded"})
        return {"FailedRecordCount": len(Records) // 2, "Records": out}


def test_throttled_records_are_retried_and_counted(stream):
    kin = FlakyKinesis(boto3.client("kinesis"), n=2)
    result = PushResult()
    sleeps = []
    put_all(kin, stream, entries(LINES[:10], "lines", result), result, sleep=sleeps.append)
    assert (result.sent, result.retried, result.failed) == (10, 5 + 2, 0)
    # the shared Backoff (base 0.1 s): retry n waits within [d/2, d], d = 0.1 * 2**n
    assert len(sleeps) == 2 and 0.05 <= sleeps[0] <= 0.1 and 0.1 <= sleeps[1] <= 0.2
    assert sorted(d.decode() for d in read_all(stream)) == sorted(LINES[:10])


def test_gives_up_and_reports_after_max_attempts(stream):
    kin = FlakyKinesis(boto3.client("kinesis"), n=100)
    result = PushResult()
    put_all(kin, stream, entries(LINES[:4], "lines", result), result, max_attempts=1, sleep=lambda s: None)
    assert (result.failed, result.sent, result.retried) == (2, 2, 0)
    assert len(read_all(stream)) == 2
    assert "ProvisionedThroughputExceededException" in result.errors[0]


def test_batches_respect_put_records_limits():
    from processors.runtime.push import MAX_CALL_BYTES, Entry, batches

    small = [Entry(b"x", "k", 1)] * 1201
    assert [len(b) for b in batches(small)] == [500, 500, 201]
    big = [Entry(b"y" * (900 * 1024), "k", 1)] * 12
    sizes = [sum(len(e.data) for e in b) for b in batches(big)]
    assert all(s <= MAX_CALL_BYTES for s in sizes) and sum(len(b) for b in batches(big)) == 12


def test_unknown_stream_is_a_clear_error(aws, tmp_path):
    f = tmp_path / "x.log"
    f.write_text("a\n")
    proc = subprocess.run([sys.executable, "-m", "processors.cli", "push", str(f), "--stream", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "no such Kinesis stream" in proc.stderr
