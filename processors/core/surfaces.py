"""What people see: the one redaction for every surface outside the AI boundary.

Computed keys and sample text come from log lines, so they can hold whatever a client put into a
URL, a header or a form: tokens, keys, card numbers, e-mail addresses. Before any of it is shown to a
person (Slack, the terminal of `sieve demo`, `sieve topn`, `sieve slack show`, `sieve audit`), it
passes `ForPeople`: the secret patterns of pipelines.yaml (`ai.redact`, built-ins and extras, as
`patterns_from_config` builds them for the model) *without* the IP pseudonyms. Which client did it is
a computed fact the on-call engineer needs, so addresses stay visible to people; the model gets
pseudonyms instead (processors/core/boundary.py).

Slack and the terminal use this very function, so they cannot drift apart. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from processors.core.redact import DEFAULT_PATTERNS, Pattern, RedactionResult, Redactor

#: the built-in kinds that pseudonymise (for the model) rather than remove: people see addresses
PSEUDONYM_KINDS = ("ipv4", "ipv6")

# A Redactor wants a key for the IP pseudonyms; without those patterns it is never used.
_NO_PSEUDONYMS = b"slack-view-no-pseudonyms-needed"


def people_patterns(patterns: Sequence[Pattern] = DEFAULT_PATTERNS) -> tuple[Pattern, ...]:
    """`patterns` without the built-in IP pseudonym patterns. A config pattern that happens to be
    named ipv4/ipv6 is kept: it is a plain regex someone wrote to remove something."""
    return tuple(p for p in patterns if not (p.name in PSEUDONYM_KINDS and p.check is not None))


class ForPeople:
    """Redacts text for people: the secret patterns, no IP pseudonyms. Counts what it redacted
    (`totals`), so a surface can say that something was masked.

        view = ForPeople(boundary.patterns)
        view("/reset?token=abc")            -> "/reset?token=[REDACTED:secret-param]"
        view.value({"keys": ["a@b.io"]})    -> {"keys": ["[REDACTED:email]"]}
    """

    __slots__ = ("patterns", "_redactor")

    def __init__(self, patterns: Sequence[Pattern] = DEFAULT_PATTERNS):
        self.patterns = people_patterns(patterns)
        self._redactor = Redactor(_NO_PSEUDONYMS, self.patterns)

    def __call__(self, text: object) -> str:
        return self.result(text).text

    def result(self, text: object) -> RedactionResult:
        return self._redactor.redact(text if isinstance(text, str) else str(text))

    def value(self, obj: Any) -> Any:
        """Every string inside JSON-like data (dict keys too), redacted; other scalars as they are."""
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, Mapping):
            return {self(k) if isinstance(k, str) else k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        if isinstance(obj, tuple):
            return tuple(self.value(v) for v in obj)
        return obj

    @property
    def totals(self) -> dict[str, int]:
        """How often each pattern fired, over every call so far."""
        return dict(self._redactor.totals)

    @property
    def redacted(self) -> int:
        return sum(self._redactor.totals.values())


@lru_cache(maxsize=32)
def _shared(patterns: tuple[Pattern, ...]) -> ForPeople:
    return ForPeople(patterns)


def for_people(text: object, patterns: Sequence[Pattern] = DEFAULT_PATTERNS) -> str:
    """`text` as people may see it: secrets redacted, client addresses kept. See `ForPeople`."""
    return _shared(tuple(patterns))(text)
