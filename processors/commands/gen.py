"""`sieve gen access-log`: write seeded synthetic access-log traffic with labelled incidents, and
its ground truth beside it (FILE.truth.json). See processors/core/generate.py for what is made."""

from __future__ import annotations

import gzip
import sys
from datetime import datetime, timezone
from pathlib import Path

import orjson

from processors.core.generate import DEFAULT_START, INCIDENT_KINDS, AccessLogGenerator, GeneratorConfig, parse_incident
from processors.errors import SieveError


class GenError(SieveError):
    exit_code = 2


def register(sub) -> None:
    p = sub.add_parser("gen", help="generate synthetic test data (access logs with labelled incidents)")
    kinds = p.add_subparsers(dest="what", metavar="WHAT")
    kinds.required = True
    a = kinds.add_parser(
        "access-log",
        help="combined-format (or JSON, or ALB) access log + FILE.truth.json",
        description="Write realistic access-log traffic with labelled incidents, and the exact ground truth "
        "(incident windows, counts and causes, top-N per window for the rules in rules/, rules/json/ or rules/alb/; "
        "errors-by-path-template under extra_rules) to FILE.truth.json. About a fifth of the requests carry "
        "query strings (search terms, paging, campaign tags, click ids, cache busters); the rules group by the "
        "path without them, so an incident with several query strings is one group.",
    )
    a.add_argument("--seed", type=int, default=1, help="random seed; same seed, same file (default 1)")
    a.add_argument("--lines", type=int, default=10_000, help="total lines, incidents included (default 10000)")
    a.add_argument("--out", required=True, help="output file ('-' for stdout; a .gz name writes gzip)")
    a.add_argument("--start", help="ISO 8601 start time (default 2024-03-04T10:00:00Z)")
    a.add_argument("--duration", type=int, default=3600, help="seconds of traffic (default 3600)")
    a.add_argument(
        "--incident",
        action="append",
        default=[],
        metavar="KIND[:at=S,count=N,duration=S]",
        help=f"add an incident; KIND is one of {', '.join(INCIDENT_KINDS)} (repeatable); each is caused by one "
        "attribute, recorded in the truth as cause {field, value}",
    )
    a.add_argument("--format", choices=("combined", "json", "alb"), default="combined",
                   help="line format: combined, json, or alb (AWS Application Load Balancer access-log entries, "
                   "truth for the rules in rules/alb/) (default combined)")
    a.add_argument("--tz", default="+0000", help="UTC offset written in combined timestamps, e.g. -0700 (default +0000; "
                   "ALB entries are always UTC)")
    a.add_argument("--period", type=int, default=60, help="window length in seconds for the truth (default 60)")
    a.add_argument("--top", type=int, default=10, help="top-N length in the truth (default 10)")
    a.set_defaults(func=run)


def _parse_start(text: str | None) -> datetime:
    if not text:
        return DEFAULT_START
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise GenError(f"--start {text!r} is not ISO 8601; write e.g. 2024-03-04T10:00:00Z") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _parse_tz(text: str) -> int:
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit() or int(text[3:]) >= 60:
        raise GenError(f"--tz {text!r} must look like +0000 or -0700")
    minutes = int(text[1:3]) * 60 + int(text[3:])
    return -minutes if text[0] == "-" else minutes


def run(args) -> int:
    try:
        incidents = tuple(parse_incident(s) for s in args.incident)
    except ValueError as exc:
        raise GenError(f"--incident: {exc}") from None
    if args.lines < 0 or args.duration <= 0 or args.period <= 0 or args.top < 1:
        raise GenError("--lines must be >= 0; --duration, --period and --top must be positive")
    cfg = GeneratorConfig(
        seed=args.seed,
        lines=args.lines,
        start=_parse_start(args.start),
        duration=args.duration,
        incidents=incidents,
        format=args.format,
        tz_offset_minutes=_parse_tz(args.tz),
        period=args.period,
        top=args.top,
    )
    try:
        gen = AccessLogGenerator(cfg)
    except ValueError as exc:
        raise GenError(str(exc)) from None
    if args.out == "-":
        out = sys.stdout
        for line in gen.lines():
            out.write(line + "\n")
        truth_path = None
    else:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "wt", encoding="utf-8", newline="\n") as out:
            buf = []
            for line in gen.lines():
                buf.append(line)
                if len(buf) >= 10_000:
                    out.write("\n".join(buf) + "\n")
                    buf.clear()
            if buf:
                out.write("\n".join(buf) + "\n")
        truth_path = Path(str(path) + ".truth.json")
        truth_path.write_bytes(orjson.dumps(gen.truth(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    if truth_path is not None:
        truth = gen.truth()
        print(f"wrote {cfg.lines} lines to {args.out} and the truth to {truth_path}", file=sys.stderr)
        for inc in truth["incidents"]:
            spans = ", ".join(f"{w['window'][0]}-{w['window'][1]}: {w['incident_lines']}" for w in inc["windows"])
            cause = f"{inc['cause']['field']}={inc['cause']['value']}"
            print(f"  {inc['kind']} {inc['key']} caused by {cause} ({spans})", file=sys.stderr)
    return 0
