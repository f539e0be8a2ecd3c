"""A runner killed with SIGKILL and started again loses nothing and re-delivers at most the batch
that was in flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from processors.runtime.checkpoints import JsonCheckpointStore
from processors.runtime.runner import EventSourceMapping
from tests.runtime.conftest import make_stream, runner_for
from tests.runtime.handlers import read_seen

REPO = Path(__file__).resolve().parents[2]
BATCH = 10


def test_sigkilled_runner_resumes_from_its_checkpoint(kinesis, tmp_path, monkeypatch):
    arn = make_stream(kinesis, shards=2)
    written = []
    for chunk in range(6):
        resp = kinesis.put_records(
            StreamARN=arn,
            Records=[{"Data": f"rec-{chunk}-{i}".encode(), "PartitionKey": f"k{chunk}-{i}"} for i in range(50)],
        )
        assert resp["FailedRecordCount"] == 0
        written += [(r["ShardId"], r["SequenceNumber"]) for r in resp["Records"]]
    assert len({s for s, _ in written}) == 2
    out = tmp_path / "seen.txt"
    checkpoint = tmp_path / "checkpoints.json"
    env = dict(os.environ, SIEVE_TEST_OUT=str(out), SIEVE_TEST_SLEEP="0.03", PYTHONPATH=str(REPO))

    child = subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.runner_child", arn, str(checkpoint), str(BATCH)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and len(out.read_text().splitlines()) >= 120:
                break
            assert child.poll() is None, child.stderr.read().decode()
            time.sleep(0.01)  # a bounded poll on the child's output; its runner runs on real time
        else:
            raise AssertionError("the child runner delivered too little in 60 s")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    first_run = read_seen(out)
    assert 120 <= len(first_run) < len(written), "killed part-way"
    json.loads(checkpoint.read_text())  # the checkpoint file is whole after SIGKILL

    monkeypatch.setenv("SIEVE_TEST_OUT", str(out))
    mapping = EventSourceMapping(
        name="restartable",
        function="tests.runtime.handlers.append_records",
        event_source_arn=arn,
        starting_position="TRIM_HORIZON",
        batch_size=BATCH,
        function_response_types=("ReportBatchItemFailures",),
    )
    report = runner_for([mapping], JsonCheckpointStore(checkpoint)).run_until_idle(30)
    assert not report.timed_out
    seen = read_seen(out)
    second_run = seen[len(first_run):]

    delivered = Counter((shard, seq) for shard, seq, _ in seen)
    assert set(delivered) == set(written), "nothing lost"
    duplicates = [key for key, n in delivered.items() if n > 1]
    print(f"restart: {len(first_run)} delivered before SIGKILL, {len(second_run)} after, {len(duplicates)} twice")
    assert len(duplicates) <= BATCH, f"more than the in-flight batch came twice: {len(duplicates)}"
    assert all(n <= 2 for n in delivered.values())
    for run in (first_run, second_run):
        for shard in {s for s, _ in written}:
            seqs = [int(q) for s, q, _ in run if s == shard]
            assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)), "order within a shard"
