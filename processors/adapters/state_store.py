"""The log pipeline's state in one DynamoDB table (pk, sk, expires_at TTL).

  pk                               sk                                what
  partial#<rule>#<window start>    <shard>#<first seq>#<last seq>    one shard's partial aggregate (zlib blob)
  open#<rule>                      <window start, 12 digits>         a window that has partials not yet finalised
  progress                         <shard>                           max event time flushed from that shard, and when;
                                                                     or, for a shard listed on the stream that has
                                                                     flushed nothing yet, only when it was first seen
  report#<rule>                    <window start, 12 digits>         the finalised TopNReport (JSON) and what was done
  selected#<rule>                  <contributor key>                 when a key was last selected, with its value
  cursor                           <shard>                           highest sequence number already counted
  thread#<rule>                    <incident id>                     the incident's Slack thread: channel, parent ts,
                                                                     windows posted, parent body (bot notifier)
  ack#<rule>                       <incident id>                     who acknowledged the incident's thread, when
  mute#<rule>                      <incident id>                     who muted the incident, when, until (TTL: until)

An incident id is `processors.core.incidents.incident_id(rule, key values)`. Thread and ack items
expire `ttl_seconds` after their write (the bot notifier: its incident gap plus a day); a mute when
it ends (and is ignored after `until` anyway, since DynamoDB's TTL deletes lazily).

Exactly-once counting per shard: a flush writes its partials and moves the shard's cursor in one
transaction, conditional on the cursor still being what the invocation read. Records at or below
the cursor are never counted again, whatever batch (retried, bisected, redelivered) carries them.

Partials are keyed by shard and sequence range and written with attribute_not_exists, so a
redelivered or retried flush can never count the same records twice. Reports are written once.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from processors.adapters import aws
from processors.core.batching import bounded_batches
from processors.core.records import report_from_dict
from processors.core.types import LastSelected, Partial, ShardProgress, StoredReport, TopNReport
from processors.ports import TransientFailure

if TYPE_CHECKING:  # the incident values are built only by the finaliser's and Slack's methods (cold start:
    from processors.core.incidents import Ack, Mute, Thread  # the logs processor never loads the Slack model)

SEQ_WIDTH = 64


def seq_key(seq: str) -> str:
    """Kinesis sequence numbers are decimal strings of varying length: pad so they sort."""
    return seq.rjust(SEQ_WIDTH, "0")


def window_key(start: int) -> str:
    return f"{start:012d}"


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _transient(method):
    """DynamoDB unavailable, throttled or missing: the caller's work is worth retrying as it is."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise TransientFailure(f"state table: {method.__name__} failed: {code}: {str(exc)[:200]}") from exc
        except BotoCoreError as exc:
            raise TransientFailure(f"state table: {method.__name__} failed: {type(exc).__name__}: {str(exc)[:200]}") from exc

    return wrapper


class StateStore:
    """The WindowStore port on DynamoDB (see the module docstring for the layout). Vendor errors
    become TransientFailure; values come back typed."""

    def __init__(self, table_name: str, *, ttl_days: int = 14, resource=None):
        self.table = (resource or aws.session().resource("dynamodb")).Table(table_name)
        self.ttl = ttl_days * 86400

    def _expiry(self) -> int:
        return int(time.time()) + self.ttl

    # --- exactly-once flush ------------------------------------------------------------------

    @_transient
    def cursor(self, shard: str) -> str | None:
        item = self.table.get_item(Key={"pk": "cursor", "sk": shard}, ConsistentRead=True).get("Item")
        return item["upto"] if item else None

    @_transient
    def flush(self, shard: str, expected_cursor: str | None, new_cursor: str, partials: Sequence[Partial],
              max_event_ms: int | None) -> bool:
        """Write `partials` and move the cursor, all or nothing. False if another invocation moved
        the cursor first (the caller fails the batch; the retry re-reads the cursor)."""
        client = self.table.meta.client
        name = self.table.name
        cond = ("attribute_not_exists(upto)" if expected_cursor is None else "upto = :expected")
        cursor_put = {"Update": {
            "TableName": name, "Key": {"pk": "cursor", "sk": shard},
            "UpdateExpression": "SET upto = :new, updated_at = :now",
            "ConditionExpression": cond,
            "ExpressionAttributeValues": {":new": seq_key(new_cursor), ":now": int(time.time()),
                                          **({":expected": expected_cursor} if expected_cursor is not None else {})},
        }}
        puts, opens = [], {}
        for p in partials:
            puts.append({"Put": {"TableName": name, "Item": self._partial_item(p),
                                 "ConditionExpression": "attribute_not_exists(pk)"}})
            opens[(p.rule, p.window_start)] = {"Put": {"TableName": name, "Item": {
                "pk": f"open#{p.rule}", "sk": window_key(p.window_start), "window_start": p.window_start,
                "expires_at": self._expiry()}}}
        chunks = list(bounded_batches(puts + list(opens.values()), max_items=99, max_bytes=3_500_000,
                                      size=lambda it: len(str(it))))
        # Every chunk but the last is idempotent on retry (same keys, same content) only if the
        # batch is retried unchanged; one chunk, the common case, is fully atomic with the cursor.
        for i, chunk in enumerate(chunks):
            items = chunk + ([cursor_put] if i == len(chunks) - 1 else [])
            try:
                client.transact_write_items(TransactItems=items)
            except client.exceptions.TransactionCanceledException as exc:
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if "ConditionalCheckFailed" in reasons:
                    return False
                raise
        if not chunks:
            client.transact_write_items(TransactItems=[cursor_put])
        if max_event_ms is not None:
            self.advance_progress(shard, max_event_ms)
        return True

    def _partial_item(self, p: Partial) -> dict:
        return {
            "pk": f"partial#{p.rule}#{window_key(p.window_start)}",
            "sk": f"{p.shard}#{seq_key(p.first_seq)}#{seq_key(p.last_seq)}",
            "rule": p.rule, "window_start": p.window_start, "shard": p.shard,
            "first_seq": p.first_seq, "last_seq": p.last_seq, "blob": p.blob, "samples": p.samples,
            "events": p.events, "flushed_at": p.flushed_at, "expires_at": self._expiry(),
        }

    # --- partials ---------------------------------------------------------------------------

    def put_partial(self, p: Partial) -> bool:
        """True if written, False if this exact shard+sequence range was already stored."""
        item = self._partial_item(p)
        try:
            self.table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
            written = True
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            written = False
        # The open marker is idempotent too (same key, same content).
        self.table.put_item(Item={"pk": f"open#{p.rule}", "sk": window_key(p.window_start),
                                  "window_start": p.window_start, "expires_at": self._expiry()})
        return written

    @_transient
    def partials(self, rule: str, window_start: int) -> list[Partial]:
        items = self._query(Key("pk").eq(f"partial#{rule}#{window_key(window_start)}"))
        return [Partial(rule, int(i["window_start"]), i["shard"], i["first_seq"], i["last_seq"], bytes(i["blob"]),
                        i.get("samples") or [], int(i["events"]), int(i["flushed_at"])) for i in items]

    @_transient
    def open_windows(self, rule: str) -> list[int]:
        return [int(i["window_start"]) for i in self._query(Key("pk").eq(f"open#{rule}"))]

    @_transient
    def close_window(self, rule: str, window_start: int) -> None:
        self.table.delete_item(Key={"pk": f"open#{rule}", "sk": window_key(window_start)})

    # --- progress (watermarks) --------------------------------------------------------------

    def advance_progress(self, shard: str, max_event_ms: int) -> None:
        """Move the shard's progress forward (never back); a "nothing flushed yet" record has no
        max_event_ms, so the first flush replaces it."""
        try:
            self.table.update_item(
                Key={"pk": "progress", "sk": shard},
                UpdateExpression="SET max_event_ms = :m, updated_at = :u",
                ConditionExpression="attribute_not_exists(max_event_ms) OR max_event_ms < :m",
                ExpressionAttributeValues={":m": max_event_ms, ":u": int(time.time())},
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise

    def progress(self) -> dict[str, int]:
        """Shards that have flushed something: their max event time."""
        return {i["sk"]: int(i["max_event_ms"]) for i in self._query(Key("pk").eq("progress")) if "max_event_ms" in i}

    @_transient
    def shard_progress(self) -> dict[str, ShardProgress]:
        return {i["sk"]: ShardProgress(int(i["max_event_ms"]) if "max_event_ms" in i else None, int(i["updated_at"]))
                for i in self._query(Key("pk").eq("progress"))}

    @_transient
    def register_shards(self, shards: Sequence[str], now: int) -> None:
        """A "nothing flushed yet" record per shard (updated_at: first seen), written only where the table
        has no progress item for it: a flush that got there first, or another finaliser's record, stays."""
        for shard in shards:
            try:
                self.table.put_item(Item={"pk": "progress", "sk": shard, "updated_at": int(now)},
                                    ConditionExpression="attribute_not_exists(pk)")
            except ClientError as exc:
                if not _conditional_failed(exc):
                    raise

    # --- reports ----------------------------------------------------------------------------

    @_transient
    def put_report(self, rule: str, window_start: int, document: dict) -> bool:
        try:
            self.table.put_item(
                Item={"pk": f"report#{rule}", "sk": window_key(window_start), **aws.to_ddb(document),
                      "expires_at": self._expiry()},
                ConditionExpression="attribute_not_exists(pk)",
            )
            return True
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise

    @_transient
    def mark_late(self, rule: str, window_start: int, *, late_events: int, late_partials: int) -> None:
        self._update_report(rule, window_start, late_events=late_events, late_partials=late_partials)

    def _update_report(self, rule: str, window_start: int, **fields: int) -> None:
        names = {f"#{k}": k for k in fields}
        values = {f":{k}": v for k, v in fields.items()}
        self.table.update_item(Key={"pk": f"report#{rule}", "sk": window_key(window_start)},
                               UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in fields),
                               ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def report(self, rule: str, window_start: int) -> dict | None:
        """The stored report item as DynamoDB holds it (for inspection; the port is `stored_report`)."""
        return self.table.get_item(Key={"pk": f"report#{rule}", "sk": window_key(window_start)}, ConsistentRead=True).get("Item")

    @_transient
    def stored_report(self, rule: str, window_start: int) -> StoredReport | None:
        item = self.report(rule, window_start)
        if item is None:
            return None
        doc = aws.from_ddb({k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")})
        return StoredReport(rule, window_start, report_from_dict(doc["topn"]), doc)

    @_transient
    def previous_reports(self, rule: str, *, before: int, limit: int) -> list[TopNReport]:
        return [report_from_dict(aws.from_ddb(i["topn"])) for i in self.reports(rule, before=before, limit=limit)]

    def reports(self, rule: str, *, before: int | None = None, limit: int = 10) -> list[dict]:
        """Stored report items, newest first (for inspection; the port is `previous_reports`)."""
        cond = Key("pk").eq(f"report#{rule}")
        if before is not None:
            cond = cond & Key("sk").lt(window_key(before))
        resp = self.table.query(KeyConditionExpression=cond, ScanIndexForward=False, Limit=limit, ConsistentRead=True)
        return resp.get("Items", [])

    # --- selection cooldowns ----------------------------------------------------------------

    @_transient
    def last_selected(self, rule: str) -> dict[tuple[str, ...], LastSelected]:
        return {tuple(json.loads(i["sk"])): LastSelected(int(i["at"]), float(i["value"]))
                for i in self._query(Key("pk").eq(f"selected#{rule}"))}

    @_transient
    def mark_selected(self, rule: str, selected: Mapping[tuple[str, ...], LastSelected]) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for key, last in selected.items():
                batch.put_item(Item={"pk": f"selected#{rule}", "sk": json.dumps(list(key)), "value": aws.to_ddb(last.value),
                                     "at": last.at, "expires_at": self._expiry()})

    # --- incidents (Slack threads, acks, mutes) ---------------------------------------------

    @_transient
    def thread(self, rule: str, incident: str) -> Thread | None:
        item = self.table.get_item(Key={"pk": f"thread#{rule}", "sk": incident}, ConsistentRead=True).get("Item")
        if item is None:
            return None
        from processors.core.incidents import Thread

        return Thread(item["channel"], item["ts"], int(item["first_window"]), int(item["last_window"]),
                      int(item["last_window_end"]), int(item["windows"]), float(item["last_value"]),
                      json.loads(item.get("parent") or "{}"))

    @_transient
    def put_thread(self, rule: str, incident: str, thread: Thread, *, ttl_seconds: int) -> None:
        self.table.put_item(Item={
            "pk": f"thread#{rule}", "sk": incident, "channel": thread.channel, "ts": thread.ts,
            "first_window": thread.first_window, "last_window": thread.last_window,
            "last_window_end": thread.last_window_end, "windows": thread.windows,
            "last_value": aws.to_ddb(float(thread.last_value)), "parent": json.dumps(thread.parent, ensure_ascii=False),
            "updated_at": int(time.time()), "expires_at": int(time.time()) + ttl_seconds})

    @_transient
    def ack(self, rule: str, incident: str) -> Ack | None:
        from processors.core.incidents import Ack

        item = self.table.get_item(Key={"pk": f"ack#{rule}", "sk": incident}, ConsistentRead=True).get("Item")
        return None if item is None else Ack(item["by"], int(item["at"]), item.get("thread_ts", ""), item.get("by_name", ""))

    @_transient
    def put_ack(self, rule: str, incident: str, ack: Ack, *, ttl_seconds: int) -> None:
        self.table.put_item(Item={"pk": f"ack#{rule}", "sk": incident, "by": ack.by, "by_name": ack.by_name,
                                  "at": ack.at, "thread_ts": ack.thread_ts, "expires_at": ack.at + ttl_seconds})

    @_transient
    def mutes(self, rule: str) -> dict[str, Mute]:
        """Every mute of the rule's incidents by incident id (expired ones too: `core.incidents.muted` decides)."""
        from processors.core.incidents import Mute

        return {i["sk"]: Mute(i["by"], int(i["at"]), int(i["until"]), i.get("by_name", ""))
                for i in self._query(Key("pk").eq(f"mute#{rule}"))}

    @_transient
    def put_mute(self, rule: str, incident: str, mute: Mute) -> None:
        self.table.put_item(Item={"pk": f"mute#{rule}", "sk": incident, "by": mute.by, "by_name": mute.by_name,
                                  "at": mute.at, "until": mute.until, "expires_at": mute.until})

    # --- helpers ----------------------------------------------------------------------------

    def _query(self, cond) -> list[dict]:
        out, kw = [], {"KeyConditionExpression": cond, "ConsistentRead": True}
        while True:
            resp = self.table.query(**kw)
            out.extend(resp.get("Items", []))
            if "LastEvaluatedKey" not in resp:
                return out
            kw["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

