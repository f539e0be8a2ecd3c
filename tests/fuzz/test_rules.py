"""Fuzzing Contributor Insights rule JSON (processors/core/rules.py compile_rule / rules_from_json): the
shipped rules with structural mutations (values of any type, near-miss keys, wrapped values) and byte
mutations of the rule files. Compiled rules are applied to real parsed records."""

from __future__ import annotations

import pytest
from hypothesis import given

from processors.core.rules import compile_rule
from processors.errors import ConfigError
from tests.fuzz import corpus
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import RULES


@fuzz_settings(400)
@given(RULES.strategy())
def test_rules_fuzz(arg):
    RULES.check(arg)


@pytest.mark.parametrize("value", [10**30, b"x"])
def test_regression_value_json_cannot_hold_is_a_config_error(value):
    """Found by fuzzing pipelines.yaml: an inline rule with `GreaterThan: 99999999999999999999999` (YAML
    gives a Python int past 64 bits) raised orjson's TypeError instead of a ConfigError."""
    doc = dict(corpus.rule_docs()[0])
    doc["Contribution"] = {"Keys": ["path"], "Filters": [{"Match": "status", "GreaterThan": value}]}
    with pytest.raises(ConfigError) as exc:
        compile_rule(doc, "big", path_prefix="pipelines.logs.rules[0]")
    assert all(p.startswith("pipelines.logs.rules[0]") for p in exc.value.problems)
