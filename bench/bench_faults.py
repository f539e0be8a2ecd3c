"""Faults survived, with figures: the whole local stack under repeated faults, checked against ground truth.

    .venv/bin/python bench/bench_faults.py                    # the full run (a few minutes)
    .venv/bin/python bench/bench_faults.py --stop-opensearch  # really stop and start the OpenSearch node
                                                              # (it is shared: only where nobody else uses it)

A generated access log with labelled incidents and exact ground truth (processors/core/generate.py), plus
planted secrets in paths, query strings, referers and user agents, is pushed onto Kinesis while FAQ
entries are written, changed (roles granted and revoked) and deleted in DynamoDB. Meanwhile, seeded:
the runners (`sieve run`, one for the log pipeline, one for the FAQ processor) are SIGKILLed and started
again; a fault proxy in front of moto throttles (the services' real error codes), fails (500/503), resets
connections before and after the emulator applied a call, slows calls down and expires shard iterators;
OpenSearch refuses connections (or is stopped); the Slack receiver answers 429 with Retry-After, 500, or
hangs past the notifier's timeout; the model server answers garbage or is killed mid-answer. Then the
faults stop, the pipeline drains, and every promise is checked (bench/faults/harness.py). Writes
bench/results/faults.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.faults.harness import Scenario, problems, run, table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description="fault-injection run over the whole local stack")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--lines", type=int, default=8000)
    ap.add_argument("--duration", type=int, default=600, help="event seconds of generated traffic")
    ap.add_argument("--fault-seconds", type=float, default=120)
    ap.add_argument("--faq-entries", type=int, default=60)
    ap.add_argument("--aws-fault-scale", type=float, default=2.0)
    ap.add_argument("--stop-opensearch", action="store_true",
                    help="stop/start the real node with localstack/opensearch.sh instead of refusing connections")
    ap.add_argument("--spare-posts", action="store_true",
                    help="never SIGKILL the log runner while a Slack post hangs (shorter drain)")
    ap.add_argument("--vendor-key-in-path", action="store_true",
                    help="also plant a bare sk_live_ key in a URL path (known open finding: it is not redacted)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "faults.json"))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    sc = Scenario(seed=args.seed, lines=args.lines, duration=args.duration, incidents=("burst500", "scan404"),
                  faq_entries=args.faq_entries, fault_seconds=args.fault_seconds, push_chunks=30,
                  aws_fault_scale=args.aws_fault_scale, opensearch_outages=4, slack_faults=9,
                  stop_opensearch=args.stop_opensearch, spare_posts=args.spare_posts, vendor_key_in_path=args.vendor_key_in_path, min_model_requests=8,
                  drain_timeout=600, verbose=args.verbose)
    r = run(sc)
    r["generated_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    print(table(r))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(r, indent=1, default=str))
    print(f"wrote {args.out}")
    bad = problems(r)
    for p in bad:
        print(f"FAILED: {p}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
