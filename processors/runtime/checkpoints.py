"""Where the local runner remembers how far each mapping has got in each shard.

A checkpoint is what Lambda's poller keeps per (event source mapping, shard): the last sequence
number whose batch is finished (processed, or handed to the failure destination), whether a closed
shard is drained, and, with tumbling windows, the open window and its state. The state and the
sequence number are written together, so a restart never pairs a state with the wrong position.

`JsonCheckpointStore` keeps everything in one small JSON file and rewrites it atomically on every
change (temp file in the same folder, fsync, `os.replace`, fsync of the folder), so a runner killed
at any instant leaves either the old file or the new one, never a torn one. `MemoryCheckpointStore`
is the same thing without a file, for a runner whose progress need not survive it.

Checkpoints belong to one incarnation of a stream (`StreamIncarnation`: its ARN and, for Kinesis,
its creation time; a DynamoDB stream's ARN carries its own label). A stream deleted and created
again under the same name has the same ARN but new shards whose sequence numbers start over, so a
checkpoint of the old one would skip the new records. The runner calls `bind(mapping, incarnation)`
before it reads the mapping's checkpoints: checkpoints written for another incarnation, or for no
known one (a file from before incarnations were recorded), are dropped, with the reason.

File layout (version 1; "source" may be missing in older files)::

    {"version": 1,
     "mappings": {"<mapping name>": {"initialized_at": 1764170000.123,
                                      "source": {"arn": "arn:aws:kinesis:...:stream/logs",
                                                 "created": 1764169000.5},
                                      "shards": {"shardId-000000000000": {
                                          "sequence_number": "42", "drained": false,
                                          "window": {"start": 1764170040, "state": {...}} }}}}}
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import json

from processors.errors import SieveError

FORMAT_VERSION = 1


class CheckpointError(SieveError):
    """The checkpoint file cannot be read or written."""


@dataclass(frozen=True, slots=True)
class ShardCheckpoint:
    """Progress of one mapping in one shard.

    `sequence_number` is the last record that needs no more work (None: nothing done yet).
    `drained` marks a closed shard read to its end, so its children may start.
    `window_start` / `window_state` are the open tumbling window (None: no window open).
    """

    sequence_number: str | None = None
    drained: bool = False
    window_start: int | None = None
    window_state: Any = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sequence_number": self.sequence_number, "drained": self.drained}
        if self.window_start is not None:
            out["window"] = {"start": self.window_start, "state": self.window_state}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardCheckpoint:
        window = data.get("window") or {}
        seq = data.get("sequence_number")
        return cls(
            sequence_number=None if seq is None else str(seq),
            drained=bool(data.get("drained", False)),
            window_start=window.get("start"),
            window_state=window.get("state"),
        )


@dataclass(frozen=True, slots=True)
class StreamIncarnation:
    """Which stream checkpoints belong to: its ARN and its creation time (epoch seconds; Kinesis
    StreamCreationTimestamp; None where the ARN says it, as a DynamoDB stream's label does)."""

    arn: str
    created: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"arn": self.arn, "created": self.created}

    @classmethod
    def from_json(cls, data: Any) -> StreamIncarnation | None:
        if not isinstance(data, dict) or not isinstance(data.get("arn"), str):
            return None
        created = data.get("created")
        return cls(data["arn"], None if created is None else float(created))

    def describe(self) -> str:
        if self.created is None:
            return self.arn
        from datetime import datetime, timezone

        when = datetime.fromtimestamp(self.created, timezone.utc).isoformat(timespec="milliseconds")
        return f"{self.arn} created {when}"


class CheckpointStore(Protocol):
    def get(self, mapping: str, shard_id: str) -> ShardCheckpoint | None: ...

    def put(self, mapping: str, shard_id: str, checkpoint: ShardCheckpoint) -> None: ...

    def initialized_at(self, mapping: str) -> float | None:
        """When the mapping first started polling (None: never). LATEST is resolved against it."""

    def mark_initialized(self, mapping: str, at: float) -> None: ...

    def bind(self, mapping: str, source: StreamIncarnation) -> str | None:
        """Tie the mapping's checkpoints to `source`; drop them (shards and `initialized_at`) when
        they were written for another incarnation or an unknown one. Returns why they were
        dropped, None when they were kept (or there were none)."""


@dataclass
class MemoryCheckpointStore:
    """Checkpoints in a dict: the runner's progress ends with the process."""

    data: dict[str, Any] = field(default_factory=lambda: {"version": FORMAT_VERSION, "mappings": {}})

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def _mapping(self, mapping: str) -> dict[str, Any]:
        return self.data["mappings"].setdefault(mapping, {"initialized_at": None, "shards": {}})

    def get(self, mapping: str, shard_id: str) -> ShardCheckpoint | None:
        with self._lock:
            raw = self.data["mappings"].get(mapping, {}).get("shards", {}).get(shard_id)
        return None if raw is None else ShardCheckpoint.from_json(raw)

    def put(self, mapping: str, shard_id: str, checkpoint: ShardCheckpoint) -> None:
        with self._lock:
            self._mapping(mapping)["shards"][shard_id] = checkpoint.to_json()
            self._persist()

    def initialized_at(self, mapping: str) -> float | None:
        with self._lock:
            return self.data["mappings"].get(mapping, {}).get("initialized_at")

    def mark_initialized(self, mapping: str, at: float) -> None:
        with self._lock:
            self._mapping(mapping)["initialized_at"] = at
            self._persist()

    def bind(self, mapping: str, source: StreamIncarnation) -> str | None:
        with self._lock:
            entry = self.data["mappings"].get(mapping)
            if entry is not None and StreamIncarnation.from_json(entry.get("source")) == source:
                return None
            had = entry is not None and bool(entry.get("shards") or entry.get("initialized_at") is not None)
            why = None
            if had:
                old = StreamIncarnation.from_json(entry.get("source"))
                why = (f"its checkpoints were written for {old.describe()}, not for {source.describe()}" if old else
                       f"its checkpoints name no stream (written before checkpoints recorded theirs), so they "
                       f"cannot be tied to {source.describe()}")
            self.data["mappings"][mapping] = {"initialized_at": None, "source": source.to_json(), "shards": {}}
            self._persist()
            return why

    def all(self) -> dict[str, dict[str, ShardCheckpoint]]:
        """Every checkpoint, by mapping then shard (for `sieve` status output and tests)."""
        with self._lock:
            return {
                name: {sid: ShardCheckpoint.from_json(raw) for sid, raw in m.get("shards", {}).items()}
                for name, m in self.data["mappings"].items()
            }

    def _persist(self) -> None:  # the in-memory store has nothing to write
        pass


class JsonCheckpointStore(MemoryCheckpointStore):
    """Checkpoints in one JSON file, rewritten atomically on every change."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        super().__init__(data=self._load(self.path))

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {"version": FORMAT_VERSION, "mappings": {}}
        except OSError as exc:
            raise CheckpointError(f"checkpoint file {path}: cannot read it ({exc}); check its permissions") from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise CheckpointError(
                f"checkpoint file {path}: not valid JSON ({exc}); it was not written by sieve's runner. "
                "Move it away to start the mappings from their StartingPosition again"
            ) from exc
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or not isinstance(
            data.get("mappings"), dict
        ):
            raise CheckpointError(
                f"checkpoint file {path}: expected {{'version': {FORMAT_VERSION}, 'mappings': {{...}}}}, "
                f"found {str(data)[:80]!r}. Move it away to start the mappings from their StartingPosition again"
            )
        return data

    def _persist(self) -> None:
        # stdlib json: window state may hold integers wider than 64 bits, which orjson refuses
        payload = json.dumps(self.data, indent=2, sort_keys=True).encode()
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise CheckpointError(f"checkpoint file {self.path}: cannot write it ({exc}); check the folder") from exc
