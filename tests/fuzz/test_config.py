"""Fuzzing pipelines.yaml loading (processors/config/loader.py + models.py): structural mutations of the
shipped file (inline rules included), line edits, and YAML oddities (aliases, tags, recursion)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given

from processors.config.loader import load_text
from processors.errors import ConfigError
from tests.fuzz import corpus
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import CONFIG


@fuzz_settings(100)
@given(CONFIG.strategy())
def test_config_fuzz(text):
    CONFIG.check(text)


LAUGHS = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
                   + [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]"
                      for i in range(1, 9)])


@pytest.mark.parametrize("text", ["0: &0 {0: *0}", "a: &a [*a]", LAUGHS, "a: " + "[" * 3000 + "]" * 3000,
                                  "a: " + "[" * 80 + "]" * 80])
def test_regression_self_referring_huge_or_deep_yaml_is_a_config_error(text):
    """Found by the fuzzer: `0: &0 {0: *0}` (an alias inside its own anchor) raised RecursionError;
    "billion laughs" aliases expanded exponentially; deep nesting overflowed the YAML parser."""
    started = time.monotonic()
    with pytest.raises(ConfigError) as exc:
        load_text(text, base_dir=corpus.ROOT)
    assert time.monotonic() - started < 10
    assert any("values" in p or "levels" in p for p in exc.value.problems), exc.value.problems


def test_regression_inline_rule_with_an_integer_past_64_bits():
    text = corpus.pipelines_yaml().replace(
        "      - rules/404-by-client.json\n",
        "      - Name: big\n        Schema: {Name: CloudWatchLogRule, Version: 1}\n        LogGroupNames: [/a]\n"
        "        LogFormat: CLF\n        Contribution: {Keys: [path], Filters: [{Match: status, GreaterThan: 99999999999999999999999}]}\n"
        "        AggregateOn: Count\n")
    assert "GreaterThan: 99999999999999999999999" in text
    with pytest.raises(ConfigError) as exc:
        load_text(text, base_dir=corpus.ROOT)
    assert any("64-bit" in p for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize("key", ["regi[on", "function-x", "a]b["])
def test_regression_unknown_key_with_a_bracket_is_a_config_error(key):
    """Found by the atheris config run: an unknown key holding '[' or starting with 'function-' (what pydantic's
    own location steps look like) was filtered out of the error's location, and loc[-1] raised IndexError."""
    with pytest.raises(ConfigError) as err:
        load_text(f"version: 1\n{key}: us-east-1\n", source="pipelines.yaml", base_dir=corpus.ROOT)
    assert [p.split(" (did you mean")[0] for p in err.value.problems] == [f"{key}: unknown key"], err.value.problems
    with pytest.raises(ConfigError) as err:  # and deeper, next to a model's own keys
        load_text(f"version: 1\nresources:\n  {key}: 1\n", source="pipelines.yaml", base_dir=corpus.ROOT)
    assert [p.split(" (did you mean")[0] for p in err.value.problems] == [f"resources.{key}: unknown key"], \
        err.value.problems
