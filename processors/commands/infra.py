"""`sieve infra sam [--config F] [--out infra/template.yaml] [--check]`: the AWS SAM template from pipelines.yaml.

Next to the template it writes `layer/<layer>/requirements.txt` (the dependency layers, from pyproject.toml).
`--check` writes nothing and exits 1 when either file differs from what would be generated."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

from processors.config import load
from processors.config.models import Config
from processors.errors import SieveError
from processors.runtime.sam import layer_requirements, render_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"


def register(sub) -> None:
    p = sub.add_parser("infra", help="deployment files generated from pipelines.yaml")
    s = p.add_subparsers(dest="what", required=True)
    h = s.add_parser("sam", help="write the AWS SAM template (infra/template.yaml)")
    h.add_argument("--config", help="pipelines.yaml to render (default: $SIEVE_CONFIG or ./pipelines.yaml)")
    h.add_argument("--out", type=Path, default=TEMPLATE)
    h.add_argument("--check", action="store_true", help="exit 1 if the committed template is out of date")
    h.set_defaults(func=run)


def _relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def run(args) -> int:
    loaded = load(args.config)  # full validation (cross references, rules) first
    # unexpanded: ${VAR:-default} must not depend on this machine's environment, and emulator defaults
    # (local values, 127.0.0.1 endpoints) must never reach the template
    raw = Config.model_validate(yaml.safe_load(loaded.path.read_text()))
    try:
        config_path = loaded.path.relative_to(ROOT).as_posix()
    except ValueError:
        raise SieveError(f"{loaded.path} is outside the repository {ROOT}; the functions package the repository "
                         "(CodeUri) and read the config from it, so keep the config inside it") from None
    out: Path = args.out.resolve()
    code_uri = _relative(ROOT, out.parent)
    text, notes = render_template(raw, config_path=config_path, code_uri=code_uri, layer_uri="layer/")
    files = {out: text}
    for layer, req in layer_requirements(ROOT / "pyproject.toml").items():
        files[out.parent / "layer" / layer / "requirements.txt"] = req
    if args.check:
        stale = [str(p) for p, want in files.items() if not p.exists() or p.read_text() != want]
        if stale:
            raise SieveError(f"{', '.join(stale)} out of date; run `sieve infra sam`")
        print(f"{out}: up to date")
        return 0
    for path, want in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(want)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in files))
    return 0
