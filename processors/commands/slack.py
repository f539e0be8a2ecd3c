"""`sieve slack receive` runs a local Slack receiver (incoming webhooks and the Web API a bot token
uses); `sieve slack show FILE` renders a saved payload (a JSON payload, or the JSONL the receiver
writes) in the terminal, Web API messages as threads: the parent, then its replies indented.

What is rendered passes the same secret redaction as Slack itself (processors/core/surfaces.py), with
the patterns of pipelines.yaml: payloads Sieve posted are clean already, this is belt and braces for
files from elsewhere. The saved files themselves are not rewritten."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

from processors.errors import SieveError


class SlackCommandError(SieveError):
    exit_code = 1


def register(subparsers) -> None:
    from processors.runtime.slack_terminal import CONFIG_HELP

    parser = subparsers.add_parser("slack", help="local Slack receiver (webhook and Web API) and payload viewer")
    sub = parser.add_subparsers(dest="slack_command", metavar="SUBCOMMAND")
    sub.required = True

    receive = sub.add_parser("receive", help="run a local Slack receiver: incoming webhooks and chat.postMessage / "
                                            "chat.update with a bot token (Ctrl-C stops it)")
    receive.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    receive.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    receive.add_argument("--out", help="append every accepted payload to this JSONL file")
    receive.add_argument("--quiet", action="store_true", help="do not render accepted payloads")
    receive.add_argument("--config", help=CONFIG_HELP)
    receive.add_argument("--fail-first", type=int, default=0, metavar="N",
                         help="answer the first N posts with --fail-status (to try retries)")
    receive.add_argument("--fail-status", type=int, default=429, choices=(429, 500, 503))
    receive.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds sent with 429")
    receive.set_defaults(func=_receive)

    show = sub.add_parser("show", help="render a saved Block Kit payload in the terminal")
    show.add_argument("file", help="a webhook payload (.json) or a receiver log (.jsonl)")
    show.add_argument("--all", action="store_true",
                      help="for a .jsonl log: show every payload (every thread), not only the last")
    show.add_argument("--config", help=CONFIG_HELP)
    show.set_defaults(func=_show)


def _receive(args) -> int:
    from rich.console import Console

    from processors.runtime.slack_receiver import SlackReceiver
    from processors.runtime.slack_terminal import people_view, show, show_conversations, conversations

    console = Console()
    view = people_view(args.config)
    receiver = SlackReceiver(host=args.host, port=args.port, out=args.out)
    if not args.quiet:
        receiver.on_accept = lambda payload: show([payload], console, view)
        receiver.on_message = lambda record: (
            console.print(f"[bold blue]{record['method']}[/] {record['channel']} {record['ts']}"
                          + (f" in thread {record['thread_ts']}" if record.get("thread_ts") else "")),
            show_conversations(conversations([{k: v for k, v in record.items() if k != "method"}]), console, view))
    if args.fail_first:
        receiver.fail_next(args.fail_first, args.fail_status, retry_after=args.retry_after if args.fail_status == 429 else None)
    stop = threading.Event()
    # before anything is printed: whoever reads the URL may `kill PID` at once, and must get a clean stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        receiver.start()
    except OSError as exc:
        raise SlackCommandError(f"cannot listen on {args.host}:{args.port}: {exc}; pick another --port") from exc
    console.print(f"Slack receiver listening; webhook URL:\n  {receiver.url}")
    console.print(f"Web API (SLACK_API_URL): {receiver.api_url}  bot token (SLACK_BOT_TOKEN): {receiver.bot_token}")
    if args.out:
        console.print(f"accepted payloads are appended to {args.out}")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        console.print(f"stopped after {len(receiver.requests)} request(s), {len(receiver.accepted)} accepted")
    return 0


def load_payloads(path: Path) -> list[dict]:
    """Payloads from a single JSON payload file or a receiver JSONL log (`{"payload": ...}` lines)."""
    return [r.get("payload", r) if "blocks" not in r and "text" not in r else r for r in load_records(path)]


def load_records(path: Path) -> list[dict]:
    """The records of a single JSON payload file or a receiver JSONL log, as saved (Web API records keep
    `method`, `channel`, `ts`, `thread_ts`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SlackCommandError(f"{path}: no such file; pass a payload .json or the --out file of `sieve slack receive`") from None
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict):
        return [whole]
    payloads = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise SlackCommandError(f"{path}:{n}: not JSON ({exc}); expected one payload per line") from None
        if not isinstance(item, dict):
            raise SlackCommandError(f"{path}:{n}: expected a JSON object, got {type(item).__name__}")
        payloads.append(item)
    if not payloads:
        raise SlackCommandError(f"{path}: no payload found (empty file?)")
    return payloads


def _show(args) -> int:
    from processors.runtime.slack_terminal import conversations, people_view, show_conversations

    view = people_view(args.config)
    convs = conversations(load_records(Path(args.file)))
    show_conversations(convs if args.all else [max(convs, key=lambda c: c.last_seen)], view=view)
    return 0
