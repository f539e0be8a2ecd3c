"""The JSON checkpoint store: round trip, atomic rewrite, clear errors on a bad file."""

from __future__ import annotations

import pytest

from processors.runtime.checkpoints import CheckpointError, JsonCheckpointStore, ShardCheckpoint


def test_checkpoints_survive_a_new_store_on_the_same_file(tmp_path):
    path = tmp_path / "nested" / "cp.json"
    store = JsonCheckpointStore(path)
    assert store.get("m", "shardId-0") is None and store.initialized_at("m") is None
    store.mark_initialized("m", 1764170000.5)
    store.put("m", "shardId-0", ShardCheckpoint("42", window_start=1764170000, window_state={"n": 2**70}))
    store.put("m", "shardId-1", ShardCheckpoint(None, drained=True))
    store.put("other", "shardId-0", ShardCheckpoint("7"))

    again = JsonCheckpointStore(path)
    assert again.get("m", "shardId-0") == ShardCheckpoint("42", False, 1764170000, {"n": 2**70})
    assert again.get("m", "shardId-1").drained is True
    assert again.get("other", "shardId-0").sequence_number == "7"
    assert again.initialized_at("m") == 1764170000.5
    assert [p.name for p in path.parent.iterdir()] == ["cp.json"], "no temp files left behind"


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 99, "mappings": {}}', b"[]"])
def test_a_file_not_written_by_the_runner_is_a_clear_error(tmp_path, content):
    path = tmp_path / "cp.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="Move it away"):
        JsonCheckpointStore(path)


def test_a_path_under_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CheckpointError, match="cannot read it"):
        JsonCheckpointStore(blocker / "cp.json")


def test_a_folder_that_cannot_be_created_is_a_clear_error(tmp_path):
    store = JsonCheckpointStore(tmp_path / "cp.json")
    store.path = tmp_path / "file" / "sub" / "cp.json"
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="cannot write it"):
        store.put("m", "s", ShardCheckpoint("1"))
