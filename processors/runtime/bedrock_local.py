"""A local endpoint that speaks enough of the bedrock-runtime wire protocol for boto3 to work unchanged.

    boto3.client("bedrock-runtime", endpoint_url="http://127.0.0.1:4567").converse(...)

Operations (rest-json, as botocore sends them):
- `POST /model/amazon.titan-embed-text-v2:0/invoke` (InvokeModel): body
  `{"inputText", "dimensions", "normalize", "embeddingTypes"}` -> `{"embedding", "inputTextTokenCount",
  "embeddingsByType"}`. Served by USE multilingual v3 (native 512-d). `dimensions` 512 is native, 256 is
  truncation + renormalisation; 1024 (Titan's default when the field is omitted) cannot be produced
  honestly and is a ValidationException. Vectors are always unit length (USE's output is normalised;
  `normalize: false` cannot undo that).
- `POST /model/{chat model id}/converse` (Converse): text content blocks, `system`, `inferenceConfig`
  (maxTokens, temperature, topP, stopSequences). A JSON Schema can be sent two ways, both enforced
  with a llama.cpp grammar:
    * `outputConfig.textFormat` = `{"type": "json_schema", "structure": {"jsonSchema": {"schema": "<json>"}}}`
      (Converse structured output; botocore >= 1.40 serialises it), or
    * `additionalModelRequestFields.json_schema` = the schema object (for older clients).
- `GET /health`: `{"status": "ok", ...}` for readiness checks (not part of Bedrock).

Errors are Bedrock-shaped (`x-amzn-ErrorType` header, `{"message"}` body, the status Bedrock uses), so
botocore raises the same `ClientError` codes as AWS: ValidationException (400),
ResourceNotFoundException (404) for unknown model ids, ThrottlingException (429) when the model is busy
longer than `busy_wait_s`, ServiceUnavailableException (503) when the model cannot be loaded.

One chat generation runs at a time (a lock); embeddings run beside it. Prompts and answers are never
logged, only sizes, token counts and latency.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote

from processors.adapters.bedrock import TITAN_EMBED_V2

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 2 * 1024 * 1024
TITAN_MAX_CHARS = 50_000
SUPPORTED_DIMENSIONS = (256, 512)
DEFAULT_MAX_TOKENS = 512


class BedrockError(Exception):
    def __init__(self, code: str, status: int, message: str):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def validation(message: str) -> BedrockError:
    return BedrockError("ValidationException", 400, message)


@dataclass
class LocalBedrock:
    """The model-serving logic, independent of HTTP. `chat_factory` builds the chat model on first use
    (an object with `chat()`, `count_tokens()`, `n_ctx`, like `LlamaChat`); `embedder_factory` builds
    the embedder (a `UseEmbedder` from processors/adapters/embedders.py)."""

    chat_factory: Callable[[], Any]
    embedder_factory: Callable[[], Any]
    chat_model_ids: frozenset[str]
    embed_model_ids: frozenset[str] = frozenset({TITAN_EMBED_V2})
    busy_wait_s: float = 30.0
    model_lock: threading.Lock = field(default_factory=threading.Lock)
    _chat: Any = None
    _embedder: Any = None
    _load_lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- model access ----
    def chat_model(self) -> Any:
        with self._load_lock:
            if self._chat is None:
                try:
                    self._chat = self.chat_factory()
                except Exception as exc:
                    log.exception("chat model could not be loaded")
                    raise BedrockError(
                        "ServiceUnavailableException", 503,
                        f"the local chat model could not be loaded ({type(exc).__name__}: {exc}); run `sieve models fetch`",
                    ) from exc
            return self._chat

    def embedder(self) -> Any:
        with self._load_lock:
            if self._embedder is None:
                self._embedder = self.embedder_factory()
            return self._embedder

    def describe(self) -> dict:
        return {
            "status": "ok",
            "chat_models": sorted(self.chat_model_ids),
            "embedding_models": sorted(self.embed_model_ids),
            "chat_loaded": self._chat is not None,
            "busy": self.model_lock.locked(),
        }

    # ---- operations ----
    def invoke_model(self, model_id: str, body: bytes) -> dict:
        if model_id in self.chat_model_ids:
            raise validation(f"model {model_id} is served through Converse on the local endpoint; use converse()")
        if model_id not in self.embed_model_ids:
            raise self._not_found(model_id)
        req = _json_object(body)
        unknown = set(req) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
        if unknown:
            raise validation(f"extraneous key(s) {sorted(unknown)} are not permitted")
        text = req.get("inputText")
        if not isinstance(text, str) or not text.strip():
            raise validation("inputText: a non-empty string is required")
        if len(text) > TITAN_MAX_CHARS:
            raise validation(f"inputText: {len(text)} characters, the maximum is {TITAN_MAX_CHARS}")
        dims = req.get("dimensions", 1024)
        if isinstance(dims, bool) or not isinstance(dims, int) or dims not in SUPPORTED_DIMENSIONS:
            raise validation(
                f"dimensions: {dims!r} is not available on the local endpoint (USE multilingual, native 512-d); "
                f"pass one of {list(SUPPORTED_DIMENSIONS)}"
            )
        normalize = req.get("normalize", True)
        if not isinstance(normalize, bool):
            raise validation("normalize: must be a boolean")
        types = req.get("embeddingTypes", ["float"])
        if not isinstance(types, list) or not types or any(t != "float" for t in types):
            raise validation(f"embeddingTypes: only [\"float\"] is supported locally, got {types!r}")
        emb = self.embedder()
        vector = emb.embed([text])[0][:dims]
        norm = sum(x * x for x in vector) ** 0.5 or 1.0
        vector = [x / norm for x in vector]
        return {"embedding": vector, "inputTextTokenCount": emb.count_tokens(text), "embeddingsByType": {"float": vector}}

    def converse(self, model_id: str, body: bytes) -> dict:
        if model_id not in self.chat_model_ids:
            raise self._not_found(model_id)
        req = _json_object(body)
        for unsupported in ("toolConfig", "guardrailConfig", "promptVariables"):
            if req.get(unsupported):
                raise validation(f"{unsupported} is not supported by the local endpoint")
        messages = _messages(req.get("messages"))
        system = _system(req.get("system"))
        cfg = req.get("inferenceConfig") or {}
        if not isinstance(cfg, dict):
            raise validation("inferenceConfig: must be an object")
        max_tokens = cfg.get("maxTokens", DEFAULT_MAX_TOKENS)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise validation(f"inferenceConfig.maxTokens: must be an integer >= 1, got {max_tokens!r}")
        temperature = _unit_float(cfg, "temperature", 0.0)
        top_p = _unit_float(cfg, "topP", 1.0)
        stop = cfg.get("stopSequences", [])
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) and s for s in stop):
            raise validation("inferenceConfig.stopSequences: at most 4 non-empty strings")
        schema = _schema(req)

        chat = self.chat_model()
        if max_tokens > chat.n_ctx:
            raise validation(f"inferenceConfig.maxTokens: {max_tokens} exceeds the model's context of {chat.n_ctx} tokens")
        llama_messages = ([{"role": "system", "content": system}] if system else []) + messages
        if not self.model_lock.acquire(timeout=self.busy_wait_s):
            raise BedrockError(
                "ThrottlingException", 429,
                f"the local model is busy with another request (waited {self.busy_wait_s:g}s); retry later",
            )
        try:
            try:
                result = chat.chat(
                    llama_messages, max_tokens=max_tokens, json_schema=schema,
                    temperature=temperature, top_p=top_p, stop=stop,
                )
            except ValueError as exc:  # llama.cpp: prompt + max_tokens over the context window, bad grammar
                raise validation(f"the request cannot be processed by the local model: {exc}") from exc
        finally:
            self.model_lock.release()
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": result.text}]}},
            "stopReason": "max_tokens" if result.finish_reason == "length" else "end_turn",
            "usage": {
                "inputTokens": result.tokens_in,
                "outputTokens": result.tokens_out,
                "totalTokens": result.tokens_in + result.tokens_out,
            },
            "metrics": {"latencyMs": result.latency_ms},
        }

    def _not_found(self, model_id: str) -> BedrockError:
        known = sorted(self.chat_model_ids | self.embed_model_ids)
        return BedrockError(
            "ResourceNotFoundException", 404,
            f"model {model_id!r} is not served by the local endpoint; available: {', '.join(known)}",
        )


def _json_object(body: bytes) -> dict:
    try:
        req = json.loads(body or b"null")
    except ValueError as exc:
        raise validation(f"malformed request body: not valid JSON ({exc})") from exc
    if not isinstance(req, dict):
        raise validation("malformed request body: a JSON object is required")
    return req


def _unit_float(cfg: dict, key: str, default: float) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise validation(f"inferenceConfig.{key}: must be a number in [0, 1], got {value!r}")
    return float(value)


def _text_blocks(blocks: Any, where: str) -> str:
    if not isinstance(blocks, list) or not blocks:
        raise validation(f"{where}: a non-empty list of content blocks is required")
    texts = []
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or set(block) != {"text"} or not isinstance(block["text"], str):
            kinds = sorted(block) if isinstance(block, dict) else type(block).__name__
            raise validation(f"{where}[{i}]: only text content blocks are supported locally, got {kinds}")
        texts.append(block["text"])
    return "\n".join(texts)


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise validation("messages: at least one message is required")
    out = []
    for i, msg in enumerate(raw):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise validation(f"messages[{i}].role: must be 'user' or 'assistant'")
        expected = "user" if i % 2 == 0 else "assistant"
        if msg["role"] != expected:
            raise validation(f"messages[{i}]: roles must alternate, starting with 'user'")
        out.append({"role": msg["role"], "content": _text_blocks(msg.get("content"), f"messages[{i}].content")})
    if out[-1]["role"] != "user":
        raise validation("messages: the conversation must end with a user message")
    return out


def _system(raw: Any) -> str:
    if raw is None:
        return ""
    return _text_blocks(raw, "system")


def _schema(req: dict) -> dict | None:
    schema: Any = None
    out_cfg = req.get("outputConfig")
    if out_cfg:
        fmt = out_cfg.get("textFormat") if isinstance(out_cfg, dict) else None
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
            raise validation("outputConfig.textFormat.type: only 'json_schema' is supported")
        try:
            raw = fmt["structure"]["jsonSchema"]["schema"]
        except (KeyError, TypeError) as exc:
            raise validation("outputConfig.textFormat.structure.jsonSchema.schema: required") from exc
        try:
            schema = json.loads(raw) if isinstance(raw, str) else None
        except ValueError as exc:
            raise validation(f"outputConfig...jsonSchema.schema: not valid JSON ({exc})") from exc
        if not isinstance(schema, dict):
            raise validation("outputConfig...jsonSchema.schema: must be a JSON object serialised as a string")
    extra = req.get("additionalModelRequestFields")
    if isinstance(extra, dict) and "json_schema" in extra:
        if schema is not None:
            raise validation("give the JSON schema in outputConfig or additionalModelRequestFields, not both")
        schema = extra["json_schema"]
        if not isinstance(schema, dict):
            raise validation("additionalModelRequestFields.json_schema: must be a JSON Schema object")
    if schema is not None:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise validation(f"JSON schema is invalid: {exc.message}") from exc
    return schema


class _Handler(BaseHTTPRequestHandler):
    server: "BedrockLocalServer"
    protocol_version = "HTTP/1.1"
    server_version = "sieve-bedrock-local"

    def log_message(self, fmt: str, *args: Any) -> None:  # access log goes through logging, at debug
        log.debug("%s " + fmt, self.address_string(), *args)

    def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, err: BedrockError) -> None:
        self._send(err.status, {"message": err.message}, {"x-amzn-ErrorType": err.code})

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path.rstrip("/") in ("", "/health"):
            self._send(200, self.server.app.describe())
        else:
            self._error(BedrockError("UnknownOperationException", 404, f"no operation at GET {self.path}"))

    def do_POST(self) -> None:  # noqa: N802
        started = time.perf_counter()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(validation(f"request body of {length} bytes exceeds {MAX_BODY_BYTES}"))
            return
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        status, op, model_id = 200, "?", "?"
        payload, error = None, None
        try:
            if len(parts) != 3 or parts[0] != "model":
                raise BedrockError("UnknownOperationException", 404, f"no operation at POST {self.path}")
            model_id, op = unquote(parts[1]), parts[2]
            if op == "invoke":
                payload = self.server.app.invoke_model(model_id, body)
            elif op == "converse":
                payload = self.server.app.converse(model_id, body)
            elif op in ("converse-stream", "invoke-with-response-stream"):
                raise validation(f"{op} (streaming) is not supported by the local endpoint; use the non-streaming call")
            else:
                raise BedrockError("UnknownOperationException", 404, f"no operation {op!r}")
        except BedrockError as err:
            status, error = err.status, err
        except Exception as exc:  # a bug here must not kill the server thread silently
            status = 500
            log.exception("internal error in %s %s", op, model_id)
            error = BedrockError("InternalServerException", 500, f"internal error: {type(exc).__name__}")
        # logged before the answer leaves: a caller that stops the server right after it has the answer
        # must still find the request in the log
        log.info(
            "%s model=%s status=%d request_bytes=%d latency_ms=%d",
            op, model_id, status, len(body), int((time.perf_counter() - started) * 1000),
        )
        if error is None:
            self._send(200, payload)
        else:
            self._error(error)


class BedrockLocalServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: LocalBedrock, host: str = "127.0.0.1", port: int = 4567):
        self.app = app
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="bedrock-local", daemon=True)
        thread.start()
        return thread


def build_app(
    *,
    model: str | None = None,
    model_path: str | None = None,
    n_threads: int | None = None,
    aliases: tuple[str, ...] = (),
    busy_wait_s: float = 30.0,
) -> LocalBedrock:
    """The default wiring: a local chat model (via LlamaChat, loaded on first Converse) and USE embeddings.

    `model` names a known model (processors/adapters/model_files.py `MODELS`; default $SIEVE_MODEL, else
    `DEFAULT_MODEL`); `model_path` is a GGUF file (default $SIEVE_MODEL_PATH, else `model`'s verified cached
    file, joined from its parts on first use). Converse answers under `model`'s id when it is given or
    no file is, else under the id of the known model the file is (an unknown file: its stem)."""
    import os
    from pathlib import Path

    from processors.adapters.embedders import UseEmbedder
    from processors.adapters.model_files import ensure_model, get_model, model_id_for

    path = model_path or os.environ.get("SIEVE_MODEL_PATH") or None
    spec = get_model(model) if model is not None or path is None else None  # an unknown name fails here, at start
    model_id = spec.model_id if spec is not None else model_id_for(Path(path))

    def chat_factory():
        from processors.adapters.llama import LlamaChat

        return LlamaChat(model_path=path or ensure_model(spec), model_id=model_id, n_threads=n_threads)

    return LocalBedrock(
        chat_factory=chat_factory,
        embedder_factory=UseEmbedder,
        chat_model_ids=frozenset({model_id, *aliases}),
        busy_wait_s=busy_wait_s,
    )
