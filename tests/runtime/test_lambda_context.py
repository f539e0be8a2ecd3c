"""The context object is good enough for Powertools: Logger.inject_lambda_context and idempotency."""

from __future__ import annotations

import io
import json
import logging

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)

from processors.runtime.checkpoints import MemoryCheckpointStore
from tests.runtime.conftest import make_stream, mapping, put, runner_for


def test_powertools_logger_reads_the_context(kinesis, store):
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"x"])
    buf = io.StringIO()
    logger = Logger(service="sieve-test", logger_handler=logging.StreamHandler(buf))

    @logger.inject_lambda_context
    def handler(event, context):
        logger.info("batch", extra={"records": len(event["Records"])})
        return None

    report = runner_for([mapping(handler, arn, name="logs-fn", memory_size_mb=256)], store).run_until_idle(10)
    line = json.loads(buf.getvalue().splitlines()[-1])
    assert line["function_name"] == "logs-fn"
    assert line["function_memory_size"] == 256
    assert line["function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:logs-fn"
    assert line["function_request_id"] == report.invocations[0].request_id
    assert line["records"] == 1


def test_powertools_idempotency_works_with_the_context(kinesis, aws):
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    arn = make_stream(kinesis)
    put(kinesis, arn, [b"a", b"b"])
    bodies = []
    config = IdempotencyConfig(event_key_jmespath="Records[*].kinesis.sequenceNumber")

    @idempotent(persistence_store=DynamoDBPersistenceLayer(table_name="idempotency"), config=config)
    def handler(event, context):
        bodies.append(len(event["Records"]))
        return {"batchItemFailures": []}

    # two runners without shared checkpoints: the second re-delivers the same batch
    for _ in range(2):
        report = runner_for([mapping(handler, arn)], MemoryCheckpointStore()).run_until_idle(10)
        assert [i.outcome for i in report.invocations] == ["success"]
    assert bodies == [2], "the second delivery was answered from the idempotency record"
    items = ddb.scan(TableName="idempotency")["Items"]
    assert len(items) == 1 and items[0]["status"]["S"] == "COMPLETED"
