"""Read pipelines.yaml, validate it strictly and report every problem with its path.

    pipelines.logs.rules[2].Contribution.Filters[0]: GreaterThan must be a number
    functions.logs-processor.events[0].batch_sise: unknown key (did you mean 'batch_size'?)

Loading at run time goes through the same function, so a handler cold start refuses a config that
`sieve validate` would refuse.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from processors.config.models import Config
from processors.config.paths import DEFAULT_FILE, resolve_path  # noqa: F401 - resolve_path: part of the loader's API
from processors.errors import ConfigError


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    config: Config
    rules: tuple[Any, ...] = field(default=())  # compiled Contributor Insights rules, in file order

    @property
    def base_dir(self) -> Path:
        return self.path.parent


def _walk(loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """The path as the user wrote it, and the model class that owns its last key.

    Drops the `kind` tags pydantic puts into the path of a discriminated union (analyser.bedrock.x ->
    analyser.x: the user wrote `kind: bedrock`, not a key named bedrock) and follows the tagged model."""
    out: list[Any] = []
    model: Any = Config
    owner: Any = Config
    union: Any = None  # the tagged union whose tag comes next in loc
    for part in loc:
        if union is not None and isinstance(part, str):
            model, union = _tag_model(union, part) or _inner_model(union), None
            continue
        out.append(part)
        owner, union = model, None
        if isinstance(part, int) or model is None:
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            continue  # a dict key (a resource name): stay on the dict's value model
        info = fields[part]
        if _is_tagged_union(info.annotation) or any(type(m).__name__ == "Discriminator" for m in info.metadata):
            union = info.annotation
        else:
            model = _inner_model(info.annotation)
    owner = owner if isinstance(owner, type) and issubclass(owner, BaseModel) else None
    return tuple(out), owner


def _is_tagged_union(annotation: Any) -> bool:
    from pydantic import Discriminator

    return any(isinstance(m, Discriminator) for m in getattr(annotation, "__metadata__", ()) or ()) or any(
        _is_tagged_union(a) for a in getattr(annotation, "__args__", ()) or () if a is not type(None))


def _tag_model(annotation: Any, tag: str) -> Any:
    """The model class tagged `tag` inside a (possibly optional) discriminated union annotation."""
    for a in getattr(annotation, "__args__", ()) or ():
        from pydantic import Tag

        for m in getattr(a, "__metadata__", ()) or ():
            if isinstance(m, Tag) and m.tag == tag:
                return a.__origin__
        found = _tag_model(a, tag)
        if found is not None:
            return found
    return None


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _inner_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for a in args or ():
        m = _inner_model(a)
        if m is not None:
            return m
    return None


def _problems(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors(include_url=False):
        raw = tuple(err["loc"])
        # pydantic's own steps (union members, validator wrappers) are left out of the path, but never the
        # last step of an unknown key: that is the user's key, whatever it holds ("regi[on", "function-x")
        inner = raw[:-1] if err["type"] == "extra_forbidden" else raw
        loc, owner = _walk(tuple(p for p in inner if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
                           + (raw[-1:] if inner is not raw else ()))
        where = _fmt_loc(loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            hint = ""
            if owner is not None and loc:
                close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1)
                if close:
                    hint = f" (did you mean '{close[0]}'?)"
            out.append(f"{where}: unknown key{hint}")
        elif kind == "missing":
            out.append(f"{where}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            out.append(f"{where}: {msg} (got {err.get('input')!r})" if kind != "value_error" else f"{where}: {msg}")
    return out


def _cross_references(cfg: Config) -> list[str]:
    """Names that must point at declared resources."""
    r = cfg.resources
    problems: list[str] = []

    def need(kind: str, names: dict, name: str | None, where: str) -> None:
        if name is not None and name not in names:
            known = ", ".join(sorted(names)) or "none declared"
            problems.append(f"{where}: {kind} '{name}' is not declared in resources.{kind}s (declared: {known})")

    for fname, fn in cfg.functions.items():
        for i, ev in enumerate(fn.events):
            base = f"functions.{fname}.events[{i}]"
            if ev.kinesis:
                need("stream", r.streams, ev.kinesis.stream, base + ".kinesis.stream")
            if ev.dynamodb:
                need("table", r.tables, ev.dynamodb.table, base + ".dynamodb.table")
                t = r.tables.get(ev.dynamodb.table)
                if t is not None and t.stream is None:
                    problems.append(f"{base}.dynamodb.table: table '{ev.dynamodb.table}' has no stream; set resources.tables.{ev.dynamodb.table}.stream")
            need("queue", r.queues, ev.on_failure, base + ".on_failure")
    for gname, g in r.log_groups.items():
        if g.subscription:
            need("stream", r.streams, g.subscription.stream, f"resources.log_groups.{gname}.subscription.stream")
    logs = cfg.pipelines.logs
    if logs:
        need("stream", r.streams, logs.source_stream, "pipelines.logs.source_stream")
        need("table", r.tables, logs.state.table, "pipelines.logs.state.table")
        need("queue", r.queues, logs.rejects_queue, "pipelines.logs.rejects_queue")
        need("table", r.tables, logs.ai.audit_table, "pipelines.logs.ai.audit_table")
        need("secret", r.secrets, logs.ai.redaction_secret, "pipelines.logs.ai.redaction_secret")
        if logs.ai.analyser.kind != "none" and not logs.ai.redaction_secret:
            problems.append("pipelines.logs.ai.redaction_secret: required when an analyser is configured "
                            "(IP pseudonyms are keyed by it); or set ai.analyser.kind: none")
        need("secret", r.secrets, logs.slack.webhook_secret, "pipelines.logs.slack.webhook_secret")
        if logs.slack.kind == "bot":
            need("secret", r.secrets, logs.slack.token_secret, "pipelines.logs.slack.token_secret")
            need("secret", r.secrets, logs.slack.signing_secret, "pipelines.logs.slack.signing_secret")
        need("table", r.tables, logs.slack.idempotency_table, "pipelines.logs.slack.idempotency_table")
        need("queue", r.queues, logs.slack.failure_queue, "pipelines.logs.slack.failure_queue")
    faq = cfg.pipelines.faq
    if faq:
        need("table", r.tables, faq.table, "pipelines.faq.table")
        for role, sees in faq.roles.items():
            if not sees:
                problems.append(f"pipelines.faq.roles.{role}: must list at least one record role")
    return problems


def _compile_rules(cfg: Config, base_dir: Path) -> tuple[tuple[Any, ...], list[str]]:
    logs = cfg.pipelines.logs
    if not logs:
        return (), []
    from processors.config.rule_files import load_rule_file  # the core engine validates the rule JSON itself
    from processors.core import rules as rules_mod

    compiled, problems = [], []
    names: set[str] = set()
    for i, spec in enumerate(logs.rules):
        where = f"pipelines.logs.rules[{i}]"
        try:
            if isinstance(spec, str):
                path = (base_dir / spec) if not os.path.isabs(spec) else Path(spec)
                rule = load_rule_file(path, path_prefix=where)
            else:
                name = str(spec.get("Name") or spec.get("name") or f"rule-{i}") if isinstance(spec, dict) else f"rule-{i}"
                body = {k: v for k, v in spec.items() if k not in ("Name", "name")}
                rule = rules_mod.compile_rule(body, name=name, path_prefix=where)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if rule.name in names:
            problems.append(f"{where}: duplicate rule name '{rule.name}'")
        names.add(rule.name)
        compiled.append(rule)
    if not logs.rules:
        problems.append("pipelines.logs.rules: at least one rule is required")
    for rule in sorted(set(getattr(logs.slack, "channels", {})) - names):
        problems.append(f"pipelines.logs.slack.channels.{rule}: no rule named {rule!r} (rules: {', '.join(sorted(names))})")
    return tuple(compiled), problems


def load_text(text: str, source: str = DEFAULT_FILE, base_dir: Path | None = None) -> LoadedConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"{at}not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    except RecursionError:
        raise ConfigError(source, [f"(top level): nested more than {MAX_DEPTH} levels deep"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, [f"(top level): must be a mapping, got {type(raw).__name__}"])
    size_problem = _size_problem(raw)
    if size_problem:
        raise ConfigError(source, [size_problem])
    raw = _expand_env(raw)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None
    problems = _cross_references(cfg)
    rules, rule_problems = _compile_rules(cfg, base_dir or Path.cwd())
    problems += rule_problems
    if problems:
        raise ConfigError(source, problems)
    return LoadedConfig(path=Path(source).resolve(), config=cfg, rules=rules)


#: Bounds on the document once YAML aliases are expanded (a self-referring alias expands forever, nested
#: aliases exponentially: "billion laughs"); a real pipelines.yaml is a few hundred values.
MAX_VALUES = 100_000
MAX_DEPTH = 64


def _size_problem(root: Any) -> str | None:
    """Why the document is too large or too deep to validate (counted as expanded), or None."""
    todo, values = [(root, 0)], 0
    while todo:
        node, depth = todo.pop()
        values += 1
        if values > MAX_VALUES:
            return (f"(top level): more than {MAX_VALUES} values once YAML aliases are expanded "
                    "(an alias that refers to itself, or aliases nested in aliases)")
        if depth > MAX_DEPTH:
            return f"(top level): nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            todo.extend((v, depth + 1) for v in node.values())
            todo.extend((k, depth + 1) for k in node if isinstance(k, (tuple, frozenset)))
        elif isinstance(node, (list, tuple)):
            todo.extend((v, depth + 1) for v in node)
    return None


def _expand_env(node: Any) -> Any:
    """Expand ${VAR} and ${VAR:-default} in string values (never in keys)."""
    if isinstance(node, dict):
        return {k: _expand_env(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v) for v in node]
    if isinstance(node, str) and "${" in node:
        import re

        def sub(m: "re.Match[str]") -> str:
            name, _, default = m.group(1).partition(":-")
            return os.environ.get(name, default)

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?)\}", sub, node)
    return node


def load(path: str | os.PathLike[str] | None = None) -> LoadedConfig:
    p = resolve_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(p), [f"file not found (looked for {p.resolve()}); pass a path or set SIEVE_CONFIG"]) from None
    return load_text(text, source=str(p), base_dir=p.resolve().parent)
