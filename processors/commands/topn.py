"""`sieve topn --rule RULE.json FILE...`: run the very engine the logs processor runs (decode,
parse, Contributor Insights rules, exact top-N) over log files and print the report per window.

FILE may be plain text or gzip; each holds access-log lines (CLF/combined or JSON lines), or saved
CloudWatch Logs subscription payloads (one JSON document, or one per line).

Keys come from log text, so they are printed (tables and --json) with secrets redacted by the same
function as Slack (processors/core/surfaces.py; the patterns of pipelines.yaml when there is one).
The counting is over the keys as logged: two rows may read alike once redacted, and `stats.redacted`
says how many secrets were masked. There is no switch to print them: the log file is at hand.

`--explain` also counts the explanation dimensions (processors/core/explain.py, default settings, every
contributor tracked) and gives every contributor its `contrast` (a list of `{field, value, group_share,
baseline_share, group_count, baseline_count, error}`, most distinguishing first) and its `onset` (null
when there is none); values pass the same redaction."""

from __future__ import annotations

import gzip
import io
import mmap
import sys
from dataclasses import asdict, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import orjson

from processors.core.aggregate import DEFAULT_CAPACITY, Accumulator, merge
from processors.core.fastpath import CHUNK_BYTES
from processors.core.explain import ExplainConfig, Explanation, explain_groups
from processors.core.decode import Decoded, LogEvent, decode_cwl_document
from processors.config.rule_files import load_rule_file
from processors.core.surfaces import ForPeople
from processors.core.types import Contributor, TopNReport
from processors.errors import SieveError


class TopNError(SieveError):
    exit_code = 2


def register(sub) -> None:
    from processors.runtime.people_view import CONFIG_HELP

    p = sub.add_parser(
        "topn",
        help="top-N contributors per window of log files, with Contributor Insights rules",
        description="Run the Sieve top-N engine over log files (plain, .gz, or saved CloudWatch Logs "
        "subscription payloads) and print each window's top contributors.",
    )
    p.add_argument("--rule", action="append", required=True, metavar="RULE.json", help="rule file (repeatable)")
    p.add_argument("--period", type=int, default=60, help="window length in seconds (default 60)")
    p.add_argument("--top", type=int, default=10, help="contributors per window, 1-100 (default 10)")
    p.add_argument("--capacity", type=int, default=DEFAULT_CAPACITY, help=f"exact keys per window before the "
                   f"heavy-hitter summary takes over (default {DEFAULT_CAPACITY})")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON (TopNReport fields) instead of tables")
    p.add_argument("--explain", action="store_true", help="add each contributor's contrast facts (what sets it "
                   "apart from the rest of the window's traffic) and onset (the 10 s bucket where its rate rose)")
    p.add_argument("--config", help=CONFIG_HELP)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=run)


def _open(path: Path):
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise TopNError(f"cannot read {path}: {exc.strerror or exc}") from None
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="surrogateescape", newline="\n")
    return open(path, encoding="utf-8", errors="surrogateescape", newline="\n")


def _open_binary(path: Path):
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise TopNError(f"cannot read {path}: {exc.strerror or exc}") from None
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _is_cwl_head(first: str) -> bool:
    """Whether a file's first line starts saved CloudWatch Logs payload(s) rather than log lines."""
    head = first.lstrip()
    return head.startswith("{") and '"messageType"' in first or head.rstrip() == "{"


def feed_file(path: Path, acc: Accumulator, counts: dict) -> int:
    """Feed one file to the accumulator: log lines in large binary chunks (`Accumulator.add_chunk`, the
    same result as line by line), saved CloudWatch Logs payloads event by event. Returns blank lines."""
    with _open_binary(path) as fh:
        first = fh.readline()
        if _is_cwl_head(first.decode("utf-8", "surrogateescape")):
            for item in iter_events(path, counts):
                acc.add_event(item)
            return 0
        blank = 0
        add = acc.add_chunk
        if isinstance(fh, io.BufferedReader):
            # a plain file: its chunks are cut from a memory map (one copy of each byte, not three)
            try:
                m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # empty, or not mappable (a pipe): read it
                m = None
            if m is not None:
                with m:
                    size, pos = len(m), 0
                    while pos < size:
                        end = pos + CHUNK_BYTES
                        if end < size:
                            cut = m.rfind(b"\n", pos, end) + 1
                            end = cut if cut > pos else (m.find(b"\n", end) + 1 or size)
                        blank += add(m[pos:end])
                        pos = end
                return blank
        rest = first
        while True:
            block = fh.read(CHUNK_BYTES)
            if not block:
                break
            data = rest + block if rest else block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            blank += add(data[:cut] if cut < len(data) else data)
            rest = data[cut:]
        if rest:
            blank += add(rest)
        return blank


def iter_events(path: Path, counts: dict) -> Iterator[LogEvent | str]:
    """Yield plain lines (str) or LogEvents (from CWL payloads) of one file."""
    with _open(path) as fh:
        first = fh.readline()
        if _is_cwl_head(first):
            # saved CloudWatch Logs payload(s): one per line, or one (pretty-printed) document
            try:
                docs = [orjson.loads(first)] + [orjson.loads(line) for line in fh if line.strip()]
            except orjson.JSONDecodeError:
                fh.seek(0)
                try:
                    docs = [orjson.loads(fh.read())]
                except orjson.JSONDecodeError as exc:
                    raise TopNError(f"{path}: looks like a CloudWatch Logs payload but is not valid JSON: {exc}") from None
            for doc in docs:
                decoded = decode_cwl_document(doc) if isinstance(doc, dict) else None
                if not isinstance(decoded, Decoded):
                    reason = decoded.reason if decoded is not None else "bad_cwl_payload"
                    counts[reason] = counts.get(reason, 0) + 1
                    continue
                if decoded.kind == "control":
                    counts["control_message"] = counts.get("control_message", 0) + 1
                yield from decoded.events
            return
        if first:
            yield first.rstrip("\r\n")
        for line in fh:
            yield line.rstrip("\r\n")


def run(args) -> int:
    if not 1 <= args.top <= 100:
        raise TopNError("--top must be between 1 and 100 (Contributor Insights' MaxContributorCount range)")
    if args.period <= 0:
        raise TopNError("--period must be a positive number of seconds")
    from processors.runtime.people_view import people_view

    view = people_view(args.config)
    rules = [load_rule_file(r) for r in args.rule]
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise TopNError(f"rule names (file stems) must be unique, got {names}")
    explain = None
    if args.explain:
        if args.period % 10:
            raise TopNError("--explain needs a --period that is a multiple of 10 s (its onset buckets)")
        explain = ExplainConfig(keys=max(ExplainConfig().keys, 2 * args.top))  # the contributors shown are tracked
    acc = Accumulator(rules, period=args.period, shard="local", capacity=args.capacity, explain=explain)
    other: dict[str, int] = {}
    blank = 0
    for f in args.files:
        blank += feed_file(Path(f), acc, other)
    explained: list[dict] = []
    if explain is not None:
        for (rule, w), agg in sorted(acc.partials.items(), key=lambda kv: (kv[0][1].start, kv[0][0])):
            r = merge([agg], args.top)
            explained.append(explain_groups([agg.explain], [c.keys for c in r.contributors], explain))
    reports = [for_people_report(r, view) for r in acc.reports(args.top)]
    stats = {"events": acc.stats.events, "parsed": acc.stats.parsed, "rejected": dict(sorted(acc.stats.rejected.items())),
             "skipped": dict(sorted(other.items())) | ({"blank_lines": blank} if blank else {}),
             "redacted": dict(sorted(view.totals.items()))}  # fmt: skip
    docs = [report_dict(r) for r in reports]
    if explain is not None:
        raw_keys = [[c.keys for c in r.contributors] for r in acc.reports(args.top)]
        for doc, keys, found in zip(docs, raw_keys, explained):
            for c, key in zip(doc["contributors"], keys):
                c.update(explanation_dict(found.get(key), view))
    if args.json:
        sys.stdout.write(orjson.dumps({"reports": docs, "stats": stats}, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_tables(reports, stats, docs if explain is not None else None)
    return 0


def explanation_dict(e: Explanation | None, view: ForPeople) -> dict:
    """A contributor's `contrast` and `onset` as JSON (values as people may see them)."""
    if e is None:
        return {"contrast": [], "onset": None}
    return {
        "contrast": [{"field": c.field, "value": view(c.value), "group_share": c.group_share,
                      "baseline_share": c.baseline_share, "group_count": c.group_count,
                      "baseline_count": c.baseline_count, "error": c.error} for c in e.contrast],
        "onset": None if e.onset is None else {
            "at": e.onset.at, "bucket_seconds": e.onset.bucket_seconds, "counts": list(e.onset.counts),
            "before_rate": e.onset.before_rate, "after_rate": e.onset.after_rate},
    }


def for_people_report(r: TopNReport, view: ForPeople) -> TopNReport:
    """The report with every contributor key as people may see it (secrets redacted)."""
    return replace(r, contributors=tuple(Contributor(tuple(view(k) for k in c.keys), c.value) for c in r.contributors))


def report_dict(r: TopNReport) -> dict:
    """A TopNReport as plain JSON-ready data (same field names)."""
    d = asdict(r)
    d["window"] = {"start": r.window.start, "end": r.window.end}
    d["contributors"] = [{"keys": list(c.keys), "value": c.value} for c in r.contributors]
    d["key_names"] = list(r.key_names)
    d["shards"] = list(r.shards)
    return d


def _why(c: dict) -> str:
    parts = [f"{f['field']}={f['value']}: {f['group_share']:.0%} vs {f['baseline_share']:.0%}"
             + (f" (±{f['error']:.0%})" if f["error"] else "") for f in c["contrast"]]
    o = c["onset"]
    if o is not None:
        parts.append(f"rose at {_fmt_time(o['at'])[11:]} ({o['before_rate']:.3g} -> {o['after_rate']:.3g} per {o['bucket_seconds']} s)")
    return "; ".join(parts)


def _fmt_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _print_tables(reports: list[TopNReport], stats: dict, docs: list[dict] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for n, r in enumerate(reports):
        if not r.contributors:
            continue
        approx = f", approximate (values may be over by up to {r.error_bound:g})" if r.approximate else ""
        t = Table(title=f"{r.rule}  {_fmt_time(r.window.start)} - {_fmt_time(r.window.end)[11:]} UTC",
                  caption=f"{r.sample_count} matched of {r.total_events} events, {r.unique_contributors} contributors, "
                          f"sum {r.sum:g}{approx}", title_justify="left", min_width=60)  # fmt: skip
        t.add_column("#", justify="right")
        for name in r.key_names:
            t.add_column(name, overflow="fold")
        t.add_column(r.aggregate_on, justify="right")
        t.add_column("share", justify="right")
        if docs is not None:
            t.add_column("explanation", overflow="fold")
        for i, c in enumerate(r.contributors, 1):
            share = c.value / r.sum if r.sum else 0
            why = [] if docs is None else [_why(docs[n]["contributors"][i - 1])]
            t.add_row(str(i), *c.keys, f"{c.value:g}", f"{share:.1%}", *why)
        console.print(t)
    empty = sum(1 for r in reports if not r.contributors)
    rejected = ", ".join(f"{k} {v}" for k, v in stats["rejected"].items()) or "none"
    skipped = ", ".join(f"{k} {v}" for k, v in stats["skipped"].items())
    redacted = sum(stats["redacted"].values())
    console.print(f"{stats['events']} events, {stats['parsed']} parsed; rejected: {rejected}"
                  + (f"; skipped: {skipped}" if skipped else "")
                  + (f"; {redacted} secret(s) in keys shown as [REDACTED:kind]" if redacted else "")
                  + (f"; {empty} window(s) with no matching events" if empty else ""), style="dim")  # fmt: skip
