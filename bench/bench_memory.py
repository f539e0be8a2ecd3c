"""Memory of the logs processor: peak RSS on a 10,000-record Kinesis batch, and the state of one
shard-window at 10k, 100k and 1M distinct contributors.

    .venv/bin/python bench/bench_memory.py [--records 10000] [--keys 10000,100000,1000000]

1. Peak RSS: a fresh process imports the logs handler, builds its use case against a private moto server
   (pipelines.yaml's resources and rules, explanation counters on), reads a Kinesis event of RECORDS
   records from a JSON file (the exact shape Lambda delivers: Records[].kinesis.{data, sequenceNumber,
   partitionKey, approximateArrivalTimestamp, kinesisSchemaVersion}, eventID, eventSourceARN, ...; one
   combined-format line per record, generated with incidents), parses it as the Lambda runtime does and
   calls the handler once, which flushes to DynamoDB. Reported: RSS after import + build, after the event
   is loaded, and the process's peak (ru_maxrss: what Lambda reports as Max Memory Used), against the
   function's memory_mb in pipelines.yaml and Lambda's 6 MB synchronous payload limit for the event.
2. State per shard-window: one Accumulator (one shard) with a rule keyed by client that every event
   matches (the tracker's worst case), pipelines.yaml's state capacity and explanation settings, fed
   N events from N distinct client addresses (random IPv4/IPv6) with realistic user agents, referers and
   paths; the serialised partial (what is flushed to DynamoDB, and what Lambda's tumbling-window state
   carries) in bytes, against the 200 KB state bound, DynamoDB's 400 KB item and Lambda's 1 MB window
   state; with the process's peak RSS while feeding.

Writes bench/results/memory.json, then bench/results/cost.json (`sieve cost --json` over e2e.json and this
file, when bench/bench_e2e.py has run). Figures only: the state bound itself is tested in tests/core.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
MB = 1024 * 1024

CHILD = r"""
import json, os, resource, sys, time
def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
t = time.perf_counter()
import processors.handlers.logs as h
h._ingest.get()
after_build = rss_mb()
raw = open(sys.argv[1], "rb").read()
event = json.loads(raw)          # the runtime hands the handler a parsed dict
del raw
after_event = rss_mb()
t1 = time.perf_counter()
resp = h.handler(event, None)
t2 = time.perf_counter()
print(json.dumps({"rss_after_import_and_build_mb": round(after_build, 1), "rss_after_event_mb": round(after_event, 1),
                  "rss_after_handler_mb": round(rss_mb(), 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "handler_seconds": round(t2 - t1, 3), "failures": len(resp["batchItemFailures"])}))
"""


def kinesis_event(lines: list[str], arn: str, shard: str = "shardId-000000000000") -> dict:
    now = time.time()
    recs = []
    for i, line in enumerate(lines):
        seq = f"{49650000000000000000000000000000000000000000000000 + i:056d}"
        recs.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": f"pk-{i % 97}", "sequenceNumber": seq,
                        "data": base64.b64encode(line.encode()).decode(), "approximateArrivalTimestamp": now},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{shard}:{seq}",
            "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/sieve-logs",
            "awsRegion": "us-east-1", "eventSourceARN": arn})
    return {"Records": recs}


def batch_peak_rss(records: int, tmp: Path) -> dict:
    from bench_e2e import Moto, write_config

    from processors.core.generate import AccessLogGenerator, GeneratorConfig, parse_incident

    gen = AccessLogGenerator(GeneratorConfig(seed=21, lines=records, duration=300, period=60,
                                             incidents=(parse_incident("burst500"), parse_incident("scan404"))))
    lines = list(gen.lines())
    moto = Moto()
    try:
        config = write_config(tmp, 1)
        env = {**os.environ, "AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "SIEVE_CONFIG": str(config),
               "POWERTOOLS_METRICS_DISABLED": "true"}
        subprocess.run([sys.executable, "-c", "from processors.config import load\n"
                        "from processors.runtime.provision import provision\n"
                        f"provision(load({str(config)!r}).config, emulator=True)"], cwd=ROOT, env=env, check=True)
        arn = "arn:aws:kinesis:us-east-1:123456789012:stream/sieve-access-logs"
        event_path = tmp / "event.json"
        event_path.write_bytes(orjson.dumps(kinesis_event(lines, arn)))
        out = subprocess.run([sys.executable, "-c", CHILD, str(event_path)], cwd=ROOT, env=env, capture_output=True,
                             text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"logs handler process failed:\n{out.stderr[-3000:]}")
        doc = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        moto.stop()
    cfg = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    memory_mb = cfg["functions"]["logs-processor"].get("memory_mb", 512)
    size = event_path.stat().st_size
    return {"records": records, "lines": len(lines), "event_json_bytes": size,
            "lambda_sync_payload_limit_bytes": LAMBDA_PAYLOAD_LIMIT, "event_fits_payload_limit": size <= LAMBDA_PAYLOAD_LIMIT,
            **doc, "function_memory_mb": memory_mb,
            "peak_share_of_memory": round(doc["peak_rss_mb"] / memory_mb, 3),
            "margin_mb": round(memory_mb - doc["peak_rss_mb"], 1)}


def distinct_addresses(n: int, rng: random.Random) -> list[str]:
    ips: set[str] = set()
    while len(ips) < n:
        if rng.random() < 0.06:
            ips.add(f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}")
        else:
            ips.add(f"{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}")
    order = sorted(ips)
    rng.shuffle(order)
    return order


def state_at(n: int) -> dict:
    """Runs in a child process (its own peak RSS): one shard-window after n events of n distinct clients."""
    from processors.config import load
    from processors.core.aggregate import DEFAULT_MAX_STATE_BYTES, Accumulator
    from processors.core.rules import compile_rule
    from processors.core.types import Window

    loaded = load(ROOT / "pipelines.yaml")
    logs = loaded.config.pipelines.logs
    explain = logs.explain.to_core()
    period = logs.window.period_seconds
    rule = compile_rule({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/sieve/access*"],
                         "LogFormat": "CLF", "Fields": {"1": "client"}, "Contribution": {"Keys": ["client"]},
                         "AggregateOn": "Count"}, "requests-by-client")
    rng = random.Random(n)
    agents = [f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{100 + i}.0.0.0 Safari/537.36"
              for i in range(150)] + ["curl/8.5.0", "python-requests/2.31.0", "OrdersWorker/3.4.1", "-"]
    referers = [f"https://www.example.com/page/{i}" for i in range(60)] + ["-"]
    paths = ["/", "/login", "/search", "/api/v1/users/{}", "/api/v1/orders/{}/items", "/static/app.{}.js"]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    acc = Accumulator([rule], period=period, shard="bench", capacity=logs.state.capacity, explain=explain)
    t = time.perf_counter()
    for i, ip in enumerate(distinct_addresses(n, rng)):
        acc.add_line(f'{ip} - - [01/Jan/1970:00:00:{i % period:02d} +0000] "GET '
                     f'{paths[rng.randrange(len(paths))].format(rng.randrange(10**6))} HTTP/1.1" '
                     f'{rng.choice((200, 200, 304, 404, 500))} {rng.randrange(100000)} '
                     f'"{referers[rng.randrange(len(referers))]}" "{agents[rng.randrange(len(agents))]}"')
    fed = time.perf_counter() - t
    agg = acc.partials[("requests-by-client", Window(0, period))]
    blob = agg.to_bytes()
    return {"distinct_contributors": n, "events": n, "capacity": logs.state.capacity, "keys_held": len(agg.values),
            "approximate": agg.approximate, "explain": explain is not None and explain.enabled,
            "state_bytes": len(blob), "max_state_bytes": DEFAULT_MAX_STATE_BYTES,
            "dynamodb_item_limit_bytes": 400_000, "lambda_window_state_limit_bytes": 1_048_576,
            "margin_to_dynamodb_item_bytes": 400_000 - len(blob),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_feeding_mb": round(rss_before, 1), "feed_seconds": round(fed, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--keys", default="10000,100000,1000000")
    ap.add_argument("--state-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "memory.json"))
    args = ap.parse_args()
    if args.state_child is not None:
        print(json.dumps(state_at(args.state_child)))
        return
    with tempfile.TemporaryDirectory() as d:
        batch = batch_peak_rss(args.records, Path(d))
    print(f"logs processor, {batch['records']:,}-record batch: peak RSS {batch['peak_rss_mb']} MB "
          f"(after import+build {batch['rss_after_import_and_build_mb']} MB) of {batch['function_memory_mb']} MB; "
          f"event {batch['event_json_bytes'] / MB:.1f} MB", flush=True)
    states = []
    for n in (int(k) for k in args.keys.split(",")):
        out = subprocess.run([sys.executable, __file__, "--state-child", str(n)], cwd=ROOT, capture_output=True,
                             text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        states.append(json.loads(out.stdout.strip().splitlines()[-1]))
        s = states[-1]
        print(f"state of one shard-window at {n:,} distinct contributors: {s['state_bytes']:,} bytes "
              f"(bound {s['max_state_bytes']:,}; peak RSS {s['peak_rss_mb']} MB)", flush=True)
    result = {"benchmark": "logs processor memory: peak RSS on a Kinesis batch; state bytes per shard-window",
              "logs_processor_batch": batch, "state_per_shard_window": states,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average": [round(x, 2) for x in os.getloadavg()]},
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    Path(args.out).write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")
    cost_table(Path(args.out).parent)


def cost_table(results: Path) -> None:
    """`sieve cost --json` from the e2e and memory figures just measured -> cost.json beside them."""
    e2e = results / "e2e.json"
    if not e2e.exists():
        print("no e2e.json: run bench/bench_e2e.py for the cost table", file=sys.stderr)
        return
    out = subprocess.run([sys.executable, "-m", "processors.cli", "cost", "--measured", str(e2e), "--json"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"sieve cost failed:\n{out.stderr[-2000:]}")
    doc = json.loads(out.stdout)
    doc["reproduce"] = "sieve cost --json (bench/bench_e2e.py and bench/bench_memory.py first)"
    (results / "cost.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {results / 'cost.json'}: Sieve " + ", ".join(
        f"{k} ${v['totals']['sieve']:,.2f}" for k, v in doc["estimates"].items()))


if __name__ == "__main__":
    main()
