"""The ShardLister port on Kinesis: the open shards of a stream (ListShards, every page).

The finaliser asks on each scheduled run (one or two calls; ListShards allows 100 per second per
stream), so that its watermark waits for a shard that has flushed nothing yet. A closed shard (it has an
EndingSequenceNumber: a reshard split or merged it) is left out; whatever it flushed is in the state
table, and the watermark's idle rule lets it go. Vendor errors become TransientFailure; the finaliser
then falls back to the progress it has and says so in its log.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from processors.adapters import aws
from processors.ports import TransientFailure


class KinesisShardLister:
    def __init__(self, stream: str, *, client=None, region: str | None = None):
        self.stream = stream
        self._client = client
        self._region = region

    @property
    def client(self):
        if self._client is None:  # on first use: a run with flush, or a test building the finaliser, needs none
            self._client = aws.client("kinesis", self._region)
        return self._client

    def shards(self) -> list[str]:
        out: list[str] = []
        kwargs: dict = {"StreamName": self.stream}
        try:
            while True:
                page = self.client.list_shards(**kwargs)
                out += [s["ShardId"] for s in page.get("Shards", [])
                        if not s.get("SequenceNumberRange", {}).get("EndingSequenceNumber")]
                token = page.get("NextToken")
                if not token:
                    return out
                kwargs = {"NextToken": token}  # ListShards rejects the stream name together with a token
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise TransientFailure(f"kinesis ListShards {self.stream}: {code}: {str(exc)[:200]}") from exc
        except BotoCoreError as exc:
            raise TransientFailure(f"kinesis ListShards {self.stream}: {type(exc).__name__}: {str(exc)[:200]}") from exc
