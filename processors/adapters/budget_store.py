"""Budget counters in DynamoDB, reserved with conditional atomic updates.

Items (in the state table, `pk`/`sk` string keys by default, TTL attribute `expires_at`):

    pk="budget#day"     sk="2026-11-26"              tokens (reserved + settled), calls
    pk="budget#window"  sk="<rule>#<start>-<end>"    calls (analyses), tokens (actual)

A reservation is one `TransactWriteItems` with two conditional updates:
`ADD tokens :t` on the day item if `tokens <= limit - :t`, and `ADD calls :1` on the window item
if `calls < calls_per_window`. Either both apply or neither does, and DynamoDB evaluates each
condition atomically with its write, so two finalisers racing for the last tokens or the one
call of a window cannot both succeed. The reason for a refusal comes from the transaction's
cancellation reasons (which condition failed).
"""

from __future__ import annotations

import time

import boto3
from botocore.exceptions import ClientError

from processors.core.budget import BudgetConfig, BudgetExhausted, Reservation
from processors.errors import ServiceError

DAY_PK = "budget#day"
WINDOW_PK = "budget#window"


class DynamoDBBudgetStore:
    def __init__(
        self,
        table_name: str,
        *,
        client=None,
        partition_key: str = "pk",
        sort_key: str = "sk",
        ttl_attribute: str = "expires_at",
        ttl_days: int = 8,
        clock=time.time,
    ):
        self.table = table_name
        self.client = client or boto3.client("dynamodb")
        self.pk, self.sk, self.ttl = partition_key, sort_key, ttl_attribute
        self.ttl_seconds = ttl_days * 86400
        self.clock = clock

    def _key(self, pk: str, sk: str) -> dict:
        return {self.pk: {"S": pk}, self.sk: {"S": sk}}

    def reserve(self, *, day: str, window_id: str, tokens: int, config: BudgetConfig, new_call: bool) -> Reservation:
        if tokens > config.tokens_per_day:
            raise BudgetExhausted(f"tokens_per_day: {tokens} reserved > {config.tokens_per_day} on {day}")
        expires = str(int(self.clock()) + self.ttl_seconds)
        day_update = {
            "Update": {
                "TableName": self.table,
                "Key": self._key(DAY_PK, day),
                "UpdateExpression": "SET #ttl = if_not_exists(#ttl, :exp) ADD #tokens :t, #calls :one",
                "ConditionExpression": "attribute_not_exists(#tokens) OR #tokens <= :room",
                "ExpressionAttributeNames": {"#tokens": "tokens", "#calls": "calls", "#ttl": self.ttl},
                "ExpressionAttributeValues": {
                    ":t": {"N": str(tokens)},
                    ":one": {"N": "1"},
                    ":room": {"N": str(config.tokens_per_day - tokens)},
                    ":exp": {"N": expires},
                },
            }
        }
        # the conditions below pass on a counter's first write (attribute_not_exists), so a limit that no
        # first call can fit (calls_per_window: 0, or more tokens than a whole day allows) is checked here
        if new_call and config.calls_per_window <= 0:
            raise BudgetExhausted(f"calls_per_window: 0 of {config.calls_per_window} used for {window_id} (calls disabled)")
        if tokens > config.tokens_per_day:
            raise BudgetExhausted(f"tokens_per_day: {tokens} reserved > {config.tokens_per_day} on {day}")
        items = [day_update]
        if new_call:
            items.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": self._key(WINDOW_PK, window_id),
                        "UpdateExpression": "SET #ttl = if_not_exists(#ttl, :exp) ADD #calls :one",
                        "ConditionExpression": "attribute_not_exists(#calls) OR #calls < :max",
                        "ExpressionAttributeNames": {"#calls": "calls", "#ttl": self.ttl},
                        "ExpressionAttributeValues": {
                            ":one": {"N": "1"},
                            ":max": {"N": str(config.calls_per_window)},
                            ":exp": {"N": expires},
                        },
                    }
                }
            )
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code != "TransactionCanceledException":
                raise ServiceError(f"budget table {self.table}: reserving {tokens} tokens failed: {code}: {exc}") from exc
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            failed = [i for i, r in enumerate(reasons) if r == "ConditionalCheckFailed"]
            if not failed and "ConditionalCheckFailed" in str(exc):
                failed = [0] if not new_call else []
            if 1 in failed:
                used = self.window_usage(window_id)["calls"]
                raise BudgetExhausted(
                    f"calls_per_window: {used} of {config.calls_per_window} used for {window_id}"
                ) from None
            if 0 in failed:
                used = self.day_usage(day)["tokens"]
                raise BudgetExhausted(f"tokens_per_day: {used} used + {tokens} reserved > {config.tokens_per_day} on {day}") from None
            raise ServiceError(f"budget table {self.table}: transaction cancelled: {reasons or exc}") from exc
        return Reservation(day, window_id, tokens)

    def settle(self, reservation: Reservation, actual_tokens: int) -> None:
        delta = actual_tokens - reservation.tokens
        try:
            if delta:
                self.client.update_item(
                    TableName=self.table,
                    Key=self._key(DAY_PK, reservation.day),
                    UpdateExpression="ADD #tokens :d",
                    ExpressionAttributeNames={"#tokens": "tokens"},
                    ExpressionAttributeValues={":d": {"N": str(delta)}},
                )
            self.client.update_item(
                TableName=self.table,
                Key=self._key(WINDOW_PK, reservation.window_id),
                UpdateExpression="ADD #tokens :a",
                ExpressionAttributeNames={"#tokens": "tokens"},
                ExpressionAttributeValues={":a": {"N": str(actual_tokens)}},
            )
        except ClientError as exc:
            raise ServiceError(f"budget table {self.table}: settling {reservation} failed: {exc}") from exc

    def _get(self, pk: str, sk: str) -> dict[str, int]:
        try:
            item = self.client.get_item(TableName=self.table, Key=self._key(pk, sk), ConsistentRead=True).get("Item", {})
        except ClientError as exc:
            raise ServiceError(f"budget table {self.table}: read {pk}/{sk} failed: {exc}") from exc
        return {name: int(item[name]["N"]) if name in item else 0 for name in ("tokens", "calls")}

    def day_usage(self, day: str) -> dict[str, int]:
        return self._get(DAY_PK, day)

    def window_usage(self, window_id: str) -> dict[str, int]:
        return self._get(WINDOW_PK, window_id)
