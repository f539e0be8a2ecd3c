"""Builders for the boundary tests: reports, windows and DynamoDB tables on the moto server."""

from __future__ import annotations

import boto3
import pytest

from processors.core.types import Contributor, TopNReport, Window

SECRET = b"test-pseudonym-secret-0123456789"


def make_report(rule="errors-by-path", start=1_700_000_000, period=60, key_names=("status", "path"), rows=(), total=10_000):
    contributors = tuple(Contributor(tuple(k), float(v)) for k, v in rows)
    values = [c.value for c in contributors]
    return TopNReport(
        rule=rule,
        window=Window(start, start + period),
        key_names=tuple(key_names),
        aggregate_on="Count",
        contributors=contributors,
        unique_contributors=len(contributors),
        max_contributor_value=max(values, default=0.0),
        sample_count=int(sum(values)),
        sum=float(sum(values)),
        total_events=total,
    )


@pytest.fixture()
def report_factory():
    return make_report


def create_table(name: str) -> None:
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})


@pytest.fixture()
def tables(aws):
    """A state table (budgets) and an audit table on the session's moto server, fresh per test."""
    create_table("sieve-state")
    create_table("sieve-audit")
    return {"state": "sieve-state", "audit": "sieve-audit"}
