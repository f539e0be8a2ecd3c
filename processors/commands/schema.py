"""`sieve schema [--check]`: write schemas/pipelines.schema.json from the config models."""

from __future__ import annotations

import json
from pathlib import Path

from processors.config.models import Config
from processors.errors import SieveError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "pipelines.schema.json"


def generate() -> str:
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://github.com/sieve-streams/sieve/schemas/pipelines.schema.json"
    schema["title"] = "Sieve pipelines.yaml"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def register(sub) -> None:
    p = sub.add_parser("schema", help="generate schemas/pipelines.schema.json from the config models")
    p.add_argument("--check", action="store_true", help="exit 1 if the committed schema is out of date")
    p.add_argument("--out", type=Path, default=SCHEMA_PATH)
    p.set_defaults(func=run)


def run(args) -> int:
    text = generate()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            raise SieveError(f"{args.out} is out of date; run `sieve schema`")
        print(f"{args.out}: up to date")
        return 0
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0
