"""What tests/infra/test_llama_qemu.py and bench/bench_llama_qemu.py share: qemu-user, the llama.cpp sources,
the native (non-dispatch) ggml CPU library, the mini model, and running the artifact's handler under an
emulated CPU.

Everything slow is cached under ${SIEVE_CACHE:-~/.cache/sieve}: the llama-cpp-python sdist (src/), the
native ggml CPU library (ggml-native/<version>-<host CPU hash>/, ~1-3 min to build on 2 cores) and the mini
model (models/).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "llama_qemu_run.py"
LLAMA_VERSION = "0.3.36"

# qemu-x86_64 CPU models (`qemu-x86_64 -cpu help`), picked for what they lack:
CPU_NO_AVX512 = "Haswell-v4"    # AVX2 + FMA + F16C + BMI2, no AVX-512 (Haswell, no TSX, IBRS)
CPU_NO_AVX2 = "Nehalem-v1"      # SSE4.2 only: no AVX, no AVX2 (Core i7 9xx)
CPU_NO_AVX2_WITH_AVX = "SandyBridge-v1"  # AVX but no AVX2 (bench only)


def cache_root() -> Path:
    return Path(os.environ.get("SIEVE_CACHE") or Path.home() / ".cache" / "sieve")


def ensure_qemu() -> str:
    """Path of qemu-x86_64; installs Debian's qemu-user when it is missing. Raises RuntimeError saying why
    it cannot be had (the caller fails the test with it: never a silent skip)."""
    found = shutil.which("qemu-x86_64")
    if found:
        return found
    apt = shutil.which("apt-get")
    if not apt:
        raise RuntimeError("qemu-x86_64 is missing and there is no apt-get to install Debian's qemu-user")
    if os.geteuid() != 0:
        raise RuntimeError("qemu-x86_64 is missing; install it with `sudo apt-get install -y qemu-user` (or ./dev setup as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run([apt, "install", "-y", "-q", "qemu-user"], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        subprocess.run([apt, "update", "-q"], capture_output=True, text=True, env=env)
        proc = subprocess.run([apt, "install", "-y", "-q", "qemu-user"], capture_output=True, text=True, env=env)
    found = shutil.which("qemu-x86_64")
    if not found:
        raise RuntimeError(f"apt-get install qemu-user failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-1500:]}")
    return found


def llama_sources() -> Path:
    """The llama.cpp tree vendored in the llama-cpp-python sdist (the same sources as the cached wheel)."""
    src = cache_root() / "src"
    tree = src / f"llama_cpp_python-{LLAMA_VERSION}"
    if (tree / "vendor" / "llama.cpp" / "ggml" / "CMakeLists.txt").is_file():
        return tree / "vendor" / "llama.cpp"
    src.mkdir(parents=True, exist_ok=True)
    sdist = src / f"llama_cpp_python-{LLAMA_VERSION}.tar.gz"
    if not sdist.is_file():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"llama-cpp-python=={LLAMA_VERSION}", "-d", str(src)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 or not sdist.is_file():
            raise RuntimeError(f"pip download llama-cpp-python=={LLAMA_VERSION} failed: {proc.stderr[-1500:]}")
    tmp = src / f".extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp, filter="data")
    shutil.rmtree(tree, ignore_errors=True)
    (tmp / tree.name).rename(tree)
    shutil.rmtree(tmp, ignore_errors=True)
    return tree / "vendor" / "llama.cpp"


def cpu_variant_features() -> dict[str, list[str]]:
    """x86 variant name -> instruction-set features, read from ggml's own CMakeLists.txt
    (`ggml_add_cpu_backend_variant(haswell SSE42 AVX F16C FMA AVX2 BMI2)`)."""
    text = (llama_sources() / "ggml" / "src" / "CMakeLists.txt").read_text()
    out = {}
    for name, feats in re.findall(r"ggml_add_cpu_backend_variant\((\w+)((?:[ \t]+\w+)*)\s*\)", text):
        out[name] = feats.split()
    return out


def host_cpu_key() -> str:
    flags = model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = line
        if line.startswith("model name") and not model:
            model = line
    return hashlib.sha256((model + flags).encode()).hexdigest()[:12]


@dataclass
class NativeLib:
    path: Path
    build_seconds: float
    cached: bool


def native_ggml_cpu() -> NativeLib:
    """libggml-cpu.so built with GGML_NATIVE=ON (-march=native) for this host, the way a default
    `pip install llama-cpp-python` builds it: only the ggml-cpu target (and ggml-base). Cached per host CPU."""
    dest_dir = cache_root() / "ggml-native" / f"{LLAMA_VERSION}-{host_cpu_key()}"
    lib, info = dest_dir / "libggml-cpu.so", dest_dir / "build.json"
    if lib.is_file() and info.is_file():
        return NativeLib(lib, json.loads(info.read_text())["build_seconds"], cached=True)
    source = llama_sources()
    build = dest_dir.with_name(dest_dir.name + ".build")
    shutil.rmtree(build, ignore_errors=True)
    started = time.perf_counter()
    cfg = ["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON",
           "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
           "-DLLAMA_BUILD_TOOLS=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_COMMON=OFF", "-DLLAMA_CURL=OFF"]
    for cmd in (cfg, ["cmake", "--build", str(build), "--target", "ggml-cpu", "-j", str(os.cpu_count() or 2)]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"native ggml build failed: {' '.join(cmd[:4])}: {(proc.stderr or proc.stdout)[-2000:]}")
    seconds = round(time.perf_counter() - started, 1)
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build / "bin" / "libggml-cpu.so", lib)
    info.write_text(json.dumps({"build_seconds": seconds, "cmake": cfg[3:]}) + "\n")
    shutil.rmtree(build, ignore_errors=True)
    return NativeLib(lib, seconds, cached=False)


def count_registers(lib: Path, register: str) -> int:
    """How many instructions in `lib` name a `%zmm` (AVX-512) or `%ymm` (AVX/AVX2) register."""
    proc = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True, check=True)
    return proc.stdout.count(f"%{register}")


def mini_model(real_gguf: Path) -> Path:
    """The cached mini qwen2 model (tests/infra/data/mini_gguf.py), built on first use (~10-40 s)."""
    sys.path.insert(0, str(HERE))
    from mini_gguf import N_EMBD, N_LAYER, SEED, build_mini_model

    out = cache_root() / "models" / f"sieve-mini-qwen2-{N_LAYER}x{N_EMBD}-s{SEED}-q4_k_m.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        build_mini_model(real_gguf, out, llama_sources() / "gguf-py")
    return out


def rootfs_config(rootfs: Path) -> dict:
    return json.loads((rootfs / "etc" / "sieve-llama" / "image.json").read_text())


def rootfs_python(rootfs: Path) -> Path:
    """An interpreter of the rootfs's Python version (the Lambda runtime's), outside any venv."""
    from processors.runtime.package_llama import find_interpreter

    version = rootfs_config(rootfs)["python"]
    found = find_interpreter(version)
    if found is None:
        raise RuntimeError(f"no python{version} interpreter here to run the llama rootfs built for it")
    return Path(os.path.realpath(found))


def rie_binary() -> Path | None:
    """The Lambda Runtime Interface Emulator `./dev setup` builds (processors/runtime/package.py), if built."""
    try:
        from processors.runtime.package import rie_binary as built
    except ImportError:
        return None
    try:
        return built(build=False)
    except Exception:  # not built on this machine: the caller says it ran without it
        return None


@dataclass
class Run:
    cpu: str | None
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    payload: dict | None = None
    logs: list[dict] = field(default_factory=list)

    mode: str = "direct"
    cpu_seconds: float | None = None  # user+sys of the process tree (the emulated runs' cost, whatever the load)

    @property
    def variant(self) -> str | None:
        return self.payload["variant"] if self.payload else None


def _function_env(rootfs: Path, *, model: Path | None, extra_bufts: bool | None, native_lib: Path | None) -> dict:
    """The function's environment: the image's Env (its /opt/model path mapped into the rootfs), the
    model override, and nothing of this shell's Python setup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SIEVE_", "VIRTUAL_ENV", "AWS_"))}
    env.update(rootfs_config(rootfs)["Env"])
    if "SIEVE_MODEL_PATH" in env:
        env["SIEVE_MODEL_PATH"] = str(rootfs / env["SIEVE_MODEL_PATH"].lstrip("/"))
    if model:
        env["SIEVE_MODEL_PATH"] = str(model)
    env["SIEVE_LLAMA_THREADS"] = "2"
    if extra_bufts is not None:
        env["SIEVE_LLAMA_EXTRA_BUFTS"] = "1" if extra_bufts else "0"
    if native_lib:
        env["SIEVE_TEST_GGML_CPU"] = str(native_lib)
    return env


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            obj = json.loads(line[start:])
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def run_under_rie(
    rootfs: Path, event: dict, *, cpu: str | None, rie: Path, model: Path | None = None,
    extra_bufts: bool | None = None, timeout: float = 900,
) -> Run:
    """One invocation through the real Lambda Runtime Interface Emulator: RIE (native) starts
    `qemu-x86_64 -cpu CPU python -S -m awslambdaric processors.handlers.llama_lambda.handler` in the
    rootfs's /var/task (PYTHONPATH = the task root only) and the event is POSTed to it."""
    import socket
    import urllib.error
    import urllib.request

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    port, api_port = free_port(), free_port()  # RIE's own Runtime API defaults to 9001: taken by any other RIE
    task = rootfs / "var" / "task"
    config = rootfs_config(rootfs)
    env = _function_env(rootfs, model=model, extra_bufts=extra_bufts, native_lib=None)
    env.update({"PYTHONPATH": str(task), "LAMBDA_TASK_ROOT": str(task), "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(timeout)),
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008", "TZ": ":UTC"})
    runtime = [str(rootfs_python(rootfs)), "-S", "-m", "awslambdaric", *config["Cmd"]]
    if cpu:
        runtime = [ensure_qemu(), "-cpu", cpu, *runtime]
    cmd = [str(rie), "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
           "--runtime-api-address", f"127.0.0.1:{api_port}", *runtime]
    log_path = rootfs.parent / f"rie-{cpu or 'host'}-{os.getpid()}.log"
    started, cpu0 = time.perf_counter(), _children_cpu()
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=str(task), env=env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_no_core)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            req = urllib.request.Request(f"http://127.0.0.1:{port}/2015-03-31/functions/function/invocations",
                                         data=json.dumps(event).encode(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback)
                    body = resp.read()
            except urllib.error.HTTPError as exc:
                body = exc.read()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    seconds = round(time.perf_counter() - started, 2)
    text = log_path.read_text(errors="replace")
    logs = _json_lines(text)
    response = json.loads(body) if body else None
    loaded = [e for e in logs if e.get("message") == "model loaded"]
    payload = None
    if isinstance(response, dict) and "errorType" not in response:
        payload = {"result": response, "variant": loaded[0].get("cpu_variant") if loaded else None}
    return Run(cpu, 0 if payload else 1, seconds, text, json.dumps(response), payload, logs, mode="rie",
               cpu_seconds=round(_children_cpu() - cpu0, 2))


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_handler(
    rootfs: Path, event: dict, *, cpu: str | None, model: Path | None = None, native_lib: Path | None = None,
    extra_bufts: bool | None = None, timeout: float = 900,
) -> Run:
    """Run the artifact's handler once in a fresh `python -I -S` (only the rootfs importable), under
    `qemu-x86_64 -cpu CPU` when `cpu` is given. `model` overrides SIEVE_MODEL_PATH (the handler's setting)."""
    task = rootfs / "var" / "task"
    env = _function_env(rootfs, model=model, extra_bufts=extra_bufts, native_lib=native_lib)
    cmd = [str(rootfs_python(rootfs)), "-I", "-S", str(RUNNER), str(task), json.dumps(event)]
    if cpu:
        cmd = [ensure_qemu(), "-cpu", cpu, *cmd]
    started, cpu0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(rootfs), timeout=timeout,
                          preexec_fn=_no_core)
    seconds = round(time.perf_counter() - started, 2)
    payload, logs = None, []
    for obj in _json_lines(proc.stdout):
        if "result" in obj and "variant" in obj:
            payload = obj
        else:
            logs.append(obj)
    return Run(cpu, proc.returncode, seconds, proc.stdout, proc.stderr, payload, logs,
               cpu_seconds=round(_children_cpu() - cpu0, 2))
