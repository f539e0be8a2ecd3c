"""SQS adapters: the RejectSink port (undecodable log records, kept with their reason).

Without a rejects queue the records go to the log instead (`LogRejectSink`), so none is ever dropped
silently: the README says raw data is kept only where it must be kept to lose nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from processors.adapters import aws
from processors.ports import TransientFailure

log = logging.getLogger("sieve.rejects")

#: SendMessageBatch takes at most 10 entries
SQS_BATCH = 10


class SqsRejectSink:
    def __init__(self, queue_url: str, *, client=None):
        self.queue_url = queue_url
        self.client = client or aws.client("sqs")

    @classmethod
    def named(cls, queue_name: str, region: str | None = None) -> "SqsRejectSink":
        client = aws.client("sqs", region)
        return cls(client.get_queue_url(QueueName=queue_name)["QueueUrl"], client=client)

    def send(self, rejects: Sequence[dict]) -> None:
        for i in range(0, len(rejects), SQS_BATCH):
            chunk = rejects[i:i + SQS_BATCH]
            try:
                resp = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=[
                    {"Id": str(j), "MessageBody": orjson.dumps(r).decode(),
                     "MessageAttributes": {
                         "reason": {"DataType": "String", "StringValue": r["reason"]},
                         "rejectId": {"DataType": "String", "StringValue": f"{r['shardId']}:{r['sequenceNumber']}"}}}
                    for j, r in enumerate(chunk)])
            except (ClientError, BotoCoreError) as exc:
                raise TransientFailure(f"rejects queue: {type(exc).__name__}: {str(exc)[:200]}") from exc
            if resp.get("Failed"):
                raise TransientFailure(f"rejects queue refused {len(resp['Failed'])} message(s): {resp['Failed'][0].get('Code')}")


class LogRejectSink:
    """No rejects queue configured: say so in the log for every rejected record (reason and position)."""

    def send(self, rejects: Sequence[dict]) -> None:
        for r in rejects:
            log.warning("rejected record (no rejects_queue configured)",
                        extra={k: r[k] for k in ("reason", "shardId", "sequenceNumber")})
