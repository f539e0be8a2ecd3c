"""Hypothesis strategies shared by the fuzz targets: mutations of real samples (text, bytes, JSON
documents) and a few building blocks (JSON values, nasty strings)."""

from __future__ import annotations

import copy
import functools
import gzip
import zlib

from hypothesis import strategies as st

#: Tokens that break parsers: quotes, escapes, brackets, separators, huge and odd numbers, control
#: characters, non-ASCII digits and spaces, lone surrogates, BOM, NUL.
NASTY = ['"', "\\", '\\"', "[", "]", " ", "  ", "\t", "\n", "\r\n", "\r", "-", "?", "??", "/", "//", ":", "{", "}",
         "%", "%40", "@", "0", "-1", "1e400", "1e308", "9" * 30, "18446744073709551616", "NaN", "Infinity", "\x00",
         "\x1c", "\u00a0", "\u3000", "\u2028", "\u0663\u0660\u0660", "\ufeff", "é", "日本", "\U0001f600", "\ud800",
         "null", "true", "[]", "{}", '""', "'", "<", ">", "&", "&amp;", "<![CDATA[", "-->", "<!--", "=", "&",
         "http://", "https://x", "javascript:", "#", "\x1f\x8b"]  # fmt: skip

nasty = st.sampled_from(NASTY)
any_text = st.text(max_size=40)
any_token = st.one_of(nasty, any_text, st.integers(-(2**70), 2**70).map(str))


@st.composite
def mutated_text(draw, samples, max_mutations: int = 4, allow_surrogates: bool = False) -> str:
    """A sample string with 0..max_mutations edits: insert, delete, replace, duplicate, truncate, swap."""
    text = draw(samples)
    for _ in range(draw(st.integers(0, max_mutations))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 40)))
        op = draw(st.sampled_from(("insert", "delete", "replace", "dup", "truncate", "case")))
        if op == "insert":
            text = text[:i] + draw(any_token) + text[i:]
        elif op == "delete":
            text = text[:i] + text[j:]
        elif op == "replace":
            text = text[:i] + draw(any_token) + text[j:]
        elif op == "dup":
            text = text[:j] + text[i:j] + text[j:]
        elif op == "truncate":
            text = text[:i]
        else:
            text = text[:i] + text[i:j].swapcase() + text[j:]
    if not allow_surrogates:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


@st.composite
def mutated_bytes(draw, samples, max_mutations: int = 4) -> bytes:
    data = bytearray(draw(samples))
    for _ in range(draw(st.integers(0, max_mutations))):
        n = len(data)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 16)))
        op = draw(st.sampled_from(("flip", "insert", "delete", "truncate", "dup")))
        if op == "flip" and n:
            k = min(i, n - 1)
            data[k] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[i:i] = draw(st.binary(max_size=8))
        elif op == "delete":
            del data[i:j]
        elif op == "truncate":
            del data[i:]
        elif op == "dup":
            data[j:j] = data[i:j]
    return bytes(data)


@functools.cache
def json_values(max_leaves: int = 12):
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=30), nasty)
    return st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                        st.dictionaries(st.one_of(st.text(max_size=10), nasty), kids, max_size=4)),
                        max_leaves=max_leaves)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _near_miss(key: str) -> list[str]:
    out = [key.lower(), key.upper(), key + "s", key[:-1], key.swapcase(), " " + key]
    return [k for k in out if k != key and k]


@st.composite
def mutated_json(draw, samples, max_mutations: int = 3, values=None):
    """A JSON document with 0..max_mutations structural edits at random places: a value replaced by any
    JSON value or a nasty token, a key deleted or renamed to a near miss (case, plural, typo), a value
    wrapped in a list, a list emptied."""
    values = values if values is not None else json_values(6)
    doc = copy.deepcopy(draw(samples))
    for _ in range(draw(st.integers(0, max_mutations))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        if not path:
            if draw(st.booleans()):
                doc = draw(values)
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        op = draw(st.sampled_from(("replace", "replace", "delete", "rename", "wrap", "empty")))
        if op == "replace":
            parent[last] = draw(values)
        elif op == "delete":
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):
            choices = _near_miss(str(last))
            if choices:
                parent[draw(st.sampled_from(choices))] = parent.pop(last)
        elif op == "wrap":
            parent[last] = [parent[last]]
        elif op == "empty":
            parent[last] = type(parent[last])() if isinstance(parent[last], (list, dict, str)) else None
    return doc


@functools.lru_cache(maxsize=32)
def gzip_bomb(size: int, fill: bytes = b"0") -> bytes:
    """gzip of `size` copies of `fill`, compressed in chunks and cached (bombs are drawn many times)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = fill * (1 << 20)
    out = [c.compress(chunk) for _ in range(size >> 20)]
    out.append(c.compress(fill * (size & ((1 << 20) - 1))))
    return b"".join(out) + c.flush()


@st.composite
def gzip_variants(draw, payload: bytes, compressed: bytes | None = None) -> bytes:
    """gzip of payload (or the given gzip bytes), then maybe truncated, bit-flipped, with trailing garbage or a
    second member, or a zlib stream behind the gzip magic."""
    kind = draw(st.sampled_from(("gzip", "gzip", "truncated", "flipped", "trailing", "zlib", "two_members")))
    if compressed is not None:
        data = compressed
        kind = "gzip" if kind == "zlib" else kind
    else:
        data = gzip.compress(payload, draw(st.integers(1, 9)), mtime=0)
    if kind == "truncated":
        data = data[: draw(st.integers(2, max(2, len(data) - 1)))]
    elif kind == "flipped":
        i = draw(st.integers(2, len(data) - 1))
        data = data[:i] + bytes([data[i] ^ (1 << draw(st.integers(0, 7)))]) + data[i + 1:]
    elif kind == "trailing":
        data += draw(st.binary(min_size=1, max_size=16))
    elif kind == "zlib":
        data = b"\x1f\x8b" + zlib.compress(payload)  # gzip magic, zlib body: not a gzip stream
    elif kind == "two_members":
        data += data if compressed is not None else gzip.compress(payload, 1, mtime=0)
    return data
