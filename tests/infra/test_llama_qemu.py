"""The llama.cpp analyser artifact survives CPUs older than the build host, and the test can tell.

The artifact is the root filesystem `processors.runtime.package_llama.build_llama_rootfs` builds (what the
Lambda image adds to its base: function code, awslambdaric, the runtime-dispatch llama-cpp-python,
the model). Its handler runs in a fresh `python -I -S` that sees only that rootfs, under Debian's
qemu-user emulating
  - Haswell-v4  (AVX2, no AVX-512): ggml must pick a variant without AVX-512;
  - Nehalem-v1  (SSE4.2: no AVX, no AVX2): ggml must pick a variant without AVX/AVX2;
and the variant's features are read from ggml's own CMake list and checked against the .so's machine
code (objdump: no %zmm / no %ymm). The control: the same handler and model with ggml's CPU library built
natively for this AVX-512 host (GGML_NATIVE=ON, what a default `pip install llama-cpp-python` builds)
answers on the host and dies with SIGILL under the emulated Haswell — the way the first llama.cpp
Lambda died.

Emulation is slow for the real 0.5B model (a one-word answer to the 23-token prompt: 163 s under
Haswell-v4, 22 s under Nehalem-v1 on a quiet box; bench/bench_llama_qemu.py --real), so the emulated runs
use a 2-layer model with the real model's tokenizer, chat template and Q4_K_M weights
(tests/infra/data/mini_gguf.py), passed through the handler's own setting SIEVE_MODEL_PATH.
Cost here: ~17 s on a quiet 2-core box, ~65 s when it is busy; once per machine add the native ggml
build (~2 min), the sdist download and the mini model (~10-40 s), all cached under ~/.cache/sieve.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
import llama_qemu_support as q  # noqa: E402

from processors.adapters.model_files import QWEN_05B, ensure_model  # noqa: E402
from processors.runtime.package_llama import build_llama_rootfs  # noqa: E402

log = logging.getLogger(__name__)

EVENT = {"system": "Answer in one word.", "user": "Colour of the sky?", "max_tokens": 2, "json_schema": None}


@pytest.fixture(scope="session")
def qemu() -> str:
    try:
        return q.ensure_qemu()
    except RuntimeError as exc:
        pytest.fail(f"qemu-user is needed to emulate older CPUs and could not be had: {exc}")


@pytest.fixture(scope="session")
def llama_rootfs(tmp_path_factory) -> Path:
    root = build_llama_rootfs(tmp_path_factory.mktemp("llama-image") / "rootfs")
    config = json.loads((root / "etc" / "sieve-llama" / "image.json").read_text())
    log.info("llama rootfs %s: %d CPU variants, model %s", root, len(config["cpu_variants"]), config["model"]["path"])
    return root


@pytest.fixture(scope="session")
def rie() -> Path | None:
    """The Lambda Runtime Interface Emulator when `./dev setup` built it; else the handler is called directly
    (said in the output, and the native-build proof below always runs directly to show the return code)."""
    found = q.rie_binary()
    print(f"\nllama artifact runs {'under the Lambda RIE ' + str(found) if found else 'directly (no RIE built)'}")
    return found


@pytest.fixture(scope="session")
def mini_model() -> Path:
    return q.mini_model(ensure_model(QWEN_05B))


@pytest.fixture(scope="session")
def variant_features() -> dict[str, list[str]]:
    features = q.cpu_variant_features()
    assert {"haswell", "sse42", "skylakex", "zen4"} <= set(features), f"ggml's variant list changed: {sorted(features)}"
    return features


def _answered(run: q.Run) -> dict:
    assert run.returncode == 0, f"handler ({run.mode}) under {run.cpu} failed ({run.returncode}):\n{run.stderr[-3000:]}\n{run.stdout[-3000:]}"
    assert run.payload, f"no result from the handler ({run.mode}):\n{run.stdout[-3000:]}"
    result = run.payload["result"]
    assert set(result) == {"text", "model_id", "tokens_in", "tokens_out", "latency_ms"}
    assert result["tokens_in"] > 5 and 1 <= result["tokens_out"] <= EVENT["max_tokens"] and result["text"]
    if run.mode == "direct":  # the artifact alone: its own llama_cpp, not the venv's
        assert run.payload["llama_cpp"].startswith(run.payload["sys_path_0"]), run.payload
    # the handler logs the variant it loaded (cold start)
    loaded = [entry for entry in run.logs if entry.get("message") == "model loaded"]
    assert loaded and loaded[0]["cpu_variant"] == run.variant, run.stdout[-2000:]
    return result


@pytest.mark.parametrize(
    ("cpu", "absent", "present", "register"),
    [
        (q.CPU_NO_AVX512, {"AVX512"}, {"AVX2", "FMA"}, "zmm"),
        (q.CPU_NO_AVX2, {"AVX", "AVX2", "AVX512"}, {"SSE42"}, "ymm"),
    ],
    ids=["no-avx512", "no-avx2"],
)
def test_dispatch_artifact_answers_on_older_cpu(qemu, llama_rootfs, rie, mini_model, variant_features, cpu, absent, present,
                                               register):
    # extra buffer types (weight repacking) on, as on a real CPU of that kind: under qemu, /proc/cpuinfo is
    # the host's (AMX), which would turn them off (processors/adapters/llama.py _extra_buffer_types_safe)
    if rie:
        run = q.run_under_rie(llama_rootfs, EVENT, cpu=cpu, rie=rie, model=mini_model, extra_bufts=True)
    else:
        run = q.run_handler(llama_rootfs, EVENT, cpu=cpu, model=mini_model, extra_bufts=True)
    result = _answered(run)
    variant = run.variant
    log.info("qemu -cpu %s: ggml chose %s, answered %r in %.1fs", cpu, variant, result["text"], run.seconds)
    print(f"\nqemu -cpu {cpu} ({run.mode}): ggml CPU variant {variant}; {result['tokens_out']} tokens in {run.seconds}s")
    name = variant.removeprefix("libggml-cpu-").removesuffix(".so")
    assert name in variant_features, f"{variant} is not one of ggml's x86 variants {sorted(variant_features)}"
    assert not absent & set(variant_features[name]), f"{variant} needs {variant_features[name]} on a {cpu}"
    lib = llama_rootfs / "var" / "task" / "llama_cpp" / "lib" / variant
    assert q.count_registers(lib, register) == 0, f"{variant} has %{register} instructions"
    # ...and the best the CPU allows, not the lowest common denominator (x64)
    assert present <= set(variant_features[name]), f"{cpu} got {variant} {variant_features[name]}"


def test_native_ggml_build_dies_with_sigill_on_older_cpu(qemu, llama_rootfs, mini_model):
    native = q.native_ggml_cpu()
    print(f"\nnative ggml CPU library {native.path} ({'cached' if native.cached else 'built'} in {native.build_seconds}s)")
    # an older CPU than this host: no AVX-512 when the host has it (CI's Xeons do), else no AVX2
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    older, register = (q.CPU_NO_AVX512, "zmm") if "avx512f" in flags else (q.CPU_NO_AVX2, "ymm")
    assert "avx2" in flags, "this host has no AVX2: no emulated CPU here is older than what a native build targets"
    assert q.count_registers(native.path, register) > 0, f"the native build has no %{register} code: not native to this host"
    on_host = q.run_handler(llama_rootfs, EVENT, cpu=None, model=mini_model, native_lib=native.path)
    _answered(on_host)
    assert on_host.variant == "libggml-cpu.so"
    emulated = q.run_handler(llama_rootfs, EVENT, cpu=older, model=mini_model, native_lib=native.path)
    print(f"native build under qemu -cpu {older}: returncode {emulated.returncode} in {emulated.seconds}s")
    assert emulated.returncode == -4, (
        f"expected SIGILL (-4) from the native build on {older}, got {emulated.returncode}:\n"
        f"{emulated.stdout[-1000:]}\n{emulated.stderr[-2000:]}"
    )
    assert "Illegal instruction" in emulated.stderr
    assert emulated.payload is None


def _dockerfile(path: Path) -> dict:
    """ENV pairs, CMD and the `pip install --target` requirement names of a Dockerfile's final stage."""
    text = path.read_text().replace("\\\n", " ")
    final = text[text.rindex("\nFROM ") :]
    env = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in line[4:].split())
    cmd = json.loads(next(line[4:] for line in final.splitlines() if line.startswith("CMD ")))
    pip = next((line for line in final.splitlines() if "pip install" in line and "--target" in line), "")
    names = {tok.split("==")[0].lower() for tok in pip.split("&&")[0].split()[5:] if not tok.startswith(("/", "$", "-"))}
    return {"env": env, "cmd": cmd, "requirements": names}


def test_dockerfiles_match_the_rootfs(llama_rootfs):
    """infra/llama-lambda/Dockerfile (from source) and Dockerfile.rootfs (from the prebuilt rootfs) give the
    image the rootfs's environment, command and dependencies."""
    from processors.runtime.package_llama import RUNTIME_REQUIREMENTS

    config = q.rootfs_config(llama_rootfs)
    infra = Path(__file__).resolve().parents[2] / "infra" / "llama-lambda"
    wanted = {name.split("==")[0].lower() for name in RUNTIME_REQUIREMENTS}
    for name in ("Dockerfile", "Dockerfile.rootfs"):
        parsed = _dockerfile(infra / name)
        assert parsed["env"] == config["Env"], name
        assert parsed["cmd"] == config["Cmd"], name
        if name == "Dockerfile":
            assert parsed["requirements"] == wanted, f"{name} installs {parsed['requirements']}, the rootfs {wanted}"
    assert config["python"] == "3.12" and config["base_image"].endswith("python:3.12")
    model = llama_rootfs / config["model"]["path"].lstrip("/")
    assert model.is_file() and model.stat().st_size == config["model"]["size"]
