"""pipelines.yaml validation: every error has its path; unknown keys are errors; exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from processors.config import load, load_text
from processors.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def shipped() -> dict:
    return yaml.safe_load((ROOT / "pipelines.yaml").read_text())


def problems_of(doc: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_text(yaml.safe_dump(doc), base_dir=ROOT)
    return err.value.problems


def test_shipped_config_is_valid():
    loaded = load(ROOT / "pipelines.yaml")
    assert loaded.config.pipelines.logs is not None
    assert [r.name for r in loaded.rules]  # the rule files it names compiled


def test_unknown_key_is_an_error_with_a_suggestion():
    doc = shipped()
    doc["functions"]["logs-processor"]["events"][0]["batch_sise"] = 10
    assert problems_of(doc) == [
        "functions.logs-processor.events[0].batch_sise: unknown key (did you mean 'batch_size'?)"
    ]


def test_typo_in_a_selection_key_does_not_silently_switch_it_off():
    doc = shipped()
    doc["pipelines"]["logs"]["selection"]["min_cout"] = 5
    assert any(p.startswith("pipelines.logs.selection.min_cout: unknown key") for p in problems_of(doc))


def test_every_problem_is_reported_at_once():
    doc = shipped()
    doc["resources"]["streams"]["sieve-access-logs"]["shards"] = 0
    doc["pipelines"]["logs"]["top_n"] = "ten"
    doc["functions"]["logs-processor"]["events"][0]["kinesis"]["stream"] = "nope"
    got = problems_of(doc)
    assert any(p.startswith("resources.streams.sieve-access-logs.shards:") for p in got)
    assert any(p.startswith("pipelines.logs.top_n:") for p in got)
    assert len(got) == 2  # cross-references are checked only once the shapes are valid


def test_cross_reference_to_undeclared_stream():
    doc = shipped()
    doc["functions"]["logs-processor"]["events"][0]["kinesis"]["stream"] = "nope"
    got = problems_of(doc)
    assert got[0].startswith("functions.logs-processor.events[0].kinesis.stream: stream 'nope' is not declared")


def test_inline_rule_error_has_the_rule_path():
    doc = shipped()
    doc["pipelines"]["logs"]["rules"].append({
        "Name": "bad",
        "Schema": {"Name": "CloudWatchLogRule", "Version": 1},
        "LogGroupNames": ["/web/*"],
        "LogFormat": "JSON",
        "Contribution": {"Keys": ["$.path"], "Filters": [{"Match": "$.status", "GreaterThan": "five hundred"}]},
        "AggregateOn": "Count",
    })
    got = problems_of(doc)
    assert any(p.startswith("pipelines.logs.rules[2]") and "GreaterThan" in p for p in got), got


def test_dynamodb_source_needs_a_table_stream():
    doc = shipped()
    doc["functions"]["faq-processor"] = {"handler": "processors.handlers.faq.handler",
                                         "events": [{"dynamodb": {"table": "sieve-state"}}]}
    assert any("has no stream" in p for p in problems_of(doc))


def test_bad_yaml_reports_line():
    with pytest.raises(ConfigError) as err:
        load_text("version: 1\nresources: [\n")
    assert "line" in err.value.problems[0] and "not valid YAML" in err.value.problems[0]


def test_env_expansion_in_values():
    doc = shipped()
    text = yaml.safe_dump(doc).replace("http://127.0.0.1:9200", "${SIEVE_TEST_OS_URL:-http://127.0.0.1:9201}")
    loaded = load_text(text, base_dir=ROOT)
    assert loaded.config.pipelines.faq.opensearch.url == "http://127.0.0.1:9201"


def test_cli_validate_exits_2_with_paths(tmp_path):
    doc = shipped()
    doc["pipelines"]["logs"]["window"]["period_seconds"] = 5
    bad = tmp_path / "pipelines.yaml"
    bad.write_text(yaml.safe_dump(doc))
    (tmp_path / "rules").symlink_to(ROOT / "rules")
    proc = subprocess.run([sys.executable, "-m", "processors.cli", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "pipelines.logs.window.period_seconds:" in proc.stderr
    ok = subprocess.run([sys.executable, "-m", "processors.cli", "validate", str(ROOT / "pipelines.yaml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_committed_schema_matches_the_models():
    proc = subprocess.run([sys.executable, "-m", "processors.cli", "schema", "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_schema_validates_the_shipped_file():
    import json

    import jsonschema

    schema = json.loads((ROOT / "schemas" / "pipelines.schema.json").read_text())
    jsonschema.validate(shipped(), schema)
    doc = shipped()
    doc["pipelines"]["logs"]["selection"]["min_cout"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


@pytest.mark.parametrize(("analyser", "expect"), [
    ({"kind": "llama_lambda"}, "pipelines.logs.ai.analyser.function_name: required key is missing"),
    ({"kind": "opensearch", "model_id": "m"}, "pipelines.logs.ai.analyser.opensearch_url: required key is missing"),
    ({"kind": "bedrock", "function_name": "x"}, "pipelines.logs.ai.analyser.function_name: unknown key"),
    ({"kind": "nope"}, "pipelines.logs.ai.analyser: Input tag 'nope'"),
])
def test_each_analyser_kind_is_validated_on_its_own(analyser, expect):
    doc = shipped()
    doc["pipelines"]["logs"]["ai"]["analyser"] = analyser
    assert any(p.startswith(expect) for p in problems_of(doc)), problems_of(doc)


def test_core_limits_are_checked_at_load_time_at_their_path():
    doc = shipped()
    doc["pipelines"]["logs"]["selection"].update(min_share=5, status_classes=["5xx"])
    doc["pipelines"]["logs"]["ai"]["budgets"].update(tokens_per_call=100, max_output_tokens=300)
    problems = problems_of(doc)
    assert any(p.startswith("pipelines.logs.selection: min_share: 5.0 is not a fraction") for p in problems), problems
    assert any(p.startswith("pipelines.logs.ai.budgets: tokens_per_call (100) must exceed") for p in problems), problems


def test_bot_notifier_names_declared_secrets_and_existing_rules():
    doc = shipped()
    doc["pipelines"]["logs"]["slack"] = {"kind": "bot", "token_secret": "nope", "channel": "#ops",
                                         "channels": {"errors-by-pat": "#x"}}
    problems = problems_of(doc)
    assert any(p.startswith("pipelines.logs.slack.token_secret: secret 'nope' is not declared") for p in problems)
    assert any(p.startswith("pipelines.logs.slack.channels.errors-by-pat: no rule named") for p in problems)
