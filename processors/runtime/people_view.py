"""The redaction of what a terminal command prints (`people_view`), without the cost of loading the config.

Every command that prints log-derived text masks secrets with the patterns of pipelines.yaml
(`pipelines.logs.ai.redact`, the ones the model's digest and Slack get). Loading pipelines.yaml means
YAML and pydantic (~0.15 s of start-up), which `sieve topn` would pay on every run in a project
directory. So the redaction part of a config that loaded and validated is kept as a snapshot
(`$XDG_CACHE_HOME/sieve/people-view/<key>.json`, or ~/.cache): the key is the SHA-256 of the file's
bytes, of every `${VAR}` it names with its current value, and of the installed code that validates
a config and compiles its patterns (their sizes and modification times). A changed file,
a changed variable or other code misses and loads the config in full (and is validated then);
a snapshot that cannot be read or written is ignored. A config that does not load is never
snapshotted, so its warning (or, with --config, its error) comes every time. Rule files the config
names are not in the key: they do not change the patterns."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Any

from processors.core.surfaces import ForPeople

__all__ = ["CONFIG_HELP", "people_view", "people_view_of"]

#: the --config help of every command that prints log-derived text
CONFIG_HELP = ("pipelines.yaml whose ai.redact patterns mask secrets in what is shown (default: $SIEVE_CONFIG "
               "or ./pipelines.yaml when present, else the built-in patterns)")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
_SNAPSHOT_VERSION = 1
_HERE = Path(__file__).resolve().parents[1]
_SOURCES = tuple(str(_HERE / p) for p in ("config/models.py", "config/loader.py", "config/paths.py", "core/redact.py",
                                                "runtime/people_view.py"))


def people_view_of(config: Any) -> ForPeople:
    """The redaction for people of a loaded `Config`: its `pipelines.logs.ai.redact` patterns (the ones
    the model's digest and Slack get), without the IP pseudonyms; the built-ins without a logs pipeline."""
    spec = _redact_spec(config)
    return _view(spec)


def _redact_spec(config: Any) -> dict | None:
    logs = getattr(getattr(config, "pipelines", None), "logs", None)
    if logs is None:
        return None
    spec = logs.ai.redact
    return {"builtin": spec.builtin, "extra": [p.model_dump() for p in spec.extra_patterns]}


def _view(spec: dict | None) -> ForPeople:
    if spec is None:
        return ForPeople()
    from processors.core.redact import patterns_from_config

    return ForPeople(patterns_from_config(spec["builtin"], spec["extra"]))


def people_view(config: str | None = None, *, snapshot: bool = True) -> ForPeople:
    """The redaction for what a command prints: that of pipelines.yaml (`config`, else $SIEVE_CONFIG,
    else ./pipelines.yaml), or the built-in patterns when there is no such file. A config named with
    --config must load; a default one that does not is reported on stderr and the built-ins are used."""
    from processors.config.paths import resolve_path
    from processors.errors import ConfigError

    path = resolve_path(config)
    if config is None and not path.exists():
        return ForPeople()
    key = _snapshot_key(path) if snapshot else None
    if key is not None:
        found = _read_snapshot(key)
        if found is not None:
            return _view(found["spec"])
    from processors.config.loader import load

    try:
        loaded = load(path)
    except (ConfigError, OSError) as exc:
        if config is not None:
            raise
        why = f"{len(exc.problems)} error(s), see `sieve validate`" if isinstance(exc, ConfigError) else str(exc)
        print(f"warning: {path} is not usable ({why}); secrets are masked with the built-in patterns only, "
              "not its ai.redact extra_patterns", file=sys.stderr)
        return ForPeople()
    spec = _redact_spec(loaded.config)
    view = _view(spec)  # patterns that do not compile raise here, before anything is kept
    if key is not None:
        _write_snapshot(key, spec)
    return view


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sieve" / "people-view"


def _snapshot_key(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    h = hashlib.sha256()
    h.update(f"{_SNAPSHOT_VERSION}\0".encode())
    for src in _SOURCES:  # the code that validates a config and compiles its patterns, as installed
        try:
            st = os.stat(src)
        except OSError:
            return None
        h.update(f"{src}\0{st.st_mtime_ns}\0{st.st_size}\0".encode())
    h.update(hashlib.sha256(data).digest())
    text = data.decode("utf-8", "replace")
    for name in sorted(set(_VAR.findall(text))):
        value = os.environ.get(name)
        h.update(f"\0{name}={'' if value is None else value}\0{value is None}".encode())
    return h.hexdigest()


def _read_snapshot(key: str) -> dict | None:
    import orjson

    try:
        doc = orjson.loads((_cache_dir() / f"{key}.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if type(doc) is not dict or doc.get("key") != key or "spec" not in doc:
        return None
    return doc


def _write_snapshot(key: str, spec: dict | None) -> None:
    import orjson

    d = _cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(orjson.dumps({"key": key, "spec": spec}))
        os.replace(tmp, d / f"{key}.json")
    except OSError:
        pass  # a read-only home (Lambda, CI sandboxes): no snapshot, the config loads every time
