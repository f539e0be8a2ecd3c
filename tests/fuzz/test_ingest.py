"""Fuzzing the log-ingest use case (processors/core/ingest.py) batch by batch: decode -> parse -> rules ->
partials, windowed (state through Lambda's JSON) or not. Every record is counted or rejected with a reason,
nothing is reported as failed, and what is stored decodes again."""

from __future__ import annotations

import base64
import json

import pytest
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


@pytest.mark.parametrize("sizes", [[99999999999999999999], [2**64 - 1, 2**64 - 1]])
def test_regression_byte_count_past_64_bits_does_not_sink_the_batch(sizes):
    lines = [f'1.2.3.4 - - [04/Mar/2024:10:00:00 +0000] "GET /a HTTP/1.1" 200 {n} "-" "c"' for n in sizes]
    lines.append('1.2.3.5 - - [04/Mar/2024:10:00:01 +0000] "GET /b HTTP/1.1" 500 10 "-" "c"')
    store, sink = MemoryWindowStore(clock=lambda: 1_800_000_000), ListSink()
    ingest = LogIngest(IngestConfig(rules=_ingest_rules()), store, sink, clock=lambda: 1_800_000_000)
    records = tuple(StreamRecord(str(10**20 + i), base64.b64encode(ln.encode()).decode()) for i, ln in enumerate(lines))
    res = ingest.process(StreamBatch("shardId-000000000000", records))
    assert res.failed_sequence is None and res.flushed.counters["records"] == len(lines)
    assert res.partials_written >= 1
    # found by the fastpath fuzzer: orjson could not write the partial (TypeError out of process, the batch
    # failed on every retry); now a value past 64 bits is kept as the nearest float, in its order
    from processors.core.aggregate import WindowAggregate

    parts = store.partials("bytes-by-client-2", 1709546400)  # the names _ingest_rules gives
    assert len(parts) == 1
    agg = WindowAggregate.from_bytes(parts[0].blob)
    big = agg.values[("1.2.3.4",)]
    assert type(big) is float and big == float(sum(sizes)) and agg.values[("1.2.3.5",)] == 10
