"""llama.cpp adapters: the local chat model (`LlamaChat`) and the llama.cpp Lambda (`LambdaInvokeAnalyser`).

Both implement the `Analyser` port. In-process use is `LlamaChat(model_path=...)`; the Lambda
(processors/handlers/llama_lambda.py) wraps a `LlamaChat` and `LambdaInvokeAnalyser` calls it with boto3.

llama-cpp-python is built by localstack/build-llama.sh with every x86 CPU variant of ggml
(`GGML_BACKEND_DL=ON GGML_CPU_ALL_VARIANTS=ON`), so one wheel runs on AVX-512, AVX2-only and pre-AVX
CPUs. llama-cpp-python does not find those variant libraries by itself (`ggml_backend_load_all()`
only looks next to the executable and in the current directory), so `load_cpu_backends()` loads them
from `llama_cpp/lib` before the first model and logs which `libggml-cpu-*.so` ggml picked (it scores
each variant against the running CPU and never picks one the CPU cannot run).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import orjson

from processors.adapters.model_files import model_id_for, model_path_from_env
from processors.errors import ServiceError
from processors.ports import ModelCallError, ModelReply, ModelThrottled, ModelTimeout

log = logging.getLogger(__name__)

# ggml's CPU backend uses OpenMP, and libgomp reads this once, when `import llama_cpp` loads it. With the
# default (spinning) policy, 2 threads on 2 cores that other processes also use stall at every barrier:
# measured here under load 4.5, a 45-token schema answer took 24-44 s with 2 threads vs 5.6 s with
# PASSIVE (1 thread: 5.1 s). A/B on the same box (bench/bench_models.py): ACTIVE reached 166 prompt / 29
# generated tok/s when the box happened to be quiet but took 39 s for the schema answer (spinning workers
# starve the single-threaded grammar sampler); PASSIVE gave 95-125 / 21 tok/s and 14 s. Set
# OMP_WAIT_POLICY=ACTIVE yourself for raw throughput on dedicated cores without schemas.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_REPEAT_PENALTY = 1.1
DEFAULT_N_CTX = 4096

_backend_lock = threading.Lock()
_backend_variant: str | None = None


def loaded_cpu_variant() -> str | None:
    """The `libggml-cpu*.so` file mapped into this process (from /proc/self/maps), or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        name = line.rsplit("/", 1)[-1]
        if name.startswith("libggml-cpu") and ".so" in name:
            return name
    return None


def _mapped_path(prefix: str) -> Path | None:
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].rsplit("/", 1)[-1].startswith(prefix):
            return Path(parts[5])
    return None


def load_cpu_backends() -> str | None:
    """Register ggml's CPU backend variants once per process; return the variant that was loaded.

    Safe to call many times and from many threads. On a build without dynamic backends (ggml linked
    in), there is nothing to load and the result is None."""
    global _backend_variant
    with _backend_lock:
        if _backend_variant is not None:
            return _backend_variant or None
        try:
            import llama_cpp
        except ImportError as exc:
            raise ServiceError(
                "llama-cpp-python is not installed; run localstack/build-llama.sh .venv (builds and caches the wheel)"
            ) from exc
        lib_dir = Path(llama_cpp.__file__).parent / "lib"
        variants = sorted(lib_dir.glob("libggml-cpu-*.so"))
        if not variants:  # static CPU backend: nothing to dispatch
            log.info("llama.cpp CPU backend: built in (no runtime dispatch), system info: %s", _system_info())
            _backend_variant = ""
            return None
        # Use the very libggml that libllama already mapped, so the registry we fill is the one it reads.
        ggml_path = _mapped_path("libggml.so") or next(iter(sorted(lib_dir.glob("libggml.so*"))), None)
        if ggml_path is None:
            raise ServiceError(f"llama.cpp: no libggml.so in {lib_dir}; rebuild with localstack/build-llama.sh")
        ggml = ctypes.CDLL(str(ggml_path))
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        ggml.ggml_backend_load_all_from_path.restype = None
        ggml.ggml_backend_reg_count.restype = ctypes.c_size_t
        if ggml.ggml_backend_reg_count() == 0:
            ggml.ggml_backend_load_all_from_path(str(lib_dir).encode())
        variant = loaded_cpu_variant()
        if variant is None:
            raise ServiceError(
                f"llama.cpp: none of the {len(variants)} CPU variants in {lib_dir} could be loaded on this CPU; "
                "check `ldd` on them (they need glibc >= 2.34 and libgomp.so.1)"
            )
        log.info("llama.cpp CPU backend: %s (of %d variants), system info: %s", variant, len(variants), _system_info())
        _backend_variant = variant
        return variant


def _extra_buffer_types_safe() -> bool:
    """Whether ggml may use its extra CPU buffer types (weight repacking, AMX tiles).

    On CPUs with AMX (Sapphire Rapids and later) the ggml that llama-cpp-python 0.3.36 ships picks
    libggml-cpu-sapphirerapids and dies with SIGILL at `tilezero` on the first generation (seen on this
    project's CI machines; upstream llama.cpp PR #26954). There the extra buffer types stay off: the model
    runs on the same variant's plain AVX-512 kernels. SIEVE_LLAMA_EXTRA_BUFTS=1 or 0 overrides."""
    forced = os.environ.get("SIEVE_LLAMA_EXTRA_BUFTS")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return True
    return "amx_tile" not in flags.split()


_params_lock = threading.Lock()


class _model_params:
    """Load a model with `use_extra_bufts` set: llama_cpp.Llama takes its model parameters from
    `llama_model_default_params()` and has no argument for this one, so the default is wrapped while
    the model loads (under a lock; other loads wait)."""

    def __init__(self, *, extra_buffer_types: bool):
        self.extra = extra_buffer_types

    def __enter__(self):
        import llama_cpp.llama as high

        _params_lock.acquire()
        self._module = high.llama_cpp
        self._original = self._module.llama_model_default_params
        if not self.extra:
            original = self._original

            def params():
                p = original()
                p.use_extra_bufts = False
                return p

            self._module.llama_model_default_params = params
            log.info("llama.cpp: extra buffer types off (AMX CPU; SIEVE_LLAMA_EXTRA_BUFTS=1 turns them on)")
        return self

    def __exit__(self, *exc):
        self._module.llama_model_default_params = self._original
        _params_lock.release()
        return False


def _system_info() -> str:
    import llama_cpp

    try:
        return llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    except Exception:  # informational only
        return "?"


@dataclass(frozen=True, slots=True)
class ChatResult:
    """One chat completion with llama.cpp's own counts."""

    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: str  # "stop" or "length"
    latency_ms: int


class LlamaChat:
    """`Analyser` over a local GGUF model through llama-cpp-python.

    Deterministic settings (temperature 0, greedy), `repeat_penalty` ~1.1 against the small model's
    loops, and JSON-Schema-constrained sampling when a schema is given (use bounded schemas:
    `maxLength` on strings and `maxItems` on arrays, or a 0.5B model can ramble until `max_tokens`).
    One call at a time per instance (llama.cpp contexts are not thread-safe).

    `model_path` defaults to SIEVE_MODEL_PATH, else the verified cached Qwen file; `model_id` (the id
    replies carry) defaults to the pinned Qwen's id for that file, else the file's stem."""

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        *,
        model_id: str | None = None,
        n_threads: int | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        repeat_penalty: float = DEFAULT_REPEAT_PENALTY,
        seed: int = 0,
    ):
        load_cpu_backends()
        import llama_cpp

        path = Path(model_path) if model_path else model_path_from_env()
        if not path.is_file():
            raise ServiceError(f"model file {path} not found; run `sieve models fetch` or set SIEVE_MODEL_PATH")
        self.model_path = path
        self.model_id = model_id or model_id_for(path)
        self.n_threads = n_threads or int(os.environ.get("SIEVE_LLAMA_THREADS") or min(os.cpu_count() or 2, 4))
        self.repeat_penalty = repeat_penalty
        self._lock = threading.Lock()
        started = time.perf_counter()
        with _model_params(extra_buffer_types=_extra_buffer_types_safe()):
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                seed=seed,
                verbose=False,
            )
        self.load_seconds = time.perf_counter() - started
        self.n_ctx = self._llm.n_ctx()
        log.info("loaded %s in %.2fs (n_ctx=%d, n_threads=%d)", path.name, self.load_seconds, self.n_ctx, self.n_threads)

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        max_tokens: int,
        json_schema: dict | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] = (),
    ) -> ChatResult:
        """Messages are `{"role": "system"|"user"|"assistant", "content": str}`."""
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        kwargs: dict[str, Any] = {}
        if json_schema is not None:
            check_grammar_bounds(json_schema)
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        started = time.perf_counter()
        with self._lock:
            out = self._llm.create_chat_completion(
                messages=list(messages),
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                top_k=0 if temperature == 0 else 40,
                min_p=0.0,
                repeat_penalty=self.repeat_penalty,
                stop=list(stop),
                seed=0,
                **kwargs,
            )
        latency_ms = int((time.perf_counter() - started) * 1000)
        choice = out["choices"][0]
        usage = out["usage"]
        return ChatResult(
            text=choice["message"]["content"] or "",
            tokens_in=int(usage["prompt_tokens"]),
            tokens_out=int(usage["completion_tokens"]),
            finish_reason=choice.get("finish_reason") or "stop",
            latency_ms=latency_ms,
        )

    def complete(self, system: str, user: str, *, max_tokens: int, json_schema: dict | None = None) -> ModelReply:
        """The `Analyser` port. A request llama.cpp refuses (max_tokens < 1, prompt over the context
        window, a schema it cannot turn into a grammar) raises ModelCallError."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            r = self.chat(messages, max_tokens=max_tokens, json_schema=json_schema)
        except ValueError as exc:
            raise ModelCallError(f"llama.cpp {self.model_id} rejected the request: {exc}") from exc
        return ModelReply(r.text, self.model_id, r.tokens_in, r.tokens_out, r.latency_ms)

    def close(self) -> None:
        self._llm.close()


#: llama.cpp turns a schema's bounds into grammar repetitions; far larger ones abort the whole process in
#: its grammar parser (a maxLength of 2000 did), which no caller can catch: refuse them before (1000 works)
MAX_GRAMMAR_REPEAT = 1000


def check_grammar_bounds(schema: Any, path: str = "$") -> None:
    """ValueError naming the first maxLength / maxItems / maxProperties above MAX_GRAMMAR_REPEAT."""
    if isinstance(schema, dict):
        for key in ("maxLength", "maxItems", "maxProperties"):
            bound = schema.get(key)
            if isinstance(bound, int) and bound > MAX_GRAMMAR_REPEAT:
                raise ValueError(f"schema {path}.{key} is {bound}; a llama.cpp grammar allows at most "
                                 f"{MAX_GRAMMAR_REPEAT} repetitions (lower the bound)")
        for k, v in schema.items():
            check_grammar_bounds(v, f"{path}.{k}")
    elif isinstance(schema, list):
        for i, v in enumerate(schema):
            check_grammar_bounds(v, f"{path}[{i}]")


class LambdaInvokeAnalyser:
    """`Analyser` that invokes the llama.cpp Lambda (processors/handlers/llama_lambda.py) with boto3
    `lambda.invoke` (RequestResponse); `client` is an injected boto3 Lambda client, else one is made.

    A FunctionError (the handler raised) becomes `ModelCallError`; Lambda throttling becomes
    `ModelThrottled`; a read timeout or "Task timed out" `ModelTimeout`."""

    def __init__(self, function_name: str, *, client: Any = None, timeout_s: float = 120.0):
        if not function_name:
            raise ValueError("LambdaInvokeAnalyser: function_name (name or ARN of the llama Lambda) is required")
        self.function_name = function_name
        self._client = client
        self.timeout_s = timeout_s

    def _lambda(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "lambda", config=Config(read_timeout=self.timeout_s, retries={"mode": "standard", "max_attempts": 2})
            )
        return self._client

    def complete(self, system: str, user: str, *, max_tokens: int, json_schema: dict | None = None) -> ModelReply:
        event = {"system": system, "user": user, "max_tokens": max_tokens, "json_schema": json_schema}
        result = self._invoke(event)
        try:
            return ModelReply(
                text=str(result["text"]),
                model_id=str(result["model_id"]),
                tokens_in=int(result["tokens_in"]),
                tokens_out=int(result["tokens_out"]),
                latency_ms=int(result["latency_ms"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelCallError(f"Lambda {self.function_name} returned an unexpected payload: {str(result)[:300]}") from exc

    def _invoke(self, event: dict) -> dict:
        from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

        try:
            resp = self._lambda().invoke(
                FunctionName=self.function_name, InvocationType="RequestResponse", Payload=orjson.dumps(event)
            )
        except (ReadTimeoutError, ConnectTimeoutError) as exc:
            raise ModelTimeout(f"Lambda {self.function_name} did not answer within {self.timeout_s}s") from exc
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("TooManyRequestsException", "ThrottlingException"):
                raise ModelThrottled(f"Lambda {self.function_name} is throttled ({code}); retry later") from exc
            raise ModelCallError(f"lambda.invoke {self.function_name} failed: {code}: {exc}") from exc
        raw = resp["Payload"].read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        if resp.get("FunctionError"):
            message = payload.get("errorMessage") if isinstance(payload, dict) else raw[:300].decode(errors="replace")
            kind = payload.get("errorType") if isinstance(payload, dict) else resp["FunctionError"]
            if isinstance(message, str) and "Task timed out" in message:
                raise ModelTimeout(f"Lambda {self.function_name} timed out: {message}")
            raise ModelCallError(f"Lambda {self.function_name} failed ({kind}): {message}")
        if not isinstance(payload, dict):
            raise ModelCallError(f"Lambda {self.function_name} returned a non-object payload: {raw[:300]!r}")
        return payload
