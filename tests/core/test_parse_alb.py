"""parse_alb: AWS's documented ALB access-log entries, IPv6, escapes, `-`/-1 as missing, older and
newer field counts, every rejection; ALB entries read by JSON-format rules (`parse_json_or_alb`);
`sieve topn --rule rules/alb/...` end to end against expectations computed without the engine."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.cli import main
from processors.core.aggregate import Accumulator
from processors.core.parse import (ALB_FIELDS, ALB_RECORD_KEYS, REJECT_REASONS, Rejected, looks_like_alb, parse_alb,
                                   parse_json_or_alb)
from processors.core.rules import compile_rule

from processors.config.rule_files import load_rule_file

ROOT = Path(__file__).resolve().parents[2]
ALB_RULES = ROOT / "rules" / "alb"
DATA = Path(__file__).resolve().parent / "data"

# The documented shape with every field through conn_trace_id (an HTTPS entry forwarded to a target).
HTTPS = ('https 2018-07-02T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 10.0.0.1:80 '
         '0.086 0.048 0.037 200 200 0 57 "GET https://www.example.com:443/p/a?x=1 HTTP/1.1" "curl/7.46.0" '
         'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 '
         '"Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" '
         '"arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 '
         '2018-07-02T22:22:48.364000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-" TID_1234abcd5678ef90')
# The load balancer answered itself: no target, processing times -1, target status '-'.
NO_TARGET = ('http 2018-11-30T22:23:00.186641Z app/my-loadbalancer/50dc6c495c0c9188 192.168.131.39:2817 - -1 -1 -1 '
             '503 - 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - - '
             '"Root=1-58337364-23a8c76965a2ef7629b185e3" "-" "-" 0 2018-11-30T22:22:48.364000Z "forward" "-" '
             '"-" "-" "-" "-" "-" -')


def test_documented_https_entry():
    ts, rec = parse_alb(HTTPS)
    assert ts == pytest.approx(1530570180.186641, abs=1e-6) and math.floor(ts) == 1530570180
    assert set(rec) == set(ALB_RECORD_KEYS)
    assert rec["type"] == "https" and rec["time"] == "2018-07-02T22:23:00.186641Z"
    assert rec["elb"] == "app/my-loadbalancer/50dc6c495c0c9188"
    assert (rec["client"], rec["client_port"]) == ("192.168.131.39", 2817)
    assert (rec["target"], rec["target_ip"], rec["target_port"]) == ("10.0.0.1:80", "10.0.0.1", 80)
    assert (rec["request_processing_time"], rec["target_processing_time"], rec["response_processing_time"]) == (0.086, 0.048, 0.037)
    assert (rec["elb_status_code"], rec["target_status_code"], rec["received_bytes"], rec["sent_bytes"]) == (200, 200, 0, 57)
    assert rec["request"] == "GET https://www.example.com:443/p/a?x=1 HTTP/1.1"
    assert (rec["method"], rec["url"], rec["path"], rec["protocol"]) == ("GET", "https://www.example.com:443/p/a?x=1", "/p/a", "HTTP/1.1")
    assert rec["request_uri"] == "/p/a?x=1" and "path_template" not in rec  # derived when a rule reads it
    assert rec["user_agent"] == "curl/7.46.0" and rec["ssl_protocol"] == "TLSv1.2"
    assert rec["trace_id"] == "Root=1-58337281-1d84f3d73c47ec4e58577259" and rec["domain_name"] == "www.example.com"
    assert rec["matched_rule_priority"] == 1 and rec["request_creation_time"] == "2018-07-02T22:22:48.364000Z"
    assert rec["actions_executed"] == "authenticate,forward" and rec["redirect_url"] is None and rec["error_reason"] is None
    assert rec["target_port_list"] == "10.0.0.1:80" and rec["target_status_code_list"] == "200"
    assert rec["classification"] is None and rec["classification_reason"] is None
    assert rec["conn_trace_id"] == "TID_1234abcd5678ef90" and rec["extra"] is None


def test_dash_and_minus_one_are_missing():
    _, rec = parse_alb(NO_TARGET)
    assert rec["target"] is rec["target_ip"] is rec["target_port"] is None
    assert rec["request_processing_time"] is rec["target_processing_time"] is rec["response_processing_time"] is None
    assert rec["elb_status_code"] == 503 and rec["target_status_code"] is None
    assert rec["ssl_cipher"] is None and rec["target_group_arn"] is None and rec["domain_name"] is None
    assert rec["conn_trace_id"] is None and rec["path"] == "/"


def test_ipv6_clients_with_and_without_brackets():
    _, a = parse_alb(HTTPS.replace("192.168.131.39:2817", "[2001:db8::ff00:42:8329]:2817"))
    _, b = parse_alb(HTTPS.replace("192.168.131.39:2817", "2001:db8::ff00:42:8329:2817"))
    _, c = parse_alb(HTTPS.replace("10.0.0.1:80 0.086", "[2001:db8::7]:8080 0.086"))
    assert (a["client"], a["client_port"]) == (b["client"], b["client_port"]) == ("2001:db8::ff00:42:8329", 2817)
    assert (c["target"], c["target_ip"], c["target_port"]) == ("[2001:db8::7]:8080", "2001:db8::7", 8080)


def test_escaped_quotes_in_user_agent_and_url():
    line = HTTPS.replace('"curl/7.46.0"', '"Mozilla/5.0 (compatible; \\"Quoted\\" Monitor) back\\\\slash"')
    line = line.replace("/p/a?x=1", '/q\\"x')
    _, rec = parse_alb(line)
    assert rec["user_agent"] == 'Mozilla/5.0 (compatible; "Quoted" Monitor) back\\slash'
    assert rec["path"] == '/q"x'


def test_older_entries_without_trailing_fields_and_newer_with_more():
    # 2019-era entry: ends at error_reason
    old = HTTPS.split(' "10.0.0.1:80" ')[0]
    _, rec = parse_alb(old)
    assert rec["error_reason"] is None and rec["target_port_list"] is None and rec["conn_trace_id"] is None
    # only type .. user_agent
    minimal = HTTPS.split(" ECDHE-")[0]
    _, rec = parse_alb(minimal)
    assert rec["user_agent"] == "curl/7.46.0" and rec["ssl_cipher"] is None and rec["matched_rule_priority"] is None
    # fields AWS may append later are kept, not rejected
    _, rec = parse_alb(HTTPS + ' "www.example.com" "/rewritten" "-"')
    assert rec["conn_trace_id"] == "TID_1234abcd5678ef90" and rec["extra"] == ["www.example.com", "/rewritten", "-"]


def test_request_line_variants():
    _, rec = parse_alb(HTTPS.replace("https://www.example.com:443/p/a?x=1", "https://www.example.com"))
    assert rec["path"] == rec["request_uri"] == "/"
    _, rec = parse_alb(HTTPS.replace("https://www.example.com:443/p/a?x=1", "https://www.example.com?x=/y"))
    assert (rec["path"], rec["request_uri"]) == ("/", "/?x=/y")  # a / in the query is not the path
    _, rec = parse_alb(HTTPS.replace("https://www.example.com:443/p/a?x=1", "/orders/41/items/9f1c0c2e-1b2a-4c3d-8e9f-0123456789ab?a=1"))
    assert (rec["path"], rec["request_uri"]) == ("/orders/41/items/9f1c0c2e-1b2a-4c3d-8e9f-0123456789ab",
                                                 "/orders/41/items/9f1c0c2e-1b2a-4c3d-8e9f-0123456789ab?a=1")
    tpl = load_rule_file(ALB_RULES / "errors-by-path-template.json")
    assert tpl.apply({**rec, "elb_status_code": 502}) == (("/orders/{id}/items/{id}",), 1)
    # seen in the wild for requests the load balancer could not parse
    _, rec = parse_alb(NO_TARGET.replace('"GET http://www.example.com:80/ HTTP/1.1"', '"- http://www.example.com:80- -"'))
    assert rec["method"] is None and rec["protocol"] is None and rec["url"] == "http://www.example.com:80-"
    _, rec = parse_alb(NO_TARGET.replace('"GET http://www.example.com:80/ HTTP/1.1"', '"GET http://x/a HTTP/1.1 "'))
    assert (rec["method"], rec["path"], rec["protocol"]) == ("GET", "/a", "HTTP/1.1")
    _, rec = parse_alb(NO_TARGET.replace('"GET http://www.example.com:80/ HTTP/1.1"', '"-"'))
    assert rec["request"] is rec["method"] is rec["url"] is rec["path"] is rec["request_uri"] is None
    for t in ("h2", "grpcs", "ws", "wss", "http"):
        assert type(parse_alb(t + HTTPS[5:])) is tuple


@pytest.mark.parametrize("line,reason", [
    ("", "empty"),
    ("   ", "empty"),
    ("tcp " + HTTPS[6:], "malformed_alb_line"),
    ("https 2018-07-02T22:23:00Z app/x 1.2.3.4:5", "malformed_alb_line"),
    (HTTPS.replace('"curl/7.46.0"', '"curl/7.46.0'), "malformed_alb_line"),
    (HTTPS.replace('"curl/7.46.0"', "curl/7.46.0"), "malformed_alb_line"),
    (HTTPS.replace(' "www.example.com" ', " www.example.com "), "malformed_alb_line"),
    (HTTPS.replace("192.168.131.39:2817", "192.168.131.39"), "malformed_alb_line"),
    (HTTPS.replace("10.0.0.1:80 0.086", "10.0.0.1 0.086"), "malformed_alb_line"),
    (HTTPS.replace(" 1 2018-07-02T22:22:48", " x 2018-07-02T22:22:48"), "malformed_alb_line"),
    (HTTPS.replace("2018-07-02T22:23:00.186641Z", "2018-07-02 22:23:00"), "malformed_alb_line"),
    (HTTPS.replace("2018-07-02T22:23:00.186641Z", "2018-13-02T22:23:00.186641Z"), "bad_timestamp"),
    (HTTPS.replace("2018-07-02T22:23:00.186641Z", "02/Jul/2018:22:23:00"), "bad_timestamp"),
    (HTTPS.replace("2018-07-02T22:23:00.186641Z", "2018-07-02T22:23:00.186641+01:00"), "bad_timestamp"),
    (HTTPS.replace(" 200 200 0 57 ", " 2000 200 0 57 "), "bad_status"),
    (HTTPS.replace(" 200 200 0 57 ", " 200 OK 0 57 "), "bad_status"),
    (HTTPS.replace(" 200 200 0 57 ", " 200 200 -5 57 "), "bad_bytes"),
    (HTTPS.replace(" 200 200 0 57 ", " 200 200 0 5x "), "bad_bytes"),
    (HTTPS.replace("0.086 0.048", "0.086 -0.5"), "bad_latency"),
    (HTTPS.replace("0.086 0.048", "0.086 fast"), "bad_latency"),
    (HTTPS.replace('"GET https://www.example.com:443/p/a?x=1 HTTP/1.1"', '"GARBAGE"'), "malformed_request_line"),
    ("https " + "x" * 70_000, "too_long"),
])  # fmt: skip
def test_rejections_name_their_reason(line, reason):
    got = parse_alb(line)
    assert type(got) is Rejected and got.reason == reason, got
    assert got.reason in REJECT_REASONS


def test_fields_table_matches_documented_order():
    names = [n for n, _ in ALB_FIELDS]
    assert names[:14] == ["type", "time", "elb", "client:port", "target:port", "request_processing_time",
                          "target_processing_time", "response_processing_time", "elb_status_code",
                          "target_status_code", "received_bytes", "sent_bytes", "request", "user_agent"]
    assert names[-4:] == ["target_status_code_list", "classification", "classification_reason", "conn_trace_id"]


# -------------------------------------------------------------------------------- properties

_PIECES = st.sampled_from(list(' "\\:-.0123456789abcTZ/[]?=\n\t\r') + ["https ", "h2 ", "-1 ", "\x00", "é", "\ud800"])
_ALB_TEXT = st.lists(_PIECES, max_size=120).map("".join)


@settings(max_examples=400, deadline=None)
@given(_ALB_TEXT | st.text(max_size=300))
def test_any_text_is_parsed_or_rejected_with_a_reason(text):
    for line in (text, "https " + text, HTTPS[: len(text) % len(HTTPS)] + text):
        got = parse_alb(line)
        if type(got) is Rejected:
            assert got.reason in REJECT_REASONS and got.detail
        else:
            ts, rec = got
            assert isinstance(ts, (int, float)) and math.isfinite(ts) and set(rec) == set(ALB_RECORD_KEYS)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(HTTPS) - 1), min_size=1, max_size=4), st.lists(_PIECES, max_size=4).map("".join))
def test_mutated_entries_never_crash(positions, junk):
    line = HTTPS
    for p in sorted(positions, reverse=True):
        line = line[:p] + junk + line[p + 1:]
    got = parse_alb(line)
    assert type(got) is Rejected and got.reason in REJECT_REASONS or (type(got) is tuple and set(got[1]) == set(ALB_RECORD_KEYS))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["http", "https", "h2", "grpcs", "ws", "wss"]), st.integers(0, 2**32 - 1), st.integers(1, 65535),
       st.integers(100, 599), st.integers(0, 10**12), st.integers(0, 999_999),
       st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40))
def test_generated_entries_round_trip(typ, ip, port, status, size, micros, agent):
    client = ".".join(str((ip >> s) & 255) for s in (24, 16, 8, 0))
    ua = agent.replace("\\", "\\\\").replace('"', '\\"')
    line = (f"{typ} 2024-03-04T10:00:00.{micros:06d}Z app/lb/1 {client}:{port} 10.0.0.9:8080 0.001 1.250 0.000 "
            f'{status} {status} 10 {size} "POST https://h.example:443/a/b?c HTTP/2.0" "{ua}" - - - "-" "-" "-" - '
            f'2024-03-04T10:00:00.000000Z "forward" "-" "-" "-" "-" "-" "-" -')
    got = parse_alb(line)
    assert type(got) is tuple, got
    ts, rec = got
    assert math.floor(ts) == 1709546400 and ts - 1709546400 == pytest.approx(micros / 1e6, abs=1e-6)
    assert (rec["client"], rec["client_port"], rec["elb_status_code"], rec["sent_bytes"]) == (client, port, status, size)
    assert rec["user_agent"] == (agent if agent != "-" else None) and rec["target_processing_time"] == 1.25
    assert rec["path"] == "/a/b" and rec["request_uri"] == "/a/b?c" and rec["method"] == "POST"


# -------------------------------------------------------------------- JSON-format rules read ALB

def test_json_rules_read_alb_entries_and_json_lines_keep_their_meaning():
    assert looks_like_alb(HTTPS) and looks_like_alb(HTTPS.encode()) and not looks_like_alb('{"a": 1}')
    assert parse_json_or_alb(HTTPS) == parse_alb(HTTPS)
    assert parse_json_or_alb('{"time": 5, "status": 200}') == (5, {"time": 5, "status": 200})
    assert parse_json_or_alb("httpx nope").reason == "bad_json"
    rule = load_rule_file(ALB_RULES / "5xx-by-target.json")
    assert rule.apply(parse_alb(HTTPS.replace(" 200 200 0 57 ", " 502 502 0 57 "))[1]) == (("10.0.0.1:80",), 1)
    assert rule.apply(parse_alb(HTTPS)[1]) is None
    assert rule.apply(parse_alb(NO_TARGET)[1]) is None  # a 503 with no target has no key: contributes nothing
    slow = load_rule_file(ALB_RULES / "slow-by-path.json")
    assert slow.apply(parse_alb(HTTPS)[1]) == (("/p/a",), 0.048)
    assert slow.apply(parse_alb(NO_TARGET)[1]) is None  # -1: not applicable, not summed


def test_accumulator_mixes_alb_and_json_lines_for_json_rules():
    rule = compile_rule({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/x"],
                         "LogFormat": "JSON", "Contribution": {"Keys": ["$.path"]}, "AggregateOn": "Count"}, "paths")
    acc = Accumulator([rule], period=60)
    acc.add_line(HTTPS)
    acc.add_line('{"time": "2018-07-02T22:23:30Z", "path": "/p/a"}')
    acc.add_line("https not an entry")
    (rep,) = acc.reports()
    assert rep.window.start == 1530570180 and [(c.keys, c.value) for c in rep.contributors] == [(("/p/a",), 2)]
    assert acc.stats.rejected == {"malformed_alb_line": 1} and acc.stats.parsed == 2


# ---------------------------------------------------------------------------------- end to end

def _topn(capsys, rules, *files, top=10):
    args = ["topn", "--json", "--top", str(top)]
    for r in rules:
        args += ["--rule", str(ALB_RULES / f"{r}.json")]
    capsys.readouterr()
    assert main(args + [str(f) for f in files]) == 0
    return orjson.loads(capsys.readouterr().out)


def test_hand_written_fixture_matches_its_hand_written_expectation(capsys):
    """tests/core/data/alb-small.log: 14 entries written by hand; the expected top-N beside it was
    counted by hand from the entries (see the comments in the .expected.json)."""
    expected = orjson.loads((DATA / "alb-small.expected.json").read_bytes())
    result = _topn(capsys, ["5xx-by-target", "slow-by-path"], DATA / "alb-small.log")
    assert result["stats"]["rejected"] == expected["rejected"] and result["stats"]["parsed"] == expected["parsed"]
    got = {(r["rule"], r["window"]["start"]): r for r in result["reports"]}
    assert len(got) == len(expected["reports"])
    for exp in expected["reports"]:
        rep = got[(exp["rule"], exp["window_start"])]
        assert [(c["keys"], c["value"]) for c in rep["contributors"]] == [
            (c["keys"], pytest.approx(c["value"], abs=1e-9)) for c in exp["top"]], exp["rule"]
        assert rep["sample_count"] == exp["sample_count"] and rep["total_events"] == exp["total_events"]


def test_generated_alb_traffic_matches_the_generators_truth(tmp_path, capsys):
    out = tmp_path / "alb.log.gz"
    assert main(["gen", "access-log", "--seed", "11", "--lines", "20000", "--duration", "1200", "--out", str(out),
                 "--format", "alb", "--incident", "burst500", "--incident", "scan404:count=150",
                 "--incident", "slow_upstream:at=600,count=120,duration=90", "--incident", "bytes_hog:count=20"]) == 0
    truth = orjson.loads(Path(str(out) + ".truth.json").read_bytes())
    names = ["5xx-by-target", "slow-by-path", "404-by-client", "bytes-by-client"]
    assert sorted(truth["rules"]) == sorted(names) and list(truth["extra_rules"]) == ["errors-by-path-template"]
    result = _topn(capsys, names + ["errors-by-path-template"], out)
    assert result["stats"]["rejected"] == {} and result["stats"]["parsed"] == 20000
    by_rule: dict = {}
    for rep in result["reports"]:
        by_rule.setdefault(rep["rule"], {})[rep["window"]["start"]] = rep
    for name in names + ["errors-by-path-template"]:
        wins = truth["rules"][name] if name in names else truth["extra_rules"][name]
        assert len(wins) == len(by_rule[name]) == 1200 // 60
        for win in wins:
            rep = by_rule[name][win["window"][0]]
            assert rep["contributors"] == win["top"], (name, win["window"])
            for field in ("unique_contributors", "max_contributor_value", "sample_count", "sum", "total_events"):
                assert rep[field] == win[field], (name, win["window"], field)
    tops = {(r["rule"], r["window"]["start"]): r["contributors"] for r in result["reports"]}
    for inc in truth["incidents"]:
        assert sum(w["incident_lines"] for w in inc["windows"]) == inc["count"]
        for w in inc["windows"]:
            top = tops[(inc["rule"], w["window"][0])]
            assert top[0]["keys"] == inc["rule_keys"] and top[0]["value"] == w["rule_value"] >= w["incident_lines"]
    burst = next(i for i in truth["incidents"] if i["kind"] == "burst500")
    assert burst["rule"] == "5xx-by-target" and burst["rule_keys"] == ["10.0.1.13:8080"]


def test_alb_traffic_is_the_same_traffic_as_combined(tmp_path):
    from processors.core.generate import AccessLogGenerator, GeneratorConfig, IncidentSpec
    from processors.core.parse import parse_clf

    def lines(fmt):
        g = AccessLogGenerator(GeneratorConfig(seed=5, lines=2000, duration=600, format=fmt,
                                               incidents=(IncidentSpec("burst500"), IncidentSpec("scan404"))))
        return list(g.lines())

    for c, a in zip(lines("combined"), lines("alb"), strict=True):
        _, crec = parse_clf(c)
        _, arec = parse_alb(a)
        assert (arec["client"], arec["method"], arec["elb_status_code"]) == (crec.get("client"), crec.get("method"), int(crec.get("status")))
        assert (arec["path"], arec["request_uri"]) == (crec.get("path"), crec.get("request_uri"))
