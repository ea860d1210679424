"""Text embedders for the memory: a deterministic hashing embedder and the local sentence-transformer.

Every embedder has a ``name`` (stored beside each vector, so a store re-embeds what another embedder made), a
``dim`` and ``embed(texts) -> (n, dim)`` float32 rows of unit L2 norm (an empty text gives a zero row).
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

HASHING_DIM = 1024
_WORD = re.compile(r"[a-z0-9]+")


class Embedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised (zero rows stay zero)."""
        ...


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim == 1:
        m = m[None, :]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (m / norms).astype(np.float32)


class HashingEmbedder:
    """Signed feature hashing of words, word bigrams and character 3-grams (within words): no model, no state,
    the same vector for the same text on every machine."""

    def __init__(self, dim: int = HASHING_DIM) -> None:
        self._dim = int(dim)
        self.name = f"hashing-v1-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feature, weight in _features(str(text)):
                digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                sign = 1.0 if value & 1 else -1.0
                out[row, (value >> 1) % self._dim] += sign * weight
        return normalise_rows(out)


def _features(text: str) -> list[tuple[str, float]]:
    words = _WORD.findall(text.lower())
    feats: list[tuple[str, float]] = [(f"w:{w}", 1.0) for w in words]
    feats += [(f"b:{a}_{b}", 0.7) for a, b in itertools.pairwise(words)]
    for w in words:
        padded = f"<{w}>"
        feats += [(f"c:{padded[i : i + 3]}", 0.3) for i in range(max(len(padded) - 2, 1))]
    return feats


class SentenceEmbedder:
    """The locally installed sentence-transformer (all-MiniLM-L6-v2 by default), via the text models' encoder:
    offline, cached per text on disk. Raises CheckError at construction when no model is installed."""

    def __init__(self) -> None:
        from medalist.solve.models.text_embed import SentenceEncoder

        self._encoder = SentenceEncoder()
        self.name = f"sentence-{self._encoder.model_id}"
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        vectors = normalise_rows(self._encoder.encode([str(t) for t in texts], threads=1))
        self._dim = int(vectors.shape[1])
        return vectors


def sentence_model_reason() -> str | None:
    """None when the sentence embedder can run here, else why not (one line)."""
    from medalist.solve.models.text_embed import text_model_reason

    return text_model_reason()


def default_embedder() -> Embedder:
    """The sentence-transformer where one is installed, else the hashing embedder."""
    if sentence_model_reason() is None:
        try:
            return SentenceEmbedder()
        except Exception:  # a broken install: the hashing embedder still gives a working memory
            return HashingEmbedder()
    return HashingEmbedder()
