"""What comes back from a model, before anyone reads it: one invalid-answer type, one fence stripper.

Both the log analysis (processors/core/boundary.py) and the FAQ answers (processors/core/answer.py)
parse a model's JSON reply with these, so a reply is judged the same way wherever it came from.
"""

from __future__ import annotations


class InvalidAnswer(ValueError):
    """A model reply that cannot be used (not JSON, wrong schema, uncited or invented facts); the
    message says why, and is shown to the model on the one retry."""


def strip_fence(text: str) -> str:
    """The reply without a Markdown code fence around it (```json ... ```), which small models add."""
    t = text.strip()
    if t.startswith("```"):
        t = t.split("\n", 1)[1] if "\n" in t else ""
        t = t.rsplit("```", 1)[0]
    return t.strip()
