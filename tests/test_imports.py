"""Cold start: importing a handler module must not load what only the first invocation (or only some
invocations) needs. Lambda runs the module import in its init phase for every new container; config
validation (YAML, pydantic), JSON Schema, boto3 clients, slack-sdk, OpenSearch and the model runtime are
loaded on the first invocation through `wiring.PerContainer`, or not at all when the invocation does not
need them. The figures (import time against `import boto3`) are in bench/results/coldstart.json
(bench/bench_coldstart.py); this test only guards the laziness, by module names, in a fresh process.
"""

from __future__ import annotations

import json
import os
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
    out = subprocess.run([sys.executable, "-c", "import json, sys\nimport processors.config.loader\n"
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


def _cli_modules(args: list[str], cwd) -> tuple[int, list[str], str]:
    """Run `sieve ARGS` in a fresh interpreter; (exit code, modules it loaded of interest, stderr+stdout)."""
    code = ("import json, sys\nfrom processors.cli import main\n"
            f"try:\n    rc = main({args!r})\nexcept SystemExit as e:\n    rc = e.code\n"
            "mods = sorted(m for m in sys.modules if m.startswith('processors.commands.') or m in "
            "('pydantic', 'yaml', 'rich', 'boto3'))\n"
            "print('\\n' + json.dumps([rc, mods]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    rc, mods = json.loads(out.stdout.strip().splitlines()[-1])
    return rc, mods, out.stdout + out.stderr


def test_a_command_imports_only_its_own_module(tmp_path):
    """`sieve topn` is a command users time against DuckDB: it imports its own module only, not the
    other commands' dependencies (boto3, rich, pydantic, YAML), when no pipelines.yaml is in play."""
    log = tmp_path / "a.log"
    log.write_text('10.0.0.1 - - [04/Mar/2024:10:00:00 +0000] "GET /x HTTP/1.1" 500 12 "-" "ua"\n')
    rc, mods, out = _cli_modules(["topn", "--json", "--rule", str(ROOT / "rules" / "errors-by-path.json"), str(log)],
                                 tmp_path)
    assert rc == 0 and '"/x"' in out
    assert mods == ["processors.commands.topn"]


def test_help_and_a_mistyped_command_still_know_every_command(tmp_path):
    rc, mods, out = _cli_modules(["--help"], tmp_path)
    assert rc == 0 and {"processors.commands.topn", "processors.commands.demo", "processors.commands.run"} <= set(mods)
    assert "topn" in out and "demo" in out
    rc, _, out = _cli_modules(["topm"], tmp_path)
    assert rc == 2 and "invalid choice: 'topm'" in out and "'topn'" in out
    rc, _, out = _cli_modules(["down", "--help"], tmp_path)  # a command registered by another command's module
    assert rc == 0 and "usage: sieve down" in out
