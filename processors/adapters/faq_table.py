"""The FAQ table as the crawler sees it (the core's `FaqStore` port): DynamoDB, conditional on content hashes.

Every crawled item carries `crawl_source` (the source's scope URL), `page_url` and `content_hash`
(processors/core/crawl.py). The writes are conditional, so that the table's stream (and so the index)
only ever sees real changes, and nothing else's items are touched:

* `put`: only if the id is new, or it belongs to this source and its hash differs. Equal content is
  not rewritten (no stream record); an id held by another source or written by hand (`sieve faq load`)
  is never overwritten ("claimed").
* `delete`: only if the item still belongs to this source with the hash this crawl read ("changed"
  otherwise: a concurrent crawl wrote it since).
* `held`: what the table holds for a source (a paginated Scan with a filter; the FAQ table is small and
  has no secondary index).

Throttling and unavailability become TransientFailure (the crawl of that source stops; the next run
picks up where the table is).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from processors.core.crawl import HeldEntry
from processors.ports import TransientFailure

_SER, _DE = TypeSerializer(), TypeDeserializer()


class DynamoFaqTable:
    def __init__(self, table: str, *, client, id_attribute: str = "id"):
        self.table, self.client, self.id_attribute = table, client, id_attribute
        self.writes = 0  # PutItem/DeleteItem calls that changed the table (tests, the summary)

    def held(self, source_key: str) -> dict[str, HeldEntry]:
        out: dict[str, HeldEntry] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "#src = :src",
            "ProjectionExpression": "#id, #page, #hash",
            "ExpressionAttributeNames": {"#src": "crawl_source", "#id": self.id_attribute, "#page": "page_url",
                                         "#hash": "content_hash"},
            "ExpressionAttributeValues": {":src": {"S": source_key}},
        }
        while True:
            resp = self._call("scan", **kwargs)
            for raw in resp.get("Items", []):
                item = {k: _DE.deserialize(v) for k, v in raw.items()}
                doc_id = item.get(self.id_attribute)
                if isinstance(doc_id, str):
                    out[doc_id] = HeldEntry(doc_id, str(item.get("page_url", "")), str(item.get("content_hash", "")))
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def put(self, item: Mapping[str, Any], *, source_key: str) -> str:
        try:
            self.client.put_item(
                TableName=self.table,
                Item={k: _SER.serialize(v) for k, v in item.items() if v is not None},
                ConditionExpression="attribute_not_exists(#id) OR (#src = :src AND #hash <> :hash)",
                ExpressionAttributeNames={"#id": self.id_attribute, "#src": "crawl_source", "#hash": "content_hash"},
                ExpressionAttributeValues={":src": {"S": source_key}, ":hash": {"S": str(item["content_hash"])}},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise TransientFailure(f"FAQ table {self.table}: PutItem failed: {_code(exc)}: {str(exc)[:200]}") from exc
            current = self._get(str(item[self.id_attribute]))
            if current is not None and current.get("crawl_source") == source_key:
                return "unchanged"
            return "claimed"
        except BotoCoreError as exc:
            raise TransientFailure(f"FAQ table {self.table}: PutItem failed: {type(exc).__name__}: {exc}") from exc
        self.writes += 1
        return "written"

    def delete(self, entry: HeldEntry, *, source_key: str) -> str:
        try:
            self.client.delete_item(
                TableName=self.table,
                Key={self.id_attribute: {"S": entry.id}},
                ConditionExpression="#src = :src AND #hash = :hash",
                ExpressionAttributeNames={"#src": "crawl_source", "#hash": "content_hash"},
                ExpressionAttributeValues={":src": {"S": source_key}, ":hash": {"S": entry.content_hash}},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise TransientFailure(f"FAQ table {self.table}: DeleteItem failed: {_code(exc)}: {str(exc)[:200]}") from exc
            return "gone" if self._get(entry.id) is None else "changed"
        except BotoCoreError as exc:
            raise TransientFailure(f"FAQ table {self.table}: DeleteItem failed: {type(exc).__name__}: {exc}") from exc
        self.writes += 1
        return "deleted"

    def _get(self, doc_id: str) -> dict[str, Any] | None:
        resp = self._call("get_item", TableName=self.table, Key={self.id_attribute: {"S": doc_id}}, ConsistentRead=True,
                          ProjectionExpression="#id, crawl_source, content_hash",
                          ExpressionAttributeNames={"#id": self.id_attribute})
        raw = resp.get("Item")
        return {k: _DE.deserialize(v) for k, v in raw.items()} if raw else None

    def _call(self, method: str, **kwargs):
        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            raise TransientFailure(f"FAQ table {self.table}: {method} failed: {_code(exc)}: {str(exc)[:200]}") from exc
        except BotoCoreError as exc:
            raise TransientFailure(f"FAQ table {self.table}: {method} failed: {type(exc).__name__}: {exc}") from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "?"))
