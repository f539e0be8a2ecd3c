"""Rule files: read a Contributor Insights rule file and compile it with the core's engine.

The core never reads files (processors/core/rules.py compiles bytes); this is the caller that does.
"""

from __future__ import annotations

from pathlib import Path

from processors.core.rules import CompiledRule, rules_from_json
from processors.errors import ConfigError


def load_rules_file(path: str | Path, path_prefix: str | None = None) -> list[CompiledRule]:
    """Every rule in a JSON rule file (see `rules_from_json` for the accepted shapes)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        base = path_prefix if path_prefix is not None else str(p)
        raise ConfigError(str(p), [f"{base}: cannot read rule file {p}: {exc.strerror or exc}"]) from exc
    return rules_from_json(data, source=str(p), stem=p.stem, path_prefix=path_prefix)


def load_rule_file(path: str | Path, path_prefix: str | None = None) -> CompiledRule:
    """Exactly one rule from a JSON rule file."""
    rules = load_rules_file(path, path_prefix)
    if len(rules) != 1:
        where = path_prefix if path_prefix is not None else str(path)
        raise ConfigError(str(path), [f"{where}: {path} holds {len(rules)} rules; expected exactly one"])
    return rules[0]
