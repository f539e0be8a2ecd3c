"""The model file join refuses anything but the pinned bytes, and leaves nothing behind when it does."""

from __future__ import annotations

import hashlib
import os

import pytest

from processors.adapters import model_files as models
from processors.adapters.model_files import ModelFileError, ensure_qwen, join_parts


@pytest.fixture()
def fake_parts(tmp_path):
    """Three small part files whose concatenation has a known sha256."""
    chunks = [os.urandom(1000), os.urandom(70_000), b"tail" * 9]
    paths = []
    for i, data in enumerate(chunks, 1):
        p = tmp_path / "parts" / f"part0{i}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    return paths, b"".join(chunks)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("expected", ["right", "wrong", "reordered"])
def test_join_keeps_only_the_pinned_bytes(tmp_path, fake_parts, expected):
    paths, joined = fake_parts
    right = hashlib.sha256(joined).hexdigest()
    dest = tmp_path / "out" / "model.gguf"
    if expected == "right":
        assert join_parts(paths, dest, right) == dest
        assert dest.read_bytes() == joined
        assert _leftovers(dest.parent) == ["model.gguf", "model.gguf.sha256"]
        return
    parts = paths if expected == "wrong" else [paths[1], paths[0], paths[2]]
    sha = "0" * 64 if expected == "wrong" else right
    with pytest.raises(ModelFileError, match="sha256") as info:
        join_parts(parts, dest, sha)
    assert "Nothing was written" in str(info.value)
    assert _leftovers(dest.parent) == []  # no partial file, no stamp


def test_corrupted_part_is_refused(tmp_path, fake_parts):
    paths, joined = fake_parts
    right = hashlib.sha256(joined).hexdigest()
    data = bytearray(paths[1].read_bytes())
    data[500] ^= 0x01  # one flipped bit
    paths[1].write_bytes(bytes(data))
    dest = tmp_path / "out" / "model.gguf"
    with pytest.raises(ModelFileError, match=right):
        join_parts(paths, dest, right)
    assert not dest.exists()


def test_missing_part_names_the_file_and_the_fix(tmp_path, fake_parts):
    paths, joined = fake_parts
    paths[2].unlink()
    with pytest.raises(ModelFileError, match="part03.bin.*sieve models fetch"):
        join_parts(paths, tmp_path / "m.gguf", hashlib.sha256(joined).hexdigest())


def test_ensure_rebuilds_a_tampered_cache_from_the_parts(tmp_path, fake_parts, monkeypatch):
    paths, joined = fake_parts
    right = hashlib.sha256(joined).hexdigest()
    monkeypatch.setattr(models, "qwen_part_paths", lambda: list(paths))
    dest = tmp_path / "cache" / "m.gguf"
    assert ensure_qwen(dest, expected_sha256=right).read_bytes() == joined
    dest.write_bytes(b"tampered" + joined[8:])  # same size, new mtime: the stamp no longer matches
    assert ensure_qwen(dest, expected_sha256=right).read_bytes() == joined


def test_cache_location_follows_sieve_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIEVE_CACHE", str(tmp_path))
    assert models.default_qwen_path() == tmp_path / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


@pytest.mark.model
def test_installed_parts_join_to_the_pinned_qwen(qwen_path):
    assert qwen_path.stat().st_size == models.QWEN_SIZE
    assert models.sha256_file(qwen_path) == models.QWEN_SHA256
    with open(qwen_path, "rb") as fh:
        assert fh.read(4) == b"GGUF"
