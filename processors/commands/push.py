"""`sieve push FILE|- --stream NAME [--format lines|json|cwl]`: put log lines onto Kinesis."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from processors.adapters import aws
from processors.errors import SieveError
from processors.runtime.push import PushResult, entries, put_all


def register(sub) -> None:
    p = sub.add_parser("push", help="put log lines (raw, JSON or CloudWatch-Logs-wrapped) onto a Kinesis stream")
    p.add_argument("file", help="input file (.gz ok), or - for stdin")
    p.add_argument("--stream", required=True, help="Kinesis stream name")
    p.add_argument("--format", choices=("lines", "json", "cwl"), default="lines")
    p.add_argument("--log-group", default="/sieve/access/nginx", help="cwl: the logGroup the payload names")
    p.add_argument("--log-stream", default="sieve-push", help="cwl: the logStream the payload names")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def open_lines(path: str):
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
    p = Path(path)
    if not p.exists():
        raise SieveError(f"{path}: no such file")
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8", errors="surrogateescape")
    return open(p, encoding="utf-8", errors="surrogateescape")


def push_file(path: str, stream: str, fmt: str, *, log_group: str = "/sieve/access/nginx", log_stream: str = "sieve-push",
              quiet: bool = True) -> PushResult:
    aws.use_local_credentials_if_missing()
    kinesis = aws.client("kinesis")
    try:
        kinesis.describe_stream_summary(StreamName=stream)
    except kinesis.exceptions.ResourceNotFoundException:
        raise SieveError(f"--stream {stream}: no such Kinesis stream at {kinesis.meta.endpoint_url} (run `sieve up`?)") from None
    owner = aws.account_id()
    result = PushResult()
    total = None
    if path != "-" and not quiet:
        with open_lines(path) as fh:
            total = sum(1 for line in fh if line.strip())
    with open_lines(path) as fh, Progress(
        TextColumn("pushing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=quiet, transient=True
    ) as progress:
        task = progress.add_task("push", total=total)
        items = entries(fh, fmt, result, log_group=log_group, log_stream=log_stream, owner=owner)
        put_all(kinesis, stream, items, result, on_progress=lambda n: progress.advance(task, n))
    return result


def run(args) -> int:
    r = push_file(args.file, args.stream, args.format, log_group=args.log_group, log_stream=args.log_stream,
                  quiet=args.quiet or not sys.stderr.isatty())
    print(f"lines {r.lines}, records {r.records}, sent {r.sent}, retried {r.retried}, failed {r.failed}, invalid {r.invalid}")
    for e in r.errors:
        print(f"  {e}", file=sys.stderr)
    return 1 if (r.failed or r.invalid) else 0
