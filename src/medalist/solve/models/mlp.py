"""A tabular MLP in PyTorch (CPU): category embeddings + standardised numerics, AdamW, early stopping."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medalist.solve.models.base import Family, SubProblem, category_columns, holdout_rows, threads_for
from medalist.solve.types import ModelTask


@dataclass
class _Encoded:
    num: np.ndarray  # (n, d) float32, imputed and scaled
    cat: np.ndarray  # (n, k) int64, 0 = missing / unseen
    cards: tuple[int, ...] = ()  # embedding sizes (levels + 1) per category column


def _cardinalities(X: pd.DataFrame) -> list[int]:
    # codes are -1..K-1 over the shared categories; +1 shifts missing to 0
    return [len(X[c].cat.categories) + 1 for c in category_columns(X)]


class MLPFamily(Family):
    name = "mlp"
    packages = ("torch",)

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            "hidden": 256 if n_rows >= 5000 else 128,
            "layers": 2,
            "dropout": 0.1,
            "lr": 2e-3,
            "weight_decay": 1e-4,
            "batch_size": 256 if n_rows < 20_000 else 1024,
            "max_epochs": 200,
            "patience": 12,
            "fixed_epochs": 40,
            "max_seconds": 0.0,  # per fold; 0 = no bound (the solve loop sets one at run time)
            "embedding_max": 16,
            "numeric": "quantile",
            "n_threads": threads_for(n_rows),
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "hidden": ("cat", [64, 128, 256, 512]),
            "layers": ("int", 1, 4),
            "dropout": ("float", 0.0, 0.5),
            "lr": ("logfloat", 3e-4, 1e-2),
            "weight_decay": ("logfloat", 1e-6, 1e-2),
            "batch_size": ("cat", [128, 256, 512, 1024]),
            "numeric": ("cat", ["standard", "quantile"]),
        }

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        """Impute + scale numerics (with missing indicators) and turn categories into codes 1..K (0 missing)."""
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline

        from medalist.solve.models.sk import numeric_scaler

        cats = category_columns(X_train)
        nums = [c for c in X_train.columns if c not in cats]
        cards = tuple(_cardinalities(X_train))
        pipe = None
        if nums:
            pipe = make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                numeric_scaler(params["numeric"], len(X_train)),
            )
            pipe.fit(X_train[nums].astype("float64"))

        def enc(X: pd.DataFrame) -> _Encoded:
            n = len(X)
            if pipe is not None and n:
                num = np.nan_to_num(pipe.transform(X[nums].astype("float64")).astype(np.float32))
            else:
                width = (
                    pipe.transform(X_train[nums].iloc[:1].astype("float64")).shape[1]
                    if pipe is not None
                    else 0
                )
                num = np.zeros((n, width), dtype=np.float32)
            cat = (
                np.stack([X[c].cat.codes.to_numpy().astype(np.int64) + 1 for c in cats], axis=1)
                if cats
                else (np.zeros((n, 0), dtype=np.int64))
            )
            return _Encoded(num, cat, cards)

        return enc(X_train), enc(X_valid), enc(X_test)

    def fit_one(
        self,
        X_train: _Encoded,
        sp: SubProblem,
        X_valid: _Encoded,
        X_test: _Encoded,
        y_valid: np.ndarray | None,
        params: dict[str, Any],
        seed: int,
        task: ModelTask,
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        torch.set_num_threads(int(params["n_threads"]))
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        out_dim = sp.n_classes if sp.kind == "multiclass" else 1
        y = sp.y.astype(np.float64)
        y_mean, y_std = 0.0, 1.0
        if sp.kind == "regression":
            y_mean, y_std = float(y.mean()), float(y.std() or 1.0)

        # Early-stopping rows: validation rows with labels, else a holdout of the training rows.
        fit_rows = np.arange(len(y))
        stop: tuple[_Encoded, np.ndarray] | None = None
        if y_valid is not None and len(y_valid) == len(X_valid.num) and len(y_valid):
            keep = y_valid >= 0 if sp.kind == "multiclass" else np.ones(len(y_valid), dtype=bool)
            if keep.any():
                stop = (_Encoded(X_valid.num[keep], X_valid.cat[keep]), y_valid[keep].astype(np.float64))
        if stop is None:
            split = holdout_rows(sp, seed)
            if split is not None:
                fit_rows, stop_rows = split
                stop = (_Encoded(X_train.num[stop_rows], X_train.cat[stop_rows]), y[stop_rows])

        net = _Net(X_train.num.shape[1], list(X_train.cards), out_dim, params)
        loss_fn = _loss(sp)

        def target(v: np.ndarray) -> torch.Tensor:
            if sp.kind == "multiclass":
                return torch.as_tensor(v.astype(np.int64))
            return torch.as_tensor(((v - y_mean) / y_std).astype(np.float32)).reshape(-1, 1)

        xn = torch.as_tensor(X_train.num[fit_rows])
        xc = torch.as_tensor(X_train.cat[fit_rows])
        yt = target(y[fit_rows])
        opt = torch.optim.AdamW(
            net.parameters(), lr=float(params["lr"]), weight_decay=float(params["weight_decay"])
        )
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=max(2, int(params["patience"]) // 3)
        )
        batch = int(params["batch_size"])
        epochs = int(params["max_epochs"]) if stop is not None else int(params["fixed_epochs"])
        best_loss, best_state, waited = float("inf"), None, 0
        n_fit = len(fit_rows)
        # the fold's time bound (run-time, from the solve loop): stop after the epoch that crosses it
        bound = float(params.get("max_seconds") or 0.0) or float("inf")
        t0 = time.monotonic()
        for _ in range(epochs):
            net.train()
            order = torch.randperm(n_fit, generator=gen)
            for start in range(0, n_fit, batch):
                idx = order[start : start + batch]
                if len(idx) < 2:
                    continue
                opt.zero_grad()
                loss = loss_fn(net(xn[idx], xc[idx]), yt[idx])
                loss.backward()
                opt.step()
            if stop is None:
                if time.monotonic() - t0 > bound:
                    break
                continue
            with torch.no_grad():
                net.eval()
                val = float(loss_fn(_forward(net, stop[0]), target(stop[1])))
            sched.step(val)
            if val < best_loss - 1e-6:
                best_loss, best_state, waited = val, copy.deepcopy(net.state_dict()), 0
            else:
                waited += 1
                if waited >= int(params["patience"]):
                    break
            if time.monotonic() - t0 > bound:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()

        def predict(X: _Encoded) -> np.ndarray:
            with torch.no_grad():
                z = _forward(net, X)
                if sp.kind == "multiclass":
                    return torch.softmax(z, dim=1).numpy()
                if sp.kind == "binary":
                    return torch.sigmoid(z).numpy()[:, 0]
                return z.numpy()[:, 0] * y_std + y_mean

        return predict(X_valid), predict(X_test)


def _loss(sp: SubProblem) -> Any:
    import torch

    if sp.kind == "multiclass":
        return torch.nn.CrossEntropyLoss()
    if sp.kind == "binary":
        return torch.nn.BCEWithLogitsLoss()
    return torch.nn.MSELoss()


def _forward(net: Any, X: _Encoded, chunk: int = 8192) -> Any:
    import torch

    if len(X.num) == 0:
        return net(torch.zeros((0, X.num.shape[1])), torch.zeros((0, X.cat.shape[1]), dtype=torch.int64))
    parts = [
        net(torch.as_tensor(X.num[s : s + chunk]), torch.as_tensor(X.cat[s : s + chunk]))
        for s in range(0, len(X.num), chunk)
    ]
    return torch.cat(parts)


def _Net(n_num: int, cards: list[int], out_dim: int, params: dict[str, Any]) -> Any:
    """Embeddings per category column, concatenated with numerics, then Linear-SiLU-Dropout blocks."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            emax = int(params["embedding_max"])
            self.embs = nn.ModuleList([nn.Embedding(c, min(emax, (c + 1) // 2 + 1)) for c in cards])
            width = n_num + sum(e.embedding_dim for e in self.embs)
            hidden = int(params["hidden"])
            blocks: list[nn.Module] = []
            for _ in range(int(params["layers"])):
                blocks += [
                    nn.Linear(width, hidden),
                    nn.BatchNorm1d(hidden),
                    nn.SiLU(),
                    nn.Dropout(float(params["dropout"])),
                ]
                width = hidden
            blocks.append(nn.Linear(width, out_dim))
            self.body = nn.Sequential(*blocks)

        def forward(self, num: torch.Tensor, cat: torch.Tensor) -> torch.Tensor:
            parts = [num] + [emb(cat[:, i]) for i, emb in enumerate(self.embs)]
            return self.body(torch.cat(parts, dim=1))

    return Net()
