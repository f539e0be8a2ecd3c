"""The llama.cpp adapter (LlamaChat, in process) and the Lambda handler, with the real Qwen model."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from processors.adapters.llama import LlamaChat
from processors.adapters.model_files import QWEN_MODEL_ID
from processors.ports import Analyser, ModelCallError

pytestmark = pytest.mark.model

# CPU features each x86 variant is compiled for (vendor/llama.cpp/ggml/src/CMakeLists.txt), as /proc/cpuinfo names them.
_BASE = {"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"}
_AVX512 = _BASE | {"avx512f"}
_NEEDS = {
    "x64": set(),
    "sse42": {"sse4_2"},
    "sandybridge": {"sse4_2", "avx"},
    "ivybridge": {"sse4_2", "avx", "f16c"},
    "piledriver": {"sse4_2", "avx", "f16c", "fma"},
    "haswell": _BASE,
    "skylakex": _AVX512,
    "cannonlake": _AVX512 | {"avx512vbmi"},
    "cascadelake": _AVX512 | {"avx512_vnni"},
    "icelake": _AVX512 | {"avx512vbmi", "avx512_vnni"},
    "cooperlake": _AVX512 | {"avx512_vnni", "avx512_bf16"},
    "zen4": _AVX512 | {"avx512vbmi", "avx512_vnni", "avx512_bf16"},
    "alderlake": _BASE | {"avx_vnni"},
    "sapphirerapids": _AVX512 | {"avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"},
}


def test_variant_log_line_names_a_variant_this_cpu_can_run(tmp_path):
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stderr)\n"
        "from processors.adapters.llama import load_cpu_backends, loaded_cpu_variant\n"
        "v = load_cpu_backends()\n"
        "assert load_cpu_backends() == v == loaded_cpu_variant(), (v, loaded_cpu_variant())\n"
        "print(v)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "llama.cpp CPU backend:" in line]
    assert len(lines) == 1, proc.stderr  # logged once, even when called twice
    match = re.search(r"CPU backend: libggml-cpu-(\w+)\.so \(of (\d+) variants\)", lines[0])
    assert match, lines[0]
    variant, count = match.group(1), int(match.group(2))
    assert proc.stdout.strip() == f"libggml-cpu-{variant}.so"
    assert count >= 2  # a runtime-dispatch build, as localstack/build-llama.sh makes it
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
    assert _NEEDS.get(variant, {"unknown-variant"}) <= flags, (variant, _NEEDS.get(variant), "missing from /proc/cpuinfo")


def test_complete_with_schema_gives_valid_json_and_real_token_counts(llama_chat, analysis_schema, incident_prompt):
    system, user = incident_prompt
    reply = llama_chat.complete(system, user, max_tokens=120, json_schema=analysis_schema)
    jsonschema.validate(json.loads(reply.text), analysis_schema)
    assert reply.model_id == QWEN_MODEL_ID
    # the prompt has at least the tokens of its parts, and the template adds a few more
    assert reply.tokens_in > llama_chat.count_tokens(system) + llama_chat.count_tokens(user)
    assert 0 < reply.tokens_out <= 120


def test_same_prompt_same_answer(llama_chat):
    a = llama_chat.complete("Answer in one word.", "What colour is the sky on a clear day?", max_tokens=8)
    b = llama_chat.complete("Answer in one word.", "What colour is the sky on a clear day?", max_tokens=8)
    assert a.text == b.text and a.text.strip()
    assert "blue" in a.text.lower()


@pytest.fixture()
def lambda_env(qwen_path, monkeypatch):
    from processors.handlers import llama_lambda

    monkeypatch.setenv("SIEVE_MODEL_PATH", str(qwen_path))
    monkeypatch.setenv("SIEVE_LLAMA_THREADS", "2")
    return llama_lambda


def test_lambda_handler_in_process(lambda_env, analysis_schema, incident_prompt):
    system, user = incident_prompt
    out = lambda_env.handler({"system": system, "user": user, "max_tokens": 120, "json_schema": analysis_schema}, None)
    assert set(out) == {"text", "model_id", "tokens_in", "tokens_out", "latency_ms"}
    jsonschema.validate(json.loads(out["text"]), analysis_schema)
    assert out["tokens_in"] > 50 and 0 < out["tokens_out"] <= 120 and out["latency_ms"] > 0
    assert lambda_env.get_chat() is lambda_env.get_chat()  # loaded once per container


@pytest.mark.parametrize(
    "event, fragment",
    [
        ({"user": "hi", "max_tokens": 0}, "max_tokens"),
        ({"user": "hi", "max_tokens": True}, "max_tokens"),
        ({"user": "", "max_tokens": 5}, "user"),
        ({"user": "hi", "max_tokens": 5, "json_schema": "{}"}, "json_schema"),
        ({"user": "hi", "max_tokens": 5, "prompt": "x"}, "unknown keys"),
    ],
)
def test_lambda_handler_rejects_bad_events(lambda_env, event, fragment):
    with pytest.raises(ValueError, match=fragment):
        lambda_env.handler(event, None)


def test_llama_chat_in_process_is_the_analyser(qwen_path):
    """In-process use is LlamaChat itself (no Lambda handler in between), with an explicit path and id."""
    analyser: Analyser = LlamaChat(model_path=qwen_path, model_id="local.test-id", n_threads=2, n_ctx=512)
    try:
        reply = analyser.complete("Answer in one word.", "What colour is grass?", max_tokens=6)
        assert reply.model_id == "local.test-id" and reply.text.strip() and 0 < reply.tokens_out <= 6
        with pytest.raises(ModelCallError, match="rejected the request: max_tokens must be >= 1"):
            analyser.complete("s", "u", max_tokens=0)
        with pytest.raises(ModelCallError, match="context window"):
            analyser.complete("s", "error " * 1000, max_tokens=8)  # > n_ctx 512
    finally:
        analyser.close()


def test_llama_chat_default_path_follows_sieve_model_path(tmp_path, monkeypatch):
    from processors.errors import SieveError

    monkeypatch.setenv("SIEVE_MODEL_PATH", str(tmp_path / "absent.gguf"))
    with pytest.raises(SieveError, match="SIEVE_MODEL_PATH=.*absent.gguf is not a file"):
        LlamaChat()


def test_a_schema_bound_llama_cpp_cannot_turn_into_a_grammar_is_refused_before_it_aborts_the_process(llama_chat):
    """llama.cpp aborts the process (uncatchable) on a grammar with a maxLength of 2000: such a request is
    a clear error instead, and the model is still there for the next one."""
    from processors.adapters.llama import MAX_GRAMMAR_REPEAT
    from processors.ports import ModelCallError

    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 2000}}, "required": ["answer"]}
    with pytest.raises(ModelCallError, match=r"\$\.properties\.answer\.maxLength is 2000"):
        llama_chat.complete("Answer in JSON.", "Say hi.", max_tokens=8, json_schema=schema)
    schema["properties"]["answer"]["maxLength"] = MAX_GRAMMAR_REPEAT
    reply = llama_chat.complete("Answer in JSON.", "Say hi.", max_tokens=8, json_schema=schema)
    assert reply.tokens_out >= 1
