"""The cost model's arithmetic on hand-computed cases (processors/core/cost.py), the shipped price file,
and `sieve cost` end to end on a given measurement file."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from processors.core.cost import (REQUIRED_PRICES, REQUIRED_SIZING, Measured, PriceBook, Workload, dynamodb_flush_units,
                                  estimate, finalise_units, parse_count)
from processors.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

PRICES = {"kinesis_shard_hour": 0.015, "kinesis_put_payload_units_million": 0.014, "lambda_requests_million": 0.20,
          "lambda_gb_second_x86_64": 0.0000166667, "lambda_gb_second_arm64": 0.0000133334,
          "dynamodb_write_request_units_million": 0.625, "dynamodb_read_request_units_million": 0.125,
          "dynamodb_storage_gb_month": 0.25, "cloudwatch_custom_metric_month": 0.30, "cloudwatch_logs_ingest_gb": 0.50,
          "contributor_insights_rule_month": 0.50, "contributor_insights_matched_events_million": 0.02,
          "opensearch_ingestion_ocu_hour": 0.24, "eventbridge_scheduler_invocations_million": 1.00}
SIZING = {"opensearch_ingestion_mib_per_second_per_ocu": 2.0, "opensearch_ingestion_min_ocus": 2,
          "kinesis_shard_ingest_bytes_per_second": 1048576, "kinesis_shard_ingest_records_per_second": 1000,
          "kinesis_put_payload_unit_bytes": 25600, "lambda_mb_per_vcpu": 1024, "hours_per_month": 730}


def book(**over) -> PriceBook:
    doc = {"prices": {k: {"usd": over.get(k, v), "source": "https://example.test", "as_of": "2025-01"} for k, v in PRICES.items()},
           "sizing": {k: {"value": v, "source": "https://example.test", "as_of": "2025-01"} for k, v in SIZING.items()}}
    return PriceBook.from_document(doc)


MEASURED = Measured(fixed_ms_per_batch=20.0, ms_per_line=0.01, partial_bytes=3000.0, report_bytes=4096.0,
                    finaliser_ms_per_run=100.0, finaliser_ms_per_window=50.0)
MONTH_S = 730 * 3600  # 2,628,000 s

# 1,000 lines/s on average, 10 lines (100 B each) per Kinesis record: 100 records/s, 1,000 B a record
STEADY = Workload(lines_per_month=1000 * MONTH_S, rules=2, bytes_per_line=100, lines_per_record=10, peak_factor=1.0,
                  batch_size=500, batching_window_seconds=1, memory_mb=1024, finaliser_memory_mb=1024,
                  matched_share=0.5)


def line(est, service, item):
    [ln] = [ln for ln in est.lines if ln.service == service and ln.item == item]
    return ln


def test_kinesis_by_hand():
    est = estimate(STEADY, MEASURED, book())
    # 262.8M records of 1,000 B: one 25 KB PUT unit each; 100 records/s and 100 kB/s fit one shard
    assert est.facts["records"] == 262_800_000
    assert est.facts["put_payload_units"] == 262_800_000
    assert est.facts["shards"] == 1
    assert line(est, "sieve: kinesis", "shard-hours").usd == pytest.approx(730 * 0.015)          # $10.95
    assert line(est, "sieve: kinesis", "PUT payload units").usd == pytest.approx(262.8 * 0.014)   # $3.6792


def test_lambda_by_hand():
    est = estimate(STEADY, MEASURED, book())
    # 100 records/s < 500 a batch: one invocation per shard per second (the batching window), 1,000 lines each
    assert est.facts["invocations"] == 2_628_000
    assert est.facts["lines_per_invocation"] == pytest.approx(1000)
    # 20 ms + 0.01 ms * 1,000 lines = 30 ms; 1,024 MB is one full vCPU in this price book
    assert est.facts["billed_ms_per_invocation"] == 30
    assert est.facts["gb_seconds"] == pytest.approx(2_628_000 * 0.030)                               # 78,840 GB-s
    assert line(est, "sieve: lambda logs processor", "duration").usd == pytest.approx(78_840 * 0.0000166667)
    assert line(est, "sieve: lambda logs processor", "requests").usd == pytest.approx(2.628 * 0.20)


def test_lambda_below_one_vcpu_takes_longer():
    w = Workload(**{**STEADY.__dict__, "memory_mb": 512})
    est = estimate(w, MEASURED, book())
    assert est.facts["billed_ms_per_invocation"] == 60  # half a vCPU: 30 ms of work take 60
    assert est.facts["gb_seconds"] == pytest.approx(2_628_000 * 0.060 * 0.5)


def test_dynamodb_flush_units_by_hand():
    # 2 partials of 3,000 B (3 KB) + 2 open markers + the cursor, transactional (2 WRU/KB), + progress (1 WRU)
    assert dynamodb_flush_units(2, 3000) == (2 * 3 * 2 + 2 * 2 + 2 + 1, 1.0)  # (19, 1)
    assert dynamodb_flush_units(1, 100) == (2 * 1 * 1 + 2 * 1 + 2 + 1, 1.0)   # a tiny partial still costs 1 KB


def test_finalise_units_by_hand():
    # 61 partials of 3,000 B = 183,000 B -> 45 RRU (4 KB each, strongly consistent); report get, last selected,
    # mutes 3; five previous 4 KB reports 5. Writes: a 4 KB report 4 + the open marker's delete 1.
    assert finalise_units(61, 3000, 4096, 5) == (5.0, 45 + 3 + 5)


def test_dynamodb_by_hand():
    est = estimate(STEADY, MEASURED, book())
    # a batch spans 1 s of event time: it straddles a 60 s window boundary 1 time in 60
    assert est.facts["windows_per_flush"] == pytest.approx(1 + 1 / 60)
    rules_windows = 2 * (1 + 1 / 60)
    assert est.facts["wru_per_flush"] == pytest.approx(2 * 3 * rules_windows + 2 * rules_windows + 3)  # 19.2667
    assert est.facts["partials_per_rule_window"] == pytest.approx(61)
    wru = 2_628_000 * (2 * 3 * rules_windows + 2 * rules_windows + 3) + 43_800 * 2 * 5
    assert est.facts["write_request_units"] == pytest.approx(wru)                    # 51,071,200
    assert line(est, "sieve: dynamodb", "write request units").usd == pytest.approx(wru / 1e6 * 0.625)  # $31.92
    rru = 2_628_000 * 1 + 43_800 * 2 * 53 + 87_600 * 3
    assert est.facts["read_request_units"] == pytest.approx(rru)                     # 7,533,600


def test_tumbling_windows_flush_once_per_shard_window():
    w = Workload(**{**STEADY.__dict__, "tumbling_window_seconds": 60})
    m = Measured(**{**MEASURED.__dict__, "window_partial_bytes": 40_000.0})
    est = estimate(w, m, book())
    assert est.facts["flushes"] == 43_800                 # one shard, one flush a minute
    assert est.facts["partial_bytes"] == 40_000.0         # the whole window's partial
    # 60 s windows aligned with the tumbling window: every flush touches two windows at most (the bound used)
    assert est.facts["windows_per_flush"] == 2
    assert est.facts["wru_per_flush"] == pytest.approx(2 * 40 * 4 + 2 * 4 + 3)  # 40,000 B = 40 KB
    assert est.total("sieve") < estimate(STEADY, MEASURED, book()).total("sieve")


def test_contributor_insights_and_opensearch_by_hand():
    est = estimate(STEADY, MEASURED, book())
    # 2 rules * $0.50 + 2 rules * 1,314M matched lines (half of 2,628M) * $0.02 per million
    assert est.total("contributor insights") == pytest.approx(1.00 + 2 * 1314 * 0.02)   # $53.56
    # 100 kB/s is far below one OCU's 2 MiB/s: the recommended minimum of 2 OCUs, 730 h
    assert est.facts["opensearch_ingestion_ocus"] == 2
    assert est.total("opensearch ingestion") == pytest.approx(2 * 730 * 0.24)           # $350.40
    # 9 MiB/s at peak needs ceil(9 / 2) = 5 OCUs
    big = Workload(lines_per_month=9 * 1048576 * MONTH_S / 1000, rules=1, bytes_per_line=1000, peak_factor=1.0)
    assert estimate(big, MEASURED, book()).facts["opensearch_ingestion_ocus"] == 5


def test_sieve_total_is_the_sum_of_its_lines_and_excludes_the_log_ingestion():
    est = estimate(STEADY, MEASURED, book())
    assert est.total("sieve") == pytest.approx(sum(ln.usd for ln in est.lines if ln.service.startswith("sieve")))
    ingest = line(est, "cloudwatch logs (apart)", "log ingestion")
    assert ingest.quantity == pytest.approx(1000 * MONTH_S * 100 / 1e9)   # 262.8 GB
    assert ingest.usd == pytest.approx(262.8 * 0.50)
    assert math.isclose(est.as_dict()["totals"]["sieve"], round(est.total("sieve"), 2))


def test_prices_scale_linearly():
    a = estimate(STEADY, MEASURED, book())
    b = estimate(STEADY, MEASURED, book(dynamodb_write_request_units_million=1.25))
    assert line(b, "sieve: dynamodb", "write request units").usd == pytest.approx(
        2 * line(a, "sieve: dynamodb", "write request units").usd)


def test_bad_price_documents_and_workloads_are_refused_with_reasons():
    doc = {"prices": {"kinesis_shard_hour": {"usd": -1, "source": "x", "as_of": "y"}}, "sizing": {}}
    with pytest.raises(ConfigError) as exc:
        PriceBook.from_document(doc, "p.json")
    text = "\n".join(exc.value.problems)
    assert "prices.kinesis_shard_hour.usd: must be a number >= 0" in text
    assert "missing entry: lambda_requests_million" in text
    doc = {"prices": {k: {"usd": v} for k, v in PRICES.items()}, "sizing": {k: {"value": v} for k, v in SIZING.items()}}
    with pytest.raises(ConfigError, match="required"):
        PriceBook.from_document(doc)
    with pytest.raises(ConfigError):
        Workload(lines_per_month=1, rules=0)
    with pytest.raises(ConfigError):
        Workload(lines_per_month=1, rules=1, matched_share=1.5)


def test_parse_count():
    assert parse_count("10M") == 1e7
    assert parse_count("1B") == 1e9
    assert parse_count("250k") == 250_000
    assert parse_count("1,000") == 1000
    with pytest.raises(ConfigError):
        parse_count("lots")


def test_shipped_prices_have_a_source_and_date_for_each_figure():
    doc = json.loads(resources.files("processors.data").joinpath("prices.json").read_text())
    pb = PriceBook.from_document(doc)
    assert set(REQUIRED_PRICES) <= set(pb.prices) and set(REQUIRED_SIZING) <= set(pb.sizing)
    for section in ("prices", "sizing"):
        for name, entry in doc[section].items():
            assert entry["source"].startswith("https://"), name
            assert entry["verified"] is False or entry["verified"] is True


def test_sieve_cost_command_on_a_measurement_file(tmp_path):
    e2e = tmp_path / "e2e.json"
    e2e.write_text(json.dumps({"measured_at": "test", "cost_inputs": {
        "fixed_ms_per_batch": 20.0, "ms_per_line": 0.01, "partial_bytes": 3000.0, "report_bytes": 4096.0,
        "finaliser_ms_per_run": 100.0, "finaliser_ms_per_window": 50.0}}))
    (tmp_path / "memory.json").write_text(json.dumps({"logs_processor_batch": {"peak_rss_mb": 90.5}}))
    out = subprocess.run([sys.executable, "-m", "processors.cli", "cost", "--measured", str(e2e), "--rules", "3",
                          "--lines", "10M,1B", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc["estimates"]) == {"10M", "1B"}
    assert doc["measured"]["peak_rss_mb"] == 90.5
    ci = doc["estimates"]["1B"]["totals"]["contributor_insights"]
    assert ci == pytest.approx(3 * 0.50 + 3 * 1000 * 0.02)     # 3 rules, every line matched by each
    table = subprocess.run([sys.executable, "-m", "processors.cli", "cost", "--measured", str(e2e)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    assert "Sieve total" in table.stdout and "Contributor Insights total" in table.stdout
    bad = subprocess.run([sys.executable, "-m", "processors.cli", "cost", "--measured", str(tmp_path / "none.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "file not found" in bad.stderr


def test_quick_measure_runs_the_logs_use_case_in_process():
    """Without bench results `sieve cost` measures the engine itself and says what it assumed."""
    from processors.commands.cost import ASSUMED_ROUND_TRIP_MS, quick_measure

    m = quick_measure(lines=2000, batch=500)
    assert m.ms_per_line > 0
    assert m.partial_bytes > 200                     # blobs of real partials, not the fixed overhead alone
    assert m.fixed_ms_per_batch == 3 * ASSUMED_ROUND_TRIP_MS
    assert "assumed" in m.source
