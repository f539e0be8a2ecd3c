"""Fuzzing DynamoDB stream records of the FAQ table (processors/core/faq.py plan_change / from_ddb,
processors/core/faq_index.py FaqIndexer as handlers/faq.py runs it): mutated INSERT / MODIFY / REMOVE
records with attribute values of every (and no) DynamoDB type. Every record is planned without raising,
rejections and unrouted records are counted, writes match the plans; plus the Decimal round trip of
adapters/aws.py (to_ddb / from_ddb)."""

from __future__ import annotations

import pytest
from hypothesis import given

from processors.core.faq import ImageError, from_ddb, plan_change
from processors.core.faq_index import FaqIndexer, FaqRouting, sequence_of
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import DDB, ROLES, FakeEmbedder, FakeIndex


@fuzz_settings(120)
@given(DDB.strategy())
def test_ddb_fuzz(arg):
    DDB.check(arg)


def _record(new_image=None, ddb_extra=None, **top):
    image = {"id": {"S": "q1"}, "question": {"S": "Why?"}, "answer": {"S": "Because."}, "role": {"S": "public"},
             "source_url": {"S": "https://example.com/faq"}, "updated_at": {"S": "2024-05-01T12:00:00Z"}}
    image.update(new_image or {})
    ddb = {"ApproximateCreationDateTime": 1_714_564_800, "Keys": {"id": {"S": "q1"}}, "NewImage": image,
           "SequenceNumber": "100000000000000000001"}
    ddb.update(ddb_extra or {})
    return {"eventID": "e1", "eventName": "INSERT", "dynamodb": ddb, **top}


@pytest.mark.parametrize("value", [{"M": 5}, {"L": 5}, {"SS": 5}, {"NS": ["1", "x"]}, {"NS": ["NaN", "1"]}, {"M": [1, 2]}])
def test_regression_malformed_collection_attribute_is_a_rejection(value):
    """Found by the fuzzer: `{"M": 5}`, `{"NS": ["x"]}` ... raised TypeError / InvalidOperation out of
    plan_change, which FaqIndexer.prepare calls for the whole batch: one bad record failed every retry."""
    with pytest.raises(ImageError):
        from_ddb(value)
    plan = plan_change(_record({"answer": value}), ROLES)
    assert plan.rejection is not None and plan.delete == frozenset(ROLES) and not plan.upsert


@pytest.mark.parametrize("ts", [float("nan"), float("inf")])
def test_regression_non_finite_creation_time_is_a_rejection(ts):
    plan = plan_change(_record(ddb_extra={"ApproximateCreationDateTime": ts}), ROLES)
    assert plan.rejection is not None and plan.version is None


def test_regression_dynamodb_that_is_not_an_object_does_not_sink_the_batch():
    """Found by the fuzzer: `"dynamodb": [...]` made sequence_of raise AttributeError in prepare()."""
    bad = {"eventID": "e2", "eventName": "INSERT", "dynamodb": [1, 2]}
    assert sequence_of(bad) == ""
    indexer = FaqIndexer(FaqRouting(ROLES), FakeEmbedder(), FakeIndex())
    good = _record()
    batch = indexer.prepare([bad, good])
    for r in (bad, good):
        indexer.apply(batch, r)
    assert batch.counters["rejected"] == 1 and batch.counters["upsert_ok"] == 2  # the public and staff indexes
