"""Handlers the runner tests load by dotted path (also from a child process)."""

from __future__ import annotations

import base64
import os
import time


def append_records(event, context):
    """Append `shard seq data-b64` per record to $SIEVE_TEST_OUT, flushed and fsynced, then
    optionally sleep $SIEVE_TEST_SLEEP seconds (so a SIGKILL can land mid-batch)."""
    path = os.environ["SIEVE_TEST_OUT"]
    with open(path, "a", encoding="ascii") as fh:
        for r in event["Records"]:
            shard = r["eventID"].split(":")[0]
            fh.write(f"{shard} {r['kinesis']['sequenceNumber']} {r['kinesis']['data']}\n")
        fh.flush()
        os.fsync(fh.fileno())
    time.sleep(float(os.environ.get("SIEVE_TEST_SLEEP", "0")))
    return {"batchItemFailures": []}


def read_seen(path) -> list[tuple[str, str, bytes]]:
    out = []
    with open(path, encoding="ascii") as fh:
        for line in fh:
            shard, seq, data = line.split()
            out.append((shard, seq, base64.b64decode(data)))
    return out
