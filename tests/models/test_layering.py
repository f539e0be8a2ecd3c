"""The local-model layering: adapters never import the runtime or a handler, and nothing here imports in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = sorted((ROOT / "processors" / "adapters").glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", ADAPTERS, ids=lambda p: p.name)
def test_adapters_do_not_import_runtime_or_handlers(path):
    bad = sorted(m for m in _imported_modules(path) if m.startswith(("processors.runtime", "processors.handlers")))
    assert not bad, f"{path.name} imports {bad}: adapters sit below the runtime and the handlers"


def test_model_modules_import_cleanly_in_any_order():
    modules = ["processors.handlers.llama_lambda", "processors.adapters.llama", "processors.adapters.embedders",
               "processors.runtime.bedrock_local", "processors.runtime.models", "processors.commands.models"]
    for order in (modules, modules[::-1]):
        code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in order)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert proc.returncode == 0, proc.stderr
