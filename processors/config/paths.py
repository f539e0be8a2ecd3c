"""Where pipelines.yaml is, without loading anything (the loader brings YAML and pydantic)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_FILE = "pipelines.yaml"


def resolve_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use: the argument, $SIEVE_CONFIG, or ./pipelines.yaml."""
    return Path(path or os.environ.get("SIEVE_CONFIG") or DEFAULT_FILE)
