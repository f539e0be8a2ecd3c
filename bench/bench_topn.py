"""Throughput of the top-N engine vs DuckDB on the same file, peak RSS, and partial state size.

    .venv/bin/python bench/bench_topn.py [--lines 1000000] [--keep DIR]

1. Generates LINES combined-format lines (seeded, with incidents) to a temporary file.
2. Sieve: reads the file as Kinesis-sized records (200 lines each), decode_record -> parse_clf ->
   rules/errors-by-path.json -> per-window partials -> top-10 report, in this one process.
3. DuckDB: the same top-10 per 60 s window (status > 499 by path without its query string, ties by
   path) with SQL over the same file (regexp_extract + strptime + window function), on all cores
   it is given.
4. Checks both answers are identical, then measures one shard-window's serialised partial after
   1,000,000 distinct client IPs were offered at the default capacity.
5. Sieve again with rules/errors-by-path-template.json (`path_template` is computed only for the
   events that pass the status filter): its lines/s, for comparison with step 2.
6. Sieve again as in step 2 with the explanation counters on (processors/core/explain.py, default
   ExplainConfig: every CLF dimension the rule can use, counted over every parsed event, per-key
   counters and 10 s buckets for the heaviest keys): its lines/s and its cost over step 2, and the
   same top-N. Runs of steps 2, 5 and 6 are interleaved, best of --repeat each.
7. The serialised partial of one shard-window with the explanation, after 1,000,000 events from
   1,000,000 distinct clients (keyed by client, every event matched: the tracker's worst case), with
   realistic user agents, referers and paths, and again with every user agent and referer distinct.

Writes bench/results/topn.json. Timing only: nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.core.aggregate import DEFAULT_CAPACITY, DEFAULT_MAX_STATE_BYTES, Accumulator, WindowAggregate  # noqa: E402
from processors.core.decode import Decoded, decode_record  # noqa: E402
from processors.core.explain import ExplainConfig  # noqa: E402
from processors.core.rules import compile_rule  # noqa: E402
from processors.core.generate import AccessLogGenerator, GeneratorConfig, IncidentSpec  # noqa: E402
from processors.config.rule_files import load_rule_file  # noqa: E402
from processors.core.types import Window  # noqa: E402

PERIOD, TOP, RECORD_LINES = 60, 10, 200

DUCKDB_SQL = r"""
WITH lines AS (
  SELECT line FROM read_csv(?, columns={'line': 'VARCHAR'}, delim=E'\x01', quote='', escape='',
                            header=false, auto_detect=false)
), parsed AS (
  SELECT regexp_extract(line, '^(\S+) (\S+) (\S+) \[([^\]]*)\] "([A-Za-z]+) (/[^" ?]*)(?:\?[^" ]*)?(?: ([^" ]+))?" ([1-5][0-9][0-9]) ([0-9]+|-)',
                        ['client', 'ident', 'user', 'time', 'method', 'path', 'protocol', 'status', 'bytes']) AS p
  FROM lines
), ev AS (
  SELECT p.path AS path, CAST(p.status AS INTEGER) AS status,
         epoch(strptime(p.time, '%d/%b/%Y:%H:%M:%S %z'))::BIGINT AS ts
  FROM parsed WHERE p.status <> ''
), agg AS (
  SELECT (ts // 60) * 60 AS w, path, count(*) AS n FROM ev WHERE status > 499 GROUP BY ALL
)
SELECT w, path, n FROM (
  SELECT *, row_number() OVER (PARTITION BY w ORDER BY n DESC, path) AS rk FROM agg
) WHERE rk <= 10 ORDER BY w, rk
"""


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: Path, lines: int) -> float:
    t = time.perf_counter()
    cfg = GeneratorConfig(seed=42, lines=lines, duration=3600, incidents=tuple(IncidentSpec(k) for k in
                          ("burst500", "scan404", "slow_upstream", "bytes_hog")))  # fmt: skip
    gen = AccessLogGenerator(cfg)
    with open(path, "w", encoding="utf-8") as out:
        buf = []
        for line in gen.lines():
            buf.append(line)
            if len(buf) == 10_000:
                out.write("\n".join(buf) + "\n")
                buf.clear()
        if buf:
            out.write("\n".join(buf) + "\n")
    return time.perf_counter() - t


def run_sieve(path: Path, rule_file: str = "errors-by-path.json", explain: ExplainConfig | None = None
              ) -> tuple[float, dict, dict]:
    rule = load_rule_file(ROOT / "rules" / rule_file)
    t = time.perf_counter()
    acc = Accumulator([rule], period=PERIOD, shard="bench", explain=explain)
    add = acc.add_line
    records = 0
    with open(path, "rb") as fh:
        while True:
            chunk = [fh.readline() for _ in range(RECORD_LINES)]
            data = b"".join(chunk)
            if not data:
                break
            records += 1
            decoded = decode_record(data)
            if type(decoded) is not Decoded:
                raise SystemExit(f"record {records} rejected: {decoded}")
            for ev in decoded.events:
                add(ev.message)
    reports = acc.reports(TOP)
    for agg in acc.partials.values():  # count what is still pending, as a flush would
        if agg.explain is not None:
            agg.explain.settle()
    elapsed = time.perf_counter() - t
    answer = {r.window.start: [(c.keys[0], c.value) for c in r.contributors] for r in reports if r.contributors}
    return elapsed, answer, {"records": records, "events": acc.stats.events, "rejected": dict(acc.stats.rejected)}


def run_duckdb(path: Path, threads: int | None = None) -> tuple[float, dict, int]:
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    t = time.perf_counter()
    rows = con.execute(DUCKDB_SQL, [str(path)]).fetchall()
    elapsed = time.perf_counter() - t
    answer: dict = {}
    for w, p, n in rows:
        answer.setdefault(w, []).append((p, n))
    return elapsed, answer, threads


def state_at_one_million_ips() -> dict:
    import random

    rng = random.Random(1)
    ips: set[str] = set()
    while len(ips) < 1_000_000:  # random addresses compress far worse than sequential ones
        if rng.random() < 0.06:
            ips.add(f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}")
        else:
            ips.add(f"{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}")
    order = sorted(ips)
    rng.shuffle(order)
    agg = WindowAggregate("bytes-by-client", Window(0, PERIOD), ("client",), "Count", "bench", DEFAULT_CAPACITY)
    t = time.perf_counter()
    for ip in order:
        agg.add((ip,), 1)
    fed = time.perf_counter() - t
    t = time.perf_counter()
    blob = agg.to_bytes()
    enc = time.perf_counter() - t
    return {"distinct_keys_offered": 1_000_000, "capacity": DEFAULT_CAPACITY, "keys_held": len(agg.values),
            "approximate": agg.approximate, "state_bytes": len(blob), "max_state_bytes": DEFAULT_MAX_STATE_BYTES,
            "lambda_state_limit_bytes": 1_048_576, "feed_seconds": round(fed, 2), "serialise_seconds": round(enc, 3)}  # fmt: skip


def state_with_explanation_at_one_million_keys(distinct_text: bool = False) -> dict:
    """One shard-window's partial, explanation included, after 1M events of 1M distinct clients."""
    import random
    import zlib

    rng = random.Random(2)
    rule = compile_rule({"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/sieve/access*"],
                         "LogFormat": "CLF", "Fields": {"1": "client"}, "Contribution": {"Keys": ["client"]},
                         "AggregateOn": "Count"}, "requests-by-client")  # fmt: skip
    agents = [f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{100 + i}.0.0.0 Safari/537.36"
              for i in range(150)] + ["curl/8.5.0", "python-requests/2.31.0", "OrdersWorker/3.4.1", "-"]
    referers = [f"https://www.example.com/page/{i}" for i in range(60)] + ["-"]
    paths = ["/", "/login", "/search", "/api/v1/users/{}", "/api/v1/orders/{}/items", "/static/app.{}.js"]
    ips: set[str] = set()
    while len(ips) < 1_000_000:
        if rng.random() < 0.06:
            ips.add(f"2001:db8:{rng.getrandbits(16):x}:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}")
        else:
            ips.add(f"{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}")
    order = sorted(ips)
    rng.shuffle(order)
    cfg = ExplainConfig()
    acc = Accumulator([rule], period=PERIOD, shard="bench", capacity=DEFAULT_CAPACITY, explain=cfg)
    add = acc.add_line
    t = time.perf_counter()
    for i, ip in enumerate(order):
        if distinct_text:
            ua, ref = f"agent-{i}-{rng.getrandbits(64):x}", f"https://r{i}.example/{rng.getrandbits(64):x}"
        else:
            ua, ref = agents[rng.randrange(len(agents))], referers[rng.randrange(len(referers))]
        path = paths[rng.randrange(len(paths))].format(rng.randrange(10**6))
        add(f'{ip} - - [01/Jan/1970:00:00:{i % 60:02d} +0000] "GET {path} HTTP/1.1" {rng.choice((200, 200, 304, 404, 500))} '
            f'{rng.randrange(100000)} "{ref}" "{ua}"')
    fed = time.perf_counter() - t
    agg = acc.partials[("requests-by-client", Window(0, PERIOD))]
    t = time.perf_counter()
    blob = agg.to_bytes()
    enc = time.perf_counter() - t
    ex = agg.explain
    explain_bytes = len(zlib.compress(orjson.dumps(ex.to_doc()), 6))
    return {"events": len(order), "distinct_keys_offered": len(order), "distinct_user_agents_and_referers": distinct_text,
            "capacity": DEFAULT_CAPACITY, "keys_held": len(agg.values), "explain_keys_tracked": len(ex.keys),
            "explain_dimensions": list(ex.plan.dims), "approximate": agg.approximate,
            "explain_approximate": ex.approximate, "state_bytes": len(blob), "explain_bytes": explain_bytes,
            "explain_max_state_bytes": cfg.max_state_bytes, "max_state_bytes": DEFAULT_MAX_STATE_BYTES,
            "dynamodb_item_limit_bytes": 400_000, "lambda_state_limit_bytes": 1_048_576,
            "feed_seconds": round(fed, 2), "serialise_seconds": round(enc, 3)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each engine; the best is reported (default 3)")
    ap.add_argument("--keep", help="generate into (or reuse) this directory instead of a temporary one")
    args = ap.parse_args()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sieve-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / f"access-{args.lines}.log"
    gen_s = None
    if not log.exists():
        gen_s = generate(log, args.lines)
        print(f"generated {args.lines} lines ({log.stat().st_size / 1e6:.0f} MB) in {gen_s:.1f}s", file=sys.stderr)
    rss_before = rss_mb()
    # best of N runs each, interleaved: the machine is shared, so single runs are noisy
    sieve_runs, duck_runs, duck1_runs, tpl_runs, explain_runs = [], [], [], [], []
    for _ in range(args.repeat):
        sieve_s, sieve_answer, sieve_stats = run_sieve(log)
        sieve_runs.append(sieve_s)
        explain_s, explain_answer, _ = run_sieve(log, explain=ExplainConfig())
        explain_runs.append(explain_s)
        tpl_runs.append(run_sieve(log, "errors-by-path-template.json")[0])
        if len(sieve_runs) == 1:
            rss_sieve = rss_mb()  # before DuckDB ever ran in this process
        duck_s, duck_answer, threads = run_duckdb(log)
        duck_runs.append(duck_s)
        duck1_s, duck1_answer, _ = run_duckdb(log, threads=1)
        duck1_runs.append(duck1_s)
        print(f"sieve {args.lines / sieve_s:,.0f} lines/s ({sieve_s:.2f}s) | duckdb {threads} threads "
              f"{args.lines / duck_s:,.0f} ({duck_s:.2f}s) | duckdb 1 thread {args.lines / duck1_s:,.0f} ({duck1_s:.2f}s)",
              file=sys.stderr)  # fmt: skip
    sieve_s, duck_s, duck1_s, tpl_s = min(sieve_runs), min(duck_runs), min(duck1_runs), min(tpl_runs)
    explain_s = min(explain_runs)
    print(f"sieve errors-by-path-template {args.lines / tpl_s:,.0f} lines/s ({tpl_s:.2f}s)", file=sys.stderr)
    print(f"sieve errors-by-path with explanation {args.lines / explain_s:,.0f} lines/s ({explain_s:.2f}s, "
          f"+{(explain_s / sieve_s - 1) * 100:.0f}% time)", file=sys.stderr)
    same = sieve_answer == duck_answer == duck1_answer == explain_answer
    state = state_at_one_million_ips()
    print(f"state at 1M distinct IPs: {state['state_bytes']:,} bytes", file=sys.stderr)
    state_ex = state_with_explanation_at_one_million_keys()
    state_ex_worst = state_with_explanation_at_one_million_keys(distinct_text=True)
    print(f"with explanation: {state_ex['state_bytes']:,} bytes (explanation {state_ex['explain_bytes']:,}); every "
          f"user agent and referer distinct: {state_ex_worst['state_bytes']:,} ({state_ex_worst['explain_bytes']:,})",
          file=sys.stderr)
    result = {
        "benchmark": "top-N: decode + parse + rule + per-window top-10 (errors-by-path)",
        "lines": args.lines,
        "file_bytes": log.stat().st_size,
        "generate_seconds": round(gen_s, 2) if gen_s is not None else None,
        "sieve": {"seconds": round(sieve_s, 3), "lines_per_second": round(args.lines / sieve_s), "threads": 1,
                  "records": sieve_stats["records"], "lines_per_record": RECORD_LINES, "rejected": sieve_stats["rejected"],
                  "peak_rss_mb": round(rss_sieve, 1), "rss_before_mb": round(rss_before, 1)},  # fmt: skip
        "sieve_explain": {"seconds": round(explain_s, 3), "lines_per_second": round(args.lines / explain_s), "threads": 1,
                          "time_over_sieve": round(explain_s / sieve_s, 3), "config": "ExplainConfig() defaults",
                          "runs_seconds": [round(x, 3) for x in explain_runs]},
        "sieve_errors_by_path_template": {"seconds": round(tpl_s, 3), "lines_per_second": round(args.lines / tpl_s),
                                          "threads": 1, "runs_seconds": [round(x, 3) for x in tpl_runs]},
        "duckdb": {"seconds": round(duck_s, 3), "lines_per_second": round(args.lines / duck_s), "threads": threads},
        "duckdb_1_thread": {"seconds": round(duck1_s, 3), "lines_per_second": round(args.lines / duck1_s), "threads": 1},
        "duckdb_over_sieve_speed": round(sieve_s / duck_s, 2),
        "duckdb_1_thread_over_sieve_speed": round(sieve_s / duck1_s, 2),
        "runs": {"repeat": args.repeat, "sieve_seconds": [round(x, 3) for x in sieve_runs],
                 "duckdb_seconds": [round(x, 3) for x in duck_runs], "duckdb_1_thread_seconds": [round(x, 3) for x in duck1_runs],
                 "reported": "best of the runs"},  # fmt: skip
        "same_answer": same,
        "windows": len(sieve_answer),
        "state_one_shard_window": state,
        "state_one_shard_window_with_explanation": state_ex,
        "state_one_shard_window_with_explanation_distinct_text": state_ex_worst,
        "peak_rss_mb_process": round(rss_mb(), 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
    out = ROOT / "bench" / "results" / "topn.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if not same:
        print("WARNING: Sieve and DuckDB disagree on the top-N", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
