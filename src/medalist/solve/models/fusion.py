"""``fusion``: a late-fusion network, as Agent K builds for image, text and multimodal tasks. One embedder
per input modality, concatenated, a shared Linear-SiLU neck, and a head per target, trained end to end:

- tabular: standardised numerics (with missing indicators) + an embedding per category column -> Linear;
- text: frozen sentence embeddings (local MiniLM, cached) -> Linear, or, without local weights, a hashed
  bag of word 1-2-grams (EmbeddingBag) learnt end to end;
- image: the small CNN of ``image`` trained from scratch (augmented), or frozen pretrained backbone
  embeddings when local weights exist (``image_backbone``).

The loss follows the task (cross-entropy, BCE, MSE or L1 for absolute-error metrics); early stopping uses
the fold's validation labels when given, else a holdout of its training rows; the tuner searches the
learning rate, optimiser (AdamW / SGD), epochs and regularisation (``search_space``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.solve.models.base import tabular_only
from medalist.solve.models.fusion_core import (
    ArrayInputs,
    ConcatBody,
    MergedInputs,
    NetFamily,
    NetParts,
    net_space,
)
from medalist.solve.models.image import ImageInputs, channel_stats, cnn_body, hflip_view, image_net_params
from medalist.solve.models.image_loading import ImageStore, column_paths, image_columns, load_splits
from medalist.solve.models.text import text_columns
from medalist.solve.models.text_embed import SentenceEncoder, embed_columns, text_model_reason
from medalist.solve.types import ModelTask

TEXT_EMBEDDERS = ("auto", "minilm", "hash")
IMAGE_EMBEDDERS = ("auto", "cnn", "backbone")


class BagInputs:
    """``NetInputs`` over a sparse (rows x buckets) matrix of weighted hashed n-grams, for an EmbeddingBag."""

    def __init__(self, matrix: Any) -> None:
        self.matrix = matrix.tocsr()

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def batch(self, rows: np.ndarray, train: bool, gen: Any) -> dict[str, Any]:
        import torch

        sub = self.matrix[rows]
        return {
            "bag_idx": torch.as_tensor(sub.indices.astype(np.int64)),
            "bag_off": torch.as_tensor(sub.indptr[:-1].astype(np.int64)),
            "bag_w": torch.as_tensor(sub.data.astype(np.float32)),
        }


def _tab_embedder(n_num: int, cards: list[int], out: int, emax: int) -> Any:
    import torch
    from torch import nn

    class TabEmbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embs = nn.ModuleList([nn.Embedding(c, min(emax, (c + 1) // 2 + 1)) for c in cards])
            width = n_num + sum(e.embedding_dim for e in self.embs)
            self.proj = nn.Sequential(nn.Linear(width, out), nn.BatchNorm1d(out), nn.SiLU())

        def forward(self, batch: dict[str, Any]) -> Any:
            parts = [batch["tab_num"]] + [e(batch["tab_cat"][:, i]) for i, e in enumerate(self.embs)]
            return self.proj(torch.cat(parts, dim=1))

    return TabEmbed()


def _dense_embedder(key: str, width: int, out: int) -> Any:
    from torch import nn

    class DenseEmbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out), nn.SiLU())

        def forward(self, batch: dict[str, Any]) -> Any:
            return self.proj(batch[key])

    return DenseEmbed()


def _bag_embedder(buckets: int, out: int) -> Any:
    from torch import nn

    class BagEmbed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bag = nn.EmbeddingBag(buckets, out, mode="sum")
            self.norm = nn.LayerNorm(out)
            self.act = nn.SiLU()

        def forward(self, batch: dict[str, Any]) -> Any:
            z = self.bag(batch["bag_idx"], batch["bag_off"], per_sample_weights=batch["bag_w"])
            return self.act(self.norm(z))

    return BagEmbed()


class FusionFamily(NetFamily):
    """Late fusion of every input modality present in the frame (see the module docstring)."""

    name = "fusion"
    modalities = ("image", "text", "tabular")
    packages = ("torch", "sklearn")

    def __init__(self) -> None:
        self.store = ImageStore()
        self._encoder: SentenceEncoder | None = None
        self._backbone: Any = None

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            **image_net_params(n_rows),
            "lr": 2e-3,
            "optimizer": "adamw",
            "weight_decay": 1e-4,
            "epochs": 40,
            "patience": 6,
            "batch_size": 16 if n_rows < 2000 else 64,  # small data: more steps per epoch
            "hidden": 128,
            "dropout": 0.2,
            "holdout": 0.1,
            "tab_dim": 64,
            "text_dim": 64,
            "text_embedder": "auto",
            "image_embedder": "auto",
            "hash_bits": 15,
            "embedding_max": 16,
            "use_tabular": True,
            "tta": True,
            "max_seconds": 900,
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {**net_space(), "hidden": ("cat", [64, 128, 256]), "text_dim": ("cat", [32, 64, 128])}

    # ------------------------------------------------------------------ building the fold's network
    def build(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        task: ModelTask,
        seed: int,
    ) -> NetParts:
        splits = (X_train, X_valid, X_test)
        inputs: list[list[Any]] = [[], [], []]
        embedders: dict[str, Any] = {}
        dims = 0
        tta = None
        if params.get("use_tabular", True) and tabular_only(X_train).shape[1]:
            dims += self._tabular(splits, params, inputs, embedders)
        if text_columns(X_train):
            dims += self._text(splits, params, inputs, embedders)
        if image_columns(X_train):
            d, tta = self._image(splits, params, inputs, embedders)
            dims += d
        if not embedders:
            raise CheckError("fusion found no input columns (tabular, txt__* or img__*) in the feature frame")
        body = ConcatBody.make(embedders)
        merged = [MergedInputs(parts) for parts in inputs]
        return NetParts(merged[0], merged[1], merged[2], body, dims, tta=tta if params.get("tta") else None)

    def _tabular(
        self,
        splits: tuple[pd.DataFrame, ...],
        params: dict[str, Any],
        inputs: list[list[Any]],
        embedders: dict[str, Any],
    ) -> int:
        from medalist.solve.models.mlp import MLPFamily

        tabs = [tabular_only(X) for X in splits]
        enc = MLPFamily().encode(tabs[0], tabs[1], tabs[2], {"numeric": "quantile"}, 0)
        for i, e in enumerate(enc):
            inputs[i].append(
                ArrayInputs({"tab_num": e.num.astype(np.float32), "tab_cat": e.cat.astype(np.int64)})
            )
        out = int(params["tab_dim"])
        embedders["tabular"] = _tab_embedder(
            enc[0].num.shape[1], list(enc[0].cards), out, int(params["embedding_max"])
        )
        return out

    def _text(
        self,
        splits: tuple[pd.DataFrame, ...],
        params: dict[str, Any],
        inputs: list[list[Any]],
        embedders: dict[str, Any],
    ) -> int:
        cols = text_columns(splits[0])
        choice = str(params.get("text_embedder", "auto"))
        if choice not in TEXT_EMBEDDERS:
            raise CheckError(f"unknown text_embedder {choice!r}; choose one of {', '.join(TEXT_EMBEDDERS)}")
        out = int(params["text_dim"])
        if choice == "minilm" or (choice == "auto" and text_model_reason() is None):
            if self._encoder is None:
                self._encoder = SentenceEncoder()
            emb = [embed_columns(self._encoder, X, cols) for X in splits]
            for i, e in enumerate(emb):
                inputs[i].append(ArrayInputs({"txt_emb": e}))
            embedders["text"] = _dense_embedder("txt_emb", emb[0].shape[1], out)
            return out
        import scipy.sparse as sp_sparse
        from sklearn.feature_extraction.text import HashingVectorizer

        buckets = 2 ** int(params["hash_bits"])
        vec = HashingVectorizer(
            n_features=buckets, ngram_range=(1, 2), alternate_sign=False, norm="l2", strip_accents="unicode"
        )
        for i, X in enumerate(splits):
            mats = [vec.transform(X[c].astype(str).tolist()) for c in cols]
            inputs[i].append(BagInputs(sp_sparse.hstack(mats, format="csr")))
        embedders["text"] = _bag_embedder(buckets * len(cols), out)
        return out

    def _image(
        self,
        splits: tuple[pd.DataFrame, ...],
        params: dict[str, Any],
        inputs: list[list[Any]],
        embedders: dict[str, Any],
    ) -> tuple[int, Any]:
        from medalist.solve.models.image_backbone import Backbone, backbone_reason

        choice = str(params.get("image_embedder", "auto"))
        if choice not in IMAGE_EMBEDDERS:
            raise CheckError(f"unknown image_embedder {choice!r}; choose one of {', '.join(IMAGE_EMBEDDERS)}")
        cols = image_columns(splits[0])
        if choice == "backbone" or (choice == "auto" and backbone_reason() is None):
            if self._backbone is None:
                self._backbone = Backbone.load()
            emb = [np.hstack([self._backbone.embed(column_paths(X, c)) for c in cols]) for X in splits]
            for i, e in enumerate(emb):
                inputs[i].append(ArrayInputs({"img_emb": e.astype(np.float32)}))
            out = int(params["tab_dim"])
            embedders["image"] = _dense_embedder("img_emb", emb[0].shape[1], out)
            return out, None
        train, valid, test, channels = load_splits(self.store, cols[0], *splits, params)
        mean, std = channel_stats(train)
        for i, imgs in enumerate((train, valid, test)):
            inputs[i].append(ImageInputs(imgs, mean, std, params))
        body, dim = cnn_body(channels, int(params["width"]), int(params["blocks"]))
        embedders["image"] = body  # the CNN body maps batch["img"] to pooled features
        return dim, hflip_view if params.get("hflip", True) else None
