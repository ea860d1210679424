"""Cross-validation folds, decided once per task and shared by every experiment (design §3).

A fold array holds one integer per train row (rows in the target map's order): the fold that validates
the row. Two layouts exist, and :func:`fold_splits` is the one place that turns either into
(train rows, validation rows) pairs:

- **k-fold** (no value below 0): fold ``f`` trains on every row whose fold is not ``f``.
- **forward-chaining** (time-ordered; the rows of the earliest block hold ``-1``): fold ``f`` trains on
  every row whose fold is below ``f`` (the -1 block included) and validates fold ``f``. Rows holding -1
  are never validated: they get no out-of-fold prediction and are left out of every score.

Strategies, in order of precedence: time-ordered when ``spec.time_column`` is set, grouped when
``spec.group_column`` is set (stratified by target where the task is a classification), otherwise
stratified k-fold on the target (classes with fewer rows than folds share one stratum; multilabel rows
are stratified on their rarest positive label; regression on quantile bins of the target).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from medalist.errors import CheckError
from medalist.setup.data import TaskData
from medalist.workspace import Workspace, write_npy_atomic

log = logging.getLogger(__name__)

REGRESSION_BINS = 10


@dataclass(frozen=True)
class FoldPlan:
    """The strategy chosen for a task and why (``note`` says what was ignored or fell back)."""

    strategy: str  # stratified | kfold | stratified_bins | stratified_rarest_label | group | stratified_group | time
    n_splits: int
    note: str = ""


def make_folds(data: TaskData, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index per train row (int64, shape (n_train,)); deterministic for a seed."""
    folds, plan = plan_folds(data, n_splits, seed)
    if plan.note:
        log.info("folds: %s (%s)", plan.strategy, plan.note)
    return folds


def plan_folds(data: TaskData, n_splits: int = 5, seed: int = 0) -> tuple[np.ndarray, FoldPlan]:
    """Like :func:`make_folds`, also returning the plan (strategy, effective n_splits, note)."""
    n = data.n_train
    if n < 2:
        raise CheckError(f"cross-validation needs at least 2 train rows, got {n}")
    k = max(2, min(int(n_splits), n))
    notes: list[str] = []
    if k != n_splits:
        notes.append(f"n_splits {n_splits} -> {k} for {n} rows")

    if data.spec.time_column:
        times, why = _column_values(data, data.spec.time_column)
        if times is not None:
            folds, k_eff = _time_folds(times, k)
            if k_eff >= 1:
                if k_eff != k:
                    notes.append(f"{k_eff} time folds (rows with equal times share a block)")
                return folds, FoldPlan("time", k_eff, _join(notes))
            why = "every row has the same time"
        notes.append(f"time column {data.spec.time_column!r} ignored: {why}")

    strata, strategy = _strata(data, k, notes)

    if data.spec.group_column:
        groups, why = _column_values(data, data.spec.group_column)
        if groups is not None:
            codes = pd.factorize(pd.Series(groups).astype(str))[0]
            n_groups = int(codes.max()) + 1
            if n_groups >= 2:
                kg = min(k, n_groups)
                if kg != k:
                    notes.append(f"n_splits {k} -> {kg}: only {n_groups} groups")
                folds = _group_folds(codes, strata, kg, seed)
                name = "stratified_group" if strata is not None else "group"
                return folds, FoldPlan(name, kg, _join(notes))
            notes.append(f"group column {data.spec.group_column!r} ignored: only one group")
        else:
            notes.append(f"group column {data.spec.group_column!r} ignored: {why}")

    if strata is None:
        splitter = KFold(k, shuffle=True, random_state=seed)
        return _assign(splitter.split(np.zeros(n)), n), FoldPlan("kfold", k, _join(notes))
    splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only m members"
        folds = _assign(splitter.split(np.zeros(n), strata), n)
    return folds, FoldPlan(strategy, k, _join(notes))


def fold_splits(folds: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(fold, train rows, validation rows) for each fold, for either layout (see the module doc)."""
    folds = np.asarray(folds)
    forward = bool((folds < 0).any())
    out = []
    for f in np.unique(folds[folds >= 0]):
        train = np.flatnonzero(folds < f) if forward else np.flatnonzero(folds != f)
        out.append((int(f), train, np.flatnonzero(folds == f)))
    return out


def load_or_make_folds(ws: Workspace, data: TaskData, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """The task's folds: read from ``ws.folds`` when saved (n_splits/seed then ignored), else made and saved."""
    if ws.folds.exists():
        folds = np.load(ws.folds, allow_pickle=False)
        if folds.ndim != 1 or len(folds) != data.n_train or not np.issubdtype(folds.dtype, np.integer):
            raise CheckError(
                f"{ws.folds} holds {folds.shape} {folds.dtype} but the train set has {data.n_train} rows; "
                "it belongs to another setup: delete it and the experiments built on it, then rerun"
            )
        return folds.astype(np.int64)
    folds, plan = plan_folds(data, n_splits, seed)
    write_npy_atomic(ws.folds, folds)
    ws.log_event(
        "solve",
        {
            "event": "folds",
            "strategy": plan.strategy,
            "n_splits": plan.n_splits,
            "note": plan.note,
            "seed": seed,
        },
    )
    return folds


# ---------------------------------------------------------------------------------------------- helpers
def _join(notes: list[str]) -> str:
    return "; ".join(notes)


def _assign(splits, n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    folds = np.full(n, -1, dtype=np.int64)
    for f, (_, valid) in enumerate(splits):
        folds[valid] = f
    return folds


def _column_values(data: TaskData, column: str) -> tuple[np.ndarray | None, str]:
    """Values of a train column from the tabular map (or the ids when it is the id column)."""
    tab = data.train.get("tabular")
    if tab is not None and column in tab.columns:
        return tab[column].to_numpy(), ""
    if column == data.spec.id_column:
        return np.asarray(data.train_ids), ""
    return None, "not a column of the train tabular map"


def _merge_rare(labels: np.ndarray, k: int) -> np.ndarray | None:
    """Stratum codes where labels with fewer than k rows share one stratum; None when stratifying is moot."""
    codes, uniques = pd.factorize(pd.Series(labels).astype(str))
    counts = np.bincount(codes)
    rare = counts < k
    if rare.any():
        codes = np.where(rare[codes], len(uniques), codes)
        codes = pd.factorize(codes)[0]
        counts = np.bincount(codes)
    if len(counts) < 2 or counts.max() < k:
        return None
    return codes


def _strata(data: TaskData, k: int, notes: list[str]) -> tuple[np.ndarray | None, str]:
    """Stratum labels for the task's target (None -> plain KFold) and the strategy's name."""
    kind = data.transform.kind
    y = np.asarray(data.y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    if kind in ("binary", "multiclass", "ordinal"):
        strata = _merge_rare(y[:, 0], k)
        if strata is None:
            notes.append("too few rows per class to stratify: plain KFold")
        return strata, "stratified"
    if kind == "multilabel":
        pos = np.nan_to_num(y) > 0.5
        freq = pos.sum(axis=0)
        order = np.argsort(freq, kind="stable")  # rarest label first
        key = np.full(len(y), -1)
        for col in order[::-1]:  # rarest written last, so it wins
            key[pos[:, col]] = col
        strata = _merge_rare(key, k)
        if strata is None:
            notes.append("multilabel rows too sparse to stratify: plain KFold")
        return strata, "stratified_rarest_label"
    # regression: quantile bins of the first target column
    col = pd.Series(y[:, 0])
    n_bins = min(REGRESSION_BINS, len(col) // (2 * k))
    if n_bins < 2 or col.nunique() < 2:
        return None, "kfold"
    bins = pd.qcut(col.rank(method="first"), n_bins, labels=False).to_numpy()
    bins = np.where(col.isna().to_numpy(), -1, bins)
    return _merge_rare(bins, k), "stratified_bins"


def _group_folds(groups: np.ndarray, strata: np.ndarray | None, k: int, seed: int) -> np.ndarray:
    n = len(groups)
    x = np.zeros(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if strata is not None:
            splitter = StratifiedGroupKFold(k, shuffle=True, random_state=seed)
            return _assign(splitter.split(x, strata, groups), n)
        try:
            splitter = GroupKFold(k, shuffle=True, random_state=seed)
        except TypeError:  # scikit-learn < 1.6: no shuffling
            splitter = GroupKFold(k)
        return _assign(splitter.split(x, groups=groups), n)


def _time_folds(values: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """k+1 contiguous time blocks; the first is -1 (train only), the others folds 0..k-1 in time order.

    Rows with equal times always share a block, so a block may merge with the next (fewer folds)."""
    s = pd.Series(values)
    if not pd.api.types.is_numeric_dtype(s):
        parsed = pd.to_datetime(s, errors="coerce")
        if parsed.notna().mean() > 0.9:
            s = parsed
    ranks = s.rank(method="min", na_option="bottom").to_numpy()  # ties share the smallest rank
    n = len(ranks)
    cuts = np.array([1 + (n * b) // (k + 1) for b in range(1, k + 1)])  # rank where block b starts
    starts = np.sort(ranks)[cuts - 1]  # the rank value at each block start (tie-adjusted)
    block = np.searchsorted(starts, ranks, side="right")
    block = pd.factorize(block, sort=True)[0]  # drop empty blocks
    return (block - 1).astype(np.int64), int(block.max())
