"""Fuzzing the Kinesis record decoder (processors/core/decode.py): text, JSON lines, CloudWatch Logs
subscription payloads, truncated / corrupted / trailing-garbage gzip and gzip bombs."""

from __future__ import annotations

import tracemalloc
import zlib

from hypothesis import given

from processors.core.decode import MAX_DECODED_BYTES, Decoded, Rejected, decode_record
from tests.fuzz import corpus
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import DECODE


@fuzz_settings(300)
@given(DECODE.strategy())
def test_decode_fuzz(arg):
    DECODE.check(arg)


def _bomb(decompressed: int) -> bytes:
    """gzip of `decompressed` zero bytes, built in chunks (never held whole)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    out = [c.compress(chunk) for _ in range(decompressed >> 20)]
    return b"".join(out) + c.flush()


def test_gzip_bomb_is_rejected_within_bounded_memory():
    data = _bomb(1 << 30)  # 1 GiB of zeros, about 1 MB compressed
    tracemalloc.start()
    try:
        res = decode_record(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(res, Rejected) and res.reason == "too_large"
    # bounded by the limit (zlib's output buffer may grow to about twice it), not by the bomb's 1 GiB
    assert peak < 3 * MAX_DECODED_BYTES + 2 * len(data), peak


def test_truncated_gzip_is_rejected():
    data = corpus.gzip_json(corpus.cwl_payload(corpus.log_lines("combined")[:5]))
    for cut in (3, 10, len(data) // 2, len(data) - 1):
        res = decode_record(data[:cut])
        assert isinstance(res, Rejected) and res.reason == "bad_gzip", (cut, res)


def test_regression_bytes_after_the_gzip_stream_are_not_ignored():
    """Found by the fuzzer: a second gzip member (or trailing bytes) after a valid payload was silently
    dropped, with the events it held."""
    one = corpus.gzip_json(corpus.cwl_payload(["a 1"]))
    two = corpus.gzip_json(corpus.cwl_payload(["b 2"]))
    assert isinstance(decode_record(one), Decoded)
    for data in (one + two, one + b"\x00\x00\x00\x00"):
        res = decode_record(data)
        assert isinstance(res, Rejected) and res.reason == "bad_gzip" and "after the end" in res.detail


def test_regression_cwl_timestamp_after_year_9999_is_rejected():
    doc = corpus.cwl_payload(["x"], ts=253_402_300_800_000)
    res = decode_record(corpus.gzip_json(doc))
    assert isinstance(res, Rejected) and res.reason == "bad_cwl_payload" and "timestamp" in res.detail
