"""The generator's ground truth equals what the engine computes over its file (CLI end to end)."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections import Counter
from pathlib import Path

import orjson
import pytest

from processors.cli import main
from processors.core.generate import AccessLogGenerator, GeneratorConfig, IncidentSpec, parse_incident

ROOT = Path(__file__).resolve().parents[2]
RULES = ["errors-by-path", "404-by-client", "bytes-by-client"]
EXTRA_RULES = ["errors-by-path-template"]


def gen(tmp_path, *extra, name="access.log", fmt="combined"):
    out = tmp_path / name
    rc = main(["gen", "access-log", "--seed", "11", "--lines", "30000", "--duration", "1800", "--out", str(out),
               "--format", fmt, "--incident", "burst500", "--incident", "scan404:count=150",
               "--incident", "slow_upstream:at=600,count=120,duration=90", "--incident", "bytes_hog:count=20", *extra])
    assert rc == 0
    return out, orjson.loads(Path(str(out) + ".truth.json").read_bytes())


def topn(capsys, rule_dir, *files, top=10):
    args = ["topn", "--json", "--top", str(top)]
    for r in RULES + EXTRA_RULES:
        args += ["--rule", str(rule_dir / f"{r}.json")]
    capsys.readouterr()
    assert main(args + [str(f) for f in files]) == 0
    return orjson.loads(capsys.readouterr().out)


def assert_truth_matches(truth, result):
    by_rule = {}
    for rep in result["reports"]:
        by_rule.setdefault(rep["rule"], {})[rep["window"]["start"]] = rep
    assert sorted(truth["rules"]) == sorted(RULES) and sorted(truth["extra_rules"]) == sorted(EXTRA_RULES)
    for rule in RULES + EXTRA_RULES:
        expected = truth["rules"][rule] if rule in RULES else truth["extra_rules"][rule]
        assert len(expected) == len(by_rule[rule]) == truth["duration"] // truth["period"]
        for win in expected:
            got = by_rule[rule][win["window"][0]]
            assert got["contributors"] == win["top"], (rule, win["window"])
            for field in ("unique_contributors", "max_contributor_value", "sample_count", "sum", "total_events"):
                assert got[field] == win[field], (rule, win["window"], field)
            assert got["approximate"] is False


@pytest.mark.parametrize("fmt,rule_dir", [("combined", ROOT / "rules"), ("json", ROOT / "rules" / "json")])
def test_truth_equals_engine(tmp_path, capsys, fmt, rule_dir):
    log, truth = gen(tmp_path, fmt=fmt, name=f"access.{fmt}")
    result = topn(capsys, rule_dir, log)
    assert result["stats"]["rejected"] == {} and result["stats"]["parsed"] == 30000
    assert_truth_matches(truth, result)
    # every incident is in the top of its rule in its window(s)
    tops = {(r["rule"], r["window"]["start"]): r["contributors"] for r in result["reports"]}
    for inc in truth["incidents"]:
        assert inc["windows"] and sum(w["incident_lines"] for w in inc["windows"]) == inc["count"]
        for w in inc["windows"]:
            top = tops[(inc["rule"], w["window"][0])]
            assert top[0]["keys"] == inc["rule_keys"] and top[0]["value"] == w["rule_value"] >= w["incident_lines"]


def test_incident_lines_have_the_labelled_shape(tmp_path):
    log, truth = gen(tmp_path)
    text = log.read_text()
    inc = {i["kind"]: i for i in truth["incidents"]}
    assert len(re.findall(r'"POST /api/v1/checkout(?:\?[^" ]*)? HTTP/[12]\.[01]" 500 [0-9]+ "[^"]*" "OrdersWorker/3\.4\.1"', text)) >= inc["burst500"]["count"]
    assert sum(1 for ln in text.splitlines() if ln.startswith("198.51.100.77 ") and '" 404 ' in ln) == 150
    assert len(re.findall(r'/api/v1/inventory\?sku=[0-9]+&warehouse=eu-1 HTTP/[12]\.[01]" 504 ', text)) == 120
    assert inc["slow_upstream"]["start"] == truth["start"] + 600
    assert any(ln.startswith("2001:db8:") for ln in text.splitlines())  # IPv6 clients
    assert '\\"Quoted\\"' in text  # escaped quotes in a user agent


def test_same_seed_same_bytes_other_seed_other_bytes():
    def digest(seed):
        g = AccessLogGenerator(GeneratorConfig(seed=seed, lines=3000, incidents=(IncidentSpec("burst500"),)))
        return hashlib.sha256("\n".join(g.lines()).encode()).hexdigest(), g.truth()

    a, b, c = digest(5), digest(5), digest(6)
    assert a == b and a[0] != c[0]


def test_time_zone_option_keeps_the_truth(tmp_path, capsys):
    log, truth = gen(tmp_path, "--tz", "-0700", name="tz.log")
    assert "-0700]" in log.read_text()[:200]
    assert_truth_matches(truth, topn(capsys, ROOT / "rules", log))


def test_gzip_and_cloudwatch_payload_files(tmp_path, capsys):
    log, truth = gen(tmp_path)
    lines = log.read_text().splitlines()
    gz = tmp_path / "part1.log.gz"
    gz.write_bytes(gzip.compress("\n".join(lines[:10000]).encode() + b"\n"))
    cwl = tmp_path / "part2.cwl.json"
    payloads = [orjson.dumps({"messageType": "CONTROL_MESSAGE", "logGroup": "", "logStream": "", "logEvents": []})]
    for i in range(10000, len(lines), 5000):
        payloads.append(orjson.dumps({"messageType": "DATA_MESSAGE", "logGroup": "/sieve/access/web", "logStream": "w1",
                                      "logEvents": [{"id": str(j), "timestamp": 0, "message": m}
                                                    for j, m in enumerate(lines[i:i + 5000])]}))
    cwl.write_bytes(b"\n".join(payloads) + b"\n")
    result = topn(capsys, ROOT / "rules", gz, cwl)
    assert result["stats"]["skipped"] == {"control_message": 1}
    assert_truth_matches(truth, result)


def test_bad_incident_and_options_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown incident kind 'meteor'"):
        parse_incident("meteor")
    with pytest.raises(ValueError, match="count must be >= 1"):
        parse_incident("burst500:count=0")
    assert main(["gen", "access-log", "--out", str(tmp_path / "x"), "--incident", "burst500:when=3"]) == 2
    assert "expected at=, count= or duration=" in capsys.readouterr().err
    assert main(["gen", "access-log", "--out", str(tmp_path / "x"), "--lines", "10", "--incident", "burst500"]) == 2
    assert "incidents need 40 lines" in capsys.readouterr().err
    assert main(["gen", "access-log", "--out", str(tmp_path / "x"), "--tz", "PST"]) == 2


def test_topn_reports_bad_rules_and_lines(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["x"], '
                   '"LogFormat": "CLF", "Contribution": {"Keys": ["path"]}, "AggregateOn": "Sum"}')
    log = tmp_path / "a.log"
    log.write_text("garbage\n\n1.2.3.4 - - [04/Mar/2024:10:00:00 +0000] \"GET /x HTTP/1.1\" 500 5\n")
    assert main(["topn", "--rule", str(bad), str(log)]) == 2
    assert "Contribution.ValueOf: is required when AggregateOn is Sum" in capsys.readouterr().err
    assert main(["topn", "--rule", str(ROOT / "rules" / "errors-by-path.json"), str(log)]) == 0
    out = capsys.readouterr().out
    assert "/x" in out and "malformed_line 1" in out and "blank_lines 1" in out


@pytest.mark.parametrize("fmt,rule_dir", [("combined", ROOT / "rules"), ("json", ROOT / "rules" / "json")])
def test_an_incident_with_several_query_strings_is_one_group(tmp_path, capsys, fmt, rule_dir):
    """Generated traffic carries query strings (search terms, paging, campaign tags, click ids,
    cache busters; the burst500 incident five of them): the errors rule keys on the path without
    them, so the burst is ONE contributor holding every one of its lines."""
    log, truth = gen(tmp_path, fmt=fmt, name=f"q.{fmt}")
    lines = log.read_text().splitlines()
    if fmt == "combined":
        targets = [ln.split('"')[1].split(" ")[1] for ln in lines]
    else:
        targets = [orjson.loads(ln)["path"] for ln in lines]
    with_query = [t for t in targets if "?" in t]
    assert 0.1 < len(with_query) / len(lines) < 0.4  # some requests, not all
    assert len(set(with_query)) > 1000  # high cardinality: click ids, cache busters
    burst = next(i for i in truth["incidents"] if i["kind"] == "burst500")
    checkout = Counter(t for t in targets if t.startswith("/api/v1/checkout?step="))
    assert len(checkout) == 5 and sum(checkout.values()) >= burst["count"]
    result = topn(capsys, rule_dir, log)
    tops = {(r["rule"], r["window"]["start"]): r["contributors"] for r in result["reports"]}
    for w in burst["windows"]:
        top = tops[("errors-by-path", w["window"][0])]
        assert top[0]["keys"] == ["/api/v1/checkout"] and top[0]["value"] >= w["incident_lines"]
        assert all("?" not in c["keys"][0] for c in top)
        assert tops[("errors-by-path-template", w["window"][0])][0] == top[0]
    # ids are merged by the template rule: fewer contributors than by path, never more
    for r in result["reports"]:
        if r["rule"] == "errors-by-path-template":
            by_path = next(x for x in result["reports"] if x["rule"] == "errors-by-path" and x["window"] == r["window"])
            assert r["unique_contributors"] <= by_path["unique_contributors"]
            assert r["sample_count"] == by_path["sample_count"]
    assert any("{id}" in c["keys"][0] for r in result["reports"] if r["rule"] == "errors-by-path-template"
               for c in r["contributors"])


# -- incidents caused by one attribute (the explanation suite; bench/bench_explain.py) --------------------------------

NEW_KINDS = ("bad_release", "bad_target", "partner_referer", "delete_fails", "template_fails", "network_hammer",
             "slow_backend", "bad_host", "old_protocol", "empty_replies")


def _lines_and_truth(fmt, *kinds, seed=4, lines=6000, duration=600):
    specs = tuple(IncidentSpec(k, at=60 * (i + 1), count=50) for i, k in enumerate(kinds))
    g = AccessLogGenerator(GeneratorConfig(seed=seed, lines=lines, duration=duration, format=fmt, incidents=specs))
    out = list(g.lines())
    return out, g.truth()


def test_every_incident_records_its_cause_and_the_cli_accepts_the_new_kinds(tmp_path):
    assert len({k for k in NEW_KINDS}) >= 10 and all(parse_incident(k).kind == k for k in NEW_KINDS)
    _, truth = _lines_and_truth("json", "burst500", "scan404", *NEW_KINDS[:7], duration=900, lines=9000)
    causes = {i["kind"]: (i["cause"]["field"], i["cause"]["value"], i["cause_observable"]) for i in truth["incidents"]}
    assert causes["burst500"] == ("user_agent", "OrdersWorker/3.4.1", True)
    assert causes["scan404"] == ("client_network", "198.51.100.0/24", True)
    assert causes["bad_target"] == ("target", "10.0.3.17:8080", True)
    assert causes["template_fails"] == ("path_template", "/api/v1/users/{id}/avatar", True)
    assert causes["network_hammer"] == ("client_network", "192.0.2.0/24", True)
    _, clf = _lines_and_truth("combined", "slow_backend", "old_protocol")
    assert [i["cause_observable"] for i in clf["incidents"]] == [False, True]  # CLF logs no response time
    out = tmp_path / "h.log"
    assert main(["gen", "access-log", "--out", str(out), "--lines", "3000", "--duration", "300",
                 "--incident", "network_hammer:at=120,count=60", "--incident", "delete_fails"]) == 0
    truth = orjson.loads(Path(str(out) + ".truth.json").read_bytes())
    assert [i["rule"] for i in truth["incidents"]] == ["client-errors-by-path", "errors-by-path"]


def test_hand_checked_lines_of_the_new_kinds():
    lines, truth = _lines_and_truth("combined", "bad_release", "network_hammer", "delete_fails", "old_protocol",
                                    "template_fails", "partner_referer")
    inc = {i["kind"]: i for i in truth["incidents"]}
    release = [ln for ln in lines if ln.endswith('"OrdersWorker/3.4.1"')]
    assert len(release) == 50 and all(re.search(r'"(GET|POST|PUT|DELETE) /api/v1/orders/\d+ HTTP/[12]\.[01]" 500 ', ln)
                                      for ln in release)
    hammer = [ln for ln in lines if ln.startswith("192.0.2.")]
    assert len(hammer) == 50 and all(re.search(r'"POST /login HTTP/[12]\.[01]" (429|403) ', ln) for ln in hammer)
    assert 10 < len({ln.split()[0] for ln in hammer}) <= 50  # many addresses, one /24
    deletes = re.findall(r'"DELETE /api/v1/cart HTTP/[12]\.[01]" (500|502) ', "\n".join(lines))
    assert len(deletes) == 50 and {"500", "502"} == set(deletes)
    old = [ln for ln in lines if " HTTP/1.0\"" in ln]
    assert len(old) == 50 and all('"GET /api/v1/inventory?sku=' in ln or '"POST /api/v1/inventory?sku=' in ln
                                  or '"PUT /api/v1/inventory?sku=' in ln or '"DELETE /api/v1/inventory?sku=' in ln
                                  for ln in old) and all('" 400 ' in ln for ln in old)
    avatars = re.findall(r'"GET /api/v1/users/(\d+)/avatar HTTP/[12]\.[01]" 500 ', "\n".join(lines))
    assert len(avatars) == 50 and len(set(avatars)) > 40  # one template over many ids
    partner = [ln for ln in lines if '"https://widgets.partner.example/embed"' in ln]
    assert len(partner) == 50 and all('"GET /api/v1/search?q=' in ln and '" 500 ' in ln for ln in partner)
    # the truth counts what the lines say: one window each, the incident's lines in its rule's key
    for kind in ("bad_release", "network_hammer", "delete_fails", "template_fails", "partner_referer"):
        (w,) = inc[kind]["windows"]
        assert w["incident_lines"] == 50 and w["rule_value"] == 50, kind
    assert inc["bad_release"]["rule_keys"] == ["/api/v1/orders/{id}"]
    assert inc["old_protocol"]["windows"][0]["rule_value"] >= 50  # background 4xx on that path may add to it


def test_hand_checked_json_and_alb_kinds():
    lines, truth = _lines_and_truth("json", "slow_backend", "bad_target", "bad_host", "empty_replies")
    objs = [orjson.loads(ln) for ln in lines]
    slow = [o for o in objs if o["latency_ms"] > 5000]
    assert len(slow) == 50 and all(o["status"] == 504 and o["path"].startswith("/api/v1/search?q=") for o in slow)
    bad = [o for o in objs if o["upstream"] == "10.0.3.17:8080"]
    assert len(bad) == 50 and all(o["status"] == 502 and o["path"].split("?")[0] == "/api/v1/products" for o in bad)
    legacy = [o for o in objs if o["host"] == "legacy.example.com"]
    assert len(legacy) == 50 and all((o["path"], o["status"]) == ("/account", 502) for o in legacy)
    empty = [o for o in objs if o["path"] == "/api/v1/cart" and o["bytes"] == 0 and o["status"] >= 500]
    assert len(empty) == 50
    alb, alb_truth = _lines_and_truth("alb", "bad_target", "bad_host", "old_protocol")
    bad = [ln for ln in alb if " 10.0.3.17:8080 " in ln]
    assert len(bad) == 50 and all(" 502 502 " in ln and "/api/v1/products" in ln for ln in bad)
    assert sum('"legacy.example.com"' in ln for ln in alb) == 50
    assert sum(" HTTP/1.0\" " in ln for ln in alb) == 50
    inc = {i["kind"]: i for i in alb_truth["incidents"]}
    assert inc["bad_target"]["rule"] == "5xx-by-target" and inc["bad_target"]["rule_keys"] == ["10.0.3.17:8080"]
    assert inc["bad_target"]["windows"][0]["rule_value"] == 50


def test_background_has_the_other_values_and_no_cause_value():
    for fmt in ("combined", "json", "alb"):
        lines, _ = _lines_and_truth(fmt, lines=6000)
        text = "\n".join(lines)
        for absent in ("OrdersWorker/3.4.1", "10.0.3.17:8080", "widgets.partner.example", "legacy.example.com",
                       "HTTP/1.0", "/avatar", "192.0.2."):
            assert absent not in text, (fmt, absent)
        assert "OrdersWorker/3.4.0" in text and "HTTP/2.0" in text and "HTTP/1.1" in text
        if fmt == "combined":
            assert re.search(r'" 504 ', text) and re.search(r'"DELETE /api/', text)
        if fmt == "json":
            objs = [orjson.loads(ln) for ln in lines]
            assert max(o["latency_ms"] for o in objs) <= 5000 and {o["host"] for o in objs} == {
                "www.example.com", "api.example.com", "static.example.com"}
            assert {o["status"] for o in objs} >= {200, 304, 404, 400, 500, 502, 503, 504}
            assert sum(o["bytes"] == 0 for o in objs) > 0  # 304s: the 0-byte value exists without an incident
            release = [o for o in objs if o["user_agent"] == "OrdersWorker/3.4.0"]
            assert len(release) > 50 and sum(o["status"] >= 500 for o in release) / len(release) < 0.03  # healthy
            assert len({o["upstream"] for o in objs}) >= 7  # targets of the app pool, the inventory service, "-"


def test_client_errors_rule_truth_equals_engine(tmp_path, capsys):
    """The truth's client-errors-by-path (4xx other than 404, by path) is what the engine counts with that rule."""
    out = tmp_path / "c.log"
    assert main(["gen", "access-log", "--seed", "7", "--lines", "6000", "--duration", "600", "--out", str(out),
                 "--incident", "network_hammer:at=120,count=80", "--incident", "old_protocol:at=300,count=45"]) == 0
    truth = orjson.loads(Path(str(out) + ".truth.json").read_bytes())
    rule = tmp_path / "client-errors-by-path.json"
    rule.write_text(orjson.dumps({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/sieve/access*"],
                                  "LogFormat": "CLF", "Fields": {"6": "status"},
                                  "Contribution": {"Keys": ["path"], "Filters": [
                                      {"Match": "status", "In": ["400", "401", "403", "405", "429"]}]},
                                  "AggregateOn": "Count"}).decode())
    capsys.readouterr()
    assert main(["topn", "--json", "--rule", str(rule), str(out)]) == 0
    tops = {r["window"]["start"]: r["contributors"] for r in orjson.loads(capsys.readouterr().out)["reports"]}
    for inc in truth["incidents"]:
        (w,) = inc["windows"]
        assert tops[w["window"][0]][0] == {"keys": inc["rule_keys"], "value": w["rule_value"]}
