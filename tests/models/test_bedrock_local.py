"""The local bedrock-runtime endpoint, driven by the real boto3 client (no stubs on either side)."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
from botocore.exceptions import ClientError

from processors.adapters.bedrock import (
    BedrockConverseAnalyser,
    BedrockTitanEmbedder,
    ModelCallError,
    ModelThrottled,
)
from processors.adapters.model_files import QWEN_15B, QWEN_MODEL_ID

TITAN = "amazon.titan-embed-text-v2:0"


def _embed(client, text, **extra):
    body = {"inputText": text, "dimensions": 512, **extra}
    resp = client.invoke_model(modelId=TITAN, body=json.dumps(body), contentType="application/json")
    return json.loads(resp["body"].read())


def _error(exc_info) -> tuple[str, int, str]:
    err = exc_info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


# ---- InvokeModel: Titan-shaped embeddings ----

def test_titan_embedding_is_512_d_unit_length_with_token_count(bedrock):
    out = _embed(bedrock, "The order page returns HTTP 500")
    vector = np.array(out["embedding"])
    assert vector.shape == (512,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert out["embeddingsByType"]["float"] == out["embedding"]
    assert 3 <= out["inputTextTokenCount"] <= 20


@pytest.mark.parametrize("dimensions", [256, 512])
def test_supported_dimensions(bedrock, dimensions):
    out = _embed(bedrock, "支払いに失敗しました", dimensions=dimensions)
    assert len(out["embedding"]) == dimensions
    assert np.linalg.norm(out["embedding"]) == pytest.approx(1.0, abs=1e-5)


def test_japanese_and_english_similarity_makes_sense(bedrock):
    faq = {
        "500": "注文ページで500エラーが出ます。どうしたらいいですか？",
        "password": "パスワードを忘れました。再設定の方法を教えてください。",
        "shipping": "配送にはどのくらい時間がかかりますか？",
    }
    vectors = {k: np.array(_embed(bedrock, v)["embedding"]) for k, v in faq.items()}
    queries = {
        "500": "I get a server error (500) when I open the order page",
        "password": "How do I reset my password?",
        "shipping": "How long does delivery take?",
    }
    for want, query in queries.items():
        q = np.array(_embed(bedrock, query)["embedding"])
        best = max(vectors, key=lambda k: float(q @ vectors[k]))
        assert best == want, f"{query!r} matched {best!r}"


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"not json at all", "not valid JSON"),
        (b"[1, 2]", "JSON object is required"),
        (json.dumps({"inputText": ""}).encode(), "inputText"),
        (json.dumps({"inputText": "hi", "dimensions": 1024}).encode(), "dimensions"),
        (json.dumps({"inputText": "hi"}).encode(), "dimensions"),  # Titan's default is 1024: refused, not faked
        (json.dumps({"inputText": "hi", "dimensions": 512, "colour": "red"}).encode(), "extraneous"),
    ],
)
def test_malformed_embedding_body_is_a_validation_exception(bedrock, body, fragment):
    with pytest.raises(ClientError) as info:
        bedrock.invoke_model(modelId=TITAN, body=body)
    code, status, message = _error(info)
    assert (code, status) == ("ValidationException", 400)
    assert fragment in message


# ---- errors shared by both operations ----

def test_unknown_model_is_resource_not_found(bedrock):
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException) as info:
        bedrock.converse(modelId="meta.llama9-999b:0", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert _error(info)[1] == 404
    assert QWEN_MODEL_ID in _error(info)[2]  # tells the caller what is available
    with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
        bedrock.invoke_model(modelId="amazon.titan-embed-text-v9:0", body=b"{}")


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ([], "at least one message"),
        ([{"role": "assistant", "content": [{"text": "hi"}]}], "alternate"),
        ([{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": b"x"}}}]}], "only text"),
        ([{"role": "user", "content": [{"text": "a"}]}, {"role": "assistant", "content": [{"text": "b"}]}], "end with a user"),
    ],
)
def test_malformed_converse_is_a_validation_exception(bedrock, messages, fragment):
    with pytest.raises(bedrock.exceptions.ValidationException) as info:
        bedrock.converse(modelId=QWEN_MODEL_ID, messages=messages)
    assert fragment in _error(info)[2]


def test_invalid_output_schema_is_a_validation_exception(bedrock):
    with pytest.raises(bedrock.exceptions.ValidationException, match="not valid JSON"):
        bedrock.converse(
            modelId=QWEN_MODEL_ID,
            messages=[{"role": "user", "content": [{"text": "hi"}]}],
            outputConfig={"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{oops"}}}},
        )


@pytest.mark.model
def test_busy_model_is_throttling_and_the_analyser_says_so(bedrock, bedrock_app, bedrock_url):
    bedrock_app.chat_model()  # loaded, so the only wait is for the lock
    with bedrock_app.model_lock:  # another request is generating
        with pytest.raises(bedrock.exceptions.ThrottlingException) as info:
            bedrock.converse(modelId=QWEN_MODEL_ID, messages=[{"role": "user", "content": [{"text": "hi"}]}])
        assert _error(info)[1] == 429
        analyser = BedrockConverseAnalyser(QWEN_MODEL_ID, client=bedrock)
        with pytest.raises(ModelThrottled, match="retry later"):
            analyser.complete("s", "u", max_tokens=4)


# ---- Converse with the real Qwen model ----

@pytest.mark.model
def test_converse_returns_json_that_validates_against_a_bounded_schema(bedrock, analysis_schema, incident_prompt):
    system, user = incident_prompt
    resp = bedrock.converse(
        modelId=QWEN_MODEL_ID,
        system=[{"text": system}],
        messages=[{"role": "user", "content": [{"text": user}]}],
        inferenceConfig={"maxTokens": 120, "temperature": 0},
        outputConfig={
            "textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": json.dumps(analysis_schema)}}}
        },
    )
    answer = json.loads(resp["output"]["message"]["content"][0]["text"])
    jsonschema.validate(answer, analysis_schema)
    usage = resp["usage"]
    assert usage["inputTokens"] > 50 and 0 < usage["outputTokens"] <= 120
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert resp["stopReason"] == "end_turn"
    assert resp["metrics"]["latencyMs"] > 0


@pytest.mark.model
def test_max_tokens_stop_reason_and_alias_model_id(bedrock):
    resp = bedrock.converse(
        modelId="anthropic.claude-3-haiku-20240307-v1:0",  # served as an alias (sieve models serve --alias)
        messages=[{"role": "user", "content": [{"text": "Count from 1 to 50, separated by commas."}]}],
        inferenceConfig={"maxTokens": 5},
    )
    assert resp["stopReason"] == "max_tokens"
    assert resp["usage"]["outputTokens"] == 5


@pytest.mark.model
@pytest.mark.parametrize("schema_mode", ["output_config", "additional_fields"])
def test_converse_analyser_over_the_endpoint(bedrock, analysis_schema, incident_prompt, schema_mode):
    system, user = incident_prompt
    analyser = BedrockConverseAnalyser(QWEN_MODEL_ID, client=bedrock, schema_mode=schema_mode)
    reply = analyser.complete(system, user, max_tokens=120, json_schema=analysis_schema)
    jsonschema.validate(json.loads(reply.text), analysis_schema)
    assert reply.model_id == QWEN_MODEL_ID
    assert reply.tokens_in > 50 and 0 < reply.tokens_out <= 120


def test_converse_analyser_turns_vendor_errors_into_ours(bedrock):
    analyser = BedrockConverseAnalyser("no.such-model:0", client=bedrock)
    with pytest.raises(ModelCallError, match="ResourceNotFoundException"):
        analyser.complete("s", "u", max_tokens=4)


def test_titan_embedder_adapter(bedrock):
    embedder = BedrockTitanEmbedder(client=bedrock, dimension=256)
    vectors = embedder.embed(["disk full on db-1", "ディスクがいっぱいです"])
    assert [len(v) for v in vectors] == [256, 256]
    assert embedder.input_tokens > 0
    with pytest.raises(ValueError, match="256, 512, 1024"):
        BedrockTitanEmbedder(client=bedrock, dimension=300)


# ---- the CLI entry point ----

def test_sieve_models_serve_answers_boto3():
    import socket
    import time
    import urllib.request

    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "processors.cli", "models", "serve", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    health = json.load(r)
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "sieve models serve did not come up in 30 s"
                time.sleep(0.2)
        # without --model, the default model (the 1.5B) answers, under its own id
        assert health["chat_models"] == [QWEN_15B.model_id] and health["chat_loaded"] is False
        client = boto3.client(
            "bedrock-runtime", endpoint_url=f"http://127.0.0.1:{port}", region_name="eu-west-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )
        assert len(_embed(client, "hello")["embedding"]) == 512
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "invoke model=amazon.titan-embed-text-v2:0 status=200" in stderr
    assert "hello" not in stderr  # request text is never logged


@pytest.mark.model
def test_slow_endpoint_is_a_model_timeout(qwen_path):
    import boto3
    from botocore.config import Config

    from processors.adapters.bedrock import ModelTimeout
    from processors.runtime.bedrock_local import BedrockLocalServer, build_app

    app = build_app(model_path=str(qwen_path), busy_wait_s=2.0)
    app.chat_model()
    server = BedrockLocalServer(app, "127.0.0.1", 0)
    server.start_background()
    client = boto3.client(
        "bedrock-runtime", endpoint_url=server.url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
        config=Config(read_timeout=0.5, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    try:
        with app.model_lock:  # the model is busy for longer than the client waits
            with pytest.raises(ModelTimeout, match="no answer within"):
                BedrockConverseAnalyser(QWEN_MODEL_ID, client=client, timeout_s=0.5).complete("s", "u", max_tokens=4)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.model
def test_prompt_over_the_context_window_is_a_validation_exception(bedrock):
    too_long = "error " * 5000  # > n_ctx 4096 tokens
    with pytest.raises(bedrock.exceptions.ValidationException, match="context window"):
        bedrock.converse(
            modelId=QWEN_MODEL_ID,
            messages=[{"role": "user", "content": [{"text": too_long}]}],
            inferenceConfig={"maxTokens": 8},
        )
