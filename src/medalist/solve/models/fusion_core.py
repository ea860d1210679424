"""What the zoo's network families share (``cnn``, ``fusion``, ``transformer_ft``): ``NetFamily``, which
builds a fold's inputs and body and trains one network with ``net_training`` (early stopping on the fold's
validation rows, or a holdout of its training rows), the composable ``NetInputs`` (row subsets, merged
modalities, fixed arrays), the concatenating body of multi-modal networks, and the tuner's shared space.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.solve.models.base import Family, finish
from medalist.solve.models.net_training import (
    NetInputs,
    TrainInfo,
    build_net,
    make_heads,
    predict_heads,
    stop_rows,
    torch_threads,
    train_net,
)
from medalist.solve.types import ModelTask

MIN_ROWS_FOR_NET_HOLDOUT = 200  # below this a network trains a fixed number of epochs


@dataclass
class NetParts:
    """What a network family builds for one fold: the inputs of each split, a body and its width."""

    train: NetInputs
    valid: NetInputs
    test: NetInputs
    body: Any
    dim: int
    groups: Callable[[Any], list[dict[str, Any]]] | None = None  # net -> optimiser parameter groups
    tta: Callable[[dict[str, Any]], dict[str, Any]] | None = None


class NetFamily(Family):
    """A network family: ``build`` makes the fold's inputs and body; ``fit_predict`` trains one network
    with a head per target (early stopping on ``y_valid`` when given, else on a holdout of training rows
    when there are enough rows, else a fixed number of epochs). ``last_info`` tells how the last fit went."""

    packages = ("torch",)
    last_info: TrainInfo | None = None

    def build(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        task: ModelTask,
        seed: int,
    ) -> NetParts:
        raise NotImplementedError

    def fit_predict(
        self,
        X_train: pd.DataFrame,
        y_train: np.ndarray,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        task: ModelTask,
        seed: int,
        y_valid: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        full = {**self.default_params(task, len(X_train)), **(params or {})}
        torch.set_num_threads(torch_threads(full))
        torch.manual_seed(seed)
        y = np.asarray(y_train, dtype=float).reshape(len(y_train), -1)
        heads = make_heads(y, task)
        parts = self.build(X_train, X_valid, X_test, full, task, seed)
        net = build_net(
            parts.body, parts.dim, heads, int(full.get("hidden", 0)), float(full.get("dropout", 0.0))
        )
        groups = parts.groups(net) if parts.groups else None
        batch = int(full.get("batch_size", 64))
        if y_valid is not None and len(y_valid) == len(X_valid) and len(y_valid) > 0:
            yv = np.asarray(y_valid, dtype=float).reshape(len(y_valid), -1)
            info = train_net(net, heads, parts.train, y, (parts.valid, yv), full, task, seed, groups)
        elif float(full.get("holdout", 0.1)) > 0 and len(y) >= MIN_ROWS_FOR_NET_HOLDOUT:
            fit, stop = stop_rows(y, heads, seed, float(full.get("holdout", 0.1)))
            info = train_net(
                net,
                heads,
                _Rows(parts.train, fit),
                y[fit],
                (_Rows(parts.train, stop), y[stop]),
                full,
                task,
                seed,
                groups,
            )
        else:
            info = train_net(net, heads, parts.train, y, None, full, task, seed, groups)
        self.last_info = info
        pv = predict_heads(net, heads, parts.valid, batch, parts.tta)
        pt = predict_heads(net, heads, parts.test, batch, parts.tta)
        return finish([pv], [pt], task)


class _Rows:
    """A subset of another ``NetInputs`` (rows are positions in the parent)."""

    def __init__(self, parent: NetInputs, rows: np.ndarray) -> None:
        self.parent = parent
        self.rows = np.asarray(rows, dtype=int)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, rows: np.ndarray, train: bool, gen: Any) -> dict[str, Any]:
        return self.parent.batch(self.rows[rows], train, gen)


class ConcatBody:
    """Factory of a body that runs one embedder per modality and concatenates their features."""

    @staticmethod
    def make(embedders: dict[str, Any]) -> Any:
        import torch
        from torch import nn

        class Body(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.parts = nn.ModuleDict(embedders)

            def forward(self, batch: dict[str, Any]) -> Any:
                return torch.cat([m(batch) for m in self.parts.values()], dim=1)

        return Body()


class MergedInputs:
    """Several ``NetInputs`` over the same rows, merged into one batch dict."""

    def __init__(self, parts: Sequence[NetInputs]) -> None:
        if not parts:
            raise CheckError("a network needs at least one input modality")
        n = {len(p) for p in parts}
        if len(n) != 1:
            raise CheckError(f"network inputs disagree on the number of rows: {sorted(n)}")
        self.parts = list(parts)

    def __len__(self) -> int:
        return len(self.parts[0])

    def batch(self, rows: np.ndarray, train: bool, gen: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.parts:
            out.update(p.batch(rows, train, gen))
        return out


class ArrayInputs:
    """Fixed arrays (already encoded: standardised numerics, category codes, embeddings) under keys."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.n = len(next(iter(arrays.values()))) if arrays else 0

    def __len__(self) -> int:
        return self.n

    def batch(self, rows: np.ndarray, train: bool, gen: Any) -> dict[str, Any]:
        import torch

        return {k: torch.as_tensor(v[rows]) for k, v in self.arrays.items()}


def net_space() -> dict[str, Any]:
    """The tuner's space shared by the networks: learning rate, optimiser, epochs, regularisation."""
    return {
        "lr": ("logfloat", 1e-4, 1e-2),
        "optimizer": ("cat", ["adamw", "sgd"]),
        "epochs": ("int", 5, 60),
        "weight_decay": ("logfloat", 1e-6, 1e-2),
        "dropout": ("float", 0.0, 0.5),
    }
