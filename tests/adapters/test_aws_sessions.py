"""One boto3 session per container and settings (processors/adapters/aws.py; issue 13, cold start).

A new boto3 session reloads botocore's loaders, endpoint and service data; the finaliser's first
invocation used to build seven. These tests count `boto3.session.Session.__init__` calls on the real
handlers against the moto server, and check that a changed endpoint, keys or region still get a
session (and clients) for what is set now: tests and the fault harness move AWS_ENDPOINT_URL around.
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import boto3
import boto3.session
import pytest
import yaml
from botocore.config import Config as BotoConfig
from botocore.exceptions import EndpointConnectionError

from processors.adapters import aws as sieve_aws  # `aws` is the moto fixture (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def sessions_made(monkeypatch):
    """The boto3 sessions created from now on (the shared ones forgotten first)."""
    made: list[boto3.session.Session] = []
    init = boto3.session.Session.__init__

    def spy(self, *args, **kwargs):
        made.append(self)
        init(self, *args, **kwargs)

    sieve_aws.reset_sessions()
    monkeypatch.setattr(boto3.session.Session, "__init__", spy)
    yield made
    sieve_aws.reset_sessions()


@pytest.fixture()
def stack(aws, tmp_path, monkeypatch):
    """pipelines.yaml as shipped (the bedrock analyser, so the redaction secret and the model client are
    built too; no model is called: no window closes), its resources provisioned on moto."""
    from processors.config import load
    from processors.handlers import finaliser, logs
    from processors.runtime.provision import provision

    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    doc["pipelines"]["logs"]["rules"] = [str(ROOT / r) for r in doc["pipelines"]["logs"]["rules"]]
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv("SIEVE_CONFIG", str(path))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    provision(load(path).config, emulator=True)
    logs.reset_runtime()
    finaliser.reset_runtime()
    yield path
    logs.reset_runtime()
    finaliser.reset_runtime()


def kinesis_event(n: int) -> dict:
    now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/sieve-access-logs"
    return {"Records": [{
        "kinesis": {"partitionKey": str(i), "sequenceNumber": str(49590338271490256608559692538361571095921575989136588898 + i),
                    "data": base64.b64encode(f'192.0.2.{i} - - [{now}] "GET /api/x HTTP/1.1" 500 1 "-" "ua"'.encode()).decode(),
                    "approximateArrivalTimestamp": time.time()},
        "eventSource": "aws:kinesis", "eventID": f"shardId-000000000000:{i}", "eventSourceARN": arn} for i in range(n)]}


def test_first_invocations_of_finaliser_and_logs_processor_build_one_session(stack, sessions_made, aws):
    from processors.handlers import finaliser, logs
    from processors.runtime.lambda_context import LambdaContext
    from processors.runtime.mappings import scheduled_event

    # the finaliser first: no partial yet, so no window closes and no model or Slack call is made
    ctx = LambdaContext(function_name="logs-finaliser", timeout_seconds=300,
                        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:logs-finaliser")
    result = finaliser.handler(scheduled_event("logs-finaliser", "us-east-1", "123456789012"), ctx)
    assert result["finalised"] == []
    assert logs.handler(kinesis_event(20), None) == {"batchItemFailures": []}

    assert len(sessions_made) == 1, [type(s).__name__ for s in sessions_made]
    [shared] = sessions_made
    assert sieve_aws.session() is shared
    # the finaliser's clients (state, budget, audit, Slack failure queue, shard lister, model) came from
    # that session: the moto endpoint (the model's own endpoint_url from pipelines.yaml), one region
    fin = finaliser._finaliser.get()
    clients = {"state": fin.store.table.meta.client, "budget": fin.budget.client, "audit": fin.audit.client,
               "sqs": fin.notifier._sqs, "shards": fin.shards.client, "model": fin.analyser._client}
    assert {k: c.meta.endpoint_url for k, c in clients.items()} == {
        **{k: aws for k in clients}, "model": "http://127.0.0.1:4567"}
    assert {c.meta.region_name for c in clients.values()} == {"us-east-1"}
    assert fin.shards.shards() == ["shardId-000000000000", "shardId-000000000001"]
    # the logs processor wrote its cursor and partials through it
    ddb = boto3.client("dynamodb", endpoint_url=aws, region_name="us-east-1")
    assert ddb.get_item(TableName="sieve-state", Key={"pk": {"S": "cursor"}, "sk": {"S": "shardId-000000000000"}}).get("Item")
    assert any(i["pk"]["S"].startswith("partial#") for i in ddb.scan(TableName="sieve-state")["Items"])


def test_building_again_in_the_same_settings_makes_no_new_session(stack, sessions_made):
    from processors import wiring
    from processors.config import load

    loaded = load(stack)
    wiring.finaliser(loaded)
    wiring.logs_ingest(loaded)
    wiring.finaliser(loaded)
    assert len(sessions_made) == 1


def test_a_changed_endpoint_keys_or_region_get_a_session_for_them(aws, monkeypatch, sessions_made):
    from urllib.parse import urlsplit

    from tests.conftest import free_port

    first = sieve_aws.session()
    ddb = sieve_aws.client("dynamodb")
    assert ddb.meta.endpoint_url == aws
    ddb.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")

    # the same moto server under another name: a new session, its clients at the new endpoint, and they work
    other = f"http://localhost:{urlsplit(aws).port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", other)
    moved = sieve_aws.client("dynamodb")
    assert moved.meta.endpoint_url == other
    assert "t" in moved.list_tables()["TableNames"]
    assert sieve_aws.session() is not first

    # an endpoint where nothing listens: the request goes there (not to a cached endpoint) and fails
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    with pytest.raises(EndpointConnectionError, match=dead.split("//")[1]):
        sieve_aws.client("dynamodb", config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=2)).list_tables()

    # back to the first endpoint: the first session again, not a new one
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws)
    assert sieve_aws.session() is first and sieve_aws.client("dynamodb").meta.endpoint_url == aws

    # other keys: a session with those keys; another region: a session for that region
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "other-key")
    assert sieve_aws.session().get_credentials().access_key == "other-key"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    assert sieve_aws.session() is first
    assert sieve_aws.session("eu-west-1") is first  # AWS_REGION (us-east-1) wins over a config's region
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert sieve_aws.session().region_name == "eu-west-1"
    assert sieve_aws.client("sqs").meta.region_name == "eu-west-1"
    assert len(sessions_made) == 5  # first, localhost, the dead endpoint, other keys, eu-west-1


def test_threads_making_clients_at_once_share_one_session(aws, sessions_made):
    start = threading.Barrier(8)
    errors: list[BaseException] = []
    tables: list[list[str]] = []

    def work():
        try:
            start.wait(10)
            for _ in range(3):
                tables.append(sieve_aws.client("dynamodb").list_tables()["TableNames"])
                sieve_aws.session().resource("dynamodb").Table("x").table_name
                sieve_aws.client("sqs").list_queues()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert len(tables) == 24
    assert len(sessions_made) == 1
