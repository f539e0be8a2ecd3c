"""DynamoDB Streams: INSERT / MODIFY / REMOVE events with images, partial failures, destination."""

from __future__ import annotations

import base64
import re

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

from tests.runtime.conftest import Recorder, drain_queue, make_queue, mapping, runner_for


@pytest.fixture()
def table(aws):
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="faq",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return ddb, ddb.describe_table(TableName="faq")["Table"]["LatestStreamArn"]


def test_insert_modify_remove_arrive_as_lambda_sends_them(table, store):
    ddb, stream_arn = table
    ddb.put_item(TableName="faq", Item={"pk": {"S": "q1"}, "n": {"N": "1"}, "blob": {"B": b"\x00\xff"}, "role": {"S": "ops"}})
    ddb.update_item(
        TableName="faq", Key={"pk": {"S": "q1"}}, UpdateExpression="SET n = :v", ExpressionAttributeValues={":v": {"N": "2"}}
    )
    ddb.delete_item(TableName="faq", Key={"pk": {"S": "q1"}})
    rec = Recorder()
    runner_for([mapping(rec, stream_arn, batch_size=10)], store).run_until_idle(10)

    [event] = rec.events
    records = event["Records"]
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    for r in records:
        assert r["eventVersion"] == "1.1"
        assert r["eventSource"] == "aws:dynamodb"
        assert r["awsRegion"] == "us-east-1"
        assert r["eventSourceARN"] == stream_arn
        assert r["eventID"]
        d = r["dynamodb"]
        assert d["Keys"] == {"pk": {"S": "q1"}}
        assert d["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(d["ApproximateCreationDateTime"], int)
        assert isinstance(d["SizeBytes"], int)
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs)
    insert, modify, remove = (r["dynamodb"] for r in records)
    assert "OldImage" not in insert and insert["NewImage"]["blob"] == {"B": base64.b64encode(b"\x00\xff").decode()}
    assert modify["OldImage"]["n"] == {"N": "1"} and modify["NewImage"]["n"] == {"N": "2"}
    assert "NewImage" not in remove and remove["OldImage"]["n"] == {"N": "2"}

    parsed = list(DynamoDBStreamEvent(event).records)
    # Lambda sends binary attributes base64-encoded; Powertools hands them on as that text
    assert base64.b64decode(parsed[0].dynamodb.new_image["blob"]) == b"\x00\xff"
    assert parsed[1].dynamodb.old_image["n"] == 1 and parsed[1].dynamodb.new_image["n"] == 2
    assert parsed[2].event_name.name == "REMOVE"
    model = DynamoDBStreamModel(**event)
    assert [r.eventName for r in model.Records] == ["INSERT", "MODIFY", "REMOVE"]


def test_partial_failure_uses_dynamodb_sequence_numbers(table, store):
    ddb, stream_arn = table
    for i in range(4):
        ddb.put_item(TableName="faq", Item={"pk": {"S": f"q{i}"}})

    def respond(event, n):
        if n == 1:
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][2]["dynamodb"]["SequenceNumber"]}]}
        return {}

    rec = Recorder(respond)
    runner_for([mapping(rec, stream_arn, function_response_types=("ReportBatchItemFailures",))], store).run_until_idle(10)
    first, second = rec.batches()
    assert len(first) == 4 and second == first[2:]


def test_exhausted_retries_send_ddb_stream_batch_info(table, sqs, store):
    ddb, stream_arn = table
    url, qarn = make_queue(sqs)
    ddb.put_item(TableName="faq", Item={"pk": {"S": "a"}})
    ddb.put_item(TableName="faq", Item={"pk": {"S": "b"}})
    rec = Recorder(lambda e, n: 1 / 0)
    runner_for([mapping(rec, stream_arn, maximum_retry_attempts=0, on_failure_destination=qarn)], store).run_until_idle(10)

    [msg] = drain_queue(sqs, url)
    assert "KinesisBatchInfo" not in msg
    info = msg["DDBStreamBatchInfo"]
    seqs = rec.batches()[0]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (seqs[0], seqs[1], 2)
    assert info["streamArn"] == stream_arn and info["shardId"].startswith("shardId-")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["approximateArrivalOfFirstRecord"])
    assert msg["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert msg["requestContext"]["approximateInvokeCount"] == 1


def test_latest_on_a_dynamodb_stream_skips_history_and_survives_a_restart(table, tmp_path, clock):
    from processors.runtime.checkpoints import JsonCheckpointStore

    ddb, stream_arn = table
    ddb.put_item(TableName="faq", Item={"pk": {"S": "history"}})
    # DynamoDB has no AT_TIMESTAMP: LATEST is resumed from TRIM_HORIZON, skipping records created
    # more than 1 s (its timestamps' resolution on AWS) before the mapping started, so "history"
    # must be older than that on the runner's clock.
    clock.advance(2)
    path = tmp_path / "cp.json"
    first = Recorder()
    runner_for([mapping(first, stream_arn, starting_position="LATEST")], JsonCheckpointStore(path), clock).run_until_idle(10)
    ddb.put_item(TableName="faq", Item={"pk": {"S": "while-down"}})

    second = Recorder()
    runner_for([mapping(second, stream_arn, starting_position="LATEST")], JsonCheckpointStore(path), clock).run_until_idle(10)
    assert first.events == []
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for ev in second.events for r in ev["Records"]]
    assert keys == ["while-down"]
