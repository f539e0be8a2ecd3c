"""Role-filtered k-NN, hybrid ranking and Japanese search on the real node."""

from __future__ import annotations

import numpy as np
import pytest

from processors.adapters.opensearch import (
    VECTOR_FIELD,
    BulkWriter,
    ensure_index,
    reciprocal_rank_fusion,
    search,
)
from processors.errors import ConfigError

pytestmark = pytest.mark.opensearch


def _unit(v: np.ndarray) -> list[float]:
    return (v / np.linalg.norm(v)).astype(float).tolist()


def _load(client, index, docs):
    res = BulkWriter(client).index(index, docs, refresh=True)
    assert res.ok and len(res.succeeded) == len(docs), res.summary() + f" {res.rejected[:3]}"


def test_index_layout_and_idempotent_ensure(os_client, index_name):
    assert ensure_index(os_client, index_name, 512) is True
    assert ensure_index(os_client, index_name, 512) is False  # second call: already there, compatible
    mapping = os_client.indices.get_mapping(index=index_name)[index_name]["mappings"]
    vec = mapping["properties"][VECTOR_FIELD]
    assert vec["type"] == "knn_vector" and vec["dimension"] == 512
    assert vec["method"]["engine"] == "lucene" and vec["method"]["space_type"] == "cosinesimil"
    for f in ("role", "id", "source_url"):
        assert mapping["properties"][f]["type"] == "keyword"
    settings = os_client.indices.get_settings(index=index_name)[index_name]["settings"]["index"]
    assert settings["knn"] == "true" and settings["number_of_shards"] == "1" and settings["number_of_replicas"] == "0"
    with pytest.raises(ConfigError, match="dimension"):
        ensure_index(os_client, index_name, 384)


def test_analyzer_makes_cjk_bigrams_and_english_stems(os_client, index_name):
    ensure_index(os_client, index_name, 8)
    ja = os_client.indices.analyze(index=index_name, body={"field": "question", "text": "パスワードを忘れた"})
    tokens = [t["token"] for t in ja["tokens"]]
    assert "パス" in tokens and "ワー" in tokens and "忘れ" in tokens, tokens
    en = os_client.indices.analyze(index=index_name, body={"field": "question.en", "text": "Resetting the passwords"})
    assert [t["token"] for t in en["tokens"]] == ["reset", "password"]


def test_efficient_filter_returns_k_hits_for_a_restrictive_role(os_client, index_name):
    """3 of 200 documents belong to 'auditor', and they are the farthest from the query. k-NN with the
    role filter inside the knn clause still returns exactly those 3; a post-filter would return fewer."""
    dim = 32
    rng = np.random.default_rng(7)
    query = rng.normal(size=dim)
    ensure_index(os_client, index_name, dim)
    docs = []
    for i in range(200):
        auditor = i in (11, 97, 180)
        base = -query if auditor else query  # auditor docs point away from the query
        docs.append(
            {
                "id": f"d{i:03d}",
                "role": "auditor" if auditor else "agent",
                "question": f"question {i}",
                "answer": f"answer {i}",
                VECTOR_FIELD: _unit(base + rng.normal(scale=0.3, size=dim)),
            }
        )
    _load(os_client, index_name, docs)

    hits = search(os_client, index_name, vector=_unit(query), role="auditor", k=3)
    assert sorted(h.id for h in hits) == ["d011", "d097", "d180"]
    assert all(h.fields["role"] == "auditor" for h in hits)
    assert VECTOR_FIELD not in hits[0].fields  # vectors are not shipped back

    # The same question with a post-filter (the naive way) loses them: the top-3 neighbours are all 'agent'.
    naive = os_client.search(
        index=index_name,
        body={"size": 3, "query": {"knn": {VECTOR_FIELD: {"vector": _unit(query), "k": 3}}}, "post_filter": {"term": {"role": "auditor"}}},
    )
    assert len(naive["hits"]["hits"]) < 3

    # agent side: k hits, all agent
    hits = search(os_client, index_name, vector=_unit(query), role="agent", k=10)
    assert len(hits) == 10 and all(h.fields["role"] == "agent" for h in hits)


def test_a_role_never_sees_another_roles_documents(os_client, index_name, use_embedder):
    ensure_index(os_client, index_name, 512)
    texts = ["How do I rotate the API signing key?", "Where are the quarterly payroll reports?", "How do I reset my password?"]
    vecs = use_embedder(texts)
    docs = []
    for role in ("finance", "support", "hr"):
        for i, (t, v) in enumerate(zip(texts, vecs)):
            docs.append({"id": f"{role}-{i}", "role": role, "question": t, "answer": f"{role} answer {i}", VECTOR_FIELD: v})
    _load(os_client, index_name, docs)

    q = "reset password"
    qv = use_embedder([q])[0]
    for role in ("finance", "support", "hr"):
        for kwargs in ({"vector": qv}, {"text": q}, {"vector": qv, "text": q}):
            hits = search(os_client, index_name, role=role, k=10, **kwargs)
            assert hits, (role, kwargs.keys())
            assert {h.fields["role"] for h in hits} == {role}, (role, kwargs.keys(), [h.id for h in hits])
            assert all(h.id.startswith(role + "-") for h in hits)
    # several roles at once: only those
    hits = search(os_client, index_name, role=["finance", "hr"], k=10, vector=qv, text=q)
    assert {h.fields["role"] for h in hits} == {"finance", "hr"}
    with pytest.raises(ValueError):
        search(os_client, index_name, role="", k=3, text=q)
    # a role with no documents sees nothing at all (not somebody else's documents)
    assert search(os_client, index_name, role="nobody", k=5, vector=qv, text=q) == []


def test_hybrid_ranks_the_doc_matching_both_ways_first(os_client, index_name, use_embedder):
    """One document matches the query lexically and semantically, one only semantically (a paraphrase with
    no shared word), one only lexically (keyword-stuffed answer under an unrelated question). After fusion
    the one matching both ways is first, and each one-sided match ranks below it."""
    ensure_index(os_client, index_name, 512)
    corpus = {
        "both": ("How can I reset my password?", "Open Settings, choose Security, then follow the steps."),
        "semantic": ("Recover access to my account after losing my sign-in details", "Use the account recovery link on the sign-in page."),
        "lexical": ("Deprecated CSV columns", "reset password reset password reset password reset password"),
        "other1": ("What is the refund policy for annual plans?", "Annual plans are refundable within 30 days."),
        "other2": ("How do I export invoices as PDF?", "Go to Billing and click Export."),
        "other3": ("Can I change the language of the dashboard?", "Yes, in Profile > Language."),
    }
    ids = list(corpus)
    vecs = use_embedder([corpus[i][0] for i in ids])  # the question is what gets embedded
    docs = [{"id": i, "role": "support", "question": corpus[i][0], "answer": corpus[i][1], VECTOR_FIELD: v} for i, v in zip(ids, vecs)]
    _load(os_client, index_name, docs)

    q = "reset password"
    qv = use_embedder([q])[0]
    bm25_ids = [h.id for h in search(os_client, index_name, role="support", k=6, text=q)]
    assert set(bm25_ids) == {"both", "lexical"}, bm25_ids  # only these two share words with the query
    hybrid = search(os_client, index_name, role="support", k=6, vector=qv, text=q)
    order = [h.id for h in hybrid]
    assert order[0] == "both", [(h.id, h.knn_rank, h.bm25_rank) for h in hybrid]
    assert hybrid[0].knn_rank is not None and hybrid[0].bm25_rank is not None
    assert order.index("both") < order.index("semantic") and order.index("both") < order.index("lexical")
    by_id = {h.id: h for h in hybrid}
    assert by_id["semantic"].bm25_rank is None and by_id["semantic"].knn_rank is not None
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    # deterministic: same query, same order
    again = search(os_client, index_name, role="support", k=6, vector=qv, text=q)
    assert [h.id for h in again] == order


def test_rrf_is_deterministic():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "a", "d"]], rank_constant=60)
    assert [d for d, _ in fused[:2]] == ["a", "b"]  # equal scores: tie broken by id
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert [d for d, _ in fused[2:]] == ["c", "d"]


def test_japanese_query_finds_japanese_text(os_client, index_name, use_embedder):
    ensure_index(os_client, index_name, 512)
    corpus = {
        "ja-password": ("パスワードを忘れた場合はどうすればよいですか？", "ログイン画面の「パスワードを再設定」を押してください。"),
        "ja-invoice": ("請求書をPDFでダウンロードするには？", "請求ページからエクスポートを選択します。"),
        "ja-shipping": ("配送にはどのくらい時間がかかりますか？", "通常は三営業日以内にお届けします。"),
        "en-password": ("What should I do if I forgot my password?", "Click 'Reset password' on the login page."),
        "en-invoice": ("How do I download an invoice as PDF?", "Choose Export on the billing page."),
    }
    ids = list(corpus)
    vecs = use_embedder([corpus[i][0] + " " + corpus[i][1] for i in ids])
    docs = [{"id": i, "role": "support", "question": corpus[i][0], "answer": corpus[i][1], VECTOR_FIELD: v} for i, v in zip(ids, vecs)]
    _load(os_client, index_name, docs)

    q = "パスワードを忘れました"
    qv = use_embedder([q])[0]
    bm25 = search(os_client, index_name, role="support", k=3, text=q)
    assert bm25 and bm25[0].id == "ja-password", [h.id for h in bm25]
    assert all(h.id.startswith("ja-") for h in bm25)  # bigrams match Japanese text only
    knn = search(os_client, index_name, role="support", k=2, vector=qv)
    assert {h.id for h in knn} == {"ja-password", "en-password"}, [h.id for h in knn]  # multilingual embedder
    hybrid = search(os_client, index_name, role="support", k=3, vector=qv, text=q)
    assert hybrid[0].id == "ja-password"
    # a Japanese query about invoices lands on the Japanese invoice doc
    q2 = "請求書のダウンロード"
    hybrid2 = search(os_client, index_name, role="support", k=3, vector=use_embedder([q2])[0], text=q2)
    assert hybrid2[0].id == "ja-invoice", [h.id for h in hybrid2]
