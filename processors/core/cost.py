"""What Sieve's log path costs on AWS per month, next to Contributor Insights and OpenSearch Ingestion.

Pure arithmetic: measured figures (`Measured`: handler milliseconds per batch, the stored partial's
size) and a workload (`Workload`: lines per month, rules, line size, batching) in; the monthly bill per
service, with every quantity it rests on, out. Prices come from a price document (processors/data/
prices.json: its `prices` and `sizing` entries, each with its date and source), never from this module.

What is counted, per service (free tiers are not applied):

Kinesis Data Streams (provisioned)
  records       = ceil(lines / lines_per_record)
  PUT units     = records * ceil(record_bytes / 25 KB)
  shards        = max(1, ceil(peak bytes/s / 1 MiB), ceil(peak records/s / 1000)), peak = mean * peak_factor
  shard-hours   = shards * 730

Lambda, logs processor (Kinesis event source mapping, one concurrent batch per shard)
  invocations   = max(ceil(records / batch_size), min(records, shards * seconds_per_month / batching_window))
                  (busy shards fill batches; quiet ones are invoked about once per batching window)
  duration      = (fixed_ms + per_line_ms * lines per invocation) * max(1, mb_per_vcpu / memory_mb)
                  (measured on one core of the bench machine; Lambda gives one vCPU at 1,769 MB and a share
                  of one below that), rounded up to the millisecond
  GB-seconds    = invocations * duration * memory_mb / 1024

DynamoDB on demand, state table (see processors/adapters/state_store.py)
  per flush (every invocation without tumbling windows; one per shard and window with them):
    read   cursor: GetItem, strongly consistent                          1 RRU
    write  one TransactWriteItems (transactional writes cost 2 WRU per 1 KB):
             a partial per (rule, window) in the batch                  2 * ceil(partial KB) each
             an open marker per (rule, window)                          2 each
             the shard cursor (conditional update)                      2
    write  progress: UpdateItem (conditional)                            1
  windows per flush = 1 + min(1, event-time span of a batch / window period) (a batch that straddles a
  window boundary writes to both)
  per finalised (rule, window), by the finaliser:
    read   partials: Query, strongly consistent      ceil(sum of the window's partials / 4 KB)
           stored report (GetItem), last selected, mutes (Query)     3
           previous reports for history (Query)       ceil(history * report KB / 4)
    write  the report (PutItem, conditional)          ceil(report KB)
           close the open marker (DeleteItem)         1
  per finaliser run: progress (Query) + open windows per rule (Query)   1 + rules RRU
  storage: partials and reports stay until their TTL (ttl_days)

CloudWatch: the logs processor's metrics (Powertools EMF) are custom metrics; the EMF lines are log
ingestion. EventBridge Scheduler invokes the finaliser every schedule_seconds.

Contributor Insights: rules * rule-month + matched events (lines * matched_share per rule) * price.
OpenSearch Ingestion: OCUs = max(min_ocus, ceil(peak MiB/s / MiB/s per OCU)) for 730 hours; the
OpenSearch domain it writes to (and which computes the top-N) is not included.

Not included anywhere: CloudWatch Logs ingestion of the logs themselves (shown apart: Contributor
Insights needs it, and so does Sieve when the logs reach Kinesis through a subscription filter; a
producer that writes to Kinesis directly does not), data transfer, the model calls of the AI boundary
(processors/core/boundary.py prices them per call), and the finaliser's Slack deliveries.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from processors.errors import ConfigError

SECONDS_PER_HOUR = 3600
KB = 1024


@dataclass(frozen=True)
class PriceBook:
    """USD prices and sizing figures by name, as prices.json has them (`usd` / `value` of each entry)."""

    prices: dict[str, float]
    sizing: dict[str, float]
    recorded: str = ""

    def __getitem__(self, name: str) -> float:
        if name in self.prices:
            return self.prices[name]
        return self.sizing[name]

    @classmethod
    def from_document(cls, doc: dict, source: str = "prices.json") -> PriceBook:
        problems: list[str] = []
        prices: dict[str, float] = {}
        sizing: dict[str, float] = {}
        for section, key, out in (("prices", "usd", prices), ("sizing", "value", sizing)):
            entries = doc.get(section)
            if not isinstance(entries, dict):
                problems.append(f"{section}: must be a mapping of name -> {{{key}, unit, source, as_of}}")
                continue
            for name, entry in entries.items():
                value = entry.get(key) if isinstance(entry, dict) else None
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    problems.append(f"{section}.{name}.{key}: must be a number >= 0 (got {value!r})")
                    continue
                for must in ("source", "as_of"):
                    if not (isinstance(entry.get(must), str) and entry.get(must)):
                        problems.append(f"{section}.{name}.{must}: required (where and when the figure was taken)")
                out[name] = float(value)
        missing = [n for n in REQUIRED_PRICES if n not in prices] + [n for n in REQUIRED_SIZING if n not in sizing]
        problems += [f"missing entry: {n}" for n in missing if not any(p.startswith(f"prices.{n}.") or
                                                                     p.startswith(f"sizing.{n}.") for p in problems)]
        if problems:
            raise ConfigError(source, problems)
        return cls(prices, sizing, str(doc.get("recorded", "")))


REQUIRED_PRICES = ("kinesis_shard_hour", "kinesis_put_payload_units_million", "lambda_requests_million",
                   "lambda_gb_second_x86_64", "lambda_gb_second_arm64", "dynamodb_write_request_units_million",
                   "dynamodb_read_request_units_million", "dynamodb_storage_gb_month", "cloudwatch_custom_metric_month",
                   "cloudwatch_logs_ingest_gb", "contributor_insights_rule_month",
                   "contributor_insights_matched_events_million", "opensearch_ingestion_ocu_hour",
                   "eventbridge_scheduler_invocations_million")
REQUIRED_SIZING = ("opensearch_ingestion_mib_per_second_per_ocu", "opensearch_ingestion_min_ocus",
                   "kinesis_shard_ingest_bytes_per_second", "kinesis_shard_ingest_records_per_second",
                   "kinesis_put_payload_unit_bytes", "lambda_mb_per_vcpu", "hours_per_month")


@dataclass(frozen=True)
class Measured:
    """Figures measured on the local stack (bench/results/e2e.json, memory.json) or given by the user."""

    fixed_ms_per_batch: float        # handler time per invocation that does not grow with lines (state I/O)
    ms_per_line: float               # handler time per line (decode, parse, rules, aggregate)
    partial_bytes: float             # one stored partial item (blob + samples + keys), mean
    report_bytes: float = 4096.0     # one stored report item
    finaliser_ms_per_run: float = 200.0        # an idle finaliser run (progress, open windows)
    finaliser_ms_per_window: float = 100.0     # per finalised (rule, window), without a model call
    peak_rss_mb: float = 0.0         # the logs processor on a full batch (memory.json)
    window_partial_bytes: float | None = None  # a whole shard-window's partial (tumbling windows); None: partial_bytes
    source: str = ""                 # where the figures come from


@dataclass(frozen=True)
class Workload:
    lines_per_month: float
    rules: int
    bytes_per_line: float = 250.0
    lines_per_record: float = 1.0    # 1: a line per record (`sieve push --format lines`); a CloudWatch Logs
    record_bytes: float | None = None  # subscription carries many gzipped lines: give its record_bytes
    peak_factor: float = 3.0         # shards are sized for peak = mean * peak_factor
    batch_size: int = 500
    batching_window_seconds: float = 1.0
    memory_mb: int = 512
    architecture: str = "x86_64"
    window_seconds: int = 60
    tumbling_window_seconds: int = 0
    finaliser_memory_mb: int = 512
    finaliser_schedule_seconds: int = 30
    history_windows: int = 5         # previous reports the finaliser reads per window (change facts)
    ttl_days: int = 14
    metrics: int = 6                 # custom metric names the logs processor emits (handlers/logs.py)
    emf_bytes_per_flush: int = 600
    matched_share: float = 1.0       # share of lines each Contributor Insights rule matches (its filters)

    def __post_init__(self) -> None:
        problems = []
        if self.lines_per_month < 0:
            problems.append("lines_per_month: must be >= 0")
        if self.rules < 1:
            problems.append("rules: must be >= 1")
        if not 0 <= self.matched_share <= 1:
            problems.append("matched_share: must be within 0..1")
        if self.lines_per_record < 1 or self.batch_size < 1 or self.memory_mb < 128:
            problems.append("lines_per_record, batch_size >= 1 and memory_mb >= 128")
        if self.architecture not in ("x86_64", "arm64"):
            problems.append("architecture: x86_64 or arm64")
        if problems:
            raise ConfigError("cost workload", problems)


@dataclass
class Line:
    """One priced item: quantity, unit, USD."""

    service: str
    item: str
    quantity: float
    unit: str
    usd: float


@dataclass
class Estimate:
    workload: Workload
    lines: list[Line] = field(default_factory=list)
    facts: dict[str, float] = field(default_factory=dict)  # the quantities the lines rest on

    def add(self, service: str, item: str, quantity: float, unit: str, usd: float) -> None:
        self.lines.append(Line(service, item, quantity, unit, usd))

    def total(self, service_prefix: str) -> float:
        return sum(ln.usd for ln in self.lines if ln.service.startswith(service_prefix))

    def as_dict(self) -> dict:
        return {"workload": asdict(self.workload), "facts": self.facts,
                "lines": [asdict(ln) for ln in self.lines],
                "totals": {"sieve": round(self.total("sieve"), 2),
                           "contributor_insights": round(self.total("contributor insights"), 2),
                           "opensearch_ingestion": round(self.total("opensearch ingestion"), 2),
                           "cloudwatch_logs_ingestion": round(self.total("cloudwatch logs"), 2)}}


def dynamodb_flush_units(rules_windows: float, partial_bytes: float) -> tuple[float, float]:
    """(WRU, RRU) of one flush writing `rules_windows` partials (see the module docstring)."""
    partial_kb = max(1, math.ceil(partial_bytes / KB))
    wru = 2 * partial_kb * rules_windows + 2 * rules_windows + 2 + 1
    return wru, 1.0


def finalise_units(partials_per_window: float, partial_bytes: float, report_bytes: float,
                   history: int) -> tuple[float, float]:
    """(WRU, RRU) of finalising one (rule, window) without a selection."""
    report_kb = max(1, math.ceil(report_bytes / KB))
    rru = math.ceil(partials_per_window * partial_bytes / (4 * KB)) + 3 + math.ceil(history * report_bytes / (4 * KB))
    wru = report_kb + 1
    return float(wru), float(rru)


def estimate(w: Workload, m: Measured, p: PriceBook) -> Estimate:
    est = Estimate(w)
    f = est.facts
    hours = p["hours_per_month"]
    month_s = hours * SECONDS_PER_HOUR

    # --- Kinesis
    records = math.ceil(w.lines_per_month / w.lines_per_record)
    record_bytes = w.record_bytes if w.record_bytes is not None else w.bytes_per_line * w.lines_per_record
    units = records * max(1, math.ceil(record_bytes / p["kinesis_put_payload_unit_bytes"]))
    peak_bps = records * record_bytes / month_s * w.peak_factor
    peak_rps = records / month_s * w.peak_factor
    shards = max(1, math.ceil(peak_bps / p["kinesis_shard_ingest_bytes_per_second"]),
                 math.ceil(peak_rps / p["kinesis_shard_ingest_records_per_second"]))
    f.update(records=records, record_bytes=record_bytes, put_payload_units=units, shards=shards,
             peak_bytes_per_second=peak_bps, peak_records_per_second=peak_rps)
    est.add("sieve: kinesis", "shard-hours", shards * hours, "shard-hours", shards * hours * p["kinesis_shard_hour"])
    est.add("sieve: kinesis", "PUT payload units", units, "25 KB units", units / 1e6 * p["kinesis_put_payload_units_million"])

    # --- Lambda, logs processor
    if records:
        invocations = max(math.ceil(records / w.batch_size),
                          min(records, math.ceil(shards * month_s / max(w.batching_window_seconds, 1.0))))
    else:
        invocations = 0
    lines_per_inv = w.lines_per_month / invocations if invocations else 0.0
    cpu_scale = max(1.0, p["lambda_mb_per_vcpu"] / w.memory_mb)
    ms = math.ceil((m.fixed_ms_per_batch + m.ms_per_line * lines_per_inv) * cpu_scale) if invocations else 0
    gb_s = invocations * ms / 1000 * w.memory_mb / 1024
    gb_price = p["lambda_gb_second_arm64" if w.architecture == "arm64" else "lambda_gb_second_x86_64"]
    f.update(invocations=invocations, lines_per_invocation=lines_per_inv, billed_ms_per_invocation=ms,
             cpu_scale=cpu_scale, gb_seconds=gb_s)
    est.add("sieve: lambda logs processor", "requests", invocations, "invocations",
            invocations / 1e6 * p["lambda_requests_million"])
    est.add("sieve: lambda logs processor", "duration", gb_s, "GB-s", gb_s * gb_price)

    # --- DynamoDB: flushes
    shard_lines_per_s = w.lines_per_month / month_s / shards
    if w.tumbling_window_seconds:
        flushes = shards * math.ceil(month_s / w.tumbling_window_seconds) if records else 0
        span = w.tumbling_window_seconds
    else:
        flushes = invocations
        span = lines_per_inv / shard_lines_per_s if shard_lines_per_s else 0.0
    windows_per_flush = 1 + min(1.0, span / w.window_seconds)
    rules_windows = w.rules * windows_per_flush
    partial_bytes = (m.window_partial_bytes or m.partial_bytes) if w.tumbling_window_seconds else m.partial_bytes
    wru_flush, rru_flush = dynamodb_flush_units(rules_windows, partial_bytes)
    windows = month_s / w.window_seconds
    partials = flushes * rules_windows
    partials_per_window = partials / (windows * w.rules) if windows else 0.0
    wru_fin, rru_fin = finalise_units(partials_per_window, partial_bytes, m.report_bytes, w.history_windows)
    fin_runs = math.ceil(month_s / w.finaliser_schedule_seconds)
    wru = flushes * wru_flush + windows * w.rules * wru_fin
    rru = flushes * rru_flush + windows * w.rules * rru_fin + fin_runs * (1 + w.rules)
    stored_gb = (partials * partial_bytes + windows * w.rules * m.report_bytes) / 1e9 * min(1.0, w.ttl_days * 86400 / month_s)
    f.update(flushes=flushes, windows_per_flush=windows_per_flush, partial_bytes=partial_bytes, wru_per_flush=wru_flush, rru_per_flush=rru_flush,
             partials_per_rule_window=partials_per_window, wru_per_finalised_window=wru_fin,
             rru_per_finalised_window=rru_fin, write_request_units=wru, read_request_units=rru, stored_gb=stored_gb)
    est.add("sieve: dynamodb", "write request units", wru, "WRU", wru / 1e6 * p["dynamodb_write_request_units_million"])
    est.add("sieve: dynamodb", "read request units", rru, "RRU", rru / 1e6 * p["dynamodb_read_request_units_million"])
    est.add("sieve: dynamodb", "storage (TTL-bounded)", stored_gb, "GB-month", stored_gb * p["dynamodb_storage_gb_month"])

    # --- finaliser
    fin_ms = math.ceil((m.finaliser_ms_per_run + m.finaliser_ms_per_window * w.rules * w.finaliser_schedule_seconds
                        / w.window_seconds) * max(1.0, p["lambda_mb_per_vcpu"] / w.finaliser_memory_mb))
    fin_gb_s = fin_runs * fin_ms / 1000 * w.finaliser_memory_mb / 1024
    f.update(finaliser_runs=fin_runs, finaliser_billed_ms=fin_ms, finaliser_gb_seconds=fin_gb_s)
    est.add("sieve: lambda finaliser", "requests + schedule", fin_runs, "invocations",
            fin_runs / 1e6 * (p["lambda_requests_million"] + p["eventbridge_scheduler_invocations_million"]))
    est.add("sieve: lambda finaliser", "duration", fin_gb_s, "GB-s", fin_gb_s * p["lambda_gb_second_x86_64"])

    # --- CloudWatch (the processor's own metrics)
    emf_gb = flushes * w.emf_bytes_per_flush / 1e9
    est.add("sieve: cloudwatch", "custom metrics", w.metrics, "metrics", w.metrics * p["cloudwatch_custom_metric_month"])
    est.add("sieve: cloudwatch", "metric log lines (EMF)", emf_gb, "GB", emf_gb * p["cloudwatch_logs_ingest_gb"])

    # --- Contributor Insights, same rules
    matched = w.lines_per_month * w.matched_share * w.rules
    est.add("contributor insights", "rules", w.rules, "rule-months", w.rules * p["contributor_insights_rule_month"])
    est.add("contributor insights", "matched log events", matched, "events",
            matched / 1e6 * p["contributor_insights_matched_events_million"])

    # --- OpenSearch Ingestion, sized for the same peak
    peak_mib = w.lines_per_month * w.bytes_per_line / month_s * w.peak_factor / (1024 * 1024)
    ocus = max(int(p["opensearch_ingestion_min_ocus"]), math.ceil(peak_mib / p["opensearch_ingestion_mib_per_second_per_ocu"]))
    f.update(opensearch_ingestion_ocus=ocus, peak_mib_per_second=peak_mib)
    est.add("opensearch ingestion", "OCU-hours", ocus * hours, "OCU-hours", ocus * hours * p["opensearch_ingestion_ocu_hour"])

    # --- shown apart: the logs in CloudWatch Logs
    ingest_gb = w.lines_per_month * w.bytes_per_line / 1e9
    est.add("cloudwatch logs (apart)", "log ingestion", ingest_gb, "GB", ingest_gb * p["cloudwatch_logs_ingest_gb"])
    return est


def parse_count(text: str) -> float:
    """'10M' -> 1e7, '1B' -> 1e9, '250k' -> 2.5e5, '1000' -> 1000."""
    t = text.strip().lower().replace("_", "").replace(",", "")
    scale = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}.get(t[-1:], 1.0)
    number = t[:-1] if t[-1:] in "kmbg" else t
    try:
        value = float(number) * scale
    except ValueError:
        raise ConfigError("--lines", [f"{text!r}: not a count (examples: 10M, 100M, 1B, 250000)"]) from None
    if value < 0:
        raise ConfigError("--lines", [f"{text!r}: must be >= 0"])
    return value
