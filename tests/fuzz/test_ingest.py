"""Fuzzing the log-ingest use case (processors/core/ingest.py) batch by batch: decode -> parse -> rules ->
partials, windowed (state through Lambda's JSON) or not. Every record is counted or rejected with a reason,
nothing is reported as failed, and what is stored decodes again."""

from __future__ import annotations

import base64
import json

from hypothesis import given

from processors.adapters.memory import MemoryWindowStore
from processors.core.ingest import IngestConfig, LogIngest, StreamBatch, StreamRecord
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import INGEST, ListSink, _ingest_rules


@fuzz_settings(120)
@given(INGEST.strategy())
def test_ingest_fuzz(arg):
    INGEST.check(arg)


def test_regression_json_time_far_in_the_future_does_not_sink_the_batch():
    """Found by the fuzzer: `"time": 1e300` made a window start past 64 bits; the flush then raised
    (orjson: Integer exceeds 64-bit range) and the whole batch failed on every retry."""
    lines = ['{"time": 1e300, "status": 500, "path": "/a"}', '{"time": 1709546400, "status": 500, "path": "/b"}']
    store, sink = MemoryWindowStore(clock=lambda: 1_800_000_000), ListSink()
    ingest = LogIngest(IngestConfig(rules=_ingest_rules()), store, sink, clock=lambda: 1_800_000_000)
    records = tuple(StreamRecord(str(10**20 + i), base64.b64encode(ln.encode()).decode()) for i, ln in enumerate(lines))
    res = ingest.process(StreamBatch("shardId-000000000000", records))
    assert res.failed_sequence is None and res.flushed.counters["records"] == 2
    assert res.flushed.stats.rejected["bad_timestamp"] >= 1 and res.flushed.stats.parsed == 1
    assert res.partials_written >= 1
    assert json.loads(json.dumps(res.flushed.counters))  # plain counters
