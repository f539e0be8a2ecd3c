"""`sieve slack receive` runs a local Slack receiver (incoming webhooks and the Web API a bot token
uses); `sieve slack serve` serves the FAQ bot (the same slack-bolt app as the ask Lambda) on 127.0.0.1,
its replies going to a local receiver; `sieve slack ask "question"` sends it a signed @mention or
slash command, as Slack would; `sieve slack show FILE` renders a saved payload (a JSON payload, or the JSONL the receiver
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
    from processors.runtime.people_view import CONFIG_HELP

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

    serve = sub.add_parser("serve", help="serve the FAQ bot (/faq and @mentions; the ask Lambda's slack-bolt app) "
                                         "on 127.0.0.1; replies go to a local Slack receiver")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=3000, help="port (default 3000; 0: a free one)")
    serve.add_argument("--config", help="pipelines.yaml (default $SIEVE_CONFIG or ./pipelines.yaml)")
    serve.add_argument("--api-url", help="Slack Web API base URL for replies (default: $SLACK_API_URL, else a local "
                                         "receiver started here, whose bot token is used)")
    serve.add_argument("--out", default=".sieve/slack/serve.jsonl", help="the local receiver's JSONL (sieve slack show)")
    serve.add_argument("--usergroup", action="append", default=[], metavar="S1=U1,U2",
                       help="members of a user group in the local receiver (usergroups.users.list), repeatable")
    serve.add_argument("--no-model", action="store_true", help="list the relevant entries, call no model")
    serve.set_defaults(func=_serve)

    ask = sub.add_parser("ask", help="send a signed @mention (or --command) to `sieve slack serve`, as Slack would")
    ask.add_argument("question")
    ask.add_argument("--url", default="http://127.0.0.1:3000/slack/events", help="where `sieve slack serve` listens")
    ask.add_argument("--user", default="U0LOCALUSER", help="Slack user id of the asker")
    ask.add_argument("--channel", default="C0LOCALFAQ", help="channel id")
    ask.add_argument("--command", action="store_true", help="send the slash command (answer printed here) instead of a mention")
    ask.add_argument("--config", help="pipelines.yaml: the signing secret's name (default $SIEVE_CONFIG or ./pipelines.yaml)")
    ask.add_argument("--wait", type=float, default=300, help="seconds to wait for the slash command's answer")
    ask.set_defaults(func=_ask)

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


def _serve(args) -> int:
    import os

    from rich.console import Console

    from processors import wiring
    from processors.adapters import aws
    from processors.adapters.slack_app import serve
    from processors.config import load
    from processors.runtime.slack_receiver import SlackReceiver
    from processors.runtime.slack_terminal import conversations, people_view_of, show_conversations

    console = Console()
    loaded = load(args.config)
    aws.use_local_credentials_if_missing()
    receiver = None
    if not (args.api_url or os.environ.get("SLACK_API_URL")):
        receiver = SlackReceiver(out=args.out)
        for spec in args.usergroup:
            group, _, members = spec.partition("=")
            receiver.usergroups[group.strip()] = [m.strip() for m in members.split(",") if m.strip()]
        view = people_view_of(loaded.config)
        receiver.on_message = lambda record: show_conversations(
            conversations([{k: v for k, v in record.items() if k != "method"}]), console, view)
        receiver.start()
        os.environ["SLACK_API_URL"], os.environ["SLACK_BOT_TOKEN"] = receiver.api_url, receiver.bot_token
    elif args.api_url:
        os.environ["SLACK_API_URL"] = args.api_url
    try:
        app = wiring.ask_app(loaded, no_model=args.no_model)
        server = serve(app, args.host, args.port)
        if receiver is not None:  # the mentioned message exists in the local "Slack" too, so its thread can be answered
            server.set_app(_mirror_mentions(server.get_app(), receiver))
    except OSError as exc:
        if receiver:
            receiver.stop()
        raise SlackCommandError(f"cannot listen on {args.host}:{args.port}: {exc}; pick another --port") from exc
    except Exception:
        if receiver:
            receiver.stop()
        raise
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    worker.start()
    url = f"http://{args.host}:{server.server_address[1]}/slack/events"
    console.print(f"FAQ bot listening (slash command {app.command} and app_mention): {url}")
    console.print(f"replies go to {os.environ['SLACK_API_URL']}" + (f" (saved to {args.out})" if receiver else ""))
    console.print(f"try: sieve slack ask \"How do I reset my password?\" --url {url}")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        if receiver:
            receiver.stop()
    return 0


def signed_request(body: str, signing_secret: str, content_type: str, timestamp: int | None = None) -> dict:
    """Headers Slack would send with `body` (X-Slack-Signature v0 under the signing secret)."""
    import time

    from slack_sdk.signature import SignatureVerifier

    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=body)}


def mention_body(question: str, *, user: str, channel: str, bot_user: str = "U0LOCALBOT") -> str:
    """An Events API app_mention callback, as Slack delivers it."""
    import time
    import uuid

    ts = f"{time.time():.6f}"
    return json.dumps({
        "token": "local", "team_id": "T0LOCAL00", "api_app_id": "A0LOCAL00", "type": "event_callback",
        "event_id": "Ev" + uuid.uuid4().hex[:10].upper(), "event_time": int(float(ts)),
        "authorizations": [{"team_id": "T0LOCAL00", "user_id": bot_user, "is_bot": True}],
        "event": {"type": "app_mention", "user": user, "text": f"<@{bot_user}> {question}", "ts": ts, "channel": channel,
                  "event_ts": ts, "client_msg_id": str(uuid.uuid4())},
    }, ensure_ascii=False)


def _ask(args) -> int:
    from urllib.parse import urlencode

    import requests
    from rich.console import Console

    from processors.adapters import aws
    from processors.config import load
    from processors.runtime.slack_receiver import SlackReceiver
    from processors.runtime.slack_terminal import people_view_of, show

    loaded = load(args.config)
    faq = loaded.config.pipelines.faq
    if faq is None:
        raise SlackCommandError("pipelines.faq is not configured")
    aws.use_local_credentials_if_missing()
    secret = aws.Secrets().get(faq.slack_secret, faq.slack_signing_key)
    console = Console()
    if not args.command:
        body = mention_body(args.question, user=args.user, channel=args.channel)
        resp = requests.post(args.url, data=body.encode(), headers=signed_request(body, secret, "application/json"), timeout=10)
        console.print(f"mention sent: HTTP {resp.status_code}; the answer is posted in its thread "
                      "(shown by `sieve slack serve`)")
        return 0 if resp.status_code == 200 else 1
    with SlackReceiver() as rx:
        form = urlencode({"token": "local", "team_id": "T0LOCAL00", "channel_id": args.channel, "user_id": args.user,
                          "command": faq.slack_command, "text": args.question, "response_url": rx.url,
                          "trigger_id": "local"})
        resp = requests.post(args.url, data=form.encode(),
                             headers=signed_request(form, secret, "application/x-www-form-urlencoded"), timeout=10)
        console.print(f"{faq.slack_command} sent: HTTP {resp.status_code} {resp.text[:200]}")
        if resp.status_code != 200:
            return 1
        try:
            rx.wait_for(1, timeout=args.wait)
        except TimeoutError as exc:
            raise SlackCommandError(str(exc)) from None
        show(rx.accepted[:1], console, people_view_of(loaded.config))
    return 0


def _mirror_mentions(application, receiver):
    """WSGI middleware for the local receiver: a signed app_mention's message is added to the receiver as the
    person's message (Slack has it before it sends the event), so the bot's reply has a thread to go to."""
    import io

    def mirrored(environ, start_response):
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            doc = json.loads(body) if body[:1] == b"{" else None
        except ValueError:
            doc = None
        event = (doc or {}).get("event") or {}
        if event.get("type") == "app_mention" and event.get("channel") and event.get("ts") and not any(
                m.ts == event["ts"] for m in receiver.messages):
            receiver.user_message(str(event["channel"]), str(event["ts"]), str(event.get("text") or ""),
                                  str(event.get("user") or ""))
        return application(environ, start_response)

    return mirrored
