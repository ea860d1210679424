"""What every model family shares: sub-problems per task kind, degenerate folds, early-stopping rows."""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedShuffleSplit

from medalist.errors import CheckError
from medalist.solve.types import ModelTask

PROBA_FLOOR = 1e-6  # probability given to classes a fold's training rows never saw
MIN_ROWS_FOR_HOLDOUT = 1000  # below this, without validation labels, boosters run a fixed number of rounds
SMALL_DATA_ROWS = 20_000  # below this one thread is as fast as two (and far faster on a busy machine)
# Parameters that set resources (threads, devices), not the model: medalist sets them, a policy does not.
RESOURCE_PARAMS = frozenset(
    {"n_threads", "n_jobs", "num_threads", "nthread", "thread_count", "device", "gpu_id"}
)


def threads_for(n_rows: int) -> int:
    """Default ``n_threads`` of a family: $MEDALIST_THREADS when set, else 1 for small data, 2 (the machine
    budget) otherwise."""
    env = os.environ.get("MEDALIST_THREADS")
    if env:
        return max(1, int(env))
    return 1 if n_rows < SMALL_DATA_ROWS else 2


@dataclass(frozen=True)
class SubProblem:
    """One model to fit: ``kind`` binary | multiclass | regression on target ``y`` (n,)."""

    kind: str
    y: np.ndarray
    n_classes: int = 0


def sub_problems(y: np.ndarray, task: ModelTask) -> list[SubProblem]:
    """The models a task needs: one for binary / multiclass / ordinal, one per column otherwise."""
    y = np.asarray(y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    if task.kind == "binary":
        return [SubProblem("binary", y[:, 0].astype(int), 2)]
    if task.kind == "multiclass":
        return [SubProblem("multiclass", y[:, 0].astype(int), task.n_outputs)]
    if task.kind == "multilabel":
        return [SubProblem("binary", y[:, j].astype(int), 2) for j in range(y.shape[1])]
    if task.kind == "ordinal":
        return [SubProblem("regression", y[:, 0])]
    if task.kind == "regression":
        return [SubProblem("regression", y[:, j]) for j in range(y.shape[1])]
    raise CheckError(
        f"unknown task kind {task.kind!r}; expected binary, multiclass, multilabel, regression or ordinal"
    )


def tabular_only(X: pd.DataFrame) -> pd.DataFrame:
    """Numeric, boolean and category columns (raw text / image paths are left to the models that read them)."""
    keep = [
        c
        for c in X.columns
        if isinstance(X[c].dtype, pd.CategoricalDtype)
        or pd.api.types.is_numeric_dtype(X[c])
        or pd.api.types.is_bool_dtype(X[c])
    ]
    return X[keep]


def category_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]


def has_rows(y_valid: np.ndarray | None, X_valid: pd.DataFrame) -> bool:
    return y_valid is not None and len(X_valid) > 0 and len(y_valid) == len(X_valid)


def holdout_rows(sp: SubProblem, seed: int, fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray] | None:
    """(fit rows, stop rows) of the training part for early stopping when no validation labels are given;
    None when the training part is too small to spare rows."""
    n = len(sp.y)
    if n < MIN_ROWS_FOR_HOLDOUT:
        return None
    rows = np.arange(n)
    if sp.kind in ("binary", "multiclass"):
        _, counts = np.unique(sp.y, return_counts=True)
        if counts.min() >= 2:
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
            fit, stop = next(splitter.split(rows, sp.y))
            return np.sort(fit), np.sort(stop)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_stop = max(1, round(fraction * n))
    return np.sort(perm[n_stop:]), np.sort(perm[:n_stop])


def to_outputs(pred: np.ndarray, sp: SubProblem) -> np.ndarray:
    """Prediction of one sub-problem as columns: (n, 1) or (n, C)."""
    p = np.asarray(pred, dtype=float)
    if sp.kind == "multiclass":
        return p.reshape(len(p), sp.n_classes)
    return p.reshape(-1, 1)


def fit_classes(sp: SubProblem) -> tuple[SubProblem, np.ndarray | None]:
    """Re-index a multiclass fold whose training rows miss classes to 0..k-1 (returns the present classes)."""
    if sp.kind != "multiclass":
        return sp, None
    present = np.unique(sp.y)
    if len(present) == sp.n_classes:
        return sp, None
    remap = np.searchsorted(present, sp.y)
    return SubProblem("multiclass", remap, len(present)), present


def expand_classes(p: np.ndarray, present: np.ndarray | None, n_classes: int) -> np.ndarray:
    """Place probabilities of the present classes in their columns; absent classes get a small floor."""
    if present is None:
        return p
    out = np.full((len(p), n_classes), PROBA_FLOOR)
    out[:, present.astype(int)] = p
    return out / out.sum(axis=1, keepdims=True)


def constant_prediction(sp: SubProblem, n: int) -> np.ndarray | None:
    """The prediction when a fold's training target has a single value (nothing to learn), else None."""
    values = np.unique(sp.y)
    if len(values) > 1:
        return None
    if sp.kind == "multiclass":
        out = np.full((n, sp.n_classes), PROBA_FLOOR)
        out[:, int(values[0]) if len(values) else 0] = 1.0
        return out / out.sum(axis=1, keepdims=True)
    if sp.kind == "binary":
        return np.full((n, 1), float(values[0]) if len(values) else 0.5)
    return np.full((n, 1), float(values[0]) if len(values) else 0.0)


def finish(
    p_valid: list[np.ndarray], p_test: list[np.ndarray], task: ModelTask
) -> tuple[np.ndarray, np.ndarray]:
    """Stack the sub-problems' columns and check the task's output shape."""
    pv = np.hstack(p_valid).astype(float)
    pt = np.hstack(p_test).astype(float)
    if pv.shape[1] != task.n_outputs or pt.shape[1] != task.n_outputs:
        raise CheckError(f"model produced {pt.shape[1]} output columns; the task needs {task.n_outputs}")
    if task.kind == "multiclass":
        for p in (pv, pt):
            np.clip(p, 0.0, None, out=p)
            s = p.sum(axis=1, keepdims=True)
            s[s == 0] = 1.0
            p /= s
    elif task.is_classification:
        np.clip(pv, 0.0, 1.0, out=pv)
        np.clip(pt, 0.0, 1.0, out=pt)
    return pv, pt


@contextmanager
def quiet() -> Iterator[None]:
    """Silence library warnings during a fit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def missing_package(*modules: str) -> str | None:
    for m in modules:
        if importlib.util.find_spec(m) is None:
            return f"python package {m!r} is not installed (pip install {m})"
    return None


class Family:
    """Base of the zoo's families: ``fit_predict`` splits the task into sub-problems and calls ``fit_one``."""

    name: str = ""
    modalities: tuple[str, ...] = ("tabular",)
    packages: tuple[str, ...] = ()
    classification_only: bool = False
    raw_columns: bool = False  # True: the family reads the text / image columns too (``prepare`` keeps all)

    def available(self) -> str | None:
        return missing_package(*self.packages)

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {}

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {}

    def hyper_params(self, task: ModelTask) -> set[str]:
        """The parameters a policy may set: those searched or defaulted, resource settings left out."""
        known = set(self.search_space(task)) | set(self.default_params(task, 1000))
        return known - RESOURCE_PARAMS

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """The columns this family reads: all of them with ``raw_columns``, else the tabular ones."""
        return X if self.raw_columns else tabular_only(X)

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
        """Model-space predictions (n_valid, n_outputs), (n_test, n_outputs). ``y_valid`` (optional) lets
        boosters and the MLP stop early on the validation rows; without it they hold out training rows."""
        if self.classification_only and not task.is_classification:
            raise CheckError(
                f"{self.name} is for classification; this task is {task.kind} (use tfidf_linear)"
            )
        full = {**self.default_params(task, len(X_train)), **(params or {})}
        subs = sub_problems(y_train, task)
        subs_valid = sub_problems(y_valid, task) if has_rows(y_valid, X_valid) else [None] * len(subs)
        p_valid: list[np.ndarray] = []
        p_test: list[np.ndarray] = []
        with quiet():
            xtr, xva, xte = self.prepare(X_train), self.prepare(X_valid), self.prepare(X_test)
            xtr, xva, xte = self.encode(xtr, xva, xte, full, seed)
            for sp, sv in zip(subs, subs_valid):
                const = constant_prediction(sp, 0)
                if const is not None:
                    p_valid.append(constant_prediction(sp, len(X_valid)))
                    p_test.append(constant_prediction(sp, len(X_test)))
                    continue
                fit_sp, present = fit_classes(sp)
                yv = None
                if sv is not None:
                    yv = sv.y if present is None else np.searchsorted(present, sv.y)
                    # validation rows of classes unseen in training cannot guide stopping
                    if present is not None:
                        keep = np.isin(sv.y, present)
                        yv = np.where(keep, yv, -1)
                pv, pt = self.fit_one(xtr, fit_sp, xva, xte, yv, full, seed, task)
                pv = expand_classes(to_outputs(pv, fit_sp), present, sp.n_classes)
                pt = expand_classes(to_outputs(pt, fit_sp), present, sp.n_classes)
                p_valid.append(pv)
                p_test.append(pt)
        return finish(p_valid, p_test, task)

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        """Fit-on-train transformations shared by all sub-problems (default: none)."""
        return X_train, X_valid, X_test

    def fit_one(
        self,
        X_train: Any,
        sp: SubProblem,
        X_valid: Any,
        X_test: Any,
        y_valid: np.ndarray | None,
        params: dict[str, Any],
        seed: int,
        task: ModelTask,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit one sub-problem; return predictions for the valid and test rows ((n,) or (n, C))."""
        raise NotImplementedError


def stopping_set(
    X_train: pd.DataFrame, sp: SubProblem, X_valid: pd.DataFrame, y_valid: np.ndarray | None, seed: int
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame | None, np.ndarray | None]:
    """(fit X, fit y, stop X, stop y) for early stopping: the validation rows when their labels are given,
    else 10% of the training rows (None when there are too few rows: fixed rounds)."""
    if y_valid is not None and len(y_valid) == len(X_valid) and len(y_valid) > 0:
        keep = y_valid >= 0 if sp.kind == "multiclass" else np.ones(len(y_valid), dtype=bool)
        if keep.any():
            return X_train, sp.y, X_valid[keep], y_valid[keep]
    split = holdout_rows(sp, seed)
    if split is None:
        return X_train, sp.y, None, None
    fit, stop = split
    return X_train.iloc[fit], sp.y[fit], X_train.iloc[stop], sp.y[stop]
