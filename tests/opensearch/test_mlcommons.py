"""ml-commons on the real node, calling a local Bedrock-compatible peer with SigV4-signed requests."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from processors.adapters.mlcommons import (
    AwsCredential,
    MLCommons,
    MLCommonsAnalyser,
    MLCommonsEmbedder,
    bedrock_converse_connector_body,
    bedrock_titan_embedding_connector_body,
    configure_cluster,
)
from processors.adapters.opensearch import VECTOR_FIELD, ensure_index, search
from processors.ports import Analyser, Embedder

from .bedrock_peer import BedrockPeer

pytestmark = pytest.mark.opensearch

CRED = AwsCredential("AKIAFAKEKEY000000000", "fake/secret/key", "fake-session-token")
REGION = "us-east-1"
CHAT_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(scope="module")
def ml(os_client):
    plugins = {p["component"] for p in os_client.cat.plugins(format="json")}
    if "opensearch-ml" not in plugins:
        wanted = os.environ.get("OPENSEARCH_OPTIONAL_PLUGINS")
        message = (f"the node has no opensearch-ml plugin (plugins: {sorted(plugins)}); localstack/opensearch.sh "
                   "installs it unless OPENSEARCH_OPTIONAL_PLUGINS leaves out ml-plugin")
        if wanted is not None and "ml-plugin" not in wanted:
            pytest.skip(message + f" (it does: {wanted!r})")  # a k-NN-only node was asked for
        pytest.fail(message)
    configure_cluster(os_client, local=True)
    return MLCommons(os_client)


@pytest.fixture(scope="module")
def peer(use_embedder):
    p = BedrockPeer(embed=use_embedder).start()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def chat_model(ml, peer):
    cid = ml.create_connector(bedrock_converse_connector_body(model=CHAT_MODEL, region=REGION, credential=CRED, endpoint=peer.url))
    mid = ml.register_remote_model("sieve-test-chat", cid)
    yield mid
    ml.undeploy_and_delete(mid)
    ml.delete_connector(cid)


@pytest.fixture(scope="module")
def embed_model(ml, peer):
    cid = ml.create_connector(bedrock_titan_embedding_connector_body(region=REGION, credential=CRED, endpoint=peer.url))
    mid = ml.register_remote_model("sieve-test-embed", cid)
    yield mid
    ml.undeploy_and_delete(mid)
    ml.delete_connector(cid)


def test_remote_chat_model_answers_through_the_analyser_port(ml, peer, chat_model):
    analyser: Analyser = MLCommonsAnalyser(ml, chat_model, model_name=CHAT_MODEL)
    user = 'Ticket #12: "login fails"\nユーザーがログインできません \\ path'
    n_before = len(peer.requests)
    reply = analyser.complete("Classify the ticket.", user, max_tokens=64, json_schema={"type": "object", "required": ["label"]})

    assert reply.text == f"peer-reply[{CHAT_MODEL}]: {user}"  # quotes, newline, backslash, Japanese survive the template
    assert reply.model_id == CHAT_MODEL and reply.tokens_in > 0 and reply.tokens_out > 0 and reply.latency_ms >= 0
    (req,) = peer.requests[n_before:]
    assert req.path == f"/model/{CHAT_MODEL}/converse"
    assert req.body["inferenceConfig"]["maxTokens"] == 64
    system = req.body["system"][0]["text"]
    assert system.startswith("Classify the ticket.") and '"required": ["label"]' in system
    # signed with SigV4 for Bedrock, with the (fake) key of the connector
    auth = req.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKEKEY000000000/") and f"/{REGION}/bedrock/aws4_request" in auth
    assert req.headers.get("x-amz-security-token") == "fake-session-token"


def test_remote_embedding_model_and_ingest_pipeline(ml, peer, embed_model, os_client, index_name, use_embedder):
    embedder: Embedder = MLCommonsEmbedder(ml, embed_model, dimension=512)
    assert embedder.dimension == 512
    texts = ["How do I reset my password?", "パスワードを忘れました"]
    vecs = embedder.embed(texts)
    assert np.allclose(vecs, use_embedder(texts), atol=1e-5)

    ensure_index(os_client, index_name, 512)
    pipeline = f"{index_name}-embed"
    ml.put_embedding_ingest_pipeline(pipeline, embed_model, text_field="question", vector_field=VECTOR_FIELD)
    try:
        docs = {
            "pw": ("support", "How can I reset my password?"),
            "inv": ("support", "How do I export invoices as PDF?"),
            "pw-fin": ("finance", "How can I reset my password?"),
        }
        for doc_id, (role, q) in docs.items():
            os_client.index(index=index_name, id=doc_id, body={"id": doc_id, "role": role, "question": q, "answer": "..."},
                            params={"pipeline": pipeline})
        os_client.indices.refresh(index=index_name)
        stored = os_client.get(index=index_name, id="pw")["_source"]
        assert len(stored[VECTOR_FIELD]) == 512
        hits = search(os_client, index_name, role="support", k=2, vector=embedder.embed(["forgot password"])[0])
        assert hits[0].id == "pw" and {h.fields["role"] for h in hits} == {"support"}
    finally:
        os_client.ingest.delete_pipeline(id=pipeline, ignore=[404])


def test_rag_search_pipeline(ml, peer, chat_model, os_client, index_name):
    ensure_index(os_client, index_name, 4)
    os_client.index(index=index_name, id="a", body={"id": "a", "role": "support", "question": "How do I reset my password?",
                                                    "answer": "Open Settings, then Security."}, params={"refresh": "true"})
    pipeline = f"{index_name}-rag"
    ml.put_rag_search_pipeline(pipeline, chat_model, context_fields=["question", "answer"], user_instructions="Answer briefly.")
    try:
        n_before = len(peer.requests)
        resp = os_client.search(
            index=index_name,
            body={
                "query": {"bool": {"must": {"match": {"question": "password"}}, "filter": {"term": {"role": "support"}}}},
                "ext": {"generative_qa_parameters": {"llm_model": f"bedrock-converse/{CHAT_MODEL}", "llm_question": "How to reset it?", "context_size": 3}},
            },
            params={"search_pipeline": pipeline},
        )
        answer = resp["ext"]["retrieval_augmented_generation"]["answer"]
        assert answer.startswith(f"peer-reply[{CHAT_MODEL}]")
        assert "Open Settings, then Security." in answer and "How to reset it?" in answer
        assert resp["hits"]["hits"][0]["_id"] == "a"
        (req,) = peer.requests[n_before:]
        assert req.path.endswith("/converse") and "Open Settings" in json.dumps(req.body)
    finally:
        os_client.transport.perform_request("DELETE", f"/_search/pipeline/{pipeline}")
