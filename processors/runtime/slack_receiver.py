"""A local Slack receiver: incoming webhooks and the Web API, real HTTP on loopback, validation like Slack's.

Webhooks: it accepts POSTs at ``/services/...``, checks the payload the way Slack does (JSON object,
``text`` or ``blocks``, at most 50 blocks, section text at most 3,000 chars, header at most 150, ...)
and answers ``200 ok`` or ``400 <error>``. Accepted payloads are kept in `accepted`.

Web API (a bot token): ``POST /api/chat.postMessage`` and ``/api/chat.update`` (JSON or form bodies)
with ``Authorization: Bearer <bot_token>`` answer like Slack, HTTP 200 with ``{"ok": true, "channel":
<id>, "ts": <ts>, "message": ...}`` or ``{"ok": false, "error": ...}`` (``not_authed``, ``invalid_auth``,
``channel_not_found``, ``no_text``, ``invalid_blocks``, ``message_not_found``; and, stricter than Slack,
``thread_not_found`` for a thread_ts that is not a parent message here). ``auth.test`` answers for the bot (user ``U0LOCALBOT``) and
``usergroups.users.list`` (GET or POST, ``usergroup=``) the members set in `usergroups` (``{"S1": ["U1"]}``;
an unknown group is ``no_such_subteam``). Channel names get stable ids
(`channel_id`). Messages are kept in `messages` (replies point at their parent, updates replace the
payload and are counted) and `threads()` gives each parent with its replies. File uploads work the way
slack_sdk's ``files_upload_v2`` makes them (``files.getUploadURLExternal``, the bytes POSTed to the
upload URL it returns, ``files.completeUploadExternal`` into a channel or thread, shared there as a
message); the files are kept in `files`.

With ``out=`` every accepted webhook payload and Web API message is appended to a JSONL file
(``{"received_at", "payload"}``, plus ``method``, ``channel``, ``ts``, ``thread_ts`` for the Web API),
which `sieve slack show` renders (threads as parent, then replies indented). Tests script it to answer
429 (with ``Retry-After``) or 5xx for the next N requests, and read the arrival time of every request
from `requests`.

    with SlackReceiver() as rx:
        notifier = SlackWebhookNotifier(webhook_url=rx.url, ...)      # or
        notifier = SlackBotNotifier(token=rx.bot_token, api_url=rx.api_url, channel="#oncall", ...)
        ...
        assert len(rx.accepted) == 1 / [len(replies) for _, replies in rx.threads()] == [1]

Also `sieve slack receive [--port] [--out FILE]`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

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
ACTION_ELEMENTS = 25
BUTTON_TEXT = 75
ACTION_ID = 255
BUTTON_VALUE = 2000
API_METHODS = ("chat.postMessage", "chat.update", "auth.test", "usergroups.users.list")
BOT_USER_ID = "U0LOCALBOT"
BOT_ID = "B0LOCALBOT"
TEAM_ID = "T0LOCAL00"
#: file uploads the way slack_sdk's files_upload_v2 makes them: ask for an upload URL, POST the bytes to
#: it, then complete the upload into a channel (and thread), which shares the file as a message there
FILE_METHODS = ("files.getUploadURLExternal", "files.completeUploadExternal")
MAX_UPLOAD_BYTES = 1_000_000_000
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")


class PayloadRejected(ValueError):
    """Why Slack would refuse a payload: `error` is the body Slack answers with."""

    def __init__(self, error: str, detail: str):
        self.error = error
        self.detail = detail
        super().__init__(f"{error}: {detail}")


def validate_payload(body: bytes | dict) -> dict:
    """The parsed payload, or PayloadRejected with Slack's error code."""
    try:
        payload = body if isinstance(body, dict) else json.loads(body)
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
    if kind == "actions":
        _check_actions(where, block.get("elements"))
    return 0


def _check_actions(where: str, elements: object) -> None:
    if not isinstance(elements, list) or not 1 <= len(elements) <= ACTION_ELEMENTS:
        raise PayloadRejected("invalid_blocks", f"{where}.elements: 1 to {ACTION_ELEMENTS} elements")
    ids: set[str] = set()
    for j, e in enumerate(elements):
        at = f"{where}.elements[{j}]"
        if not isinstance(e, dict) or not isinstance(e.get("type"), str):
            raise PayloadRejected("invalid_blocks", f"{at} must be an object with a type")
        action_id = e.get("action_id")
        if action_id is not None:
            if not isinstance(action_id, str) or not 0 < len(action_id) <= ACTION_ID or action_id in ids:
                raise PayloadRejected("invalid_blocks", f"{at}.action_id must be a unique string of at most {ACTION_ID} chars")
            ids.add(action_id)
        if e["type"] != "button":
            continue
        _check_text(f"{at}.text", e.get("text"), BUTTON_TEXT, types={"plain_text"})
        if "value" in e and (not isinstance(e["value"], str) or len(e["value"]) > BUTTON_VALUE):
            raise PayloadRejected("invalid_blocks", f"{at}.value must be a string of at most {BUTTON_VALUE} chars")
        if e.get("style") not in (None, "primary", "danger"):
            raise PayloadRejected("invalid_blocks", f"{at}.style must be primary or danger")


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


@dataclass
class ApiMessage:
    """A message posted through the Web API; `payload` is its latest text/blocks (chat.update replaces it)."""

    channel: str
    ts: str
    payload: dict
    thread_ts: str | None = None
    updates: int = 0
    versions: list = field(default_factory=list)  # every payload it had, oldest first


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
        self.bot_token = f"xoxb-local-{self.token}"
        self.requests: list[ReceivedRequest] = []
        self.accepted: list[dict] = []
        self.messages: list[ApiMessage] = []
        self.api_calls: list[tuple[str, dict]] = []  # (method, arguments) of every authorised Web API call
        self.usergroups: dict[str, list[str]] = {}  # user group id -> member ids (usergroups.users.list)
        self.files: dict[str, dict] = {}  # file id -> {filename, title, alt_txt, length, data, channel, thread_ts}
        self._seq = 0
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.on_accept = None  # optional callable(payload) run for each accepted payload
        self.on_message = None  # optional callable(record) run for each Web API message (the JSONL record)

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
                if self.path.startswith("/api/"):  # Web API methods slack-sdk calls with GET (usergroups.users.list)
                    path, _, query = self.path.partition("?")
                    status, answer, headers = receiver._handle(path, query.encode(), {
                        **dict(self.headers.items()), "Content-Type": "application/x-www-form-urlencoded"})
                    self._reply(status, answer, headers)
                    return
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
    def api_url(self) -> str:
        """The Web API base URL (what slack-sdk's WebClient takes as base_url)."""
        return f"{self.base_url}/api/"

    @staticmethod
    def channel_id(channel: str) -> str:
        """The id a channel name gets here (an id stays itself), stable across runs."""
        name = channel.lstrip("#")
        if _CHANNEL_ID.match(name):
            return name
        return "C" + hashlib.sha256(name.encode()).hexdigest()[:10].upper()

    def threads(self) -> list[tuple[ApiMessage, list[ApiMessage]]]:
        """Every top-level message with its replies, in posting order."""
        with self._lock:
            parents = [m for m in self.messages if m.thread_ts is None]
            return [(p, [m for m in self.messages if m.thread_ts == p.ts and m.channel == p.channel]) for p in parents]

    @property
    def url(self) -> str:
        """A webhook URL shaped like Slack's; the random last segment stands in for the secret."""
        return f"{self.base_url}/services/T0LOCAL00/B0LOCAL00/{self.token}"

    def user_message(self, channel: str, ts: str, text: str, user: str = "") -> None:
        """A message a person wrote (Slack has it; no bot posted it): replies may use its ts as thread_ts.
        Saved like a Web API message (method "message") so that `sieve slack show` renders the thread."""
        payload = {"text": text, **({"user": user} if user else {})}
        record = {"method": "message", "channel": self.channel_id(channel), "ts": ts, "thread_ts": None, "payload": payload}
        with self._lock:
            self.messages.append(ApiMessage(record["channel"], ts, payload, None, 0, [payload]))
            self._write(record)
        if self.on_message is not None:
            self.on_message(record)

    # --- scripting ------------------------------------------------------------------------

    def fail_next(self, n: int, status: int, *, retry_after: int | None = None, body: str | None = None) -> None:
        """Answer the next `n` POSTs with `status` (e.g. 429 with Retry-After, or 500)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        # "" for 429: a webhook answers rate_limited, the Web API ratelimited (chosen per request)
        default = {429: "", 500: "internal_error", 503: "service_unavailable"}.get(status, "error")
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
        if path.startswith("/api/"):
            return self._handle_api(arrived, path, body, headers)
        if path.startswith("/upload/v1/"):
            return self._handle_upload(arrived, path, body, headers)
        if not path.startswith("/services/"):
            status, answer, extra = 404, "no_service", {}
        else:
            with self._lock:
                scripted = self._script.popleft() if self._script else None
            if scripted is not None:
                status, answer, extra = scripted.status, scripted.body or "rate_limited", dict(scripted.headers)
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

    # --- the Web API ----------------------------------------------------------------------

    def _handle_api(self, arrived: float, path: str, body: bytes, headers: dict) -> tuple[int, str, dict]:
        if self.delay:
            time.sleep(self.delay)
        method = path[len("/api/"):].split("?", 1)[0]
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        args: dict | None = None
        record = None
        if scripted is not None:
            status, extra = scripted.status, dict(scripted.headers)
            answer = json.dumps({"ok": False, "error": scripted.body or "ratelimited"})
        else:
            status, extra = 200, {}
            try:
                args = _api_args(body, headers)
                with self._lock:
                    result, record = self._api_call(method, args, headers)
            except PayloadRejected as exc:
                result = {"ok": False, "error": exc.error, "detail": exc.detail[:200]}
            answer = json.dumps(result)
        extra["Content-Type"] = "application/json; charset=utf-8"
        with self._arrived:
            self.requests.append(ReceivedRequest(arrived, path, status, answer, args, headers))
            if record is not None:
                self._write(record)
            self._arrived.notify_all()
        if record is not None and self.on_message is not None:
            self.on_message(record)
        return status, answer, extra

    def _api_call(self, method: str, args: dict, headers: dict) -> tuple[dict, dict | None]:
        """Slack's answer and the record to save; called with the lock held."""
        auth = str(headers.get("Authorization") or headers.get("authorization") or "")
        token = auth[7:] if auth.lower().startswith("bearer ") else str(args.get("token") or "")
        if not token:
            return {"ok": False, "error": "not_authed"}, None
        if token != self.bot_token:
            return {"ok": False, "error": "invalid_auth"}, None
        if method in FILE_METHODS:
            self.api_calls.append((method, args))
            return self._file_call(method, args)
        if method not in API_METHODS:
            return {"ok": False, "error": "unknown_method"}, None
        self.api_calls.append((method, args))
        if method == "auth.test":
            return {"ok": True, "url": f"{self.base_url}/", "team": "Sieve local", "user": "sieve", "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False}, None
        if method == "usergroups.users.list":
            group = str(args.get("usergroup") or "")
            if group not in self.usergroups:
                return {"ok": False, "error": "no_such_subteam"}, None
            return {"ok": True, "users": list(self.usergroups[group])}, None
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}, None
        channel = self.channel_id(str(args["channel"]))
        payload = validate_payload({k: args[k] for k in ("text", "blocks", "attachments") if k in args})
        thread_ts = args.get("thread_ts") or None
        if method == "chat.update":
            found = next((m for m in self.messages if m.channel == channel and m.ts == args.get("ts")), None)
            if found is None:
                return {"ok": False, "error": "message_not_found"}, None
            found.payload, found.updates = payload, found.updates + 1
            found.versions.append(payload)
            return ({"ok": True, "channel": channel, "ts": found.ts, "text": payload.get("text", ""), "message": payload},
                    {"method": method, "channel": channel, "ts": found.ts, "thread_ts": found.thread_ts, "payload": payload})
        if thread_ts is not None and not any(m.channel == channel and m.ts == thread_ts and m.thread_ts is None
                                             for m in self.messages):
            return {"ok": False, "error": "thread_not_found"}, None
        self._seq += 1
        ts = f"{int(time.time())}.{self._seq:06d}"
        self.messages.append(ApiMessage(channel, ts, payload, thread_ts, 0, [payload]))
        message = {"type": "message", "ts": ts, **({"thread_ts": thread_ts} if thread_ts else {}), **payload}
        return ({"ok": True, "channel": channel, "ts": ts, "message": message},
                {"method": method, "channel": channel, "ts": ts, "thread_ts": thread_ts, "payload": payload})

    def _file_call(self, method: str, args: dict) -> tuple[dict, dict | None]:
        """files.getUploadURLExternal / files.completeUploadExternal, as Slack answers them; lock held."""
        if method == "files.getUploadURLExternal":
            try:
                length = int(args.get("length", ""))
            except ValueError:
                return {"ok": False, "error": "invalid_arguments"}, None
            if not args.get("filename") or not 0 < length <= MAX_UPLOAD_BYTES:
                return {"ok": False, "error": "invalid_arguments"}, None
            self._seq += 1
            file_id = f"F{self._seq:010d}"
            self.files[file_id] = {"filename": str(args["filename"]), "title": None, "length": length, "data": None,
                                   "alt_txt": args.get("alt_txt"), "channel": None, "thread_ts": None}
            return {"ok": True, "upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}, None
        try:
            files = json.loads(args["files"]) if isinstance(args.get("files"), str) else args.get("files")
        except ValueError:
            files = None
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) and f.get("id") for f in files):
            return {"ok": False, "error": "invalid_arguments"}, None
        known = [self.files.get(str(f["id"])) for f in files]
        if any(k is None or k["data"] is None for k in known):  # never uploaded: Slack says so too
            return {"ok": False, "error": "file_not_found"}, None
        channel = self.channel_id(str(args["channel_id"])) if args.get("channel_id") else None
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None and (channel is None or not any(
                m.channel == channel and m.ts == thread_ts and m.thread_ts is None for m in self.messages)):
            return {"ok": False, "error": "thread_not_found"}, None
        shown = []
        for f, k in zip(files, known):
            k.update(title=f.get("title") or k["filename"], channel=channel, thread_ts=thread_ts)
            shown.append({"id": f["id"], "name": k["filename"], "title": k["title"], "size": len(k["data"])})
        if channel is None:  # uploaded privately, shared nowhere
            return {"ok": True, "files": shown}, None
        self._seq += 1
        ts = f"{int(time.time())}.{self._seq:06d}"
        payload = {"text": " ".join(f":frame_with_picture: {s['title']} ({s['name']}, {s['size']:,} bytes)" for s in shown)}
        self.messages.append(ApiMessage(channel, ts, payload, thread_ts, 0, [payload]))
        return ({"ok": True, "files": shown},
                {"method": method, "channel": channel, "ts": ts, "thread_ts": thread_ts, "payload": payload,
                 "files": [{**s, "alt_txt": self.files[s["id"]]["alt_txt"]} for s in shown]})

    def _handle_upload(self, arrived: float, path: str, body: bytes, headers: dict) -> tuple[int, str, dict]:
        """The upload URL files.getUploadURLExternal handed out: the bytes, exactly `length` of them."""
        file_id = path[len("/upload/v1/"):].split("?", 1)[0]
        with self._arrived:
            entry = self.files.get(file_id)
            if entry is None:
                status, answer = 404, "file_not_found"
            elif entry["data"] is not None or len(body) != entry["length"]:
                status, answer = 400, "bad_upload"
            else:
                entry["data"] = bytes(body)
                status, answer = 200, f"OK - {len(body)}"
            self.requests.append(ReceivedRequest(arrived, path, status, answer, None, headers))
            self._arrived.notify_all()
        return status, answer, {"Content-Type": "text/plain; charset=utf-8"}

    def _save(self, payload: dict) -> None:
        self._write({"payload": payload})

    def _write(self, record: dict) -> None:
        if self.out is None:
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"received_at": datetime.now(timezone.utc).isoformat(), **record}, ensure_ascii=False)
        with self.out.open("a", encoding="utf-8") as f:
            f.write(line + "\n")


def _api_args(body: bytes, headers: dict) -> dict:
    """A Web API call's arguments from a JSON or a form body (where blocks is a JSON string)."""
    kind = str(headers.get("Content-Type") or headers.get("content-type") or "")
    try:
        if "json" in kind:
            args = json.loads(body or b"{}")
        else:
            args = {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
            for k in ("blocks", "attachments"):
                if isinstance(args.get(k), str):
                    args[k] = json.loads(args[k])
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadRejected("invalid_json", f"body is not JSON or a form: {exc}") from None
    if not isinstance(args, dict):
        raise PayloadRejected("invalid_json", "arguments must be an object")
    return args
