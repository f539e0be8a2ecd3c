"""Fault injection for the local stack: proxies that misbehave on purpose, and a scripted model server.

Used by bench/bench_faults.py (the full run) and tests/faults/ (a reduced, seeded run); both drive the
real local stack through these pieces:

* `AwsFaultProxy`: an HTTP reverse proxy in front of the moto server (AWS_ENDPOINT_URL points at it).
  Per operation (Kinesis_20131202.PutRecords, DynamoDB_20120810.TransactWriteItems, ...) it answers,
  with a seeded probability, the way AWS answers when things go wrong: throttling errors with the
  real error codes and bodies of each service (Kinesis ProvisionedThroughputExceededException,
  DynamoDB ThrottlingException / ProvisionedThroughputExceededException), 500/503, a connection reset
  before the request reaches the emulator or AFTER it was applied (the client cannot tell whether
  it happened), slow answers, expired shard iterators (ExpiredIteratorException on GetRecords), and
  PutRecords calls in which some records fail (per-record ErrorCode, those records not written).
* `TcpFaultProxy`: a TCP forwarder that can refuse connections for a while (an OpenSearch node that
  went away) or hold the next requests without answering (a Slack webhook that hangs past the
  client's timeout), and otherwise passes bytes through.
* `python -m processors.runtime.faults model-server PORT LOG SEED`: the local bedrock-runtime endpoint
  (processors/runtime/bedrock_local.py) with a scripted chat model: per request, seeded, a well-formed
  answer, garbage, or a slow answer (during which the harness SIGKILLs the server: killed mid-answer).
  Every prompt it receives is written to LOG, so a harness can check no secret reached a model.

Nothing here is used by the pipeline itself; it only stands between the pipeline and its services.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import select
import socket
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

log = logging.getLogger("sieve.faults")

KINDS = ("throttle", "error5xx", "reset_before", "reset_after", "slow", "expired_iterator", "partial")

# The error bodies AWS sends (JSON protocol: `__type` and `message`), per service prefix of X-Amz-Target.
_KINESIS_THROTTLE = ("ProvisionedThroughputExceededException",
                     "Rate exceeded for shard {shard} in stream {stream} under account 123456789012.")
_DDB_THROTTLES = (
    ("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
     "The level of configured provisioned throughput for the table was exceeded. Consider increasing your "
     "provisioning level with the UpdateTable API."),
    ("com.amazon.coral.availability#ThrottlingException", "Rate of requests exceeds the allowed throughput."),
)
_CONTENT_TYPE = {"Kinesis_20131202": "application/x-amz-json-1.1", "DynamoDB_20120810": "application/x-amz-json-1.0",
                 "DynamoDBStreams_20120810": "application/x-amz-json-1.0"}


@dataclass
class FaultRule:
    """Inject `kind` into calls of `op` ("Service.Operation", or "*" for any) with probability `p`."""

    op: str
    kind: str
    p: float
    slow_seconds: tuple[float, float] = (0.3, 1.5)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r}: one of {', '.join(KINDS)}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"fault probability {self.p!r}: between 0 and 1")


def default_rules(scale: float = 1.0) -> list[FaultRule]:
    """The fault mix of the harness: every kind on the calls where it happens on AWS."""
    s = scale
    return [
        FaultRule("Kinesis.PutRecords", "throttle", 0.05 * s),
        FaultRule("Kinesis.PutRecords", "partial", 0.10 * s),
        FaultRule("Kinesis.PutRecords", "reset_before", 0.02 * s),
        FaultRule("Kinesis.GetRecords", "throttle", 0.05 * s),
        FaultRule("Kinesis.GetRecords", "expired_iterator", 0.05 * s),
        FaultRule("Kinesis.GetRecords", "error5xx", 0.03 * s),
        FaultRule("Kinesis.GetRecords", "reset_after", 0.02 * s),
        FaultRule("DynamoDBStreams.GetRecords", "expired_iterator", 0.05 * s),
        FaultRule("DynamoDBStreams.GetRecords", "error5xx", 0.03 * s),
        FaultRule("DynamoDB.TransactWriteItems", "throttle", 0.08 * s),
        FaultRule("DynamoDB.TransactWriteItems", "error5xx", 0.03 * s),
        FaultRule("DynamoDB.TransactWriteItems", "reset_after", 0.03 * s),
        FaultRule("DynamoDB.TransactWriteItems", "reset_before", 0.02 * s),
        FaultRule("DynamoDB.PutItem", "throttle", 0.08 * s),
        FaultRule("DynamoDB.PutItem", "error5xx", 0.03 * s),
        FaultRule("DynamoDB.PutItem", "reset_after", 0.03 * s),
        FaultRule("DynamoDB.UpdateItem", "throttle", 0.05 * s),
        FaultRule("DynamoDB.Query", "error5xx", 0.02 * s),
        FaultRule("*", "slow", 0.02 * s, (0.2, 1.0)),
    ]


def _rst_close(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a dropped connection looks to the client."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def operation_of(headers) -> tuple[str, str]:
    """("Kinesis", "PutRecords") from X-Amz-Target; ("", "") for other protocols."""
    target = headers.get("X-Amz-Target") or ""
    prefix, _, op = target.partition(".")
    service = {"Kinesis_20131202": "Kinesis", "DynamoDB_20120810": "DynamoDB",
               "DynamoDBStreams_20120810": "DynamoDBStreams"}.get(prefix, prefix.split("_")[0])
    return service, op


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up (timed out, was SIGKILLed) is part of the game, not an error to print."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        log.debug("fault proxy: connection from %s ended early", client_address, exc_info=True)


class AwsFaultProxy:
    """An HTTP reverse proxy to `upstream` that injects AWS faults while `enabled`."""

    def __init__(self, upstream: str, *, rules: list[FaultRule] | None = None, seed: int = 0,
                 host: str = "127.0.0.1", port: int = 0):
        u = urlparse(upstream)
        self.upstream = (u.hostname or "127.0.0.1", u.port or 80)
        self.rules = list(rules if rules is not None else default_rules())
        self.rng = random.Random(seed)
        self.enabled = False
        self.counts: Counter[str] = Counter()  # "Service.Op:kind" -> injected
        self.calls: Counter[str] = Counter()  # "Service.Op" -> requests seen
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # noqa: A002
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any  # noqa: N815

        self._server = _QuietServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        h, p = self._server.server_address[:2]
        return f"http://{h}:{p}"

    def start(self) -> AwsFaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="aws-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AwsFaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- decisions -----------------------------------------------------------------------

    def _choose(self, op: str) -> FaultRule | None:
        if not self.enabled:
            return None
        with self._lock:
            self.calls[op] += 1
            for rule in self.rules:
                if rule.op not in (op, "*"):
                    continue
                if self.rng.random() < rule.p:
                    self.counts[f"{op}:{rule.kind}"] += 1
                    return rule
        return None

    # -- the request ----------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        service, op_name = operation_of(h.headers)
        op = f"{service}.{op_name}" if op_name else f"{h.command} {urlparse(h.path).path}"
        rule = self._choose(op)
        kind = rule.kind if rule else None
        if kind == "slow":
            with self._lock:
                delay = self.rng.uniform(*rule.slow_seconds)
            time.sleep(delay)
            kind = None
        if kind == "reset_before":
            h.close_connection = True
            _rst_close(h.connection)
            return
        if kind == "throttle":
            return self._error(h, service, 400, *self._throttle_body(service, body))
        if kind == "error5xx":
            status = 500 if self.rng.random() < 0.5 else 503
            if service == "DynamoDB" or service == "DynamoDBStreams":
                code = ("com.amazonaws.dynamodb.v20120810#InternalServerError" if status == 500
                        else "com.amazonaws.dynamodb.v20120810#ServiceUnavailableException")
            else:
                code = "InternalFailure" if status == 500 else "ServiceUnavailable"
            return self._error(h, service, status, code, "We encountered an internal error. Please try again.")
        if kind == "expired_iterator" and op_name == "GetRecords":
            prefix = "com.amazonaws.dynamodb.v20120810#" if service == "DynamoDBStreams" else ""
            now = int(time.time() * 1000)
            return self._error(h, service, 400, prefix + "ExpiredIteratorException",
                               f"Iterator expired. The iterator was created at time {now - 301_000} while right now it "
                               f"is {now} which is further in the future than the tolerated delay of 300000 milliseconds.")
        if kind == "partial" and op == "Kinesis.PutRecords":
            return self._partial_put(h, body)
        status, headers, data = self._forward(h.command, h.path, h.headers, body)
        if kind == "reset_after":  # applied upstream; the client never hears of it
            h.close_connection = True
            _rst_close(h.connection)
            return
        self._reply(h, status, headers, data)

    def _throttle_body(self, service: str, body: bytes) -> tuple[str, str]:
        if service == "Kinesis":
            try:
                req = json.loads(body or b"{}")
            except ValueError:
                req = {}
            shard = req.get("ShardId") or "shardId-000000000000"
            stream = req.get("StreamName") or (req.get("StreamARN") or "stream/sieve").rsplit("/", 1)[-1]
            code, msg = _KINESIS_THROTTLE
            return code, msg.format(shard=shard, stream=stream)
        return _DDB_THROTTLES[self.rng.random() < 0.5]

    def _partial_put(self, h, body: bytes) -> None:
        """PutRecords with some records failed: those are not sent on, and get the per-record ErrorCode
        AWS uses; the others are written and answered as the emulator answered."""
        req = json.loads(body)
        records = req.get("Records") or []
        with self._lock:
            fail = [self.rng.random() < 0.3 for _ in records]
        if records and all(fail):
            fail[0] = False
        kept = [r for r, f in zip(records, fail) if not f]
        status, headers, data = self._forward(h.command, h.path, h.headers, json.dumps({**req, "Records": kept}).encode())
        if status != 200:
            return self._reply(h, status, headers, data)
        answered = iter(json.loads(data)["Records"])
        out = []
        for f in fail:
            if f:
                out.append({"ErrorCode": "ProvisionedThroughputExceededException",
                            "ErrorMessage": "Rate exceeded for shard shardId-000000000000 in stream "
                                            f"{req.get('StreamName', 'sieve')} under account 123456789012."})
            else:
                out.append(next(answered))
        doc = json.loads(data)
        doc["Records"] = out
        doc["FailedRecordCount"] = sum(1 for r in out if r.get("ErrorCode"))
        self._reply(h, 200, {"Content-Type": _CONTENT_TYPE["Kinesis_20131202"]}, json.dumps(doc).encode())

    def _forward(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in ("connection", "keep-alive", "content-length",
                                                                         "transfer-encoding", "expect")}
            conn.request(method, path, body=body, headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            out = {k: v for k, v in resp.getheaders() if k.lower() not in ("connection", "keep-alive", "content-length",
                                                                          "transfer-encoding", "date", "server")}
            return resp.status, out, data
        finally:
            conn.close()

    def _error(self, h, service: str, status: int, code: str, message: str) -> None:
        prefix = {"Kinesis": "Kinesis_20131202", "DynamoDB": "DynamoDB_20120810",
                  "DynamoDBStreams": "DynamoDBStreams_20120810"}.get(service, "")
        headers = {"Content-Type": _CONTENT_TYPE.get(prefix, "application/x-amz-json-1.1"),
                   "x-amzn-RequestId": str(uuid.uuid4())}
        if service == "Kinesis":
            headers["x-amz-id-2"] = uuid.uuid4().hex
        self._reply(h, status, headers, json.dumps({"__type": code, "message": message}).encode())

    @staticmethod
    def _reply(h, status: int, headers: dict, data: bytes) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)


class TcpFaultProxy:
    """Forwards TCP connections to `upstream` (host, port). `refuse()` resets every connection (new
    and open) until `allow()`; `hang_next(n, seconds)` holds the next `n` connections without
    forwarding anything, then resets them (a server that never answers)."""

    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0):
        self.upstream = upstream
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(128)
        self._refusing = False
        self._hang: list[float] = []
        self._held = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.counts: Counter[str] = Counter()

    @property
    def address(self) -> tuple[str, int]:
        return self._listener.getsockname()[:2]

    @property
    def url(self) -> str:
        h, p = self.address
        return f"http://{h}:{p}"

    def start(self) -> TcpFaultProxy:
        threading.Thread(target=self._accept_loop, name="tcp-fault-proxy", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        _rst_close(self._listener)
        self._drop_open()

    def __enter__(self) -> TcpFaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def refuse(self) -> None:
        with self._lock:
            self._refusing = True
        self._drop_open()

    def allow(self) -> None:
        with self._lock:
            self._refusing = False

    def hang_next(self, n: int, seconds: float) -> None:
        with self._lock:
            self._hang.extend([seconds] * n)

    def _drop_open(self) -> None:
        with self._lock:
            socks, self._open = list(self._open), set()
        for s in socks:
            _rst_close(s)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
                hang = self._hang.pop(0) if self._hang and not refusing else None
            if refusing:
                self.counts["refused"] += 1
                _rst_close(client)
                continue
            if hang is not None:
                self.counts["hung"] += 1
                threading.Thread(target=self._hold, args=(client, hang), daemon=True).start()
                continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def holding(self) -> bool:
        """Whether a connection is being held (a hang in progress)."""
        with self._lock:
            return self._held > 0

    def _hold(self, client: socket.socket, seconds: float) -> None:
        with self._lock:
            self._held += 1
        try:
            self._hold_for(client, seconds)
        finally:
            with self._lock:
                self._held -= 1

    def _hold_for(self, client: socket.socket, seconds: float) -> None:
        end = time.monotonic() + seconds
        client.settimeout(0.2)
        while time.monotonic() < end and not self._stopped.is_set():
            try:
                if client.recv(65536) == b"":
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        _rst_close(client)

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self.counts["upstream_down"] += 1
            _rst_close(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        self.counts["forwarded"] += 1
        socks = [client, upstream]
        try:
            while not self._stopped.is_set():
                r, _, _ = select.select(socks, [], [], 0.5)
                done = False
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        done = True
                        break
                    (upstream if s is client else client).sendall(data)
                if done:
                    break
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self._open.discard(client)
                self._open.discard(upstream)
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass


# -- the scripted model server ---------------------------------------------------------------

GARBAGE = (
    "}}}{{not json at all",
    "\x00\x01\x02 binary noise \ufffd\ufffd",
    '{"hypotheses": "everything is fine", "next_checks": 7}',
    "As an AI language model I cannot analyse logs.",
    '{"hypotheses": [{"cause": "the root cause is the digest itself", "facts": ["G99.C9"], "confidence": "certain"}]}',
    "",
)


@dataclass
class ScriptedChat:
    """Stands in for LlamaChat inside the local bedrock-runtime endpoint: each answer is, seeded per
    request, well-formed, garbage, or slow (`slow_seconds`; the harness kills the server meanwhile)."""

    log_path: str
    seed: int
    p_garbage: float = 0.3
    p_slow: float = 0.25
    slow_seconds: float = 30.0
    n_ctx: int = 8192
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def chat(self, messages, *, max_tokens, json_schema=None, temperature=0.0, top_p=1.0, stop=None):
        from processors.adapters.llama import ChatResult

        with self._lock:
            with open(self.log_path, "a+", encoding="utf-8") as fh:
                fh.seek(0)
                n = sum(1 for _ in fh)
                r = random.Random(f"{self.seed}:{n}")
                x = r.random()
                mode = "garbage" if x < self.p_garbage else "slow" if x < self.p_garbage + self.p_slow else "ok"
                fh.write(json.dumps({"n": n, "mode": mode, "started": time.time(), "messages": messages},
                                    ensure_ascii=False) + "\n")
        if mode == "slow":
            time.sleep(self.slow_seconds)
        if mode == "garbage":
            text = r.choice(GARBAGE)
        else:
            text = json.dumps({"hypotheses": [{"cause": "a faulty client release sends failing requests",
                                               "facts": ["G1"], "confidence": "low"}],
                               "next_checks": ["compare the failing requests with the previous release"]})
        return ChatResult(text=text, tokens_in=sum(len(str(m.get("content", ""))) // 4 for m in messages),
                          tokens_out=max(1, len(text) // 4), finish_reason="stop", latency_ms=5)


def serve_model(port: int, log_path: str, seed: int, model_id: str, slow_seconds: float = 30.0,
                healthy: bool = False) -> None:
    from processors.runtime.bedrock_local import BedrockLocalServer, LocalBedrock

    def no_embedder():
        raise RuntimeError("the fault harness's model server has no embedder")

    chat = ScriptedChat(log_path, seed, slow_seconds=slow_seconds)
    if healthy:  # after the faults: every answer well-formed and prompt
        chat.p_garbage = chat.p_slow = 0.0
    app = LocalBedrock(chat_factory=lambda: chat, embedder_factory=no_embedder,
                       chat_model_ids=frozenset({model_id}), busy_wait_s=60.0)
    server = BedrockLocalServer(app, port=port)
    print(f"model server at {server.url}", flush=True)
    server.serve_forever(poll_interval=0.05)


def model_requests(log_path) -> list[dict]:
    """Every request the scripted model server received (what a model was asked)."""
    try:
        with open(log_path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


# -- process helpers ----------------------------------------------------------------------------

def peak_rss_kb(pid: int) -> tuple[int, int] | None:
    """(current RSS, peak RSS) in KiB of a live process, from /proc (VmRSS, VmHWM)."""
    try:
        text = open(f"/proc/{pid}/status").read()  # noqa: SIM115
    except OSError:
        return None
    vals = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            vals[k] = int(v.split()[0])
    return vals.get("VmRSS", 0), vals.get("VmHWM", 0)


def _main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "model-server":
        model_id = argv[4] if len(argv) > 4 else "local.qwen2.5-coder-1.5b-instruct-q4"
        slow = float(argv[5]) if len(argv) > 5 else 30.0
        serve_model(int(argv[1]), argv[2], int(argv[3]), model_id, slow, healthy="healthy" in argv[6:])
        return 0
    print("usage: python -m processors.runtime.faults model-server PORT LOG SEED [MODEL_ID [SLOW_SECONDS]]")
    return 2


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
