"""A tiny qwen2 GGUF for running the llama.cpp artifact under an emulated CPU within CI time.

Under qemu-user every vector instruction is emulated: the real Qwen2.5-Coder-0.5B model takes ~40 s
per token there (bench/results/llama_qemu.json), so a test that goes through the chat template would
take minutes per CPU model. This model keeps everything the artifact's code path touches (architecture
qwen2 with q/k/v biases and GQA, the real model's tokenizer, merges and chat template copied from the
real GGUF, weights quantized to Q4_K_M by llama.cpp itself, so the same Q4_K/Q6_K kernels run) but has
2 layers of width 256 with seeded random weights: its answers are meaningless, its cost is small.

`build_mini_model(real_gguf, out, gguf_py_dir)` writes an F32 file with gguf-py (from the llama.cpp
sources that llama-cpp-python vendors), then quantizes it with `llama_cpp.llama_model_quantize`.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

N_EMBD = 256          # Q4_K needs rows that are a multiple of 256
N_FF = 512
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
N_CTX_TRAIN = 1024
SEED = 12


def build_mini_model(real_gguf: Path, out: Path, gguf_py_dir: Path) -> Path:
    """Write the mini model to `out` (Q4_K_M) and return it; `real_gguf` gives the tokenizer."""
    import numpy as np

    if str(gguf_py_dir) not in sys.path:
        sys.path.insert(0, str(gguf_py_dir))
    import gguf

    reader = gguf.GGUFReader(str(real_gguf))
    tmp_f32 = out.with_suffix(".f32.gguf")
    writer = gguf.GGUFWriter(str(tmp_f32), "qwen2")
    writer.add_name("sieve-mini-qwen2 (random weights, test only)")
    writer.add_context_length(N_CTX_TRAIN)
    writer.add_embedding_length(N_EMBD)
    writer.add_feed_forward_length(N_FF)
    writer.add_block_count(N_LAYER)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_freq_base(1_000_000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    n_vocab = 0
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if name == "tokenizer.ggml.tokens":
            n_vocab = len(value)
        writer.add_key_value(name, value, vtype, sub)
    if not n_vocab:
        raise ValueError(f"{real_gguf} has no tokenizer.ggml.tokens")

    rng = np.random.default_rng(SEED)
    head_dim = N_EMBD // N_HEAD

    def w(*shape: int) -> "np.ndarray":  # numpy shape is (rows=out, cols=in); gguf reverses it
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    writer.add_tensor("token_embd.weight", w(n_vocab, N_EMBD))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        writer.add_tensor(p + "attn_norm.weight", np.ones(N_EMBD, np.float32))
        writer.add_tensor(p + "attn_q.weight", w(N_EMBD, N_EMBD))
        writer.add_tensor(p + "attn_q.bias", w(N_EMBD))
        writer.add_tensor(p + "attn_k.weight", w(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(p + "attn_k.bias", w(N_HEAD_KV * head_dim))
        writer.add_tensor(p + "attn_v.weight", w(N_HEAD_KV * head_dim, N_EMBD))
        writer.add_tensor(p + "attn_v.bias", w(N_HEAD_KV * head_dim))
        writer.add_tensor(p + "attn_output.weight", w(N_EMBD, N_EMBD))
        writer.add_tensor(p + "ffn_norm.weight", np.ones(N_EMBD, np.float32))
        writer.add_tensor(p + "ffn_gate.weight", w(N_FF, N_EMBD))
        writer.add_tensor(p + "ffn_up.weight", w(N_FF, N_EMBD))
        writer.add_tensor(p + "ffn_down.weight", w(N_EMBD, N_FF))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = 2
    part = out.with_suffix(".part")
    rc = llama_cpp.llama_model_quantize(str(tmp_f32).encode(), str(part).encode(), ctypes.byref(params))
    tmp_f32.unlink()
    if rc != 0:
        part.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize failed with {rc}")
    part.replace(out)
    return out
