"""`sieve validate [FILE]`: check pipelines.yaml (and every rule it names); exit 2 on any error."""

from __future__ import annotations

from processors.config import load


def register(sub) -> None:
    p = sub.add_parser("validate", help="validate pipelines.yaml and its rules; exit 2 on errors")
    p.add_argument("file", nargs="?", help="config file (default: $SIEVE_CONFIG or ./pipelines.yaml)")
    p.set_defaults(func=run)


def run(args) -> int:
    loaded = load(args.file)
    cfg = loaded.config
    print(
        f"{loaded.path}: ok ({len(cfg.resources.streams)} streams, {len(cfg.resources.tables)} tables, "
        f"{len(cfg.functions)} functions, {len(loaded.rules)} rules)"
    )
    return 0
