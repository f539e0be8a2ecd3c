"""A local Slack incoming-webhook receiver: real HTTP on loopback, validation like Slack's.

It accepts POSTs at ``/services/...``, checks the payload the way Slack does (JSON object, ``text``
or ``blocks``, at most 50 blocks, section text at most 3,000 chars, header at most 150, ...) and
answers ``200 ok`` or ``400 <error>``. Accepted payloads are kept in memory and, with ``out=``,
appended to a JSONL file. Tests script it to answer 429 (with ``Retry-After``) or 5xx for the next N
requests, and read the arrival time of every request from `requests`.

    with SlackReceiver() as rx:
        notifier = SlackWebhookNotifier(webhook_url=rx.url, ...)
        ...
        assert len(rx.accepted) == 1

Also `sieve slack receive [--port] [--out FILE]`.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Slack's limits (research/reference-systems.md section 6). Checked independently of the renderer,
# so the receiver is an oracle for it, not a copy of it.
MAX_BLOCKS = 50
SECTION_TEXT = 3000
SECTION_FIELDS = 10
FIELD_TEXT = 2000
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
BLOCK_ID = 255
TOTAL_BLOCK_TEXT = 13_200  # Slack's undocumented msg_blocks_too_long threshold (bolt-js#2509)
KNOWN_BLOCKS = {"section", "header", "context", "divider", "image", "actions", "rich_text", "markdown", "file", "video", "input"}
TEXT_TYPES = {"plain_text", "mrkdwn"}


class PayloadRejected(ValueError):
    """Why Slack would refuse a payload: `error` is the body Slack answers with."""

    def __init__(self, error: str, detail: str):
        self.error = error
        self.detail = detail
        super().__init__(f"{error}: {detail}")


def validate_payload(body: bytes) -> dict:
    """The parsed payload, or PayloadRejected with Slack's error code."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadRejected("invalid_payload", f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadRejected("invalid_payload", f"body must be a JSON object, got {type(payload).__name__}")
    text, blocks = payload.get("text"), payload.get("blocks")
    if text is not None and not isinstance(text, str):
        raise PayloadRejected("invalid_payload", "text must be a string")
    if not text and not blocks and not payload.get("attachments"):
        raise PayloadRejected("no_text", "neither text nor blocks given")
    if blocks is None:
        return payload
    if not isinstance(blocks, list):
        raise PayloadRejected("invalid_blocks", "blocks must be an array")
    if len(blocks) > MAX_BLOCKS:
        raise PayloadRejected("invalid_blocks", f"{len(blocks)} blocks, at most {MAX_BLOCKS} allowed")
    total = 0
    for i, block in enumerate(blocks):
        total += _check_block(i, block)
    if total > TOTAL_BLOCK_TEXT:
        raise PayloadRejected("msg_blocks_too_long", f"blocks carry {total} characters of text, more than {TOTAL_BLOCK_TEXT}")
    return payload


def _check_block(i: int, block: object) -> int:
    where = f"blocks[{i}]"
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise PayloadRejected("invalid_blocks", f"{where} must be an object with a type")
    kind = block["type"]
    if kind not in KNOWN_BLOCKS:
        raise PayloadRejected("invalid_blocks", f"{where}: unknown block type {kind!r}")
    if "block_id" in block and (not isinstance(block["block_id"], str) or len(block["block_id"]) > BLOCK_ID):
        raise PayloadRejected("invalid_blocks", f"{where}.block_id must be a string of at most {BLOCK_ID} chars")
    if kind == "header":
        return _check_text(f"{where}.text", block.get("text"), HEADER_TEXT, types={"plain_text"})
    if kind == "section":
        n = 0
        if block.get("text") is None and not block.get("fields"):
            raise PayloadRejected("invalid_blocks", f"{where}: a section needs text or fields")
        if block.get("text") is not None:
            n += _check_text(f"{where}.text", block["text"], SECTION_TEXT)
        fields = block.get("fields") or []
        if not isinstance(fields, list) or len(fields) > SECTION_FIELDS:
            raise PayloadRejected("invalid_blocks", f"{where}.fields: at most {SECTION_FIELDS} text objects")
        for j, f in enumerate(fields):
            n += _check_text(f"{where}.fields[{j}]", f, FIELD_TEXT)
        return n
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS:
            raise PayloadRejected("invalid_blocks", f"{where}.elements: 1 to {CONTEXT_ELEMENTS} elements")
        return sum(
            _check_text(f"{where}.elements[{j}]", e, SECTION_TEXT)
            for j, e in enumerate(elements)
            if not (isinstance(e, dict) and e.get("type") == "image")
        )
    return 0


def _check_text(where: str, obj: object, limit: int, types: set[str] = TEXT_TYPES) -> int:
    if not isinstance(obj, dict) or obj.get("type") not in types:
        raise PayloadRejected("invalid_blocks", f"{where} must be a text object of type {' or '.join(sorted(types))}")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise PayloadRejected("invalid_blocks", f"{where}.text must be a non-empty string")
    if len(text) > limit:
        raise PayloadRejected("invalid_blocks", f"{where}.text has {len(text)} chars, more than {limit}")
    return len(text)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as it arrived: `at` is time.monotonic() at arrival (compare with each other)."""

    at: float
    path: str
    status: int
    answer: str
    payload: dict | None = None
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Scripted:
    status: int
    body: str
    headers: dict


class SlackReceiver:
    """A local webhook endpoint. Start with `start()` or `with`; stop with `stop()`."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, out: str | Path | None = None, delay: float = 0.0):
        self.host = host
        self.port = port
        self.out = Path(out) if out else None
        self.delay = delay  # seconds to wait before answering each request (to widen races in tests)
        self.token = secrets.token_hex(12)
        self.requests: list[ReceivedRequest] = []
        self.accepted: list[dict] = []
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.on_accept = None  # optional callable(payload) run for each accepted payload

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> SlackReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "SieveSlackReceiver/1"

            def do_POST(self):  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer, headers = receiver._handle(self.path, body, dict(self.headers.items()))
                self._reply(status, answer, headers)

            def do_GET(self):  # noqa: N802
                with receiver._lock:
                    info = {"accepted": len(receiver.accepted), "requests": len(receiver.requests)}
                self._reply(200, json.dumps(info), {"Content-Type": "application/json"})

            def _reply(self, status: int, answer: str, headers: dict):
                data = answer.encode()
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "text/html"))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args):  # noqa: A002 - quiet: tests read `requests`
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="slack-receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SlackReceiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """A webhook URL shaped like Slack's; the random last segment stands in for the secret."""
        return f"{self.base_url}/services/T0LOCAL00/B0LOCAL00/{self.token}"

    # --- scripting ------------------------------------------------------------------------

    def fail_next(self, n: int, status: int, *, retry_after: int | None = None, body: str | None = None) -> None:
        """Answer the next `n` POSTs with `status` (e.g. 429 with Retry-After, or 500)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        default = {429: "rate_limited", 500: "internal_error", 503: "service_unavailable"}.get(status, "error")
        with self._lock:
            self._script.extend(_Scripted(status, body or default, dict(headers)) for _ in range(n))

    def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until at least `n` requests arrived (any status); returns them."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= n, timeout):
                raise TimeoutError(f"slack receiver: {len(self.requests)} request(s) arrived, expected {n} within {timeout}s")
            return list(self.requests)

    # --- request handling -----------------------------------------------------------------

    def _handle(self, path: str, body: bytes, headers: dict) -> tuple[int, str, dict]:
        arrived = time.monotonic()
        if self.delay:
            time.sleep(self.delay)
        payload: dict | None = None
        if not path.startswith("/services/"):
            status, answer, extra = 404, "no_service", {}
        else:
            with self._lock:
                scripted = self._script.popleft() if self._script else None
            if scripted is not None:
                status, answer, extra = scripted.status, scripted.body, dict(scripted.headers)
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
            else:
                try:
                    payload = validate_payload(body)
                    status, answer, extra = 200, "ok", {}
                except PayloadRejected as exc:
                    status, answer, extra = 400, exc.error, {"X-Sieve-Detail": exc.detail[:200]}
        with self._arrived:
            self.requests.append(ReceivedRequest(arrived, path, status, answer, payload, headers))
            if status == 200 and payload is not None:
                self.accepted.append(payload)
                self._save(payload)
            self._arrived.notify_all()
        if status == 200 and self.on_accept is not None:
            self.on_accept(payload)
        return status, answer, extra

    def _save(self, payload: dict) -> None:
        if self.out is None:
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"received_at": datetime.now(timezone.utc).isoformat(), "payload": payload}, ensure_ascii=False)
        with self.out.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
