"""The llama.cpp analyser's Lambda image contents, built without a Docker daemon.

`build_llama_rootfs(out)` writes the layers that infra/llama-lambda/Dockerfile adds on top of the Lambda
Python base image, as a plain directory (a root filesystem fragment):

    out/var/task/                 LAMBDA_TASK_ROOT: processors/ (the function code), awslambdaric,
                                  llama-cpp-python (the portable runtime-dispatch build: every x86 ggml CPU
                                  variant in llama_cpp/lib/libggml-cpu-*.so) and its dependencies
    out/opt/model/<file>.gguf     the verified Qwen2.5-Coder-0.5B model (SIEVE_MODEL_PATH points at it)
    out/etc/sieve-llama/image.json  the image config: Cmd, Env, WorkingDir, base image, Python version,
                                  CPU variants, model sha256

Run it in place with no development venv: `python -I -S` with `out/var/task` first on sys.path (what
tests/infra/test_llama_qemu.py does, under emulated older CPUs), or `python -m awslambdaric
processors.handlers.llama_lambda.handler` from `out/var/task` behind the Lambda runtime interface emulator.

llama-cpp-python comes from the wheel localstack/build-llama.sh caches (`./dev setup` builds it), never
from PyPI: PyPI has no binary wheel and a default source build targets the build host's CPU (SIGILL on
older ones). Python dependencies are manylinux wheels for `python_version`, by default the template's Lambda runtime
(processors/runtime/sam.py RUNTIME, python3.12, the base image's Python). After the build the handler is
imported from the rootfs alone by an interpreter of that version (PATH, pyenv, /usr/bin) and the CPU
variants are loaded: a missing dependency fails the build. Without such an interpreter the check is
recorded as not run in image.json (and the qemu test, which needs one, fails saying so).

The model can be left out (`include_model=False`) and mounted instead (e.g. EFS at /mnt/model with
SIEVE_MODEL_PATH=/mnt/model/<file>); the handler reads SIEVE_MODEL_PATH.

    python -m processors.runtime.package_llama OUT [--no-model] [--python-version 3.12]
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from processors.adapters.model_files import QWEN_05B, cache_dir, ensure_model, sha256_file
from processors.errors import SieveError
from processors.runtime.sam import RUNTIME

log = logging.getLogger(__name__)

TASK_ROOT = Path("var/task")
MODEL_DIR = Path("opt/model")
CONFIG_PATH = Path("etc/sieve-llama/image.json")
HANDLER = "processors.handlers.llama_lambda.handler"
LAMBDA_PYTHON = RUNTIME.removeprefix("python")  # "3.12"
BASE_IMAGE = f"public.ecr.aws/lambda/python:{LAMBDA_PYTHON}"
BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "localstack" / "build-llama.sh"

# What the handler imports at runtime besides llama-cpp-python (whose own requirements pip resolves from
# the wheel's metadata: numpy, typing-extensions, diskcache, jinja2). Pinned to the versions installed
# here when there are any, so the artifact runs what the tests ran.
RUNTIME_REQUIREMENTS = ("awslambdaric==4.2.2", "aws-lambda-powertools", "orjson", "jmespath", "numpy", "typing-extensions",
                        "diskcache", "jinja2", "markupsafe")

IMAGE_ENV = {
    "POWERTOOLS_SERVICE_NAME": "sieve-llama",
    "SIEVE_LLAMA_MAX_TOKENS": "1024",
}


class PackageError(SieveError):
    """The llama.cpp image contents could not be built."""

    exit_code = 4


def _build_script_settings(script: Path = BUILD_SCRIPT) -> tuple[str, str]:
    """(LLAMA_VERSION, CMAKE_ARGS) as localstack/build-llama.sh sets them: one source of truth."""
    text = script.read_text()
    version = re.search(r'^LLAMA_VERSION="\$\{LLAMA_VERSION:-([^}]+)\}"', text, re.M)
    cmake = re.search(r'^CMAKE_ARGS="([^"]+)"', text, re.M)
    if not version or not cmake:
        raise PackageError(f"cannot read LLAMA_VERSION / CMAKE_ARGS from {script}")
    return os.environ.get("LLAMA_VERSION") or version.group(1), cmake.group(1)


def llama_wheel() -> Path:
    """The cached portable (runtime CPU dispatch) llama-cpp-python wheel that build-llama.sh made."""
    version, cmake_args = _build_script_settings()
    for flag in ("-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_NATIVE=OFF"):
        if flag not in cmake_args.split():
            raise PackageError(f"{BUILD_SCRIPT} no longer builds with {flag}: the image would not be CPU-portable")
    args_hash = hashlib.sha256(cmake_args.encode()).hexdigest()[:12]
    wheel_dir = cache_dir() / "wheels" / f"llama-cpp-python-{version}-{args_hash}"
    wheels = sorted(wheel_dir.glob(f"llama_cpp_python-{version}-*.whl"))
    if not wheels:
        raise PackageError(
            f"no cached llama-cpp-python {version} wheel in {wheel_dir}; build it with `./dev setup` "
            "(or `bash localstack/build-llama.sh .venv`, ~10 min on 2 cores)"
        )
    return wheels[0]


def _pinned(names: tuple[str, ...]) -> list[str]:
    reqs = []
    for name in names:
        if "==" in name:
            reqs.append(name)
            continue
        try:
            reqs.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(name)
    return reqs


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-3000:]
        raise PackageError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd[:6])} ...\n{tail}")
    return proc


def _install_python_deps(task: Path, python_version: str | None) -> None:
    wheel = llama_wheel()
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
           "--target", str(task), "--only-binary=:all:", str(wheel), *_pinned(RUNTIME_REQUIREMENTS)]
    if python_version:
        # Lambda's platform: python3.12 runs on Amazon Linux 2023, glibc 2.34 (recent numpy wheels are
        # manylinux_2_27+ only); linux_x86_64 admits the llama wheel (built here, not auditwheel-repaired).
        platforms = ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux2014_x86_64",
                     "linux_x86_64")
        cmd += ["--python-version", python_version, "--implementation", "cp", "--no-compile"]
        cmd += [arg for p in platforms for arg in ("--platform", p)]
    _run(cmd, "pip install into the task root")
    # The llama wheel also drops copies of its libraries and headers at the top of the target
    # (site-packages/lib, site-packages/include): ~37 MB nobody loads.
    for stray in ("lib", "include"):
        shutil.rmtree(task / stray, ignore_errors=True)


# What the image's base (Amazon Linux 2023, the python3.12 Lambda image) provides: glibc 2.34 and GCC 11's
# libstdc++ (GLIBCXX_3.4.29, CXXABI_1.3.13); libgomp is installed by the Dockerfile.
BASE_LIBS = {"GLIBC": (2, 34), "GLIBCXX": (3, 4, 29), "CXXABI": (1, 3, 13)}


def _needed_versions(lib_dir: Path) -> dict[str, str] | str:
    """Highest GLIBC_/GLIBCXX_/CXXABI_ symbol version the llama.cpp libraries need (objdump -T); raises if
    the base image cannot provide it (a wheel built on a newer distribution would fail on Lambda)."""
    objdump = shutil.which("objdump")
    if objdump is None:
        return "not checked: objdump (binutils) missing"
    highest: dict[str, tuple[int, ...]] = {}
    for lib in sorted(lib_dir.glob("*.so")):
        out = _run([objdump, "-T", str(lib)], f"objdump -T {lib.name}").stdout
        for name, ver in re.findall(r"\b(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)+)\b", out):
            v = tuple(int(x) for x in ver.split("."))
            if v > highest.get(name, ()):
                highest[name] = v
    too_new = {k: v for k, v in highest.items() if v > BASE_LIBS[k]}
    if too_new:
        raise PackageError(
            f"the llama.cpp libraries need {too_new}, newer than the Lambda base image provides {BASE_LIBS}: "
            "rebuild the wheel on an older distribution (or with infra/llama-lambda/Dockerfile)"
        )
    return {k: ".".join(map(str, v)) for k, v in sorted(highest.items())}


def _copy_code(task: Path) -> None:
    src = Path(__file__).resolve().parents[1]  # the processors package
    shutil.copytree(src, task / "processors", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))


def _place_model(root: Path, model_path: Path) -> dict:
    dest_dir = root / MODEL_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / model_path.name
    try:
        os.link(model_path, dest)  # same filesystem: no 491 MB copy
    except OSError:
        shutil.copy2(model_path, dest)
    size = dest.stat().st_size
    sha = QWEN_05B.sha256 if (model_path.name == QWEN_05B.filename and size == QWEN_05B.size) else sha256_file(dest)
    return {"path": "/" + str(MODEL_DIR / model_path.name), "size": size, "sha256": sha}


def find_interpreter(version: str) -> Path | None:
    """A CPython of this minor version: python<version> on PATH, pyenv's, /usr/bin's, /usr/local/bin's."""
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        return Path(getattr(sys, "_base_executable", None) or sys.executable)
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(str(Path.home() / f".pyenv/versions/{version}.*/bin/python{version}")), reverse=True)
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for c in candidates:
        if c and Path(c).is_file():
            proc = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True,
                                  text=True)
            if proc.returncode == 0 and proc.stdout.strip() == version:
                return Path(c)
    return None


def _smoke_test(root: Path, python: Path) -> str:
    """Import the handler from the rootfs alone (`python -I -S`: no venv, no site-packages) and load the
    ggml CPU variants; return the variant this machine picks. A missing dependency fails here."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import awslambdaric, processors.handlers.llama_lambda;"
        "from processors.adapters.llama import load_cpu_backends; print(load_cpu_backends())"
    )
    proc = _run([str(python), "-I", "-S", "-c", code, str(root / TASK_ROOT)], "smoke import of the handler",
                cwd=str(root))
    return proc.stdout.strip().splitlines()[-1]


def build_llama_rootfs(
    out: Path,
    *,
    include_model: bool = True,
    model_path: Path | None = None,
    python_version: str = LAMBDA_PYTHON,
    smoke_test: bool = True,
) -> Path:
    """Build the llama.cpp analyser image's contents into the directory `out` (replaced if it exists) and
    return it. See the module docstring for the layout."""
    out = Path(out).resolve()
    started = time.perf_counter()
    cross = None if python_version == f"{sys.version_info.major}.{sys.version_info.minor}" else python_version
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    task = tmp / TASK_ROOT
    task.mkdir(parents=True)
    try:
        _install_python_deps(task, cross)
        _copy_code(task)
        variants = sorted(p.name for p in (task / "llama_cpp" / "lib").glob("libggml-cpu-*.so"))
        if not variants:
            raise PackageError("the llama-cpp-python wheel has no libggml-cpu-*.so variants: not a dispatch build")
        model = None
        env = dict(IMAGE_ENV)
        if include_model:
            model = _place_model(tmp, Path(model_path) if model_path else ensure_model(QWEN_05B))
            env["SIEVE_MODEL_PATH"] = model["path"]
        config = {
            "base_image": f"public.ecr.aws/lambda/python:{python_version}",
            "python": python_version,
            "WorkingDir": "/" + str(TASK_ROOT),
            "Cmd": [HANDLER],
            "Env": env,
            "llama_cpp_python": _build_script_settings()[0],
            "cpu_variants": variants,
            "native_libs_need": _needed_versions(task / "llama_cpp" / "lib"),
            "model": model,
            "model_mount": None if include_model else "set SIEVE_MODEL_PATH to a GGUF file mounted into the function",
        }
        if smoke_test:
            python = find_interpreter(python_version)
            if python is None:
                config["smoke_test"] = f"not run: no python{python_version} interpreter on this machine"
                log.warning("llama rootfs: %s", config["smoke_test"])
            else:
                config["smoke_test"] = {"python": str(python), "cpu_variant": _smoke_test(tmp, python)}
        (tmp / CONFIG_PATH).parent.mkdir(parents=True, exist_ok=True)
        (tmp / CONFIG_PATH).write_text(json.dumps(config, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log.info("llama.cpp rootfs at %s in %.1fs (%d CPU variants)", out, time.perf_counter() - started, len(variants))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processors.runtime.package_llama", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="directory to write the root filesystem to (replaced)")
    parser.add_argument("--no-model", action="store_true", help="leave the model out (mount it, set SIEVE_MODEL_PATH)")
    parser.add_argument("--python-version", default=LAMBDA_PYTHON, help=f"target Python (default {LAMBDA_PYTHON}, the template's runtime)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = build_llama_rootfs(args.out, include_model=not args.no_model, python_version=args.python_version)
    except SieveError as exc:
        print(f"package_llama: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(json.loads((root / CONFIG_PATH).read_text()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
