"""Audit records of model calls, in DynamoDB.

One item per model call (`AuditRecord`), in the audit table (`pk`/`sk` string keys by default,
TTL attribute `expires_at`, which DynamoDB uses to delete old records):

    pk = "audit"   sk = audit_id = "<created epoch ms, 13 digits>-<8 hex>"

so records sort by time and `list` is one Query, newest first, with no scan. The write rate is
bounded by the model budgets (a few calls a minute), far below one partition's limits.
Each record holds the redacted prompt exactly as sent and its sha256, so "what did the model
see?" is answered from here, never from logs.
"""

from __future__ import annotations

import dataclasses
import logging

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from processors.adapters.aws import from_ddb, to_ddb
from processors.core.types import AuditRecord
from processors.errors import ServiceError, SieveError

PARTITION = "audit"
_ser, _de = TypeSerializer(), TypeDeserializer()


class AuditTableMissing(SieveError):
    pass


class DynamoDBAuditStore:
    """Implements the boundary's AuditSink, plus reading for `sieve audit`."""

    def __init__(self, table_name: str, *, client=None, partition_key: str = "pk", sort_key: str = "sk"):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")
        self.pk, self.sk = partition_key, sort_key

    def _call(self, what: str, fn, **kwargs):
        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                raise AuditTableMissing(
                    f"audit table {self.table!r} does not exist at {self.client.meta.endpoint_url}. "
                    "Create it (`sieve up` creates the tables in pipelines.yaml) or point SIEVE_AUDIT_TABLE / --table at it."
                ) from None
            raise ServiceError(f"audit table {self.table}: {what} failed: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise ServiceError(f"audit table {self.table}: {what} failed: {exc}") from exc

    def record(self, record: AuditRecord) -> None:
        data = dataclasses.asdict(record)
        item = {self.pk: PARTITION, self.sk: record.audit_id, **data}
        self._call(
            f"writing {record.audit_id}",
            self.client.put_item,
            TableName=self.table,
            Item={k: _ser.serialize(to_ddb(v)) for k, v in item.items()},
        )

    def _decode(self, item: dict) -> dict:
        out = {k: from_ddb(_de.deserialize(v)) for k, v in item.items()}
        out.pop(self.pk, None)
        out.pop(self.sk, None)
        return out

    def get(self, audit_id: str) -> dict | None:
        resp = self._call(
            f"reading {audit_id}",
            self.client.get_item,
            TableName=self.table,
            Key={self.pk: {"S": PARTITION}, self.sk: {"S": audit_id}},
            ConsistentRead=True,
        )
        return self._decode(resp["Item"]) if "Item" in resp else None

    def list(self, *, rule: str | None = None, since: float | None = None, limit: int = 20) -> list[dict]:
        """Newest first. `since` is epoch seconds; `rule` filters on the record's rule."""
        cond = "#pk = :pk"
        values: dict = {":pk": {"S": PARTITION}}
        names = {"#pk": self.pk}
        if since is not None:
            cond += " AND #sk >= :since"
            names["#sk"] = self.sk
            values[":since"] = {"S": f"{int(since * 1000):013d}"}
        kwargs: dict = {
            "TableName": self.table,
            "KeyConditionExpression": cond,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
        }
        if rule is not None:
            kwargs["FilterExpression"] = "#rule = :rule"
            names["#rule"] = "rule"
            values[":rule"] = {"S": rule}
        out: list[dict] = []
        while len(out) < limit:
            resp = self._call("listing records", self.client.query, **kwargs)
            out += [self._decode(i) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return out[:limit]


class LogAuditSink:
    """The AuditSink when no audit table is configured: the record goes to the log (already redacted
    text only; the prompt itself is not logged, its hash is)."""

    def record(self, record: AuditRecord) -> None:
        logging.getLogger("sieve.audit").info(
            "model call", extra={"audit_id": record.audit_id, "status": record.status,
                                 "prompt_sha256": record.prompt_sha256, "tokens_in": record.tokens_in})
