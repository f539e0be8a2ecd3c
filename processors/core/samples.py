"""Stable, mergeable sample lines per contributor key.

For every key we keep the k lines with the smallest hash (a bottom-k sample). The choice depends
only on the set of lines, never on their order or on how they were split across shards and
batches, so merging two shards' samples gives exactly the sample one pass over all the lines would
give. Lines are truncated before hashing, so a sample is bounded in size.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

MAX_LINE = 512


def line_hash(line: str) -> str:
    return hashlib.blake2b(line.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


class Samples:
    """key tuple -> up to k (hash, line) pairs, smallest hashes kept."""

    __slots__ = ("k", "by_key")

    def __init__(self, k: int = 3, by_key: dict[tuple[str, ...], list[tuple[str, str]]] | None = None):
        self.k = k
        self.by_key: dict[tuple[str, ...], list[tuple[str, str]]] = by_key or {}

    def offer(self, key: tuple[str, ...], line: str) -> None:
        if self.k <= 0:
            return
        line = line[:MAX_LINE]
        h = line_hash(line)
        cur = self.by_key.get(key)
        if cur is None:
            self.by_key[key] = [(h, line)]
            return
        if len(cur) >= self.k and h >= cur[-1][0]:
            return
        if any(h == ch for ch, _ in cur):
            return  # the same line again adds nothing to a sample of distinct lines
        cur.append((h, line))
        cur.sort()
        del cur[self.k:]

    def merge(self, other: "Samples") -> "Samples":
        for key, pairs in other.by_key.items():
            for _, line in pairs:
                self.offer(key, line)
        return self

    def keep_only(self, keys: Iterable[tuple[str, ...]]) -> None:
        wanted = set(keys)
        for key in list(self.by_key):
            if key not in wanted:
                del self.by_key[key]

    def keep_heaviest(self, values: dict[tuple[str, ...], int | float], n: int) -> None:
        """Keep samples only for the n heaviest keys (value desc, key asc): bounded, and deterministic
        given the aggregate's values."""
        if len(self.by_key) <= n:
            return
        self.keep_only(sorted(self.by_key, key=lambda k: (-values.get(k, 0), k))[:n])

    def lines(self, key: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(line for _, line in self.by_key.get(key, ()))

    def to_json(self) -> list:
        return [[list(k), [line for _, line in v]] for k, v in sorted(self.by_key.items())]

    @classmethod
    def from_json(cls, data: list, k: int) -> "Samples":
        s = cls(k)
        for key, lines in data:
            for line in lines:
                s.offer(tuple(key), line)
        return s
