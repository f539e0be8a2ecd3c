"""Cold start of each Lambda handler module against `import boto3`, whole processes, paired runs.

    .venv/bin/python bench/bench_coldstart.py [--pairs 11] [--handlers logs,finaliser,...]

1. import: for each handler, PAIRS pairs of fresh processes `python -c 'import processors.handlers.X'`
   and `python -c 'import boto3'`, the order alternating within each pair (so machine load hits both
   alike); the figure is the median of the per-pair ratios of whole-process wall time (what the issue
   asks: <= 1.5x), with the medians of each side, the interpreter alone (`python -c pass`), and the
   in-process import time (perf_counter around the import statement) of both.
2. first invocation: Lambda's init phase runs the import; the use case (pipelines.yaml validated with
   pydantic, boto3 clients, the core's modules) is built on the first invocation (`wiring.PerContainer`).
   For the logs processor and the finaliser this step measures import + build in one fresh process
   against a moto server (resources from pipelines.yaml; analyser `none` for the finaliser, so no model
   is loaded), paired with `import boto3` as in step 1. This is the cold start a user pays in full
   (Lambda bills the init phase and the first invocation alike).

Writes bench/results/coldstart.json. Timing only: tests/test_imports.py guards the laziness itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.runtime.services import free_port, moto_argv, wait_http  # noqa: E402

HANDLERS = ("logs", "finaliser", "faq", "faq_crawler", "slack_actions", "ask", "llama_lambda")
TARGET = 1.5

TIMED = "import time\nt = time.perf_counter()\n{stmt}\nprint(time.perf_counter() - t)"


def run(stmt: str, env: dict | None = None) -> tuple[float, float, float]:
    """(whole-process wall seconds, in-process seconds of `stmt`, whole-process CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", TIMED.format(stmt=stmt)], cwd=ROOT, capture_output=True,
                         text=True, env=env, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{stmt!r} failed:\n{out.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, float(out.stdout.strip().splitlines()[-1]), cpu


def paired(stmt: str, pairs: int, env: dict | None = None) -> dict:
    rows = []
    for i in range(pairs):
        if i % 2 == 0:
            h, b = run(stmt, env), run("import boto3", env)
        else:
            b, h = run("import boto3", env), run(stmt, env)
        rows.append((h, b))
    ratios = [h[0] / b[0] for h, b in rows]
    inproc = [h[1] / b[1] for h, b in rows]
    cpu = [h[2] / b[2] for h, b in rows]
    return {
        "ratio_whole_process": round(statistics.median(ratios), 3),
        "ratio_whole_process_cpu": round(statistics.median(cpu), 3),
        "ratio_in_process_import": round(statistics.median(inproc), 3),
        "handler_ms": round(1000 * statistics.median(h[0] for h, _ in rows), 1),
        "boto3_ms": round(1000 * statistics.median(b[0] for _, b in rows), 1),
        "handler_in_process_ms": round(1000 * statistics.median(h[1] for h, _ in rows), 1),
        "boto3_in_process_ms": round(1000 * statistics.median(b[1] for _, b in rows), 1),
        "handler_cpu_ms": round(1000 * statistics.median(h[2] for h, _ in rows), 1),
        "boto3_cpu_ms": round(1000 * statistics.median(b[2] for _, b in rows), 1),
        "ratios": [round(r, 3) for r in ratios],
    }


BREAKDOWN = """
import json, time
t0 = time.perf_counter()
import processors.handlers.{h} as h
t1 = time.perf_counter()
from processors.config import load
load()
t2 = time.perf_counter()
import boto3
t3 = time.perf_counter()
{build}
t4 = time.perf_counter()
print(json.dumps({{"import_handler": t1 - t0, "config_load_yaml_pydantic": t2 - t1, "import_boto3": t3 - t2,
                  "build_rest_clients_core_modules": t4 - t3}}))
"""


def breakdown(h: str, build: str, env: dict, runs: int = 5) -> dict:
    """In one process: the handler import, then the config load, boto3, and the rest of the build (clients,
    the core modules the use case needs), each timed; median of `runs` processes."""
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", BREAKDOWN.format(h=h, build=build)], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
        rows.append(orjson.loads(out.stdout.strip().splitlines()[-1]))
    return {k: round(1000 * statistics.median(r[k] for r in rows), 1) for k in rows[0]}


def stack_env(tmp: Path) -> tuple[dict, subprocess.Popen]:
    """A moto server with pipelines.yaml's resources, and the environment a handler process needs."""
    port = free_port()
    proc = subprocess.Popen(moto_argv("127.0.0.1", port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/moto-api/", 60, "moto")
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    doc["pipelines"]["logs"]["ai"]["analyser"] = {"kind": "none"}
    doc["pipelines"]["logs"]["rules"] = [str(ROOT / r) if not os.path.isabs(r) else r
                                         for r in doc["pipelines"]["logs"]["rules"] if isinstance(r, str)]
    cfg = tmp / "pipelines.yaml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "SIEVE_CONFIG": str(cfg),
           "POWERTOOLS_METRICS_DISABLED": "true", "SLACK_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    subprocess.run([sys.executable, "-c", "from processors.config import load\n"
                    "from processors.runtime.provision import provision\n"
                    f"provision(load({str(cfg)!r}).config, emulator=True)"], cwd=ROOT, env=env, check=True)
    return env, proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=11)
    ap.add_argument("--handlers", default=",".join(HANDLERS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "coldstart.json"))
    args = ap.parse_args()
    handlers = [h for h in args.handlers.split(",") if h]

    python_alone = statistics.median(run("pass")[0] for _ in range(5))
    imports = {}
    for h in handlers:
        imports[h] = paired(f"import processors.handlers.{h}", args.pairs)
        imports[h]["within_target"] = imports[h]["ratio_whole_process"] <= TARGET
        print(f"import processors.handlers.{h:14s} {imports[h]['ratio_whole_process']:.2f}x import boto3 "
              f"({imports[h]['handler_ms']:.0f} vs {imports[h]['boto3_ms']:.0f} ms whole process; CPU "
              f"{imports[h]['ratio_whole_process_cpu']:.2f}x)", flush=True)

    first = {}
    with tempfile.TemporaryDirectory() as tmp:
        env, moto = stack_env(Path(tmp))
        try:
            builds = {"logs": "import processors.handlers.logs as h\nh._ingest.get()",
                      "finaliser": "import processors.handlers.finaliser as h\nh._finaliser.get()"}
            for h, stmt in builds.items():
                first[h] = paired(stmt, max(3, args.pairs // 2), env)
                print(f"import + first build {h:10s} {first[h]['ratio_whole_process']:.2f}x import boto3 "
                      f"({first[h]['handler_ms']:.0f} vs {first[h]['boto3_ms']:.0f} ms; CPU "
                      f"{first[h]['ratio_whole_process_cpu']:.2f}x)", flush=True)
                first[h]["breakdown_ms"] = breakdown(h, stmt.split("\n")[1], env)
                print(f"  where the first build goes (median ms): {first[h]['breakdown_ms']}", flush=True)
        finally:
            moto.terminate()
            moto.wait(10)

    result = {
        "benchmark": "cold start: whole-process `import processors.handlers.X` vs `import boto3`, paired runs",
        "target_ratio": TARGET,
        "pairs": args.pairs,
        "python_alone_ms": round(1000 * python_alone, 1),
        "import": imports,
        "import_plus_first_build": first,
        "notes": ("ratio = median over pairs of (handler process wall time / boto3 process wall time), order "
                  "alternating within pairs; ratio_whole_process_cpu = the same with the processes' CPU time "
                  "(user + system), which a busy machine disturbs less; import_plus_first_build = the module import plus the use case "
                  "built on the first invocation (pipelines.yaml validated, boto3 clients, core modules) "
                  "against a local moto server, analyser none"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
