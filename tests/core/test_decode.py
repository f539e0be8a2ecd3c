"""decode_record: the three record shapes, CONTROL_MESSAGE, and garbage that must never raise."""

from __future__ import annotations

import gzip
import zlib

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.decode import REJECT_REASONS, Decoded, LogEvent, Rejected, decode_record


def cwl(events, message_type="DATA_MESSAGE", group="/sieve/access", stream="web-1") -> bytes:
    doc = {"messageType": message_type, "owner": "123456789012", "logGroup": group, "logStream": stream,
           "subscriptionFilters": ["to-kinesis"], "logEvents": events}
    return gzip.compress(orjson.dumps(doc))


def test_cloudwatch_payload_yields_one_event_per_log_event():
    data = cwl([{"id": "1", "timestamp": 1709546400000, "message": "line one"},
                {"id": "2", "timestamp": 1709546401000, "message": "line two\n"}])
    out = decode_record(data)
    assert out == Decoded("cwl", (LogEvent("line one", 1709546400000, "/sieve/access", "web-1", "1"),
                                  LogEvent("line two", 1709546401000, "/sieve/access", "web-1", "2")))


def test_zlib_wrapped_payload_is_accepted_like_powertools():
    raw = orjson.dumps({"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s",
                        "logEvents": [{"id": "1", "timestamp": 1, "message": "m"}]})
    # zlib header is not gzip magic, so it is read as text -> not_utf8; only gzip is the CWL shape
    assert isinstance(decode_record(zlib.compress(raw)), Rejected)
    assert decode_record(gzip.compress(raw)).events[0].message == "m"


def test_control_message_is_skipped_and_reported():
    out = decode_record(cwl([{"id": "1", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health"}],
                            message_type="CONTROL_MESSAGE"))
    assert out == Decoded("control", ())


def test_raw_access_lines_one_or_many_per_record():
    one = decode_record(b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326')
    assert one.kind == "text" and len(one.events) == 1 and one.events[0].timestamp_ms is None
    many = decode_record(b"a 1\r\nb 2\n\nc 3\n")
    assert [e.message for e in many.events] == ["a 1", "b 2", "c 3"]
    assert many.blank_lines == 1


def test_json_lines_are_detected():
    out = decode_record(b'{"status": 500, "path": "/x"}\n{"status": 200, "path": "/y"}\n')
    assert out.kind == "json" and [e.message for e in out.events] == ['{"status": 500, "path": "/x"}',
                                                                      '{"status": 200, "path": "/y"}']
    assert out.blank_lines == 0


def test_byte_order_mark_is_dropped():
    assert decode_record("\ufeffhello".encode()).events[0].message == "hello"


def test_rejections_have_fixed_reasons():
    cases = {
        b"": "empty",
        b"  \n\t ": "empty",
        b"\xff\xfe\x00bad": "not_utf8",
        b"\x1f\x8bnot really gzip": "bad_gzip",
        gzip.compress(b"not json"): "bad_json",
        gzip.compress(b"\xff\xff"): "not_utf8",
        gzip.compress(b"[1, 2]"): "bad_cwl_payload",
        gzip.compress(b'{"logEvents": []}'): "unknown_message_type",
        gzip.compress(b'{"messageType": "SURPRISE"}'): "unknown_message_type",
        gzip.compress(b'{"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s"}'): "bad_cwl_payload",
        cwl([{"id": "1", "timestamp": 1, "message": 5}]): "bad_cwl_payload",
        cwl([{"id": "1", "timestamp": "yesterday", "message": "m"}]): "bad_cwl_payload",
        cwl(["not an object"]): "bad_cwl_payload",
        gzip.compress(b'{"messageType": "DATA_MESSAGE"')[:-6]: "bad_gzip",
    }
    for data, reason in cases.items():
        out = decode_record(data)
        assert isinstance(out, Rejected), data
        assert out.reason == reason, (data, out)
        assert out.reason in REJECT_REASONS


def test_gzip_bomb_is_too_large_not_memory():
    bomb = gzip.compress(b"{" + b" " * (20 * 1024 * 1024) + b"}")
    assert len(bomb) < 100_000
    out = decode_record(bomb, max_bytes=1024 * 1024)
    assert out == Rejected("too_large", out.detail) and "exceeds" in out.detail


def test_oversized_record_is_too_large():
    assert decode_record(b"x" * 2000, max_bytes=1000).reason == "too_large"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_no_bytes_crash_decode(data):
    out = decode_record(data)
    assert isinstance(out, (Decoded, Rejected))
    if isinstance(out, Rejected):
        assert out.reason in REJECT_REASONS


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
                        ["messageType", "logGroup", "logStream", "logEvents", "id", "timestamp", "message"]), c, max_size=5),
                    max_leaves=15))
def test_no_gzip_json_shape_crashes_decode(doc):
    out = decode_record(gzip.compress(orjson.dumps(doc)))
    assert isinstance(out, (Decoded, Rejected))
