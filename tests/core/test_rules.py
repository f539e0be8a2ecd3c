"""Contributor Insights rules: every operator, every limit, every validation error with its path."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core.aggregate import Accumulator
from processors.core.parse import parse_clf, parse_json
from processors.config.rule_files import load_rule_file, load_rules_file
from processors.core.rules import MAX_KEY_CHARS, compile_rule
from processors.errors import ConfigError

BASE = {
    "Schema": {"Name": "CloudWatchLogRule", "Version": 1},
    "LogGroupNames": ["/web/access*", "/exact/group"],
    "LogFormat": "JSON",
    "Contribution": {"Keys": ["$.path"]},
    "AggregateOn": "Count",
}


def rule(**changes):
    obj = copy.deepcopy(BASE)
    contrib = changes.pop("Contribution", None)
    if contrib is not None:
        obj["Contribution"].update(contrib)
    obj.update(changes)
    return compile_rule(obj, "r")


def problems(obj, prefix="rules[2]"):
    with pytest.raises(ConfigError) as exc:
        compile_rule(obj, "r", path_prefix=prefix)
    return exc.value.problems


def with_filter(**flt):
    obj = copy.deepcopy(BASE)
    obj["Contribution"]["Filters"] = [{"Match": "$.status", **flt}]
    return obj


EV = {"status": 503, "path": "/api/x", "method": "GET", "ip": "1.2.3.4", "bytes": 100, "s": "503",
      "a": {"b": [{"c": "deep"}, 7]}, "flag": True, "nul": None, "obj": {"k": 1}, "arr": [1, 2]}


# -- operators ---------------------------------------------------------------------------------


@pytest.mark.parametrize("flt,expected", [
    ({"In": ["GET", "PUT"]}, True), ({"In": ["get"]}, False),  # case-sensitive
    ({"NotIn": ["POST"]}, True), ({"NotIn": ["GET"]}, False),
    ({"StartsWith": ["PO", "GE"]}, True), ({"StartsWith": ["ET"]}, False),
])
def test_string_operators_on_method(flt, expected):
    r = rule(Contribution={"Filters": [{"Match": "$.method", **flt}]})
    assert (r.apply(EV) is not None) is expected


@pytest.mark.parametrize("flt,expected", [
    ({"GreaterThan": 499}, True), ({"GreaterThan": 503}, False),
    ({"LessThan": 504}, True), ({"LessThan": 503}, False),
    ({"EqualTo": 503}, True), ({"EqualTo": 503.0}, True), ({"EqualTo": 500}, False),
    ({"NotEqualTo": 200}, True), ({"NotEqualTo": 503}, False),
])
def test_number_operators_on_numbers_and_numeric_strings(flt, expected):
    for field in ("$.status", "$.s"):
        r = rule(Contribution={"Filters": [{"Match": field, **flt}]})
        assert (r.apply(EV) is not None) is expected, (field, flt)


def test_number_operators_fail_on_non_numbers_and_absent_fields():
    for field in ("$.method", "$.missing", "$.nul", "$.flag", "$.obj"):
        for op in ("GreaterThan", "LessThan", "EqualTo", "NotEqualTo"):
            r = rule(Contribution={"Filters": [{"Match": field, op: 0}]})
            assert r.apply(EV) is None, (field, op)


def test_absent_field_fails_in_notin_startswith():
    for op in ("In", "NotIn", "StartsWith"):
        assert rule(Contribution={"Filters": [{"Match": "$.missing", op: ["x"]}]}).apply(EV) is None


def test_is_present_only_on_leaves():
    def present(field, want=True):
        return rule(Contribution={"Filters": [{"Match": field, "IsPresent": want}]}).apply(EV) is not None

    assert present("$.method") and present("$.flag") and present("$.a.b[0].c")
    assert not present("$.obj") and not present("$.arr") and not present("$.missing") and not present("$.nul")
    assert present("$.missing", False) and present("$.obj", False) and not present("$.method", False)


def test_filters_are_anded_and_in_values_are_ored():
    r = rule(Contribution={"Filters": [{"Match": "$.status", "GreaterThan": 499},
                                       {"Match": "$.method", "In": ["POST", "GET"]},
                                       {"Match": "$.path", "StartsWith": ["/api"]},
                                       {"Match": "$.ip", "NotIn": ["9.9.9.9"]}]})
    assert r.apply(EV) == (("/api/x",), 1)
    assert r.apply({**EV, "path": "/static/a"}) is None


def test_string_operators_compare_json_text_of_numbers_and_booleans():
    assert rule(Contribution={"Filters": [{"Match": "$.status", "In": ["503"]}]}).apply(EV)
    assert rule(Contribution={"Filters": [{"Match": "$.flag", "In": ["true"]}]}).apply(EV)


# -- keys, paths and values ---------------------------------------------------------------------


def test_json_paths_nested_and_indexed():
    r = rule(Contribution={"Keys": ["$.a.b[0].c", "$.a.b[1]", "$.status", "$.flag"]})
    assert r.apply(EV) == (("deep", "7", "503", "true"), 1)
    assert rule(Contribution={"Keys": ["$.a.b[5]"]}).apply(EV) is None
    assert rule(Contribution={"Keys": ["$.path.x"]}).apply(EV) is None


def test_missing_key_contributes_nothing():
    assert rule(Contribution={"Keys": ["$.path", "$.nope"]}).apply(EV) is None


def test_sum_uses_value_of_and_skips_non_numbers():
    r = rule(AggregateOn="Sum", Contribution={"Keys": ["$.ip"], "ValueOf": "$.bytes"})
    assert r.apply(EV) == (("1.2.3.4",), 100)
    assert r.apply({**EV, "bytes": "2.5"}) == (("1.2.3.4",), 2.5)
    assert r.apply({**EV, "bytes": "-"}) is None and r.apply({**EV, "bytes": None}) is None
    assert r.apply({**EV, "bytes": float("nan")}) is None


def test_long_key_values_are_bounded_but_stay_distinct():
    r = rule()
    a = r.apply({"path": "/" + "a" * 5000})[0][0]
    b = r.apply({"path": "/" + "a" * 4999 + "b"})[0][0]
    assert len(a) == len(b) == MAX_KEY_CHARS and a != b


def test_clf_rule_with_fields_aliases_positions_and_names():
    line = ('10.0.0.9 - - [04/Mar/2024:10:00:00 +0000] "POST /api/v1/checkout HTTP/1.1" 502 17 '
            '"-" "curl/8" 0.250')
    _, rec = parse_clf(line)
    r = compile_rule({**BASE, "LogFormat": "CLF", "Fields": {"1": "ip", "6": "code", "10": "rt"},
                      "Contribution": {"Keys": ["ip", "path", "5", "method"],
                                       "Filters": [{"Match": "code", "GreaterThan": 499},
                                                   {"Match": "rt", "LessThan": 1},
                                                   {"Match": "9", "StartsWith": ["curl/"]}]}}, "clf")
    assert r.apply(rec) == (("10.0.0.9", "/api/v1/checkout", "POST /api/v1/checkout HTTP/1.1", "POST"), 1)


def test_clf_positions_after_bytes_in_common_format():
    _, rec = parse_clf('1.2.3.4 - - [04/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5 0.5 up-1')
    r = compile_rule({**BASE, "LogFormat": "CLF", "Contribution": {"Keys": ["8", "9"]}}, "c")
    assert r.apply(rec) == (("0.5", "up-1"), 1)
    assert compile_rule({**BASE, "LogFormat": "CLF", "Contribution": {"Keys": ["11"]}}, "c").apply(rec) is None


def test_clf_sum_skips_dash_bytes():
    r = compile_rule({**BASE, "LogFormat": "CLF", "Fields": {"1": "client", "7": "bytes"},
                      "Contribution": {"Keys": ["client"], "ValueOf": "bytes"}, "AggregateOn": "Sum"}, "b")
    assert r.apply(parse_clf('1.2.3.4 - - [04/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 42')[1]) == (("1.2.3.4",), 42)
    assert r.apply(parse_clf('1.2.3.4 - - [04/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 304 -')[1]) is None


def test_log_group_matching():
    r = rule()
    assert r.matches_log_group("/web/access") and r.matches_log_group("/web/access-eu")
    assert r.matches_log_group("/exact/group") and not r.matches_log_group("/exact/group2")
    assert not r.matches_log_group("/web/acces") and r.matches_log_group(None)
    arn = compile_rule({**{k: v for k, v in BASE.items() if k != "LogGroupNames"},
                        "LogGroupARNs": ["arn:aws:logs:us-east-1:123456789012:log-group:/app/web*"]}, "a")
    assert arn.matches_log_group("/app/web-1") and not arn.matches_log_group("/other")


def test_fingerprint_tracks_meaning():
    assert rule().fingerprint == rule().fingerprint
    assert rule().fingerprint != rule(AggregateOn="Count", Contribution={"Keys": ["$.ip"]}).fingerprint


# -- validation -----------------------------------------------------------------------------------


def test_every_problem_is_reported_with_its_path():
    bad = {
        "Schema": {"Name": "CloudWatchLogRule", "Version": 2},
        "LogGroupNames": ["/a*b", ""],
        "LogFormat": "XML",
        "Contribution": {"Keys": [], "Filters": "nope"},
        "AggregateOn": "Max",
        "Surprise": 1,
    }
    got = problems(bad, "pipelines.logs.rules[2]")
    assert got == [
        "pipelines.logs.rules[2]: unknown key 'Surprise'; allowed keys are Schema, LogGroupNames, LogGroupARNs, "
        "LogFormat, Fields, Contribution, AggregateOn",
        'pipelines.logs.rules[2].Schema: must be {"Name": "CloudWatchLogRule", "Version": 1}',
        "pipelines.logs.rules[2].LogGroupNames[0]: '/a*b': '*' is only allowed at the end (prefix match)",
        "pipelines.logs.rules[2].LogGroupNames[1]: must be a non-empty string, got ''",
        'pipelines.logs.rules[2].LogFormat: must be "JSON" or "CLF", got \'XML\'',
        "pipelines.logs.rules[2].Contribution.Keys: must be an array of 1 to 4 fields, got 0 keys",
        "pipelines.logs.rules[2].Contribution.Filters: must be an array of filters, got 'nope'",
        'pipelines.logs.rules[2].AggregateOn: must be "Count" or "Sum", got \'Max\'',
    ]


@pytest.mark.parametrize("flt,message", [
    ({"GreaterThan": "500"}, "rules[2].Contribution.Filters[0]: GreaterThan must be a number, got '500'"),
    ({"LessThan": True}, "rules[2].Contribution.Filters[0]: LessThan must be a number, got true"),
    ({"EqualTo": [200, 201]}, "rules[2].Contribution.Filters[0]: EqualTo must be a single number, not an array "
                              "(use In: [...] to match several values)"),
    ({"NotEqualTo": None}, "rules[2].Contribution.Filters[0]: NotEqualTo must be a number, got null"),
    ({"In": "GET"}, "rules[2].Contribution.Filters[0]: In must be an array of 1 to 10 strings, got 'GET'"),
    ({"NotIn": []}, "rules[2].Contribution.Filters[0]: NotIn must be an array of 1 to 10 strings, got []"),
    ({"StartsWith": [str(i) for i in range(11)]}, "rules[2].Contribution.Filters[0]: StartsWith has 11 strings; "
                                                   "at most 10 are allowed"),
    ({"In": ["a", 404]}, "rules[2].Contribution.Filters[0]: In[1] must be a string, got 404 (write \"404\")"),
    ({"IsPresent": "yes"}, "rules[2].Contribution.Filters[0]: IsPresent must be true or false, got 'yes'"),
])
def test_operator_argument_errors(flt, message):
    assert problems(with_filter(**flt)) == [message]


def test_filter_shape_errors():
    obj = copy.deepcopy(BASE)
    obj["Contribution"]["Filters"] = [
        {"Match": "$.path", "Comparison": "starts-with", "Value": "/api"},
        {"Match": "$.status", "GreaterThan": 1, "LessThan": 9},
        {"In": ["x"]},
        {"Match": "path", "In": ["x"]},
        "status > 500",
    ]
    got = problems(obj)
    assert "rules[2].Contribution.Filters: has 5 filters; at most 4 are allowed" in got
    obj["Contribution"]["Filters"].pop()
    got = problems(obj)
    assert got[0].startswith("rules[2].Contribution.Filters[0]: 'Comparison' is not a Contributor Insights filter key")
    assert "rules[2].Contribution.Filters[0]: unknown key 'Value'; allowed keys are Match, In, NotIn, StartsWith, " \
           "GreaterThan, LessThan, EqualTo, NotEqualTo, IsPresent" in got
    assert any(p.startswith("rules[2].Contribution.Filters[1]: needs exactly one operator") and p.endswith("got 2")
               for p in got)
    assert "rules[2].Contribution.Filters[2]: Match (the field to test) is required" in got
    assert "rules[2].Contribution.Filters[3].Match: 'path' is not a JSON path like $.status or $.a.b[0]; " \
           "write '$.path'" in got


def test_wrong_case_keys_get_a_hint():
    obj = copy.deepcopy(BASE)
    obj["Contribution"]["Filters"] = [{"Match": "$.s", "equalTo": 1}]
    obj["aggregateOn"] = "Count"
    got = problems(obj)
    assert "rules[2]: unknown key 'aggregateOn'; did you mean 'AggregateOn'? (keys are case-sensitive)" in got
    assert "rules[2].Contribution.Filters[0]: unknown key 'equalTo'; did you mean 'EqualTo'? (keys are case-sensitive)" in got


def test_sum_without_value_of_like_the_aws_doc_example():
    assert problems({**BASE, "AggregateOn": "Sum"}) == [
        "rules[2].Contribution.ValueOf: is required when AggregateOn is Sum (the numeric field to add up)"]


def test_value_of_with_count_is_an_error():
    obj = copy.deepcopy(BASE)
    obj["Contribution"]["ValueOf"] = "$.bytes"
    assert problems(obj) == ["rules[2].Contribution.ValueOf: is only used with AggregateOn Sum; "
                             "remove it or set AggregateOn to Sum"]


def test_limits_on_keys_and_duplicates():
    obj = copy.deepcopy(BASE)
    obj["Contribution"]["Keys"] = ["$.a", "$.b", "$.c", "$.d", "$.e"]
    assert problems(obj) == ["rules[2].Contribution.Keys: must be an array of 1 to 4 fields, got 5 keys"]
    obj["Contribution"]["Keys"] = ["$.a", "$.a"]
    assert problems(obj) == ["rules[2].Contribution.Keys: lists the same field twice"]
    obj["Contribution"]["Keys"] = ["$.a", "$.b", "$.c", "$.d"]
    assert compile_rule(obj, "four").key_names == ("$.a", "$.b", "$.c", "$.d")


def test_log_group_and_format_structure_errors():
    no_groups = {k: v for k, v in BASE.items() if k != "LogGroupNames"}
    assert problems(no_groups) == ["rules[2]: LogGroupNames (or LogGroupARNs) is required"]
    both = {**BASE, "LogGroupARNs": ["arn:aws:logs:us-east-1:1:log-group:x"]}
    assert problems(both) == ["rules[2]: give LogGroupNames or LogGroupARNs, not both"]
    assert problems({**no_groups, "LogGroupARNs": ["/not/an/arn"]}) == [
        "rules[2].LogGroupARNs[0]: '/not/an/arn' is not an ARN (arn:aws:logs:REGION:ACCOUNT:log-group:NAME)"]
    assert problems({**BASE, "Fields": {"1": "ip"}}) == [
        "rules[2].Fields: is only used with LogFormat CLF (JSON rules name fields with $.paths)"]
    assert problems("not a rule") == ["rules[2]: a rule must be a JSON object, got 'not a rule'"]


def test_clf_field_errors():
    clf = {**BASE, "LogFormat": "CLF", "Fields": {"0": "zero", "x": "y", "2": "", "3": "a", "4": "a", "5": "7"},
           "Contribution": {"Keys": ["nope", "99"]}}
    got = problems(clf)
    assert "rules[2].Fields.0: position '0' must be a number 1..64 (CLF fields count from 1)" in got
    assert "rules[2].Fields.x: position 'x' must be a number 1..64 (CLF fields count from 1)" in got
    assert "rules[2].Fields.2: alias must be a non-empty string, got ''" in got
    assert "rules[2].Fields.4: alias 'a' is already used for position 3" in got
    assert "rules[2].Fields.5: alias '7' must not be a number (it would hide a position)" in got
    assert any(p.startswith("rules[2].Contribution.Keys[0]: unknown CLF field 'nope'; use a Fields alias") for p in got)
    assert "rules[2].Contribution.Keys[1]: CLF position 99 is out of range 1..64" in got


def test_missing_sections_say_missing():
    got = problems({"LogGroupNames": ["x"]})
    assert 'rules[2].Schema: must be {"Name": "CloudWatchLogRule", "Version": 1} (missing)' in got
    assert 'rules[2].LogFormat: must be "JSON" or "CLF", got null (missing)' in got
    assert any(p.startswith("rules[2].Contribution: must be an object") and p.endswith("(missing)") for p in got)
    assert 'rules[2].AggregateOn: must be "Count" or "Sum", got null (missing)' in got


# -- files ----------------------------------------------------------------------------------------


def test_load_rule_file_shapes(tmp_path):
    plain = tmp_path / "errors.json"
    plain.write_bytes(orjson.dumps(BASE))
    assert load_rule_file(plain).name == "errors"
    exported = tmp_path / "exported.json"
    exported.write_bytes(orjson.dumps({"InsightRules": [{"Name": "Top404", "State": "ENABLED",
                                                          "Schema": "CloudWatchLogRule/1",
                                                          "Definition": orjson.dumps(BASE).decode()}]}))
    assert load_rule_file(exported).name == "Top404"
    put = tmp_path / "put.json"
    put.write_bytes(orjson.dumps({"RuleName": "ByPath", "RuleDefinition": BASE, "RuleState": "ENABLED"}))
    assert load_rule_file(put, path_prefix="pipelines.logs.rules[0]").name == "ByPath"


def test_load_rule_file_errors(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    with pytest.raises(ConfigError) as exc:
        load_rule_file(bad_json, path_prefix="pipelines.logs.rules[1]")
    assert exc.value.problems[0].startswith(f"pipelines.logs.rules[1]: {bad_json} is not valid JSON")
    with pytest.raises(ConfigError) as exc:
        load_rule_file(tmp_path / "missing.json")
    assert "cannot read rule file" in exc.value.problems[0] and exc.value.exit_code == 2
    two = tmp_path / "two.json"
    two.write_bytes(orjson.dumps({"InsightRules": [{"Name": "a", "Definition": BASE},
                                                   {"Name": "b", "Definition": {**BASE, "AggregateOn": "Sum"}}]}))
    with pytest.raises(ConfigError) as exc:
        load_rules_file(two)
    assert exc.value.problems == [f"{two}.InsightRules[1].Contribution.ValueOf: is required when AggregateOn is Sum "
                                  "(the numeric field to add up)"]


def test_shipped_rules_compile():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "rules"
    files = sorted(root.rglob("*.json"))
    assert len(files) >= 6
    for f in files:
        load_rule_file(f)


# -- properties -----------------------------------------------------------------------------------

_json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
                            | st.text(max_size=10), lambda c: st.lists(c, max_size=3)
                            | st.dictionaries(st.sampled_from(["a", "b", "path", "status"]), c, max_size=3), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "path", "status", "bytes"]), _json_values, max_size=5))
def test_no_record_crashes_a_rule(rec):
    r = compile_rule({**BASE, "AggregateOn": "Sum",
                      "Contribution": {"Keys": ["$.path", "$.a.b[0]"], "ValueOf": "$.bytes",
                                       "Filters": [{"Match": "$.status", "GreaterThan": 1},
                                                   {"Match": "$.a", "IsPresent": False},
                                                   {"Match": "$.b", "NotIn": ["x"]}]}}, "p")
    out = r.apply(rec)
    assert out is None or (isinstance(out[0], tuple) and all(isinstance(k, str) for k in out[0]))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _json_values, max_size=6))
def test_no_rule_object_crashes_the_compiler(obj):
    try:
        compile_rule(obj, "fuzz")
    except ConfigError as exc:
        assert exc.problems


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_rules_on_any_parsed_line(text):
    out = parse_json(text)
    if isinstance(out, tuple):
        rule(Contribution={"Filters": [{"Match": "$.status", "GreaterThan": 1}]}).apply(out[1])


# -- grouping without query strings: path, request_uri, path_template ------------------------------

RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
_QUERIES = ["step=shipping", "step=payment", "step=review", "step=confirm", "step=payment&retry=1"]


def _incident_log(fmt: str) -> list[str]:
    """One incident: 700 failing POSTs to /api/v1/checkout, 140 with each of 5 query strings; then
    3 failing order lookups with different ids (one with a query), 1 failing /healthz, and 2
    successful requests that no errors rule counts. All in the minute 10:00."""
    reqs = [("POST", f"/api/v1/checkout?{_QUERIES[i % 5]}", 500) for i in range(700)]
    reqs += [("GET", "/api/v1/orders/41", 500), ("GET", "/api/v1/orders/42", 502), ("GET", "/api/v1/orders/43?x=1", 503),
             ("GET", "/healthz", 502), ("GET", "/api/v1/checkout", 200), ("GET", "/api/v1/orders/41", 200)]
    out = []
    for i, (method, target, status) in enumerate(reqs):
        sec = i * 59 // len(reqs)
        if fmt == "CLF":
            out.append(f'10.0.0.{i % 200 + 1} - - [04/Mar/2024:10:00:{sec:02d} +0000] "{method} {target} HTTP/1.1" '
                       f'{status} 10 "-" "ua"')
        elif fmt == "JSON":
            out.append(orjson.dumps({"time": f"2024-03-04T10:00:{sec:02d}Z", "client": "10.0.0.1", "method": method,
                                     "path": target, "status": status}).decode())
        else:  # ALB
            out.append(f'https 2024-03-04T10:00:{sec:02d}.000000Z app/lb/1 10.0.0.1:4000 10.0.1.1:80 0.001 0.002 0.000 '
                       f'{status} {status} 10 20 "{method} https://shop.example:443{target} HTTP/1.1" "ua"')
    return out


def _top(rules, lines) -> dict[str, list[tuple[tuple[str, ...], int]]]:
    acc = Accumulator(rules, period=60)
    for line in lines:
        acc.add_line(line)
    assert acc.stats.rejected == {} and acc.stats.parsed == len(lines)
    return {rep.rule: [(c.keys, c.value) for c in rep.contributors] for rep in acc.reports(top=20)}


def _uri_rule(fmt: str, key: str):
    status = "$.elb_status_code" if fmt == "ALB" else "$.status" if fmt == "JSON" else "6"
    return compile_rule({**BASE, "LogFormat": "CLF" if fmt == "CLF" else "JSON",
                         "Contribution": {"Keys": [key], "Filters": [{"Match": status, "GreaterThan": 499}]}}, "by-uri")


@pytest.mark.parametrize("fmt,folder", [("CLF", RULES_DIR), ("JSON", RULES_DIR / "json"), ("ALB", RULES_DIR / "alb")])
def test_one_incident_with_five_query_strings_is_one_path_group(fmt, folder):
    lines = _incident_log(fmt)
    rules = [load_rule_file(folder / "errors-by-path-template.json"),
             _uri_rule(fmt, "request_uri" if fmt == "CLF" else "$.request_uri")]
    if fmt != "ALB":  # rules/alb has no errors-by-path (5xx-by-target instead); a $.path rule stands in
        rules.append(load_rule_file(folder / "errors-by-path.json"))
    else:
        rules.append(compile_rule({**BASE, "Contribution": {"Keys": ["$.path"], "Filters": [
            {"Match": "$.elb_status_code", "GreaterThan": 499}]}}, "errors-by-path"))
    top = _top(rules, lines)
    # path: the 700 failures are ONE group; each order id is its own group
    assert top["errors-by-path"] == [(("/api/v1/checkout",), 700), (("/api/v1/orders/41",), 1), (("/api/v1/orders/42",), 1),
                                     (("/api/v1/orders/43",), 1), (("/healthz",), 1)]
    # request_uri keeps the query strings apart: five groups of 140
    assert top["by-uri"] == [((f"/api/v1/checkout?{q}",), 140) for q in sorted(_QUERIES)] + [
        (("/api/v1/orders/41",), 1), (("/api/v1/orders/42",), 1), (("/api/v1/orders/43?x=1",), 1), (("/healthz",), 1)]
    # path_template merges the ids
    assert top["errors-by-path-template"] == [(("/api/v1/checkout",), 700), (("/api/v1/orders/{id}",), 3),
                                              (("/healthz",), 1)]


def test_path_fields_in_filters_and_by_name():
    _, rec = parse_clf('1.2.3.4 - - [04/Mar/2024:10:00:00 +0000] "GET /orders/41?token=abc HTTP/1.1" 500 1')
    clf = {**BASE, "LogFormat": "CLF"}
    keyed = compile_rule({**clf, "Contribution": {"Keys": ["path", "request_uri", "$.path_template", "method"]}}, "c")
    assert keyed.apply(rec) == (("/orders/41", "/orders/41?token=abc", "/orders/{id}", "GET"), 1)
    for field, op, arg, want in [("path_template", "In", ["/orders/{id}"], True), ("path", "In", ["/orders/41"], True),
                                 ("path", "StartsWith", ["/orders/41?"], False),
                                 ("request_uri", "StartsWith", ["/orders/41?token="], True),
                                 ("path_template", "IsPresent", True, True)]:
        r = compile_rule({**clf, "Contribution": {"Keys": ["path"], "Filters": [{"Match": field, op: arg}]}}, "f")
        assert (r.apply(rec) is not None) is want, (field, op, arg)
    # JSON: $.path_template comes from $.path, unless the line logs its own
    r = rule(Contribution={"Keys": ["$.path_template"]})
    assert r.apply(parse_json('{"path": "/orders/41?x=1"}')[1]) == (("/orders/{id}",), 1)
    assert r.apply({"path": "/orders/41", "path_template": "/orders/:id"}) == (("/orders/:id",), 1)
    assert r.apply({"status": 500}) is None and r.apply({"path": 41}) is None
    assert rule(Contribution={"Filters": [{"Match": "$.path_template", "IsPresent": False}]}).apply({"path": "/a"}) is None


def test_unknown_clf_field_lists_the_path_fields():
    (got,) = problems({**BASE, "LogFormat": "CLF", "Contribution": {"Keys": ["uri"]}})
    assert "request_uri" in got and "path_template" in got and "path" in got


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["GreaterThan", "LessThan", "EqualTo", "NotEqualTo"]),
       st.integers(-5, 700) | st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([499.5, 1e300, -0.0]),
       st.integers(100, 599), st.sampled_from(["6", "status", "code", "$.status"]))
def test_clf_status_number_filters_equal_the_generic_comparison(op, x, code, field):
    """A number filter on the CLF status is a precomputed set of status strings: same answers."""
    _, rec = parse_clf(f'1.2.3.4 - - [04/Mar/2024:10:00:00 +0000] "GET /a HTTP/1.1" {code} 1')
    r = compile_rule({**BASE, "LogFormat": "CLF", "Fields": {"6": "code"},
                      "Contribution": {"Keys": ["path"], "Filters": [{"Match": field, op: x}]}}, "s")
    want = {"GreaterThan": code > x, "LessThan": code < x, "EqualTo": code == x, "NotEqualTo": code != x}[op]
    assert (r.apply(rec) is not None) is want


# --------------------------------------------------------------------- what a rule reads (fast path)


@pytest.mark.parametrize("contribution, fields, reads, status", [
    ({"Keys": ["path"], "Filters": [{"Match": "status", "GreaterThan": 499}]}, {"6": "status"}, {"path", "status"},
     [("GreaterThan", 499)]),
    ({"Keys": ["1"], "Filters": [{"Match": "6", "EqualTo": 404}]}, None, {"client", "status"}, [("EqualTo", 404)]),
    ({"Keys": ["c"], "Filters": [{"Match": "code", "LessThan": 300}]}, {"1": "c", "6": "code"}, {"client", "status"},
     [("LessThan", 300)]),
    ({"Keys": ["path_template"]}, None, {"path", "query"}, []),
    ({"Keys": ["request_uri", "9"], "Filters": [{"Match": "method", "In": ["GET"]}]}, None,
     {"path", "query", "referer", "user_agent", "extra", "method"}, []),
    ({"Keys": ["client"], "Filters": [{"Match": "bytes", "GreaterThan": 5}]}, None, {"client", "bytes"}, []),
])  # fmt: skip
def test_a_clf_rule_says_which_fields_it_reads(contribution, fields, reads, status):
    rule = {**BASE, "LogFormat": "CLF", "Contribution": contribution}
    if fields:
        rule["Fields"] = fields
    r = compile_rule(rule, "r")
    assert r.reads == reads and list(r.status_filters) == status


def test_a_json_rule_says_which_keys_it_reads_or_none_when_it_goes_deeper():
    r = compile_rule({**BASE, "LogFormat": "JSON", "Contribution": {"Keys": ["$.client"], "Filters": [
        {"Match": "$.status", "GreaterThan": 499}, {"Match": "$.method", "In": ["GET"]}]}}, "r")  # fmt: skip
    assert r.reads == {"client", "status", "method"} and r.status_filters == (("GreaterThan", 499),)
    r = compile_rule({**BASE, "LogFormat": "JSON", "Contribution": {"Keys": ["$.path_template"]}}, "r")
    assert r.reads == {"path_template", "path"}
    r = compile_rule({**BASE, "LogFormat": "JSON", "Contribution": {"Keys": ["$.a.b"]}}, "r")
    assert r.reads is None
    r = compile_rule({**BASE, "LogFormat": "JSON", "Contribution": {"Keys": ["$.a[0]"]}}, "r")
    assert r.reads is None
