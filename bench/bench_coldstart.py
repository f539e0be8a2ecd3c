"""Cold start of each Lambda handler module against `import boto3`, whole processes, paired runs.

    .venv/bin/python bench/bench_coldstart.py [--pairs 11] [--rounds 9] [--handlers logs,finaliser,...]

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
3. first invocation, before and after issue 13's shared boto3 session (processors/adapters/aws.py): one
   fresh process imports the handler and calls `handler(event, context)` once with a real event against
   the moto server (the logs processor: a Kinesis batch of access-log lines on a shard of its own, so every
   run does the same work; the finaliser: EventBridge's scheduled event, run before any partial is written,
   so it reads progress, lists the stream's shards and finds no closed window). "before" runs the same code
   with `aws.session`/`aws.client` replaced by their earlier bodies (a new `boto3.Session` per client);
   rounds of three processes (after, before, `import boto3`) in rotating order; the figures are medians of
   the per-round ratios, and the boto3 sessions each variant creates are counted in one more process.

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


def summary(rows: list, side: int, base: int) -> dict:
    """Medians of one side's per-round ratios against a base (both (wall, in-process, cpu) rows)."""
    return {
        "ratio_whole_process": round(statistics.median(r[side][0] / r[base][0] for r in rows), 3),
        "ratio_whole_process_cpu": round(statistics.median(r[side][2] / r[base][2] for r in rows), 3),
        "ratio_in_process": round(statistics.median(r[side][1] / r[base][1] for r in rows), 3),
    }


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


# the code before issue 13: every aws.session() / aws.client() call built a new boto3 session
UNCACHED = """
import boto3
from processors.adapters import aws
def _session(region_name=None):
    return boto3.Session(region_name=aws.region(region_name))
def _client(service, region_name=None, **kwargs):
    kwargs.setdefault("config", aws.CLIENT_CONFIG)
    return _session(region_name).client(service, **kwargs)
aws.session, aws.client = _session, _client
"""

# the first invocation: a real event (written by `events()`), a Lambda-like context
INVOKE = {
    "logs": """import json, uuid
import processors.handlers.logs as h
ev = json.load(open({path!r}))
shard = "shardId-" + uuid.uuid4().hex[:12]
for r in ev["Records"]:
    r["eventID"] = shard + ":" + r["eventID"].split(":")[1]
out = h.handler(ev, None)
assert out == {{"batchItemFailures": []}}, out""",
    "finaliser": """import json
from processors.runtime.lambda_context import LambdaContext
import processors.handlers.finaliser as h
ev = json.load(open({path!r}))
out = h.handler(ev, LambdaContext(function_name="logs-finaliser", timeout_seconds=300,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:logs-finaliser"))
assert "finalised" in out, out""",
}

COUNT_SESSIONS = """
import boto3.session
_made = []
_init = boto3.session.Session.__init__
def _spy(self, *a, **k):
    _made.append(1)
    _init(self, *a, **k)
boto3.session.Session.__init__ = _spy
{stmt}
print(len(_made))
"""


def events(tmp: Path) -> dict[str, Path]:
    """The first invocations' events: a Kinesis batch of 200 access-log lines stamped now, the scheduled event."""
    import base64

    now = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
    arn = "arn:aws:kinesis:us-east-1:123456789012:stream/sieve-access-logs"
    lines = [f'192.0.2.{i % 50} - - [{now}] "GET /api/{i % 7} HTTP/1.1" {500 if i % 3 else 404} 12 "-" "ua"'
             for i in range(200)]
    kinesis = {"Records": [{
        "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": str(i), "sequenceNumber": str(49590338271490256608559692538361571095921575989136588898 + i),
                    "data": base64.b64encode(line.encode()).decode(), "approximateArrivalTimestamp": time.time()},
        "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{4959 + i}",
        "eventName": "aws:kinesis:record", "awsRegion": "us-east-1", "eventSourceARN": arn} for i, line in enumerate(lines)]}
    scheduled = {"version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "detail-type": "Scheduled Event",
                 "source": "aws.events", "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/logs-finaliser-schedule"],
                 "detail": {}}
    out = {"logs": tmp / "kinesis.json", "finaliser": tmp / "scheduled.json"}
    out["logs"].write_bytes(orjson.dumps(kinesis))
    out["finaliser"].write_bytes(orjson.dumps(scheduled))
    return out


def sessions_made(stmt: str, env: dict) -> int:
    out = subprocess.run([sys.executable, "-c", COUNT_SESSIONS.format(stmt=stmt)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"counting sessions failed:\n{out.stderr[-2000:]}")
    return int(out.stdout.strip().splitlines()[-1])


def first_invocation(stmt: str, rounds: int, env: dict) -> dict:
    """Rounds of (after, before, import boto3) whole processes in rotating order; medians of the ratios."""
    variants = (stmt, UNCACHED + stmt, "import boto3")
    rows = []
    for i in range(rounds):
        order = [(i + j) % 3 for j in range(3)]
        got = {k: run(variants[k], env) for k in order}
        rows.append((got[0], got[1], got[2]))
    out: dict = {}
    for name, side in (("after", 0), ("before", 1)):
        out[name] = {**summary(rows, side, 2),
                     "handler_ms": round(1000 * statistics.median(r[side][0] for r in rows), 1),
                     "handler_in_process_ms": round(1000 * statistics.median(r[side][1] for r in rows), 1),
                     "handler_cpu_ms": round(1000 * statistics.median(r[side][2] for r in rows), 1),
                     "boto3_sessions": sessions_made(variants[side], env)}
    out["boto3_ms"] = round(1000 * statistics.median(r[2][0] for r in rows), 1)
    out["boto3_cpu_ms"] = round(1000 * statistics.median(r[2][2] for r in rows), 1)
    after_over_before = summary(rows, 0, 1)
    out["after_over_before"] = {"whole_process": after_over_before["ratio_whole_process"],
                                "whole_process_cpu": after_over_before["ratio_whole_process_cpu"],
                                "in_process": after_over_before["ratio_in_process"]}
    out["saved_ms_whole_process"] = round(1000 * statistics.median(r[1][0] - r[0][0] for r in rows), 1)
    out["rounds"] = rounds
    out["ratios_after"] = [round(r[0][0] / r[2][0], 3) for r in rows]
    out["ratios_before"] = [round(r[1][0] / r[2][0], 3) for r in rows]
    return out


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
    ap.add_argument("--rounds", type=int, default=9, help="rounds of the first invocation (after, before, boto3)")
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

    first, invoked = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        env, moto = stack_env(Path(tmp))
        paths = events(Path(tmp))
        try:
            # the finaliser first: it then runs before any partial is in the state table (nothing to post)
            for h in ("finaliser", "logs"):
                if h not in handlers:
                    continue
                invoked[h] = first_invocation(INVOKE[h].format(path=str(paths[h])), args.rounds, env)
                a, b = invoked[h]["after"], invoked[h]["before"]
                print(f"import + first invocation {h:10s} after {a['ratio_whole_process']:.2f}x import boto3 "
                      f"({a['handler_ms']:.0f} ms, {a['boto3_sessions']} session), before "
                      f"{b['ratio_whole_process']:.2f}x ({b['handler_ms']:.0f} ms, {b['boto3_sessions']} sessions); "
                      f"after/before {invoked[h]['after_over_before']['whole_process']:.2f} "
                      f"(CPU {invoked[h]['after_over_before']['whole_process_cpu']:.2f})", flush=True)
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
        "import_plus_first_invocation": invoked,
        "notes": ("ratio = median over pairs of (handler process wall time / boto3 process wall time), order "
                  "alternating within pairs; ratio_whole_process_cpu = the same with the processes' CPU time "
                  "(user + system), which a busy machine disturbs less; import_plus_first_build = the module import plus the use case "
                  "built on the first invocation (pipelines.yaml validated, boto3 clients, core modules) "
                  "against a local moto server, analyser none; import_plus_first_invocation = the module import "
                  "and handler(event, context) once with a real event against the moto server, `after` with the "
                  "shared boto3 session (processors/adapters/aws.py), `before` with a new session per client as "
                  "the code had it, rounds of (after, before, import boto3) processes in rotating order, ratios "
                  "against import boto3 and after/before as medians of the per-round ratios, boto3_sessions "
                  "counted in one more process per variant"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
