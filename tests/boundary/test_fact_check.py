"""A hypothesis may only state numbers that the digest contains: a made-up count or share is refused
deterministically, like a made-up line id."""

from __future__ import annotations

import json

import pytest

from processors.core.boundary import InvalidAnswer, load_analysis_schema, parse_analysis
from processors.core.digest import Digest
from processors.core.types import Window

TEXT = ("rule errors-by-path, window 10:08-10:09, 708 events\n"
        "G1 path=/api/v1/checkout | value 61 | share 8.6% | trend 0 -> 1 -> 0 -> 61\n"
        "  [G1.S1] x58: ip-1a2b3c \"POST /api/v1/checkout HTTP/1.1\" 500\n")
DIGEST = Digest(rule="errors-by-path", window=Window(0, 60), groups=(), text=TEXT, digest_hash="h", redaction_counts={})


def answer(cause: str) -> str:
    fact = "G1.S1" if "[G1.S1]" in cause else "G1"
    cause = cause.split("] ", 1)[1]
    return json.dumps({"hypotheses": [{"cause": f"checkout backend broken: {cause}", "facts": [fact, "G1"],
                                       "confidence": "low"}], "next_checks": ["look"]})


@pytest.fixture(autouse=True)
def ids(monkeypatch):
    monkeypatch.setattr(Digest, "line_ids", lambda self: frozenset({"G1", "G1.S1"}))


def parse(evidence: str):
    return parse_analysis(answer(evidence), load_analysis_schema(), DIGEST)


def test_numbers_from_the_digest_pass():
    a = parse("[G1] 61 requests failed with 500, 8.6% of 708 events")
    assert a.evidence[0].startswith("[G1]")


@pytest.mark.parametrize("evidence", ["[G1] 240 requests failed", "[G1] 35% of the window", "[G1.S1] 502 from many clients"])
def test_an_invented_number_is_refused(evidence):
    with pytest.raises(InvalidAnswer, match="does not contain"):
        parse(evidence)
