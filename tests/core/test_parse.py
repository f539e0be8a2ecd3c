"""parse_clf / parse_json: formats, time zones, IPv6, escapes, missing bytes, every rejection."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.parse import (CLF_INDEX, CLF_NAMED_FIELDS, CLF_POSITIONS, REJECT_REASONS, ClfRecord, JsonFields,
                                   Rejected, parse_alb, parse_clf, parse_clf_time, parse_json, path_template,
                                   split_target)

APACHE = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
COMBINED = ('127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
            '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"')


def test_apache_common_example():
    ts, rec = parse_clf(APACHE)
    assert ts == 971211336  # 2000-10-10T20:55:36Z
    assert rec.as_dict() == {"client": "127.0.0.1", "ident": "-", "user": "frank", "time": "10/Oct/2000:13:55:36 -0700",
                             "request": "GET /apache_pb.gif HTTP/1.0", "status": "200", "bytes": "2326",
                             "method": "GET", "request_uri": "/apache_pb.gif", "path": "/apache_pb.gif",
                             "path_template": "/apache_pb.gif", "protocol": "HTTP/1.0"}
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
    assert rec.get("request_uri") == '/q?x="1"' and rec.get("path") == "/q"
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
        _assert_target_fields(rec.get("request_uri"), rec.get("path"))
        assert rec.get("path_template") == path_template(rec.get("path"))


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


# -- the request target: request_uri, path (no query string), path_template -----------------------

LINE = '10.0.0.{c} - - [04/Mar/2024:10:00:0{s} +0000] "{m} {t} HTTP/1.1" {st} 12 "-" "ua"'


def _assert_target_fields(request_uri, path):
    """path never has a query string; request_uri is path + ('?' + query if there is one)."""
    assert "?" not in path and path
    query = request_uri.partition("?")[2] if "?" in request_uri else None
    assert request_uri == path + ("?" + query if query is not None else "")


def test_path_drops_the_query_string_request_uri_keeps_it():
    _, rec = parse_clf(LINE.format(c=1, s=1, m="POST", t="/api/v1/checkout?step=payment&token=s3cr3t", st=500))
    assert rec.get("path") == "/api/v1/checkout"
    assert rec.get("request_uri") == "/api/v1/checkout?step=payment&token=s3cr3t"
    assert rec.get("request") == "POST /api/v1/checkout?step=payment&token=s3cr3t HTTP/1.1"  # position 5: as logged
    assert rec.get("path_template") == "/api/v1/checkout"
    assert rec.get("query") == "step=payment&token=s3cr3t"
    assert {"request_uri", "path", "query", "path_template"} <= CLF_NAMED_FIELDS
    _, rec = parse_clf(LINE.format(c=1, s=1, m="GET", t="/a?", st=200))  # an empty query
    assert (rec.get("path"), rec.get("request_uri"), rec.get("query")) == ("/a", "/a?", "")
    _, rec = parse_clf(LINE.format(c=1, s=1, m="GET", t="/a", st=200))  # no query
    assert (rec.get("path"), rec.get("request_uri"), rec.get("query")) == ("/a", "/a", None)
    _, rec = parse_clf(LINE.format(c=1, s=1, m="GET", t="/a?b?c=/d", st=200))  # only the first ? splits
    assert (rec.get("path"), rec.get("request_uri")) == ("/a", "/a?b?c=/d")


def test_other_request_target_forms():
    for target, request_uri, path in [
        ("http://example.com:8080/a/b?x=1", "/a/b?x=1", "/a/b"),  # absolute-form (a forward proxy)
        ("https://example.com", "/", "/"),
        ("https://example.com?x=1", "/?x=1", "/"),
        ("?x=1", "/?x=1", "/"),
        ("*", "*", "*"),  # OPTIONS *
        ("example.com:443", "example.com:443", "example.com:443"),  # CONNECT
    ]:
        assert split_target(target) == (request_uri, path), target
        _, rec = parse_clf(LINE.format(c=1, s=1, m="GET", t=target, st=200))
        assert (rec.get("request_uri"), rec.get("path")) == (request_uri, path), target


def test_path_template_masks_ids_and_keeps_names():
    cases = {
        "/api/v1/orders/41/items/9f1c0c2e-1b2a-4c3d-8e9f-0123456789ab": "/api/v1/orders/{id}/items/{id}",
        "/api/v1/orders/41/items/9F1C0C2E-1B2A-4C3D-8E9F-0123456789AB": "/api/v1/orders/{id}/items/{id}",
        "/users/123/avatar": "/users/{id}/avatar",
        "/objects/5f2b9c1e8d3a4b6c7e8f9a0b": "/objects/{id}",  # 24 hex (an ObjectId)
        "/commits/0a1b2c3d": "/commits/{id}",  # 8 hex with digits
        "/reset/eyJhbGciOiJIUzI1NiJ9abcDEF012": "/reset/{id}",  # base64-ish token
        "/c/cus_NffrFeUfNV2Hib": "/c/{id}",
        "/ulid/01ARZ3NDEKTSV4RRFFQ69G5FAV": "/ulid/{id}",
        "/users/bob@example.com/prefs": "/users/{id}/prefs",
        "/users/bob%40example.com": "/users/{id}",
        "/a/1/2/3": "/a/{id}/{id}/{id}",
        "/a/41?x=1": "/a/{id}",  # a query string is dropped first
        # kept: names, versions, slugs, files, hex-letter words
        "/": "/",
        "/api/v1/users/me": "/api/v1/users/me",
        "/blog/release-notes-2024": "/blog/release-notes-2024",
        "/docs/getting-started-with-the-sdk-v2": "/docs/getting-started-with-the-sdk-v2",
        "/img/hero-12.jpg": "/img/hero-12.jpg",
        "/static/app.3f9a1c.js": "/static/app.3f9a1c.js",
        "/feed/deadbeef": "/feed/deadbeef",
        "/x/abc123": "/x/abc123",
    }
    for path, want in cases.items():
        assert path_template(path) == want, path
        assert path_template(path) == want  # cached: same answer


def test_json_lines_get_the_same_fields_from_the_configured_path_field():
    _, obj = parse_json('{"time": 1, "path": "/o/41?x=1", "status": 500}')
    assert (obj["path"], obj["request_uri"]) == ("/o/41", "/o/41?x=1")
    # a URL in another field: path and request_uri are added; a logged request_uri is kept
    fields = JsonFields(path="req.url")
    _, obj = parse_json('{"req": {"url": "https://shop.example/o/41?x=1"}}', fields)
    assert (obj["path"], obj["request_uri"], obj["req"]["url"]) == ("/o/41", "/o/41?x=1", "https://shop.example/o/41?x=1")
    _, obj = parse_json('{"uri": "/o/41", "request_uri": "/o/41?x=1"}', JsonFields(path="uri"))
    assert (obj["path"], obj["request_uri"]) == ("/o/41", "/o/41?x=1")
    _, obj = parse_json('{"path": "/elsewhere", "uri": "/o/41?x=1"}', JsonFields(path="uri"))
    assert obj["path"] == "/elsewhere"  # a logged path other than the configured field is kept
    # no path field, not a string, or path validation switched off: nothing is added
    assert parse_json('{"status": 200}')[1] == {"status": 200}
    assert parse_json('{"path": 7}')[1] == {"path": 7}
    assert parse_json('{"path": "/a?b"}', JsonFields(path=""))[1] == {"path": "/a?b"}


_segment = st.one_of(
    st.integers(0, 10**12).map(str),
    st.uuids().map(str),
    st.sampled_from(["api", "v1", "orders", "me", "static", "app.3f9a1c.js", "release-notes-2024", "", "%20", "a+b", "#x"]),
    st.text(st.characters(blacklist_characters="/?\" \\", blacklist_categories=("Cs", "Cc", "Zs")), max_size=12),
)
_query = st.none() | st.text(st.characters(blacklist_characters='" \\', blacklist_categories=("Cs", "Cc", "Zs")), max_size=20)


@settings(max_examples=400, deadline=None)
@given(st.lists(_segment, min_size=1, max_size=6), _query)
def test_property_path_never_has_a_query_and_request_uri_is_path_plus_query(segments, query):
    target = "/" + "/".join(segments) + ("?" + query if query is not None else "")
    line = LINE.format(c=1, s=1, m="GET", t=target, st=200)
    _, rec = parse_clf(line)
    assert rec.get("request_uri") == target and rec.get("query") == query
    assert rec.get("path") == "/" + "/".join(segments)
    _assert_target_fields(rec.get("request_uri"), rec.get("path"))
    tpl = rec.get("path_template")
    assert tpl == path_template(rec.get("path")) == path_template(target)
    assert tpl.count("/") == rec.get("path").count("/")  # segments are replaced, never merged or split
    for seg, out in zip(rec.get("path").split("/"), tpl.split("/")):
        assert out == seg or out == "{id}"
        if seg.isascii() and seg.isdigit():
            assert out == "{id}"
    # JSON and ALB derive the same fields from the same target
    _, obj = parse_json(orjson.dumps({"path": target}))
    assert (obj["path"], obj["request_uri"]) == (rec.get("path"), rec.get("request_uri"))
    _, alb = parse_alb(f'https 2024-03-04T10:00:00.000000Z app/lb/1 1.2.3.4:5 - -1 -1 -1 200 - 1 2 '
                       f'"GET https://h.example:443{target} HTTP/1.1" "ua"')
    assert (alb["path"], alb["request_uri"]) == (rec.get("path"), rec.get("request_uri"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_property_split_target_on_any_text(target):
    request_uri, path = split_target(target)
    assert "?" not in path and request_uri.startswith(path)
    assert request_uri == path + (request_uri[len(path):] if "?" in request_uri else "")
    if "?" in request_uri:
        assert request_uri[len(path)] == "?"
    tpl = path_template(path)
    assert "?" not in tpl and tpl.count("/") == path.count("/")
