"""Benchmark the offline models; writes bench/results/models.json.

    .venv/bin/python bench/bench_models.py [--threads 2] [--runs 3] [--gen-tokens 128]

Measures, on the real Qwen2.5-Coder-0.5B Q4_K_M GGUF through `LlamaChat`:
- model load time and the CPU variant llama.cpp picked,
- prompt-eval and generation tokens/s from llama.cpp's own perf counters (median of `--runs`),
- a schema-constrained answer (grammar sampling costs extra per token),
- USE embeddings for 100 EN/JA sentences,
- peak RSS of this process.
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

# A ~340-token digest, like the log pipeline sends (counts, keys, a few redacted sample lines).
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


def bench_llm(threads: int, runs: int, gen_tokens: int) -> dict:
    import llama_cpp

    from processors.adapters.llama import LlamaChat, loaded_cpu_variant
    from processors.adapters.model_files import ensure_qwen

    path = ensure_qwen()
    chat = LlamaChat(model_path=path, n_threads=threads)
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
        json.loads(schema_result.text)
        schema_valid = True
    except ValueError:
        schema_valid = False
    out = {
        "model": path.name,
        "cpu_variant": loaded_cpu_variant(),
        "threads": threads,
        "n_ctx": chat.n_ctx,
        "load_s": round(chat.load_seconds, 3),
        "prompt_tokens": samples[0]["prompt_tokens"],
        "prompt_tok_s_median": round(statistics.median(s["prompt_tokens"] / s["prompt_ms"] * 1000 for s in samples), 1),
        "gen_tok_s_median": round(statistics.median(s["gen_tokens"] / s["gen_ms"] * 1000 for s in samples), 1),
        "gen_tokens_per_run": [s["tokens_out"] for s in samples],
        "wall_ms_per_run": [s["wall_ms"] for s in samples],
        "schema_answer": {
            "tokens_in": schema_result.tokens_in,
            "tokens_out": schema_result.tokens_out,
            "wall_ms": schema_result.latency_ms,
            "prompt_ms": round(sp.t_p_eval_ms),
            "decode_ms": round(sp.t_eval_ms),
            "sampling_ms_per_output_token": round(sampling_ms / max(schema_result.tokens_out, 1), 1),
            "valid_json": schema_valid,
            "finish_reason": schema_result.finish_reason,
        },
    }
    chat.close()
    return out


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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "models.json"))
    args = ap.parse_args()

    import processors.adapters.llama  # noqa: F401 - sets OMP_WAIT_POLICY before llama_cpp loads libgomp

    import llama_cpp

    result = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_1m_at_start": round(os.getloadavg()[0], 2)},
        "llama_cpp_python": llama_cpp.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "llm": bench_llm(args.threads, args.runs, args.gen_tokens),
        "embeddings": bench_embeddings(args.runs),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)  # the CPU is shared: read figures with this
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tmp.replace(out)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
