"""Load: the local stack held at a sustained push rate, with memory and lag watched in every process.

    .venv/bin/python bench/bench_load.py                       # step search, then a 180 s hold
    .venv/bin/python bench/bench_load.py --rates 500,1000 --step-seconds 30 --hold-seconds 180

What runs (all real, each in its own process as in production): a moto server, `sieve run` for the log
pipeline (the event source mapping runner + the logs processor + the scheduled finaliser, facts only:
the analyser is `none`, so the figures are those of the pipeline, not of a model), a local Slack
receiver and the pusher in this process. The pusher generates access-log traffic whose event times are
the wall clock (processors/core/generate.py, seeded) and puts it onto the two-shard stream with
PutRecords at the target rate (one record per line, `--format lines`, or CloudWatch Logs payloads of up
to 200 lines, `--format cwl`).

Measured every second: the iterator age of each shard (now minus the put time of the oldest record the
runner has not checkpointed: Lambda's IteratorAge), and every 2 s the RSS of every process (VmRSS, and
VmHWM for the peak). A rate is sustained when the pusher kept it (>= 95%) and the iterator age stayed under
`--max-lag` seconds through the second half of the step. The largest sustained rate is then held for
`--hold-seconds`; the report has the lag over time, how long after its end each window was finalised
(allowed lateness 30 s + schedule 10 s included), and the RSS of each process at the start, the middle
and the end of the hold (bounded memory: the end is not above the middle by more than noise).

Writes bench/results/load.json. The machine is shared (2 cores, other people's tests running): the load
average is recorded beside the figures.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.faults.harness import RULES, Child  # noqa: E402
from processors.runtime.faults import peak_rss_kb  # noqa: E402
from processors.runtime.services import free_port, wait_http  # noqa: E402

STREAM = "sieve-access-logs"
MAPPING = "logs-processor"


def write_config(path: Path) -> Path:
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    logs = doc["pipelines"]["logs"]
    logs["rules"] = [str(ROOT / "rules" / f"{r}.json") for r in RULES]
    logs["ai"]["analyser"] = {"kind": "none"}
    doc["functions"]["logs-finaliser"]["schedule_seconds"] = 10
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


class Pusher:
    """Puts generated lines at `rate` lines/s; remembers, per shard, when each sequence number was put."""

    def __init__(self, endpoint: str, fmt: str, seed: int):
        import boto3

        from processors.adapters.aws import CLIENT_CONFIG

        self.kinesis = boto3.client("kinesis", endpoint_url=endpoint, config=CLIENT_CONFIG)
        self.fmt = fmt
        self.seed = seed
        self.puts: dict[str, list[tuple[int, float]]] = {}  # shard -> [(max sequence so far, put time)]
        self.lines = 0
        self.records = 0
        self.failed_calls = 0
        self.lock = threading.Lock()

    def run(self, rate: float, seconds: float, stop: threading.Event) -> dict:
        from processors.core.generate import AccessLogGenerator, GeneratorConfig
        from processors.runtime.push import PushResult, entries

        start = datetime.now(timezone.utc).replace(microsecond=0)
        gen = AccessLogGenerator(GeneratorConfig(seed=self.seed, lines=int(rate * seconds), duration=int(seconds),
                                                 start=start, period=60, incidents=()))
        lines = gen.lines()
        t0 = time.monotonic()
        sent = 0
        total = int(rate * seconds)
        while sent < total and not stop.is_set():
            due = min(total, int(rate * (time.monotonic() - t0)))
            if due > sent:
                chunk = [next(lines) for _ in range(due - sent)]
                self._put(list(entries(chunk, self.fmt, PushResult(), log_group="/sieve/access/nginx")))
                sent = due
            time.sleep(0.1)
        took = time.monotonic() - t0
        return {"target_rate": rate, "lines": sent, "seconds": round(took, 2), "achieved_rate": round(sent / took, 1)}

    def _put(self, items) -> None:
        for i in range(0, len(items), 500):
            pending = items[i:i + 500]
            for _ in range(10):
                try:
                    resp = self.kinesis.put_records(StreamName=STREAM, Records=[{"Data": e.data, "PartitionKey": e.key}
                                                                                for e in pending])
                except Exception:  # noqa: BLE001 - counted; tried again
                    self.failed_calls += 1
                    time.sleep(0.2)
                    continue
                now = time.time()
                failed = []
                with self.lock:
                    for e, r in zip(pending, resp["Records"]):
                        if r.get("ErrorCode"):
                            failed.append(e)
                            continue
                        seq = int(r["SequenceNumber"])
                        lst = self.puts.setdefault(r["ShardId"], [])
                        if not lst or seq > lst[-1][0]:
                            lst.append((seq, now))
                        self.lines += e.lines
                        self.records += 1
                if not failed:
                    break
                pending = failed

    def iterator_age(self, checkpoints: dict[str, int], now: float) -> float:
        """Seconds since the oldest record not yet checkpointed was put (0 when caught up)."""
        age = 0.0
        with self.lock:
            for shard, lst in self.puts.items():
                done = checkpoints.get(shard, -1)
                i = bisect.bisect_right([s for s, _ in lst], done)
                if i < len(lst):
                    age = max(age, now - lst[i][1])
        return age


def read_checkpoints(path: Path) -> dict[str, int]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    shards = ((doc.get("mappings") or {}).get(MAPPING) or {}).get("shards") or {}
    return {s: int(c["sequence_number"]) for s, c in shards.items() if c.get("sequence_number")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="250,500,1000,2000,4000", help="lines/s to try, ascending")
    ap.add_argument("--step-seconds", type=float, default=40)
    ap.add_argument("--hold-seconds", type=float, default=180)
    ap.add_argument("--hold-rate", type=float, help="hold this rate instead of the largest sustained one")
    ap.add_argument("--max-lag", type=float, default=10.0, help="iterator age (s) a sustained rate stays under")
    ap.add_argument("--format", choices=("lines", "cwl"), default="lines")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "load.json"))
    args = ap.parse_args()

    work = Path(f"/tmp/sieve-load-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    for k in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[k]
    os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true"})
    from processors.config import load
    from processors.runtime.provision import provision
    from processors.runtime.slack_receiver import SlackReceiver

    samples: list[dict] = []
    result: dict = {"generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "format": args.format,
                    "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
                    "note": "2 shared cores: other people's tests ran at the same time; see load averages"}
    with contextlib.ExitStack() as stack:
        port = free_port()
        moto = Child([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], dict(os.environ),
                     work / "moto.log")
        moto.start()
        stack.callback(moto.kill)  # its state is thrown away: no need to wait for a clean stop
        endpoint = f"http://127.0.0.1:{port}"
        wait_http(endpoint + "/moto-api/", 30, "moto")
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        receiver = stack.enter_context(SlackReceiver())
        os.environ["SIEVE_LOCAL_SLACK_URL"] = receiver.url
        cfg = write_config(work / "pipelines.yaml")
        os.environ["SIEVE_CONFIG"] = str(cfg)
        loaded = load(cfg)
        provision(loaded.config, emulator=True)
        checkpoints = work / "checkpoints.json"
        runner = Child([sys.executable, "-m", "processors.cli", "run", "--config", str(cfg), "--checkpoints",
                        str(checkpoints), "--function", "logs-processor", "--function", "logs-finaliser"],
                       {**os.environ, "SLACK_WEBHOOK_URL": receiver.url, "SIEVE_STATE_DIR": str(work / "state")},
                       work / "runner.log")
        runner.start()
        stack.callback(runner.stop)
        pusher = Pusher(endpoint, args.format, args.seed)
        t_start = time.monotonic()
        stop_sampling = threading.Event()

        def sample() -> None:
            n = 0
            while not stop_sampling.wait(1.0):
                now = time.time()
                row = {"t": round(time.monotonic() - t_start, 1), "iterator_age_s": round(
                    pusher.iterator_age(read_checkpoints(checkpoints), now), 2), "lines_pushed": pusher.lines}
                if n % 2 == 0:
                    for name, c in (("moto", moto), ("sieve run", runner)):
                        r = peak_rss_kb(c.proc.pid) if c.alive() else None
                        if r:
                            row[f"rss_mb:{name}"] = round(r[0] / 1024, 1)
                            row[f"peak_rss_mb:{name}"] = round(r[1] / 1024, 1)
                    r = peak_rss_kb(os.getpid())
                    row["rss_mb:pusher+receiver"] = round(r[0] / 1024, 1)
                    row["load1"] = os.getloadavg()[0]
                samples.append(row)
                n += 1

        threading.Thread(target=sample, daemon=True).start()

        def window_rows(t0: float, t1: float) -> list[dict]:
            return [s for s in samples if t0 <= s["t"] <= t1]

        steps = []
        best = None
        for rate in (float(x) for x in args.rates.split(",")):
            t0 = time.monotonic() - t_start
            push = pusher.run(rate, args.step_seconds, threading.Event())
            t1 = time.monotonic() - t_start
            second_half = window_rows(t0 + (t1 - t0) / 2, t1)
            ages = [s["iterator_age_s"] for s in second_half] or [0.0]
            sustained = push["achieved_rate"] >= 0.95 * rate and max(ages) <= args.max_lag
            steps.append({**push, "max_iterator_age_s_second_half": max(ages),
                          "final_iterator_age_s": ages[-1], "sustained": sustained,
                          "load1": round(statistics.mean(s.get("load1", 0) for s in second_half if "load1" in s), 2)
                          if any("load1" in s for s in second_half) else None})
            print(f"step {rate:g} lines/s: achieved {push['achieved_rate']:g}, max iterator age "
                  f"{max(ages):.1f}s in the second half -> {'sustained' if sustained else 'NOT sustained'}", flush=True)
            # let it catch up before the next step
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and pusher.iterator_age(read_checkpoints(checkpoints), time.time()) > 1:
                time.sleep(1)
            if not sustained:
                break
            best = rate
        result["steps"] = steps
        result["max_sustained_rate_lines_per_s"] = best
        hold_rate = args.hold_rate or best
        if hold_rate and args.hold_seconds > 0:
            t0 = time.monotonic() - t_start
            wall0 = time.time()
            push = pusher.run(hold_rate, args.hold_seconds, threading.Event())
            t1 = time.monotonic() - t_start
            rows = window_rows(t0, t1)
            ages = [s["iterator_age_s"] for s in rows]
            thirds = [rows[: len(rows) // 3], rows[len(rows) // 3: 2 * len(rows) // 3], rows[2 * len(rows) // 3:]]

            def rss(part: list[dict], name: str) -> float | None:
                vals = [s[f"rss_mb:{name}"] for s in part if f"rss_mb:{name}" in s]
                return max(vals) if vals else None

            procs = ("moto", "sieve run", "pusher+receiver")
            # windows finalised during the hold: how long after the window's end
            time.sleep(45)  # the last windows close after the allowed lateness and the schedule
            from processors import wiring
            from processors.adapters import aws

            store = wiring.state_store(loaded)
            close_lag = []
            for rule in RULES:
                for item in store.reports(rule, limit=1000):
                    doc = aws.from_ddb({k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")})
                    end = int(doc["topn"]["window"]["end"])
                    if end >= wall0:
                        close_lag.append(float(doc["finalised_at"]) - end)
            result["hold"] = {
                **push,
                "iterator_age_s": {"p50": statistics.median(ages) if ages else None,
                                   "p95": sorted(ages)[int(0.95 * (len(ages) - 1))] if ages else None,
                                   "max": max(ages) if ages else None,
                                   "by_minute_max": [max(a["iterator_age_s"] for a in rows if m * 60 <= a["t"] - t0 < (m + 1) * 60)
                                                     for m in range(int((t1 - t0) // 60))]},
                "rss_mb_by_third_max": {p: [rss(part, p) for part in thirds] for p in procs},
                "peak_rss_mb": {p: max((s.get(f"peak_rss_mb:{p}", 0) for s in samples), default=None) for p in
                                ("moto", "sieve run")} | {"pusher+receiver": round(peak_rss_kb(os.getpid())[1] / 1024, 1)},
                "windows_finalised": len(close_lag),
                "window_finalised_after_end_s": {"min": round(min(close_lag), 1) if close_lag else None,
                                                 "median": round(statistics.median(close_lag), 1) if close_lag else None,
                                                 "max": round(max(close_lag), 1) if close_lag else None},
                "load_average": round(statistics.mean(s["load1"] for s in rows if "load1" in s), 2),
            }
            print(json.dumps(result["hold"], indent=1), flush=True)
        stop_sampling.set()
        result["pushed"] = {"lines": pusher.lines, "records": pusher.records, "failed_put_calls": pusher.failed_calls}
        result["runner_restarts"] = runner.starts - 1
        result["runner_alive_at_end"] = runner.alive()
        result["samples"] = samples[::5]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
