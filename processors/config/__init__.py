"""Load and validate pipelines.yaml (see processors.config.models for the schema).

The loader (YAML, pydantic) is imported on first use of `load`, `load_text` or `LoadedConfig`, so
importing `processors.config.rule_files` (what `sieve topn` needs) does not pay for it."""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["LoadedConfig", "load", "load_text"]

if TYPE_CHECKING:  # pragma: no cover
    from processors.config.loader import LoadedConfig, load, load_text  # noqa: F401


def __getattr__(name: str):
    if name in __all__:
        from processors.config import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
