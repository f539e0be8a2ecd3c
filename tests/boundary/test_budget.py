"""Budgets: the estimate, the per-call limit, and atomic reservations against the real moto server."""

from __future__ import annotations

import threading

import boto3
import pytest

from processors.adapters.budget_store import DynamoDBBudgetStore
from processors.core.budget import (
    BudgetConfig,
    BudgetExhausted,
    InMemoryBudgetLedger,
    estimate_tokens,
    per_call_refusal,
    utc_day,
)
from processors.errors import ConfigError


def test_estimate_is_bytes_over_three_rounded_up_or_the_tokenizer():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 2  # 4 bytes / 3
    assert estimate_tokens("日本") == 2  # 6 UTF-8 bytes
    assert estimate_tokens("abcdef", bytes_per_token=4) == 2
    assert estimate_tokens("one two three", tokenizer=lambda s: len(s.split())) == 3


def test_per_call_limit_and_config_checks():
    cfg = BudgetConfig(tokens_per_call=1000, max_output_tokens=300)
    assert per_call_refusal(700, cfg) is None
    assert per_call_refusal(701, cfg) == "tokens_per_call: estimated 701 prompt + 300 output = 1001 > 1000"
    with pytest.raises(ConfigError, match="must exceed max_output_tokens"):
        BudgetConfig(tokens_per_call=200, max_output_tokens=300)
    assert utc_day(86400 * 365) == "1971-01-01"


@pytest.mark.parametrize("ledger_kind", ["memory", "dynamodb"])
def test_reserve_settle_and_refusals(ledger_kind, request):
    if ledger_kind == "dynamodb":
        tables = request.getfixturevalue("tables")
        ledger = DynamoDBBudgetStore(tables["state"], client=boto3.client("dynamodb"))
    else:
        ledger = InMemoryBudgetLedger()
    cfg = BudgetConfig(tokens_per_call=1000, calls_per_window=1, tokens_per_day=2000, max_output_tokens=100)
    r = ledger.reserve(day="2026-11-26", window_id="rule#1-2", tokens=900, config=cfg, new_call=True)
    with pytest.raises(BudgetExhausted, match=r"calls_per_window: 1 of 1 used for rule#1-2"):
        ledger.reserve(day="2026-11-26", window_id="rule#1-2", tokens=10, config=cfg, new_call=True)
    retry = ledger.reserve(day="2026-11-26", window_id="rule#1-2", tokens=900, config=cfg, new_call=False)  # a retry
    with pytest.raises(BudgetExhausted, match=r"tokens_per_day: 1800 used \+ 900 reserved > 2000 on 2026-11-26"):
        ledger.reserve(day="2026-11-26", window_id="rule#3-4", tokens=900, config=cfg, new_call=True)
    ledger.settle(r, 400)
    ledger.settle(retry, 350)  # actual usage replaces the estimates: 750 used
    ledger.reserve(day="2026-11-26", window_id="rule#3-4", tokens=900, config=cfg, new_call=True)
    ledger.reserve(day="2026-11-27", window_id="rule#5-6", tokens=900, config=cfg, new_call=True)  # a new day
    if ledger_kind == "dynamodb":
        assert ledger.day_usage("2026-11-26") == {"tokens": 1650, "calls": 3}
        assert ledger.window_usage("rule#1-2") == {"tokens": 750, "calls": 1}
        item = boto3.client("dynamodb").get_item(TableName="sieve-state", Key={"pk": {"S": "budget#day"}, "sk": {"S": "2026-11-26"}})
        assert int(item["Item"]["expires_at"]["N"]) > 0  # TTL set
    else:
        assert ledger.day_tokens["2026-11-26"] == 1650 and ledger.window_calls["rule#1-2"] == 1


def test_a_refused_transaction_changes_nothing(tables):
    store = DynamoDBBudgetStore(tables["state"], client=boto3.client("dynamodb"))
    cfg = BudgetConfig(tokens_per_call=1000, calls_per_window=1, tokens_per_day=1000, max_output_tokens=100)
    store.reserve(day="d", window_id="w1", tokens=600, config=cfg, new_call=True)
    with pytest.raises(BudgetExhausted):
        store.reserve(day="d", window_id="w2", tokens=600, config=cfg, new_call=True)  # day refuses
    assert store.window_usage("w2") == {"tokens": 0, "calls": 0}  # the window's call was not taken either
    assert store.day_usage("d") == {"tokens": 600, "calls": 1}


def test_racing_finalisers_with_the_same_stale_view_cannot_both_spend(tables):
    """Two finalisers both read the day's usage (1200 of 1500) and both decide 300 more tokens fit.
    A read-then-write ledger would let both through (1800 > 1500). The conditional ADD is evaluated by
    DynamoDB at write time, so the second one is refused whatever it read before.

    (This is sequenced rather than threaded on purpose: moto's server handles requests in parallel
    threads without serialising a table's writes, so a threaded race against moto measures moto, not
    this code: in 1 of 5 runs of 16 threads, 6 reservations answered OK where 5 fit, and the table then
    held only 5 (moto snapshots and restores a table around a transaction). Real DynamoDB applies each
    conditional write atomically.)"""
    cfg = BudgetConfig(tokens_per_call=1000, calls_per_window=1, tokens_per_day=1500, max_output_tokens=100)
    client = boto3.client("dynamodb")
    a, b = DynamoDBBudgetStore(tables["state"], client=client), DynamoDBBudgetStore(tables["state"], client=client)
    a.reserve(day="d", window_id="w0", tokens=1200, config=cfg, new_call=True)
    seen_by_a, seen_by_b = a.day_usage("d")["tokens"], b.day_usage("d")["tokens"]
    assert seen_by_a == seen_by_b == 1200 and 1200 + 300 <= cfg.tokens_per_day  # both think it fits
    a.reserve(day="d", window_id="wa", tokens=300, config=cfg, new_call=True)
    with pytest.raises(BudgetExhausted, match="tokens_per_day: 1500 used"):
        b.reserve(day="d", window_id="wb", tokens=300, config=cfg, new_call=True)
    # the same for the one call of a shared window
    a.reserve(day="e", window_id="shared", tokens=10, config=cfg, new_call=True)
    with pytest.raises(BudgetExhausted, match="calls_per_window: 1 of 1"):
        b.reserve(day="e", window_id="shared", tokens=10, config=cfg, new_call=True)
    assert a.day_usage("d") == {"tokens": 1500, "calls": 2}


def test_in_memory_ledger_under_threads_never_overspends():
    cfg = BudgetConfig(tokens_per_call=1000, calls_per_window=1, tokens_per_day=5 * 300, max_output_tokens=100)
    ledger = InMemoryBudgetLedger()
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def finaliser(i: int) -> None:
        barrier.wait()
        try:
            ledger.reserve(day="d", window_id="shared" if i < 4 else f"w{i}", tokens=300, config=cfg, new_call=True)
            results.append(True)
        except BudgetExhausted:
            results.append(False)

    threads = [threading.Thread(target=finaliser, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results.count(True) == 5 and ledger.day_tokens["d"] == 1500 and ledger.window_calls.get("shared", 0) <= 1


@pytest.mark.parametrize("ledger_kind", ["memory", "dynamodb"])
def test_a_limit_no_first_call_fits_refuses_the_first_call(ledger_kind, request):
    """calls_per_window: 0 disables calls, and a day's first reservation may not exceed the whole day: both
    hold on a counter's very first write too (DynamoDB's attribute_not_exists condition let them through)."""
    if ledger_kind == "dynamodb":
        ledger = DynamoDBBudgetStore(request.getfixturevalue("tables")["state"], client=boto3.client("dynamodb"))
    else:
        ledger = InMemoryBudgetLedger()
    off = BudgetConfig(tokens_per_call=1000, calls_per_window=0, tokens_per_day=2000, max_output_tokens=100)
    with pytest.raises(BudgetExhausted, match="calls_per_window"):
        ledger.reserve(day="2026-11-26", window_id="rule#1-2", tokens=10, config=off, new_call=True)
    small_day = BudgetConfig(tokens_per_call=1000, calls_per_window=1, tokens_per_day=500, max_output_tokens=100)
    with pytest.raises(BudgetExhausted, match="tokens_per_day"):
        ledger.reserve(day="2026-11-27", window_id="rule#3-4", tokens=900, config=small_day, new_call=True)
    if ledger_kind == "dynamodb":
        assert ledger.day_usage("2026-11-26") == {"tokens": 0, "calls": 0}
        assert ledger.window_usage("rule#3-4") == {"tokens": 0, "calls": 0}
