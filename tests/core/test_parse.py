"""parse_clf / parse_json: formats, time zones, IPv6, escapes, missing bytes, every rejection."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.parse import (CLF_INDEX, CLF_POSITIONS, REJECT_REASONS, ClfRecord, JsonFields, Rejected,
                                   parse_clf, parse_clf_time, parse_json)

APACHE = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
COMBINED = ('127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
            '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"')


def test_apache_common_example():
    ts, rec = parse_clf(APACHE)
    assert ts == 971211336  # 2000-10-10T20:55:36Z
    assert rec.as_dict() == {"client": "127.0.0.1", "ident": "-", "user": "frank", "time": "10/Oct/2000:13:55:36 -0700",
                             "request": "GET /apache_pb.gif HTTP/1.0", "status": "200", "bytes": "2326",
                             "method": "GET", "path": "/apache_pb.gif", "protocol": "HTTP/1.0"}
    assert rec.get("referer") is None and rec.get("nope", "d") == "d"


def test_combined_has_referer_and_user_agent():
    ts, rec = parse_clf(COMBINED)
    assert rec.get("referer") == "http://www.example.com/start.html"
    assert rec.get("user_agent") == "Mozilla/4.08 [en] (Win98; I ;Nav)"


def test_positions_follow_cloudwatch_bracket_and_quote_rule():
    _, rec = parse_clf(COMBINED)
    by_pos = {p: rec.get(name) for p, name in CLF_POSITIONS.items()}
    assert by_pos[4] == "10/Oct/2000:13:55:36 -0700"  # [time] is ONE field
    assert by_pos[5] == "GET /apache_pb.gif HTTP/1.0"  # "request" is ONE field
    assert by_pos[6] == "200" and by_pos[7] == "2326" and by_pos[9].startswith("Mozilla")
    assert isinstance(rec, ClfRecord) and rec[CLF_INDEX["status"]] == "200"


def test_time_zones_convert_to_the_same_instant():
    a, _ = parse_clf(APACHE)
    b, _ = parse_clf(APACHE.replace("13:55:36 -0700", "20:55:36 +0000"))
    c, _ = parse_clf(APACHE.replace("10/Oct/2000:13:55:36 -0700", "11/Oct/2000:02:25:36 +0530"))
    assert a == b == c


def test_ipv6_client_and_missing_bytes():
    ts, rec = parse_clf('2001:db8::ff00:42:8329 - - [04/Mar/2024:10:00:00 +0000] "GET /x HTTP/2.0" 304 -')
    assert rec.get("client") == "2001:db8::ff00:42:8329" and rec.get("bytes") == "-"


def test_escaped_quotes_in_user_agent_and_request():
    line = ('10.0.0.1 - - [04/Mar/2024:10:00:00 +0000] "GET /q?x=\\"1\\" HTTP/1.1" 200 5 "-" '
            '"Mozilla/5.0 (compatible; \\"Quoted\\" Monitor/1.0) back\\\\slash"')
    _, rec = parse_clf(line)
    assert rec.get("path") == '/q?x="1"'
    assert rec.get("user_agent") == 'Mozilla/5.0 (compatible; "Quoted" Monitor/1.0) back\\slash'


def test_nginx_trailing_fields_go_to_extra():
    _, rec = parse_clf(COMBINED + " 0.123 upstream-1  ")
    assert rec.get("extra") == "0.123 upstream-1"


def test_http09_request_without_protocol_is_accepted():
    _, rec = parse_clf(APACHE.replace("GET /apache_pb.gif HTTP/1.0", "GET /old"))
    assert (rec.get("method"), rec.get("path"), rec.get("protocol")) == ("GET", "/old", None)


def test_rejections_name_their_reason():
    cases = {
        "": "empty",
        "hello world": "malformed_line",
        APACHE.replace("[10/Oct/2000:13:55:36 -0700]", "[10/Oct/2000:13:55:36"): "bad_timestamp",
        APACHE.replace("10/Oct/2000", "32/Oct/2000"): "bad_timestamp",
        APACHE.replace("10/Oct/2000", "10/Okt/2000"): "bad_timestamp",
        APACHE.replace("-0700", "-0790"): "bad_timestamp",
        APACHE.replace("10/Oct/2000:13:55:36 -0700", "2000-10-10T13:55:36Z"): "bad_timestamp",
        APACHE.replace('"GET /apache_pb.gif HTTP/1.0"', '"-"'): "malformed_request_line",
        APACHE.replace('"GET /apache_pb.gif HTTP/1.0"', '"\\x16\\x03\\x01"'): "malformed_request_line",
        APACHE.replace('"GET /apache_pb.gif HTTP/1.0"', "GET /apache_pb.gif HTTP/1.0"): "malformed_request_line",
        APACHE.replace('"GET /apache_pb.gif HTTP/1.0"', '"GET /a b HTTP/1.0"'): "malformed_request_line",
        APACHE.replace('"GET /apache_pb.gif HTTP/1.0"', '"GET /unterminated'): "malformed_request_line",
        APACHE.replace(" 200 ", " 2000 "): "bad_status",
        APACHE.replace(" 200 ", " OK "): "bad_status",
        APACHE.replace(" 200 ", " 700 "): "bad_status",
        APACHE.replace(" 2326", " 12kb"): "bad_bytes",
        "x" * 70_000: "too_long",
    }
    for line, reason in cases.items():
        out = parse_clf(line)
        assert isinstance(out, Rejected), line
        assert out.reason == reason, (line[:80], out)
        assert out.reason in REJECT_REASONS


def test_clf_time_cache_returns_same_values():
    assert parse_clf_time("10/Oct/2000:13:55:36 -0700") == parse_clf_time("10/Oct/2000:13:55:36 -0700") == 971211336
    assert parse_clf_time("29/Feb/2023:00:00:00 +0000") is None
    assert parse_clf_time("29/Feb/2024:00:00:00 +0000") == 1709164800


def test_json_line_with_iso_time():
    ts, obj = parse_json('{"time": "2024-03-04T10:00:01.500Z", "status": 503, "path": "/x", "bytes": null}')
    assert ts == 1709546401.5 and obj["status"] == 503


def test_json_time_forms_and_missing_time():
    assert parse_json('{"time": 1709546400}')[0] == 1709546400
    assert parse_json('{"time": 1709546400123}')[0] == 1709546400.123
    assert parse_json('{"time": "04/Mar/2024:10:00:00 +0000"}')[0] == 1709546400
    assert parse_json('{"time": "2024-03-04T11:00:00+01:00"}')[0] == 1709546400
    assert parse_json('{"msg": "no time"}')[0] is None


def test_json_configurable_field_names():
    fields = JsonFields(time="ts", status="resp.code", path="uri", bytes="", latency="")
    ts, obj = parse_json('{"ts": 1709546400, "resp": {"code": "404"}, "uri": "/a", "bytes": "lots"}', fields)
    assert ts == 1709546400 and obj["resp"]["code"] == "404"
    assert parse_json('{"ts": 1, "resp": {"code": 42}}', fields).reason == "bad_status"


def test_json_rejections():
    cases = {
        "": "empty",
        "{not json": "bad_json",
        "[1, 2]": "not_object",
        '"text"': "not_object",
        '{"time": "yesterday"}': "bad_timestamp",
        '{"time": -5}': "bad_timestamp",
        '{"time": true}': "bad_timestamp",
        '{"status": 1000}': "bad_status",
        '{"status": "5xx"}': "bad_status",
        '{"status": true}': "bad_status",
        '{"bytes": -1}': "bad_bytes",
        '{"bytes": 1.5}': "bad_bytes",
        '{"latency_ms": "slow"}': "bad_latency",
        '{"latency_ms": -3}': "bad_latency",
    }
    for line, reason in cases.items():
        out = parse_json(line)
        assert isinstance(out, Rejected), line
        assert out.reason == reason, (line, out)
        assert out.reason in REJECT_REASONS
    assert parse_json('{"bytes": "-", "latency_ms": "12.5"}')[1]["bytes"] == "-"


_clf_parts = st.fixed_dictionaries({
    "client": st.sampled_from(["1.2.3.4", "::1", "2001:db8::1", "-", "host.example"]),
    "time": st.sampled_from(["10/Oct/2000:13:55:36 -0700", "29/Feb/2024:23:59:59 +1400", "bad", ""]),
    "req": st.text(max_size=30),
    "status": st.sampled_from(["200", "404", "503", "99", "abc", "-"]),
    "bytes": st.sampled_from(["0", "-", "123", "x"]),
    "ua": st.text(max_size=30),
})


@settings(max_examples=500, deadline=None)
@given(_clf_parts)
def test_every_clf_shaped_line_is_parsed_or_rejected(p):
    line = f'{p["client"]} - - [{p["time"]}] "{p["req"]}" {p["status"]} {p["bytes"]} "-" "{p["ua"]}"'
    out = parse_clf(line)
    if isinstance(out, Rejected):
        assert out.reason in REJECT_REASONS
    else:
        ts, rec = out
        assert isinstance(ts, int) and rec.get("status").isdigit() and rec.get("path")


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_no_text_crashes_parsers(text):
    for out in (parse_clf(text), parse_json(text)):
        assert isinstance(out, Rejected) and out.reason in REJECT_REASONS or isinstance(out, tuple)


@settings(max_examples=500, deadline=None)
@given(_clf_parts, st.sampled_from(["", " 0.1", "  x y  ", " "]))
def test_fast_and_slow_clf_paths_agree(p, tail):
    from processors.core.parse import _parse_clf_slow

    line = f'{p["client"]} - - [{p["time"]}] "{p["req"]}" {p["status"]} {p["bytes"]} "-" "{p["ua"]}"{tail}'
    if "\\" not in line:
        assert parse_clf(line) == _parse_clf_slow(line)
