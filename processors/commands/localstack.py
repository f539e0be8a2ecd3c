"""`sieve localstack hooks [--check]`: write the LocalStack ready.d hook from pipelines.yaml."""

from __future__ import annotations

from pathlib import Path

import yaml

from processors.config import load
from processors.config.models import Config
from processors.errors import SieveError
from processors.runtime.localstack_hooks import render

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "localstack" / "init" / "ready.d" / "10-sieve-resources.sh"


def register(sub) -> None:
    p = sub.add_parser("localstack", help="LocalStack support files generated from pipelines.yaml")
    s = p.add_subparsers(dest="what", required=True)
    h = s.add_parser("hooks", help="write localstack/init/ready.d/10-sieve-resources.sh")
    h.add_argument("--config")
    h.add_argument("--out", type=Path, default=HOOK)
    h.add_argument("--check", action="store_true", help="exit 1 if the committed hook is out of date")
    h.set_defaults(func=run)


def run(args) -> int:
    loaded = load(args.config)  # full validation first
    raw = Config.model_validate(yaml.safe_load(loaded.path.read_text()))  # unexpanded: ${VAR} stays for the shell
    text = render(raw)
    if args.check:
        if not args.out.exists() or args.out.read_text() != text:
            raise SieveError(f"{args.out} is out of date; run `sieve localstack hooks`")
        print(f"{args.out}: up to date")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.chmod(0o755)
    print(f"wrote {args.out}")
    return 0
