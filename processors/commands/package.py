"""`sieve package [--out build/package] [--config F] [--no-llama]`: the Lambda artifacts exactly as uploaded.

Writes code.zip, one layer-<name>.zip per layer the template uses (installed for Lambda's platform and the
template's Python), template.yaml pointing at them (`sam deploy -t build/package/template.yaml`) and
manifest.json (sha256 and unzipped sizes). With processors/runtime/package_llama.py present it also
builds the llama.cpp image's root filesystem (skip with --no-llama). See processors/runtime/package.py."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("package", help="build the Lambda artifacts (code, layers, llama.cpp rootfs) as uploaded")
    p.add_argument("--out", type=Path, default=ROOT / "build" / "package")
    p.add_argument("--config", help="pipelines.yaml (default: $SIEVE_CONFIG or ./pipelines.yaml)")
    p.add_argument("--no-llama", action="store_true", help="do not build the llama.cpp image's root filesystem")
    p.add_argument("--verbose", action="store_true", help="print pip's output")
    p.set_defaults(func=run)


def run(args) -> int:
    from processors.runtime.package import package

    log: list[str] = []
    try:
        manifest = package(args.out.resolve(), config=args.config, llama=not args.no_llama, log=log)
    finally:
        if args.verbose:
            print("\n".join(log), file=sys.stderr)
    for name, a in manifest["archives"].items():
        print(f"{args.out / name}: {a['bytes'] / 2**20:.1f} MB ({a['unzipped_bytes'] / 2**20:.1f} MB unzipped) "
              f"sha256 {a['sha256'][:16]}")
    for fn, f in manifest["functions"].items():
        print(f"  {fn}: {f['handler']} + {', '.join(f['layers'])} = {f['unzipped_bytes'] / 2**20:.0f} MB of 250")
    if "llama" in manifest:
        print(f"llama.cpp rootfs: {manifest['llama']}")
    print(f"deploy: sam deploy -t {args.out / 'template.yaml'} --guided")
    return 0
