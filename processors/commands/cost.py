"""`sieve cost`: the monthly AWS bill of Sieve's log path at 10M, 100M and 1B lines, next to CloudWatch
Contributor Insights for the same rules and an OpenSearch Ingestion pipeline sized for the same volume.

The arithmetic is processors/core/cost.py; prices are processors/data/prices.json (each with its date and
source; `--prices FILE` for your own); the measured figures (handler ms per batch and per line, stored
partial size) come from bench/results/e2e.json (`bench/bench_e2e.py`) when it is there, else from a quick
in-process measurement of the logs use case (the DynamoDB round trips are then an assumption, said so).
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from processors.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
E2E = ROOT / "bench" / "results" / "e2e.json"
MEMORY = ROOT / "bench" / "results" / "memory.json"
ASSUMED_ROUND_TRIP_MS = 10.0  # one DynamoDB call in-region, when nothing was measured against a stack


def register(sub) -> None:
    p = sub.add_parser("cost", help="monthly AWS cost of the log path vs Contributor Insights and OpenSearch Ingestion")
    p.add_argument("--lines", default="10M,100M,1B", help="lines per month, comma-separated (10M,100M,1B)")
    p.add_argument("--rules", type=int, default=None, help="number of rules (default: pipelines.yaml's, else 2)")
    p.add_argument("--bytes-per-line", type=float, default=250.0)
    p.add_argument("--format", choices=("lines", "cwl"), default="lines",
                   help="lines: a line per Kinesis record; cwl: CloudWatch Logs subscription records")
    p.add_argument("--lines-per-record", type=float, default=None, help="cwl: log events per record (default 200)")
    p.add_argument("--compression", type=float, default=8.0, help="cwl: gzip ratio of a record (default 8)")
    p.add_argument("--peak-factor", type=float, default=3.0, help="peak / mean rate the shards are sized for")
    p.add_argument("--matched-share", type=float, default=1.0,
                   help="share of lines each Contributor Insights rule matches (default 1.0, the upper bound)")
    p.add_argument("--memory-mb", type=int, default=None, help="logs processor memory (default: pipelines.yaml's)")
    p.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    p.add_argument("--tumbling-window", type=int, default=None, help="TumblingWindowInSeconds (default: pipelines.yaml's)")
    p.add_argument("--batching-window", type=int, default=None,
                   help="MaximumBatchingWindowInSeconds (default: pipelines.yaml's, at least 1)")
    p.add_argument("--partial-kb", type=float, default=None, help="stored partial size (default: measured)")
    p.add_argument("--fixed-ms", type=float, default=None,
                   help="handler ms per batch spent on DynamoDB calls (default: measured against moto; "
                        "in-region DynamoDB is usually faster)")
    p.add_argument("--prices", default=None, help="a prices file shaped like processors/data/prices.json")
    p.add_argument("--measured", default=None, help="an e2e.json from bench/bench_e2e.py (default: bench/results/)")
    p.add_argument("--config", default=None, help="pipelines.yaml for rules, batch size, memory (optional)")
    p.add_argument("--json", action="store_true", help="print the estimates as JSON")
    p.set_defaults(func=run)


def load_prices(path: str | None):
    from processors.core.cost import PriceBook

    if path:
        text, source = Path(path).read_text(encoding="utf-8"), path
    else:
        text, source = resources.files("processors.data").joinpath("prices.json").read_text(encoding="utf-8"), "prices.json"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, [f"not valid JSON: {exc}"]) from None
    return PriceBook.from_document(doc, source), doc


def measured_figures(path: str | None):
    """Measured figures from an e2e.json (and memory.json beside it), or a quick in-process measurement."""
    from processors.core.cost import Measured

    p = Path(path) if path else E2E
    if p.exists():
        doc = json.loads(p.read_text(encoding="utf-8"))
        ci = doc.get("cost_inputs")
        if not isinstance(ci, dict):
            raise ConfigError(str(p), ["cost_inputs: missing (run bench/bench_e2e.py to produce it)"])
        rss, window_partial = 0.0, None
        mem = p.parent / "memory.json"
        if mem.exists():
            mdoc = json.loads(mem.read_text())
            rss = float(mdoc.get("logs_processor_batch", {}).get("peak_rss_mb", 0.0))
            # a tumbling window's partial holds the whole shard-window: its size at 10k distinct contributors
            window_partial = next((float(st["state_bytes"]) for st in mdoc.get("state_per_shard_window", [])
                                   if st.get("distinct_contributors") == 10_000), None)
        return Measured(fixed_ms_per_batch=ci["fixed_ms_per_batch"], ms_per_line=ci["ms_per_line"],
                        partial_bytes=ci["partial_bytes"], report_bytes=ci.get("report_bytes", 4096.0),
                        finaliser_ms_per_run=ci.get("finaliser_ms_per_run", 200.0),
                        finaliser_ms_per_window=ci.get("finaliser_ms_per_window", 100.0), peak_rss_mb=rss,
                        window_partial_bytes=window_partial,
                        source=f"{p} ({doc.get('measured_at', '?')})")
    if path:
        raise ConfigError(path, ["file not found"])
    return quick_measure()


def quick_measure(lines: int = 20_000, batch: int = 500):
    """The logs use case in process (in-memory state store) over generated combined-format lines."""
    import base64

    from processors.adapters.memory import MemoryWindowStore
    from processors.config.rule_files import load_rule_file
    from processors.core.cost import Measured
    from processors.core.generate import AccessLogGenerator, GeneratorConfig
    from processors.core.ingest import IngestConfig, LogIngest, StreamBatch, StreamRecord

    rules = tuple(load_rule_file(ROOT / "rules" / name) for name in ("errors-by-path.json", "404-by-client.json"))
    text = list(AccessLogGenerator(GeneratorConfig(seed=3, lines=lines, duration=600, period=60)).lines())

    class Rejects:
        def send(self, rejects) -> None:
            pass

    store = MemoryWindowStore()
    ingest = LogIngest(IngestConfig(rules=rules, period=60), store, Rejects(), clock=time.time)
    started = time.perf_counter()
    batches = 0
    for i in range(0, len(text), batch):
        recs = tuple(StreamRecord(str(10**20 + i + j), base64.b64encode(ln.encode()).decode(), "k", None, None)
                     for j, ln in enumerate(text[i:i + batch]))
        ingest.process(StreamBatch("shardId-000000000000", recs, windowed=False, state=None, final=False))
        batches += 1
    seconds = time.perf_counter() - started
    sizes = [len(p.blob) + sum(len(s) for s in p.samples) + 200 for ps in store._partials.values() for p in ps.values()]
    return Measured(fixed_ms_per_batch=3 * ASSUMED_ROUND_TRIP_MS, ms_per_line=1000 * seconds / len(text),
                    partial_bytes=sum(sizes) / max(1, len(sizes)),
                    source=f"quick in-process measurement ({lines} lines); DynamoDB round trips assumed "
                           f"{ASSUMED_ROUND_TRIP_MS:.0f} ms each, 3 per batch")


def defaults_from_config(path: str | None) -> dict:
    """Rules, batch size, batching window, memory and tumbling window from pipelines.yaml, if it loads."""
    from processors.config import load
    from processors.config.paths import resolve_path

    if not path and not resolve_path(None).exists():
        return {}  # no pipelines.yaml here: the flags' defaults (an invalid one is an error, said as such)
    loaded = load(path)
    out: dict = {"rules": len(loaded.rules)}
    logs = loaded.config.pipelines.logs
    for fn in loaded.config.functions.values():
        for ev in fn.events:
            if ev.kinesis and logs is not None and ev.kinesis.stream == logs.source_stream:
                out.update(batch_size=ev.batch_size, batching_window_seconds=max(1, ev.maximum_batching_window_seconds),
                           memory_mb=fn.memory_mb, tumbling_window_seconds=ev.tumbling_window_seconds)
    if logs is not None:
        out.update(window_seconds=logs.window.period_seconds, ttl_days=logs.state.ttl_days)
    return out


def estimates(args) -> tuple[list, object, dict]:
    from processors.core.cost import Workload, estimate, parse_count

    prices, doc = load_prices(args.prices)
    measured = measured_figures(args.measured)
    from dataclasses import replace

    if args.partial_kb is not None:
        measured = replace(measured, partial_bytes=args.partial_kb * 1024, window_partial_bytes=args.partial_kb * 1024)
    if args.fixed_ms is not None:
        measured = replace(measured, fixed_ms_per_batch=args.fixed_ms)
    conf = defaults_from_config(args.config)
    rules = args.rules if args.rules is not None else conf.pop("rules", 2)
    conf.pop("rules", None)
    if args.memory_mb is not None:
        conf["memory_mb"] = args.memory_mb
    if args.tumbling_window is not None:
        conf["tumbling_window_seconds"] = args.tumbling_window
    if args.batching_window is not None:
        conf["batching_window_seconds"] = max(1, args.batching_window)
    shape: dict = {}
    if args.format == "cwl":
        per = args.lines_per_record or 200.0
        shape = {"lines_per_record": per, "record_bytes": per * (args.bytes_per_line + 80) / args.compression}
    out = []
    for text in args.lines.split(","):
        w = Workload(lines_per_month=parse_count(text), rules=rules, bytes_per_line=args.bytes_per_line,
                     peak_factor=args.peak_factor, matched_share=args.matched_share, architecture=args.arch,
                     **shape, **conf)
        out.append((text.strip(), estimate(w, measured, prices)))
    return out, measured, doc


def fmt_usd(x: float) -> str:
    return f"${x:,.2f}" if x < 1000 else f"${x:,.0f}"


def fmt_qty(x: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def table(rows: list[tuple[str, object]]) -> str:
    head = ["", *[label for label, _ in rows]]
    body: list[list[str]] = []
    first = rows[0][1]
    for i, ln in enumerate(first.lines):
        body.append([f"{ln.service}: {ln.item} ({ln.unit})",
                     *[f"{fmt_qty(e.lines[i].quantity)} = {fmt_usd(e.lines[i].usd)}" for _, e in rows]])
    body.append(["Sieve total", *[fmt_usd(e.total("sieve")) for _, e in rows]])
    body.append([f"Contributor Insights total ({first.workload.rules} rules)",
                 *[fmt_usd(e.total("contributor insights")) for _, e in rows]])
    body.append(["OpenSearch Ingestion total (pipeline only)", *[fmt_usd(e.total("opensearch ingestion")) for _, e in rows]])
    widths = [max(len(r[c]) for r in [head, *body]) for c in range(len(head))]
    line = lambda r: "  ".join(r[0].ljust(widths[0]) if c == 0 else r[c].rjust(widths[c]) for c in range(len(r)))  # noqa: E731
    return "\n".join([line(head), "  ".join("-" * w for w in widths), *(line(r) for r in body)])


def run(args) -> int:
    rows, measured, doc = estimates(args)
    if args.json:
        print(json.dumps({"prices_recorded": doc.get("recorded"), "prices_note": doc.get("note"),
                          "measured": measured.__dict__,
                          "estimates": {label: e.as_dict() for label, e in rows}}, indent=2, default=str))
        return 0
    print(f"Monthly AWS cost, {doc.get('region', 'us-east-1')} list prices recorded {doc.get('recorded')} "
          "(to be verified: processors/data/prices.json has each source)")
    print(f"measured: {measured.source}: {measured.fixed_ms_per_batch:.1f} ms per batch + {measured.ms_per_line * 1000:.1f} us "
          f"per line, partial {measured.partial_bytes / 1024:.1f} KB")
    print(table(rows))
    w = rows[0][1].workload
    print(f"\nassumptions: {w.bytes_per_line:.0f} B/line, {w.lines_per_record:g} line(s)/record, peak = {w.peak_factor:g}x mean, "
          f"batch {w.batch_size}, {w.memory_mb} MB {w.architecture}, tumbling window {w.tumbling_window_seconds or 'off'}, "
          f"Contributor Insights matches {w.matched_share:.0%} of lines per rule; no free tiers; the logs' own "
          "CloudWatch Logs ingestion (row 'cloudwatch logs (apart)') is in no total: Contributor Insights needs it, "
          "Sieve only when the logs come through a subscription filter; the OpenSearch domain behind OpenSearch "
          "Ingestion is not included.")
    return 0
