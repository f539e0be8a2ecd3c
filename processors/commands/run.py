"""`sieve run`: play Lambda locally. Polls every stream a function is bound to (the event source
mapping, with Lambda's semantics) and invokes scheduled functions on their schedule.

    sieve run                      until Ctrl-C
    sieve run --until-idle 60      until every shard is caught up (then, with --flush, one
                                   end-of-stream run of the scheduled functions)
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time

from processors.adapters import aws
from processors.config import load
from processors.runtime import services


def register(sub) -> None:
    p = sub.add_parser("run", help="run the functions locally: event source mappings + schedules")
    p.add_argument("--config")
    p.add_argument("--function", action="append", help="only these functions (repeatable)")
    p.add_argument("--until-idle", type=float, metavar="SECONDS",
                   help="stop once every shard is caught up (fail if not within SECONDS)")
    p.add_argument("--flush", action="store_true",
                   help="with --until-idle: finish with an end-of-stream run of the scheduled functions")
    p.add_argument("--checkpoints", help="checkpoint file (default <state dir>/checkpoints.json)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=run)


def _context_for(name: str, timeout: int, region: str, account: str):
    from processors.runtime.lambda_context import LambdaContext, function_arn

    return LambdaContext(function_name=name, invoked_function_arn=function_arn(region, account, name),
                         timeout_seconds=timeout)


def invoke_scheduled(loaded, *, flush: bool = False, only: set[str] | None = None) -> dict[str, object]:
    from processors.runtime.mappings import scheduled_event

    cfg = loaded.config
    results = {}
    for fname, fn in cfg.functions.items():
        if fn.schedule_seconds is None or (only and fname not in only):
            continue
        mod, _, attr = fn.handler.rpartition(".")
        handler = getattr(importlib.import_module(mod), attr)
        region, account = aws.region(cfg.region), aws.account_id(cfg.region)
        event = scheduled_event(fname, region, account, flush=flush)
        results[fname] = handler(event, _context_for(fname, fn.timeout_seconds, region, account))
    return results


def run(args) -> int:
    from processors.commands.up import ensure_aws_endpoint
    from processors.runtime.checkpoints import JsonCheckpointStore
    from processors.runtime.mappings import build_mappings
    from processors.runtime.runner import Runner

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    loaded = load(args.config)
    if args.config:
        os.environ["SIEVE_CONFIG"] = str(loaded.path)
    ensure_aws_endpoint()
    only = set(args.function) if args.function else None
    mappings = build_mappings(loaded, only)
    store = JsonCheckpointStore(args.checkpoints or str(services.state_dir() / "checkpoints.json"))
    runner = Runner(mappings, store, poll_interval_seconds=0.2)
    if args.until_idle is not None:
        report = runner.run_until_idle(args.until_idle) if mappings else None
        if report is not None and getattr(report, "timed_out", False):
            print(f"not idle after {args.until_idle}s")
            return 1
        results = invoke_scheduled(loaded, flush=args.flush, only=only)
        for name, res in results.items():
            done = (res or {}).get("finalised", []) if isinstance(res, dict) else []
            print(f"{name}: {len(done)} window(s) finalised")
        return 0
    stop = threading.Event()
    sched = {n: fn.schedule_seconds for n, fn in loaded.config.functions.items()
             if fn.schedule_seconds and (not only or n in only)}
    failed_runs: dict[str, int] = {}
    t = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    t.start()
    print(f"running {len(mappings)} mapping(s) and {len(sched)} schedule(s); Ctrl-C to stop")
    next_at = {n: time.monotonic() + s for n, s in sched.items()}
    # Ctrl-C / SIGTERM: let the invocation in progress finish (as Lambda would), then stop.
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while t.is_alive() and not stop.is_set():
            now = time.monotonic()
            due = {n for n, at in next_at.items() if at <= now}
            if due:
                for n in sorted(due):
                    # as on Lambda, a failed scheduled invocation is that invocation's failure: it is reported,
                    # the next schedule runs and the event source mappings go on
                    try:
                        invoke_scheduled(loaded, only={n})
                    except Exception as exc:  # noqa: BLE001 - reported, counted; never ends the run
                        failed_runs[n] = failed_runs.get(n, 0) + 1
                        logging.getLogger("sieve.run").error(
                            "scheduled function %s failed (%d so far): %s: %s", n, failed_runs[n], type(exc).__name__,
                            str(exc)[:300])
                    next_at[n] = now + sched[n]
            stop.wait(0.5)
    finally:
        stop.set()
        t.join(30)
    if failed_runs:
        print("scheduled runs that failed: " + ", ".join(f"{n} x{c}" for n, c in sorted(failed_runs.items())))
    print("stopped")
    return 0
