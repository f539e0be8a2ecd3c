"""Cold start: importing a handler module must not load what only the first invocation (or only some
invocations) needs. Lambda runs the module import in its init phase for every new container; config
validation (YAML, pydantic), JSON Schema, boto3 clients, slack-sdk, OpenSearch and the model runtime are
loaded on the first invocation through `wiring.PerContainer`, or not at all when the invocation does not
need them. The figures (import time against `import boto3`) are in bench/results/coldstart.json
(bench/bench_coldstart.py); this test only guards the laziness, by module names, in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: never loaded by importing any handler module
HEAVY = ("pydantic", "pydantic_core", "yaml", "jsonschema", "rich", "boto3", "s3transfer", "slack_sdk",
         "slack_bolt", "opensearchpy", "llama_cpp", "numpy", "asyncio", "processors.config",
         "processors.adapters.slack", "processors.adapters.opensearch", "processors.core.finalise",
         "processors.core.boundary", "processors.core.screen")

HANDLERS = ("logs", "finaliser", "faq", "faq_crawler", "slack_actions", "ask", "llama_lambda")

PROBE = """
import json, sys
import processors.handlers.{name} as h
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy)))
"""


def loaded_by_import(name: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(name=name, heavy=HEAVY)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", HANDLERS)
def test_handler_import_loads_no_heavy_module(name):
    assert loaded_by_import(name) == []


def test_probe_sees_a_heavy_import():
    """The probe itself can fail: a module that does load pydantic is reported."""
    out = subprocess.run([sys.executable, "-c", "import json, sys\nimport processors.config\n"
                          f"heavy = {HEAVY!r}\n"
                          "print(json.dumps(sorted(m for m in sys.modules if m in heavy)))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert {"pydantic", "yaml", "processors.config"} <= set(json.loads(out.stdout))


def test_logs_handler_builds_its_use_case_on_first_use(tmp_path, monkeypatch):
    """Lazy is not absent: the first `get()` loads and validates pipelines.yaml (a bad config is still
    refused, now at the first invocation, as `sieve validate` would refuse it)."""
    from processors.errors import ConfigError
    from processors.handlers import logs

    bad = tmp_path / "pipelines.yaml"
    bad.write_text("pipelines:\n  logs:\n    no_such_key: 1\n")
    monkeypatch.setenv("SIEVE_CONFIG", str(bad))
    logs.reset_runtime()
    try:
        with pytest.raises(ConfigError):
            logs._ingest.get()
    finally:
        logs.reset_runtime()
