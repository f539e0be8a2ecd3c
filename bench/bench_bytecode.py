"""What the bytecode in the Lambda artifacts saves on a cold start.

    .venv/bin/python bench/bench_bytecode.py [--rounds 7]

Lambda's /var/task and /opt are read-only: without bytecode in the archives, every cold start
compiles every module it imports from source (and cannot keep the result). `sieve package` ships the
runtime's bytecode for code.zip and the base layer (processors/runtime/package.py,
`compile_for_runtime`). This builds the package (cached layers), unpacks code.zip and the base layer
twice, removes the bytecode from one copy, and times, with the runtime's CPython (3.12, `-I -B`: no
bytecode written), whole processes that import what each function's first invocation imports
(the handler module, the config loader, the use case's modules, boto3), the two copies in alternation.
Writes bench/results/bytecode.json. Timing only: nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: what each function's first invocation imports (the handler, then what the wiring builds on first use)
FIRST = {
    "logs": ["processors.handlers.logs", "processors.config.loader", "processors.core.ingest",
             "processors.adapters.state_store", "boto3"],
    "finaliser": ["processors.handlers.finaliser", "processors.config.loader", "processors.core.finalise",
                  "processors.adapters.state_store", "processors.adapters.slack", "processors.adapters.audit",
                  "processors.adapters.budget_store", "boto3"],
}


def timed(python: str, paths: list[str], modules: list[str]) -> tuple[float, float]:
    code = f"import sys; sys.path[:0] = {paths!r}\n" + "".join(f"import {m}\n" for m in modules)
    before = os.times()
    t = time.perf_counter()
    subprocess.run([python, "-I", "-B", "-c", code], check=True, capture_output=True, cwd="/")
    wall = time.perf_counter() - t
    after = os.times()
    return wall, (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    from processors.runtime.package import find_python, package, pyc_tag
    from processors.runtime.sam import RUNTIME

    version = RUNTIME[6:]
    python = find_python(version)
    if python is None:
        print(f"no CPython {version} here: the artifacts carry no bytecode to measure (nothing written)", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="sieve-bytecode-") as d:
        tmp = Path(d)
        manifest = package(tmp / "out")
        copies = {}
        for side in ("with", "without"):
            root = tmp / side
            zipfile.ZipFile(tmp / "out" / "code.zip").extractall(root / "task")
            zipfile.ZipFile(tmp / "out" / "layer-base.zip").extractall(root / "opt")
            if side == "without":
                for p in list(root.rglob("__pycache__")):
                    shutil.rmtree(p)
            copies[side] = [str(root / "task"), str(root / "opt" / "python")]
        pycs = sum(1 for _ in (tmp / "with").rglob(f"*.{pyc_tag(version)}.pyc"))
        results = {}
        for fn, modules in FIRST.items():
            runs: dict[str, list] = {"with": [], "without": []}
            timed(str(python), copies["with"], modules)  # page cache
            timed(str(python), copies["without"], modules)
            for i in range(args.rounds):
                for side in (("with", "without") if i % 2 == 0 else ("without", "with")):
                    runs[side].append(timed(str(python), copies[side], modules))
            med = {s: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for s, r in runs.items()}
            results[fn] = {
                "modules": modules,
                "with_bytecode_ms": round(1000 * med["with"][0], 1), "without_bytecode_ms": round(1000 * med["without"][0], 1),
                "with_bytecode_cpu_ms": round(1000 * med["with"][1], 1),
                "without_bytecode_cpu_ms": round(1000 * med["without"][1], 1),
                "without_over_with": round(med["without"][0] / med["with"][0], 2),
                "runs_ms": {s: [round(1000 * w, 1) for w, _ in r] for s, r in runs.items()},
            }
            print(f"{fn:10s} first-invocation imports from the unpacked artifacts: {results[fn]['with_bytecode_ms']:.0f} ms "
                  f"with bytecode, {results[fn]['without_bytecode_ms']:.0f} ms without "
                  f"({results[fn]['without_over_with']}x)", flush=True)
    out = {
        "benchmark": "imports of a function's first invocation from the unpacked Lambda artifacts, with and without "
                     "the shipped bytecode, whole processes of the runtime's CPython (-I -B), alternating, medians",
        "runtime": RUNTIME, "python": str(python), "rounds": args.rounds, "pyc_files": pycs,
        "archives": {k: v for k, v in manifest["archives"].items() if k in ("code.zip", "layer-base.zip")},
        "functions": results,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    dest = ROOT / "bench" / "results" / "bytecode.json"
    dest.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
