"""Sieve's top-N against DuckDB, thread for thread, whole processes; partial state size.

    .venv/bin/python bench/bench_topn.py [--lines 1000000] [--repeat 3] [--keep DIR] [--skip-state]

1. Generates LINES combined-format lines and LINES JSON lines (seeded, the same events, with incidents)
   to a temporary directory (or --keep DIR, reused when present).
2. For each format and each rule, errors-by-path (Count of status > 499 by path without its query
   string) and bytes-by-client (Sum of bytes by client): `sieve topn --json --rule RULE FILE` as a user
   runs it (one whole process, one thread), and DuckDB computing the same top-10 per 60 s window with
   one thread (`SET threads = 1`; a whole `python` process that imports duckdb and runs the SQL: CLF
   with regexp_extract + strptime, JSON with read_json), alternating Sieve / DuckDB, --repeat times.
   Reported: the median wall time and lines/s of each, the ratio of the medians (Sieve lines/s over
   DuckDB's: >= 1.0 means Sieve is at least as fast), the per-pair ratios, CPU seconds (user+sys of
   the child), and whether both gave the same top-10 in every window (`same_answer`). With
   --baseline DIR, the `sieve topn` of an earlier commit runs in the same alternation (before/after).
   Also `sieve topn --explain` on the combined errors-by-path (its cost over the plain run).
3. In-process: one shard-window's serialised partial after 1,000,000 distinct client IPs, and with
   the explanation counters (1,000,000 events of 1,000,000 distinct clients, realistic and all-distinct
   user agents and referers) (skipped with --skip-state).

The machine is shared (2 cores, other jobs running): single runs are noisy; the ratios of runs taken
in alternation are what count. Writes bench/results/topn.json. Timing only: nothing here is a
pass/fail test.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.core.aggregate import DEFAULT_CAPACITY, DEFAULT_MAX_STATE_BYTES, Accumulator, WindowAggregate  # noqa: E402
from processors.core.explain import ExplainConfig  # noqa: E402
from processors.core.rules import compile_rule  # noqa: E402
from processors.core.generate import AccessLogGenerator, GeneratorConfig, IncidentSpec  # noqa: E402
from processors.core.types import Window  # noqa: E402

PERIOD, TOP = 60, 10

_CLF_SOURCE = (r"read_csv(?, columns={'line': 'VARCHAR'}, delim=E'\x01', quote='', escape='', header=false, "
               r"auto_detect=false)")
_CLF_RE = (r'^(\S+) (\S+) (\S+) \[([^\]]*)\] "([A-Za-z]+) (/[^" ?]*)(?:\?[^" ]*)?(?: ([^" ]+))?" ([1-5][0-9][0-9]) '
           r'([0-9]+|-)')


def duckdb_sql(fmt: str, rule: str) -> str:
    """The top-10 per 60 s window of `rule` over one file (the only parameter), as Sieve computes it:
    ties by key; CLF lines the fast pattern does not read are skipped (there are none in the file)."""
    if fmt == "combined":
        events = (f"SELECT p.client AS client, p.path AS path, CAST(p.status AS INTEGER) AS status, "
                  f"TRY_CAST(p.bytes AS BIGINT) AS bytes, epoch(strptime(p.time, '%d/%b/%Y:%H:%M:%S %z'))::BIGINT AS ts "
                  f"FROM (SELECT regexp_extract(line, '{_CLF_RE}', ['client', 'ident', 'user', 'time', 'method', 'path', "
                  f"'protocol', 'status', 'bytes']) AS p FROM {_CLF_SOURCE}) WHERE p.status <> ''")  # fmt: skip
    else:
        events = ("SELECT client, split_part(path, '?', 1) AS path, status, bytes, epoch_ms(time::TIMESTAMPTZ) // 1000 AS ts "
                  "FROM read_json(?, format='newline_delimited', columns={'time': 'VARCHAR', 'client': 'VARCHAR', "
                  "'path': 'VARCHAR', 'status': 'INTEGER', 'bytes': 'BIGINT'})")  # fmt: skip
    if rule == "errors-by-path":
        agg = "SELECT (ts // 60) * 60 AS w, path AS k, count(*) AS n FROM ev WHERE status > 499 AND path IS NOT NULL GROUP BY ALL"
    else:
        agg = "SELECT (ts // 60) * 60 AS w, client AS k, sum(bytes) AS n FROM ev WHERE bytes IS NOT NULL AND client IS NOT NULL GROUP BY ALL"
    return (f"WITH ev AS ({events}), agg AS ({agg}) SELECT w, k, n FROM (SELECT *, row_number() OVER "
            f"(PARTITION BY w ORDER BY n DESC, k) AS rk FROM agg) WHERE rk <= 10 ORDER BY w, rk")


def duckdb_worker(fmt: str, rule: str, path: str) -> int:
    """One whole DuckDB process (what the benchmark times): one thread, prints the answer as JSON."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 1")
    rows = con.execute(duckdb_sql(fmt, rule), [path]).fetchall()
    answer: dict = {}
    for w, k, n in rows:
        answer.setdefault(str(int(w)), []).append([k, int(n)])
    sys.stdout.buffer.write(orjson.dumps(answer))
    return 0


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: Path, lines: int, fmt: str = "combined") -> float:
    t = time.perf_counter()
    cfg = GeneratorConfig(seed=42, lines=lines, duration=3600, format=fmt, incidents=tuple(IncidentSpec(k) for k in
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


def timed(cmd: list[str]) -> tuple[float, float, float, bytes]:
    """Run one whole process: (wall seconds, CPU seconds of the child, its peak RSS MB, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024, out


def sieve_answer(out: bytes) -> tuple[dict, dict]:
    doc = orjson.loads(out)
    answer = {str(r["window"]["start"]): [[c["keys"][0], c["value"]] for c in r["contributors"]]
              for r in doc["reports"] if r["contributors"]}  # fmt: skip
    return answer, doc["stats"]


def compare(fmt: str, rule: str, log: Path, lines: int, repeat: int, baseline: Path | None = None,
            baseline_name: str = "before") -> dict:
    rule_file = ROOT / "rules" / ("json" if fmt == "json" else "") / f"{rule}.json"
    sieve = [str(Path(sys.executable).parent / "sieve"), "topn", "--json", "--rule", str(rule_file), str(log)]
    duck = [sys.executable, str(Path(__file__).resolve()), "--duckdb", fmt, rule, str(log)]
    # the code before the fast path (a tree holding processors/ of that commit), run the same way
    before = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(baseline)!r}); from processors.cli import main; "
              f"sys.exit(main())", "topn", "--json", "--rule", str(rule_file), str(log)] if baseline else None  # fmt: skip
    cmds = {"sieve": sieve, "duckdb": duck, "before": before}
    names = ("sieve", "duckdb") + (("before",) if baseline else ())
    runs: dict[str, list] = {n: [] for n in names}
    answers, stats = [], None
    for i in range(repeat):  # alternating; who goes first alternates too
        for name in (names if i % 2 == 0 else names[::-1]):
            wall, cpu, rss, out = timed(cmds[name])
            runs[name].append((wall, cpu, rss))
            if name != "duckdb":
                got, st = sieve_answer(out)
                stats = st if name == "sieve" else stats
            else:
                got = orjson.loads(out)
            answers.append(got)
        print(f"  {fmt} {rule} run {i + 1}: " + ", ".join(f"{n} {runs[n][-1][0]:.2f}s" for n in names), file=sys.stderr)
    first = answers[0]
    same = all(a == first for a in answers)
    med = {k: statistics.median(w for w, _, _ in v) for k, v in runs.items()}
    med_cpu = {k: statistics.median(c for _, c, _ in v) for k, v in runs.items()}
    return {
        "lines": lines, "file_bytes": log.stat().st_size, "rule_file": str(rule_file.relative_to(ROOT)),
        "sieve": {"median_seconds": round(med["sieve"], 3), "lines_per_second": round(lines / med["sieve"]), "threads": 1,
                  "median_cpu_seconds": round(med_cpu["sieve"], 3),
                  "runs_seconds": [round(w, 3) for w, _, _ in runs["sieve"]], "command": "sieve topn --json --rule RULE FILE",
                  "events": stats["events"], "parsed": stats["parsed"], "rejected": stats["rejected"]},
        "duckdb_1_thread": {"median_seconds": round(med["duckdb"], 3), "lines_per_second": round(lines / med["duckdb"]),
                            "threads": 1, "median_cpu_seconds": round(med_cpu["duckdb"], 3),
                            "runs_seconds": [round(w, 3) for w, _, _ in runs["duckdb"]],
                            "command": "python: import duckdb; SET threads = 1; the SQL of duckdb_sql()"},
        "sieve_over_duckdb_speed": round(med["duckdb"] / med["sieve"], 2),
        "sieve_over_duckdb_speed_per_pair": [round(d[0] / s[0], 2) for s, d in zip(runs["sieve"], runs["duckdb"])],
        "sieve_over_duckdb_cpu": round(med_cpu["duckdb"] / med_cpu["sieve"], 2),
        "same_answer": same,
        "windows": len(first),
    } | ({"baseline": {"name": baseline_name,
        "median_seconds": round(med["before"], 3), "lines_per_second": round(lines / med["before"]),
        "median_cpu_seconds": round(med_cpu["before"], 3), "runs_seconds": [round(w, 3) for w, _, _ in runs["before"]],
        "sieve_speedup": round(med["before"] / med["sieve"], 2), "before_over_duckdb_speed": round(med["duckdb"] / med["before"], 2),
        "command": "the same sieve topn from a copy of an earlier commit's code (--baseline DIR --baseline-name NAME)"}}
        if baseline else {})  # fmt: skip


def explain_cost(log: Path, lines: int, repeat: int) -> dict:
    rule_file = str(ROOT / "rules" / "errors-by-path.json")
    base = [str(Path(sys.executable).parent / "sieve"), "topn", "--json", "--rule", rule_file, str(log)]
    plain, explained = [], []
    for _ in range(repeat):
        plain.append(timed(base)[0])
        explained.append(timed(base[:2] + ["--explain"] + base[2:])[0])
    p, e = statistics.median(plain), statistics.median(explained)
    return {"plain_median_seconds": round(p, 3), "explain_median_seconds": round(e, 3), "explain_time_over_plain": round(e / p, 2),
            "explain_lines_per_second": round(lines / e), "runs_plain": [round(x, 3) for x in plain],
            "runs_explain": [round(x, 3) for x in explained],
            "note": "sieve topn --explain counts the contrast dimensions line by line (processors/core/explain.py); "
                    "without it the chunked fast path runs and pays nothing for them"}  # fmt: skip


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
    if len(sys.argv) == 5 and sys.argv[1] == "--duckdb":
        return duckdb_worker(*sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs of each engine; medians are reported (default 3)")
    ap.add_argument("--keep", help="generate into (or reuse) this directory instead of a temporary one")
    ap.add_argument("--skip-state", action="store_true", help="skip the state-size measurements (step 3)")
    ap.add_argument("--baseline", help="a directory holding processors/ of an earlier commit (`git archive COMMIT "
                    "processors | tar -x -C DIR`): its sieve topn runs in the same alternation, for before/after")
    ap.add_argument("--baseline-name", default="before", help="what the baseline is, e.g. its commit (recorded with it)")
    args = ap.parse_args()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="sieve-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    logs, gen_s = {}, {}
    for fmt, ext in (("combined", "log"), ("json", "jsonl")):
        logs[fmt] = tmp / f"access-{args.lines}.{ext}"
        if not logs[fmt].exists():
            gen_s[fmt] = round(generate(logs[fmt], args.lines, fmt), 2)
            print(f"generated {args.lines} {fmt} lines ({logs[fmt].stat().st_size / 1e6:.0f} MB) in {gen_s[fmt]}s", file=sys.stderr)
    load_before = os.getloadavg()[0]
    cases = {}
    for fmt in ("combined", "json"):
        for rule in ("errors-by-path", "bytes-by-client"):
            cases[f"{fmt}/{rule}"] = compare(fmt, rule, logs[fmt], args.lines, args.repeat,
                                             Path(args.baseline).resolve() if args.baseline else None,
                                             args.baseline_name)
            c = cases[f"{fmt}/{rule}"]
            print(f"{fmt} {rule}: sieve {c['sieve']['lines_per_second']:,} lines/s, duckdb (1 thread) "
                  f"{c['duckdb_1_thread']['lines_per_second']:,} lines/s, ratio {c['sieve_over_duckdb_speed']} "
                  f"(pairs {c['sieve_over_duckdb_speed_per_pair']}), same answer: {c['same_answer']}", file=sys.stderr)
    explain = explain_cost(logs["combined"], args.lines, args.repeat)
    print(f"--explain: {explain['explain_time_over_plain']}x the time of the plain run", file=sys.stderr)
    load_after = os.getloadavg()[0]
    result = {
        "benchmark": "sieve topn vs DuckDB (1 thread), whole processes, alternating, medians; 1M lines per format",
        "lines": args.lines,
        "generate_seconds": gen_s or None,
        "cases": cases,
        "same_answer": all(c["same_answer"] for c in cases.values()),
        "min_sieve_over_duckdb_speed": min(c["sieve_over_duckdb_speed"] for c in cases.values()),
        "explain": explain,
        "conditions": "shared 2-core machine with other jobs running (load average below); each case alternates "
                      "Sieve and DuckDB runs, so compare the ratios, not the absolute figures",
    }  # fmt: skip
    if not args.skip_state:
        result["state_one_shard_window"] = state_at_one_million_ips()
        print(f"state at 1M distinct IPs: {result['state_one_shard_window']['state_bytes']:,} bytes", file=sys.stderr)
        result["state_one_shard_window_with_explanation"] = state_with_explanation_at_one_million_keys()
        result["state_one_shard_window_with_explanation_distinct_text"] = state_with_explanation_at_one_million_keys(True)
        result["peak_rss_mb_process"] = round(rss_mb(), 1)
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(),
                         "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(load_after, 2)}
    out = ROOT / "bench" / "results" / "topn.json"
    if args.skip_state and out.exists():  # keep the state figures of the last full run
        old = orjson.loads(out.read_bytes())
        for k in ("state_one_shard_window", "state_one_shard_window_with_explanation",
                  "state_one_shard_window_with_explanation_distinct_text"):
            if k in old:
                result[k] = old[k]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps({k: v for k, v in result.items() if not k.startswith("state")}, option=orjson.OPT_INDENT_2).decode())
    if not result["same_answer"]:
        print("WARNING: Sieve and DuckDB disagree on a top-N", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
