"""The llama.cpp Lambda artifact on emulated older CPUs: time to answer, ggml CPU variant chosen, and what the
native (non-dispatch) ggml build does there.

    .venv/bin/python bench/bench_llama_qemu.py            # mini model (what CI runs), ~2 min
    .venv/bin/python bench/bench_llama_qemu.py --real     # also the real Qwen2.5-Coder-0.5B: ~4-8 min per CPU
    .venv/bin/python bench/bench_llama_qemu.py --rebuild-native   # time a fresh native ggml build (~2 min)

Writes bench/results/llama_qemu.json (real-model figures from an earlier --real run are kept, with their
date, when this run does not measure them). Timing only: tests/infra/test_llama_qemu.py holds the checks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "infra" / "data"))

import llama_qemu_support as q  # noqa: E402

from processors.adapters.model_files import QWEN_05B, ensure_model  # noqa: E402
from processors.runtime.package_llama import build_llama_rootfs  # noqa: E402

OUT = ROOT / "bench" / "results" / "llama_qemu.json"
EVENT = {"system": "Answer in one word.", "user": "Colour of the sky?", "max_tokens": 2, "json_schema": None}
CPUS = [q.CPU_NO_AVX512, q.CPU_NO_AVX2_WITH_AVX, q.CPU_NO_AVX2]


def one(rootfs: Path, cpu: str | None, model: Path, rie: Path | None, event: dict, timeout: float = 900) -> dict:
    if rie:
        run = q.run_under_rie(rootfs, event, cpu=cpu, rie=rie, model=model, extra_bufts=True if cpu else None,
                              timeout=timeout)
    else:
        run = q.run_handler(rootfs, event, cpu=cpu, model=model, extra_bufts=True if cpu else None, timeout=timeout)
    row = {"cpu": cpu or "host (native, no emulation)", "mode": run.mode, "wall_s": run.seconds, "cpu_s": run.cpu_seconds,
           "ok": bool(run.payload)}
    if run.payload:
        result = run.payload["result"]
        loaded = [e for e in run.logs if e.get("message") == "model loaded"]
        row.update(variant=run.variant, text=result["text"], tokens_in=result["tokens_in"], tokens_out=result["tokens_out"],
                   handler_latency_s=round(result["latency_ms"] / 1000, 2),
                   model_load_s=loaded[0].get("load_s") if loaded else None)
    else:
        row["error"] = (run.stderr or run.stdout)[-500:]
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", action="store_true", help="also run the real 0.5B model under each emulated CPU")
    ap.add_argument("--rebuild-native", action="store_true", help="time a fresh native ggml build (temp cache)")
    ap.add_argument("--real-cpus", nargs="+", default=[q.CPU_NO_AVX512, q.CPU_NO_AVX2], help="emulated CPUs for --real")
    args = ap.parse_args()
    previous = json.loads(OUT.read_text()) if OUT.is_file() else {}
    q.ensure_qemu()
    results: dict = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"cpu": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                              if ln.startswith("model name")), "?"), "cores": os.cpu_count(),
                 "load_avg_at_start": os.getloadavg()[0], "python": platform.python_version()},
        "event": EVENT,
        "note": "2 shared cores, other sessions running: emulated wall times vary up to 5x with the box's load (cpu_s is steadier)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        rootfs = build_llama_rootfs(Path(tmp) / "rootfs")
        results["rootfs_build_s"] = round(time.perf_counter() - started, 1)
        config = q.rootfs_config(rootfs)
        results["rootfs"] = {"python": config["python"], "cpu_variants": len(config["cpu_variants"]),
                             "task_root_mb": round(sum(p.stat().st_size for p in (rootfs / "var/task").rglob("*")
                                                       if p.is_file()) / 1e6, 1)}
        rie = q.rie_binary()
        results["runner"] = f"Lambda RIE {rie.name}" if rie else "handler called directly (no RIE built)"

        if args.rebuild_native:
            os.environ["SIEVE_CACHE"] = str(Path(tmp) / "cache")
            native = q.native_ggml_cpu()
            del os.environ["SIEVE_CACHE"]
        else:
            native = q.native_ggml_cpu()
        results["native_ggml_cpu"] = {"build_s": native.build_seconds, "measured_now": not native.cached,
                                      "what": "cmake --target ggml-cpu with GGML_NATIVE=ON (ggml-base + ggml-cpu), 2 cores",
                                      "zmm_instructions": q.count_registers(native.path, "zmm")}
        real = ensure_model(QWEN_05B)
        mini = q.mini_model(real)
        results["mini_model"] = {"file": mini.name, "mb": round(mini.stat().st_size / 1e6, 1),
                                 "runs": [one(rootfs, cpu, mini, rie, EVENT) for cpu in [None, *CPUS]]}
        sigill = q.run_handler(rootfs, EVENT, cpu=q.CPU_NO_AVX512, model=mini, native_lib=native.path)
        results["native_build_under_qemu"] = {"cpu": q.CPU_NO_AVX512, "returncode": sigill.returncode,
                                              "wall_s": sigill.seconds, "stderr_tail": sigill.stderr.strip()[-120:]}
        print(json.dumps(results["native_build_under_qemu"]), flush=True)
        if args.real:
            real_event = dict(EVENT, max_tokens=1)
            results["real_model"] = {"measured_at": results["measured_at"], "event": real_event,
                                     "runs": [one(rootfs, cpu, real, rie, real_event, timeout=3600)
                                              for cpu in [None, *args.real_cpus]]}
        elif "real_model" in previous:
            results["real_model"] = previous["real_model"]
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
