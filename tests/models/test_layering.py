"""The local-model modules import cleanly in any order (the layering rules themselves: tests/test_architecture.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_model_modules_import_cleanly_in_any_order():
    modules = ["processors.handlers.llama_lambda", "processors.adapters.llama", "processors.adapters.embedders",
               "processors.runtime.bedrock_local", "processors.runtime.models", "processors.commands.models"]
    for order in (modules, modules[::-1]):
        code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in order)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert proc.returncode == 0, proc.stderr
