"""Fuzz every decoder and parser with a big budget: counts, crashes, rejections by reason, peak memory and
time per target.

    .venv/bin/python bench/bench_fuzz.py --jobs 2              # the benchmark run: every target >= 100,000 inputs
    .venv/bin/python bench/bench_fuzz.py --targets decode,clf --engine hypothesis --examples 20000
    .venv/bin/python bench/bench_fuzz.py --engine atheris --atheris-runs 100000   # coverage-guided only

The default (`--engine both`) runs each target with both engines: its *primary* engine (`PRIMARY`:
atheris where it is installed, except html, whose structured Hypothesis inputs are as fast) to the full
budget (100,000 inputs; `--max-seconds` caps it), the other engine as a complement for
`--secondary-seconds` (Hypothesis: structured near-valid inputs; atheris: coverage-guided bytes). Without
atheris every target runs Hypothesis to the full budget. About 20 minutes with `--jobs 2` on 2 idle cores.

The targets, their input strategies and the properties checked are tests/fuzz/targets.py (the same
the tests run with a small fixed-seed budget). Each target runs in its own process, so its peak RSS
is its own. Inputs come from the target's Hypothesis strategy, drawn from a seeded random source
(`ConjectureData` with `random.Random(seed)`: deterministic for a seed, no shrinking, no database),
so 100,000 inputs cost the checks, not the engine. A check that raises is a crash: it is counted by
signature (exception type and the innermost frame in processors/ or tests/) with the first input that
hit it (truncated), and the run goes on. `--max-seconds` caps a target's time: the count reached is
what is reported.

With `--engine atheris`, each target's `from_bytes` turns libFuzzer's inputs (seeded with real samples)
into the same check; a check that raises is counted by signature with its first input, as with
Hypothesis, and the run goes on (a crash of the interpreter itself still stops libFuzzer: reported). Coverage is collected from every module
the targets import, except the pure-Python YAML parser (`ATHERIS_UNINSTRUMENTED`): instrumenting PyYAML made
the config target 4-5x slower (55 inputs/s) while its coverage is PyYAML's, not ours; the check is the same.

Every check notes its outcomes (tests/fuzz/targets.py `OUTCOMES`: each rejection as `rejected:<reason>`,
else what was accepted); the result holds them per target and engine.

Writes bench/results/fuzz.json (merged by target and engine with what is there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench/results/fuzz.json"
SEED = 20261203
#: the engine that runs a target to the full budget in the default run (the other one is the complement)
PRIMARY = {"html": "hypothesis"}
#: not instrumented by atheris (see the module docstring)
ATHERIS_UNINSTRUMENTED = ["yaml"]


def _have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/processors/" in f.filename or "/tests/fuzz/" in f.filename]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    loc = f"{Path(where.filename).relative_to(ROOT) if str(ROOT) in where.filename else where.filename}:{where.lineno}" if where else "?"
    return f"{type(exc).__name__} at {loc}"


def run_hypothesis(name: str, examples: int, max_seconds: float, seed: int) -> dict:
    import logging

    from hypothesis.control import BuildContext
    from hypothesis.errors import StopTest
    from hypothesis.internal.conjecture.data import ConjectureData

    from tests.fuzz.targets import OUTCOMES, TARGETS

    logging.disable(logging.CRITICAL)  # refused inputs log warnings by design; thousands of them
    target = TARGETS[name]
    strategy = target.strategy()
    rnd = random.Random(f"{seed}:{name}")
    crashes: dict[str, dict] = {}
    ran = overruns = 0
    started = time.monotonic()
    gen_seconds = 0.0
    while ran < examples and time.monotonic() - started < max_seconds:
        t0 = time.perf_counter()
        data = ConjectureData(random=rnd, max_choices=20_000)
        try:
            with BuildContext(data, is_final=False, wrapped_test=target.check):
                value = data.draw(strategy)
        except StopTest:  # the random source ran past its budget for this draw: draw again
            overruns += 1
            continue
        finally:
            gen_seconds += time.perf_counter() - t0
        ran += 1
        try:
            target.check(value)
        except Exception as exc:  # noqa: BLE001 - a crash or a broken property: count it, keep going
            sig = _signature(exc)
            c = crashes.setdefault(sig, {"count": 0, "message": str(exc)[:300], "input": repr(value)[:600]})
            c["count"] += 1
    elapsed = time.monotonic() - started
    return {"target": name, "engine": "hypothesis", "seed": seed, "inputs": ran, "requested": examples,
            "complete": ran >= examples, "draw_overruns": overruns, "crashes": sum(c["count"] for c in crashes.values()),
            "distinct_crashes": len(crashes), "crash_signatures": crashes, "seconds": round(elapsed, 1),
            "generate_seconds": round(gen_seconds, 1), "inputs_per_second": round(ran / elapsed, 1) if elapsed else None,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "outcomes": dict(sorted(OUTCOMES.items()))}


def run_atheris(name: str, runs: int, max_seconds: float, seed: int) -> dict:
    import logging
    import tempfile

    import atheris  # noqa: F401 - import check before instrumenting

    logging.disable(logging.CRITICAL)
    for mod in ATHERIS_UNINSTRUMENTED:
        __import__(mod)  # imported before the hook: not instrumented
    with atheris.instrument_imports(exclude=ATHERIS_UNINSTRUMENTED):
        from tests.fuzz import targets  # noqa: F401 - instrumented: processors.* is imported through it
    from tests.fuzz.targets import OUTCOMES, TARGETS

    target = TARGETS[name]
    corpus_dir = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    for i, s in enumerate(target.seeds()):
        (corpus_dir / f"seed{i}").write_bytes(s)
    count = {"n": 0}
    started = time.monotonic()

    crashes: dict[str, dict] = {}

    def report() -> None:
        print("OUTCOMES " + json.dumps({"n": count["n"], "outcomes": OUTCOMES, "crashes": crashes}), flush=True)

    def one(data: bytes) -> None:
        count["n"] += 1
        try:
            target.check(target.from_bytes(data))
        except Exception as exc:  # noqa: BLE001 - as with Hypothesis: count it by signature, keep going
            sig = _signature(exc)
            first = sig not in crashes
            c = crashes.setdefault(sig, {"count": 0, "message": str(exc)[:300], "input": repr(data)[:600]})
            c["count"] += 1
            if first:
                report()
        if count["n"] % 2000 == 0:  # libFuzzer ends the process itself: report the outcomes as we go
            report()

    result = {"target": name, "engine": "atheris", "seed": seed, "requested": runs}
    atheris.Setup([sys.argv[0], f"-runs={runs}", f"-seed={seed}", f"-max_total_time={int(max_seconds)}", "-max_len=65536",
                   "-rss_limit_mb=2048",
                   f"-artifact_prefix={corpus_dir}/", str(corpus_dir)], one)
    try:
        atheris.Fuzz()
    except SystemExit:
        pass
    finally:
        elapsed = time.monotonic() - started
        result.update({"inputs": count["n"], "complete": count["n"] >= runs, "seconds": round(elapsed, 1),
                       "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                       "outcomes": dict(sorted(OUTCOMES.items()))})
        print("RESULT " + json.dumps(result), flush=True)
    return result


def _atheris_result(name: str, text: str, returncode: int, args, requested: int) -> dict:
    """libFuzzer exits the process itself: read its own report (runs done, rss, the crash if any)."""
    import re

    runs = [int(m) for m in re.findall(r"^#(\d+)\s", text, re.M)] + [int(m) for m in re.findall(r"Done (\d+) runs", text)]
    rss = [int(m) for m in re.findall(r"rss: (\d+)Mb", text)]
    secs = re.findall(r"Done \d+ runs in (\d+) second", text)
    crashed = returncode not in (0, None) or "Uncaught Python exception" in text or "==ERROR" in text
    r = {"target": name, "engine": "atheris", "seed": args.seed, "requested": requested,
         "inputs": max(runs) if runs else 0, "peak_rss_mb": max(rss) if rss else None,
         "seconds": int(secs[-1]) if secs else None, "crashes": int(crashed), "returncode": returncode}
    r["complete"] = r["inputs"] >= requested
    seen = [json.loads(ln[9:]) for ln in text.splitlines() if ln.startswith("OUTCOMES ")]
    if seen:  # as of the last report (every 2,000 inputs)
        r["outcomes"] = dict(sorted(seen[-1]["outcomes"].items()))
        r["outcomes_as_of_input"] = seen[-1]["n"]
        sigs = seen[-1].get("crashes") or {}
        r["crash_signatures"] = sigs
        r["distinct_crashes"] = len(sigs)
        r["crashes"] += sum(c["count"] for c in sigs.values())
    if crashed:
        i = text.find("Uncaught Python exception")
        r["crash_output"] = text[i:i + 2500] if i >= 0 else text[-2500:]
    return r


def gzip_bomb_peak() -> dict:
    """tracemalloc peak of decoding a 1 GiB gzip bomb (about 1 MB compressed): bounded by the decoder's limit."""
    from processors.core.decode import MAX_DECODED_BYTES, decode_record
    from tests.fuzz.mutate import gzip_bomb

    data = gzip_bomb(1 << 30, b"\0")
    tracemalloc.start()
    t0 = time.perf_counter()
    res = decode_record(data)
    secs = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"decompressed_bytes": 1 << 30, "compressed_bytes": len(data), "result": getattr(res, "reason", "decoded"),
            "limit_bytes": MAX_DECODED_BYTES, "tracemalloc_peak_mb": round(peak / 2**20, 1), "seconds": round(secs, 3)}


def child(args) -> None:
    if args.engine == "atheris":
        run_atheris(args.child, args.atheris_runs, args.max_seconds, args.seed)
        return
    print("RESULT " + json.dumps(run_hypothesis(args.child, args.examples, args.max_seconds, args.seed)), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", default="", help="comma-separated (default: all)")
    p.add_argument("--examples", type=int, default=100_000)
    p.add_argument("--max-seconds", type=float, default=900, help="per target and engine (the full-budget runs)")
    p.add_argument("--engine", choices=("hypothesis", "atheris", "both"), default="both")
    p.add_argument("--secondary-seconds", type=float, default=45,
                   help="with --engine both: the time of each target's other engine (the complement)")
    p.add_argument("--atheris-runs", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--jobs", type=int, default=1, help="targets run side by side")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return

    from tests.fuzz.targets import TARGETS

    names = [n for n in args.targets.split(",") if n] or list(TARGETS)
    # (name, engine, max seconds, role): the full-budget runs first, longest expected first, then the complements
    jobs: list[tuple[str, str, float, str]] = []
    if args.engine == "both" and not _have_atheris():
        print("atheris is not installed: every target runs Hypothesis only", flush=True)
        args.engine = "hypothesis"
    if args.engine == "both":
        primary = {n: PRIMARY.get(n, "atheris") for n in names}
        jobs += [(n, primary[n], args.max_seconds, "primary") for n in names]
        jobs += [(n, "hypothesis" if primary[n] == "atheris" else "atheris", args.secondary_seconds, "secondary") for n in names]
    else:
        jobs += [(n, args.engine, args.max_seconds, "primary") for n in names]
    slow_first = {"config": 0, "fastpath": 1, "html": 2, "sitemap": 3, "ingest": 4, "web": 5, "slack": 6}
    jobs.sort(key=lambda j: (j[3] != "primary", slow_first.get(j[0], 99)))
    results: list[dict] = []
    running: list[tuple] = []
    started: dict[tuple[str, str], float] = {}

    def start(name: str, engine: str, max_seconds: float, role: str) -> None:
        cmd = [sys.executable, __file__, "--child", name, "--engine", engine, "--examples", str(args.examples),
               "--atheris-runs", str(args.atheris_runs), "--max-seconds", str(max_seconds), "--seed", str(args.seed)]
        started[(name, engine)] = time.monotonic()
        # output to files, not pipes: libFuzzer writes a lot, and a full pipe would block the child
        out, err = (tempfile.TemporaryFile("w+") for _ in range(2))
        running.append((name, engine, role, subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT), out, err))

    def reap(block: bool) -> None:
        for item in list(running):
            name, engine, role, proc, out_f, err_f = item
            if not block and proc.poll() is None:
                continue
            proc.wait()
            out_f.seek(0)
            err_f.seek(0)
            out, err = out_f.read(), err_f.read()
            out_f.close()
            err_f.close()
            running.remove(item)
            got = [json.loads(ln[7:]) for ln in out.splitlines() if ln.startswith("RESULT ")]
            if engine == "atheris":
                got = [_atheris_result(name, out + err, proc.returncode, args, args.atheris_runs)]
            if got:
                r = got[-1]
            else:
                r = {"target": name, "engine": engine, "error": f"exit {proc.returncode}", "stderr": err[-1500:]}
            r["wall_seconds"] = round(time.monotonic() - started[(name, engine)], 1)
            r["role"] = role
            results.append(r)
            print(f"{name:9s} {engine:10s} inputs={r.get('inputs', '-'):>7} crashes={r.get('crashes', '-')} "
                  f"peak_rss_mb={r.get('peak_rss_mb', '-')} seconds={r.get('seconds', '-')}", flush=True)
            if block:
                return

    run_started, load_at_start = time.monotonic(), os.getloadavg()[0]
    for name, engine, max_seconds, role in jobs:
        while len(running) >= args.jobs:
            reap(False)
            if len(running) >= args.jobs:
                time.sleep(0.5)
        start(name, engine, max_seconds, role)
    while running:
        reap(True)
    run_seconds = round(time.monotonic() - run_started, 1)

    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    by_key = {(r["target"], r["engine"]): r for r in doc.get("targets", [])}
    by_key.update({(r["target"], r["engine"]): r for r in results})
    rows = sorted(by_key.values(), key=lambda r: (r["engine"], r["target"]))
    summary = {}
    for r in rows:
        t = summary.setdefault(r["target"], {"inputs": {}, "crashes": 0, "peak_rss_mb": 0, "rejected": 0})
        t["inputs"][r["engine"]] = r.get("inputs", 0)
        t["crashes"] += r.get("crashes", 0) or 0
        t["peak_rss_mb"] = max(t["peak_rss_mb"], r.get("peak_rss_mb") or 0)
        t["rejected"] += sum(n for k, n in (r.get("outcomes") or {}).items() if k.startswith("rejected"))
    for t in summary.values():
        t["inputs_total"] = sum(t["inputs"].values())
        t["reached_100k_with"] = sorted(e for e, n in t["inputs"].items() if n >= 100_000)
    doc.update({
        "what": "fuzzing every decoder and parser (tests/fuzz/targets.py): inputs run, crashes, rejections by reason "
                "(outcomes), peak RSS, time per target and engine",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_at_start": load_at_start,
                    "load_at_end": os.getloadavg()[0]},
        "run": {"engine": args.engine, "jobs": args.jobs, "examples": args.examples, "atheris_runs": args.atheris_runs,
                "max_seconds": args.max_seconds, "secondary_seconds": args.secondary_seconds, "wall_seconds": run_seconds,
                "targets_run": names},
        "summary": dict(sorted(summary.items())),
        "targets": rows,
        "gzip_bomb": gzip_bomb_peak(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
