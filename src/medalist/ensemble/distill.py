"""Distillation: one model trained on an ensemble's predictions as soft targets.

Soft targets live in an unbounded space so any regressor can fit them: logits for binary / multilabel,
row-centred log-probabilities for multiclass, the values themselves for regression / ordinal. Training
uses the saved folds: the model that predicts fold ``f`` fits the ensemble's OOF of the other folds'
rows (plus, optionally, the ensemble's test predictions as pseudo-targets on the test rows); the test
prediction is the fold models' mean. The true labels are never read directly.

The student's OOF score is NOT an honest estimate, and can be far off: the ensemble's OOF of a row in
fold ``g`` came from base models trained on every other fold, fold ``f`` included, so a student that
fits those soft targets on the raw features learns fold ``f``'s labels through the rows near them
(and likewise through the test pseudo-targets). Under a shuffled target a student scores well above
chance (see tests/test_ensemble.py). An honest estimate would need base models refitted without each
fold, which the ledger does not hold; so the ledger records a student without a CV score.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from medalist.ensemble.core import EnsembleResult, Scorer, as_2d, ensemble_splits, tidy
from medalist.ensemble.stack import lgbm_threads
from medalist.errors import CheckError
from medalist.setup.data import TaskData
from medalist.solve.models.base import tabular_only
from medalist.solve.types import FoldFeatures

SOFT_EPS = 1e-5

# (X_fit, Z_fit (n, m) soft targets, X_valid, X_test, seed) -> (Z_valid, Z_test)
DistillFn = Callable[
    [pd.DataFrame, np.ndarray, pd.DataFrame, pd.DataFrame, int], tuple[np.ndarray, np.ndarray]
]


def to_soft(pred: np.ndarray, kind: str) -> np.ndarray:
    """Model-space predictions -> unbounded soft targets."""
    p = as_2d(pred)
    if kind in ("binary", "multilabel"):
        q = np.clip(p, SOFT_EPS, 1 - SOFT_EPS)
        return np.log(q) - np.log1p(-q)
    if kind == "multiclass":
        lp = np.log(np.clip(tidy(p, kind), SOFT_EPS, 1.0))
        return lp - lp.mean(axis=1, keepdims=True)
    return p.copy()


def from_soft(z: np.ndarray, kind: str) -> np.ndarray:
    """Soft targets -> model-space predictions."""
    z = as_2d(z)
    if kind in ("binary", "multilabel"):
        return 1.0 / (1.0 + np.exp(-z))
    if kind == "multiclass":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z


def lgbm_soft_regressor(
    n_estimators: int = 400, learning_rate: float = 0.05, num_leaves: int = 31, num_threads: int = 0
) -> DistillFn:
    """The default student: one LightGBM regressor per soft-target column (``num_threads`` 0: automatic)."""

    def fit_predict(
        X_fit: pd.DataFrame, Z_fit: np.ndarray, X_valid: pd.DataFrame, X_test: pd.DataFrame, seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        import lightgbm as lgb

        params: dict[str, Any] = {
            "n_estimators": n_estimators,
            "learning_rate": learning_rate,
            "num_leaves": num_leaves,
            "min_child_samples": 20,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
            "random_state": seed,
            "n_jobs": num_threads or lgbm_threads(len(X_fit)),
            "verbose": -1,
        }
        zv, zt = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for j in range(Z_fit.shape[1]):
                model = lgb.LGBMRegressor(**params).fit(X_fit, Z_fit[:, j])
                zv.append(model.predict(X_valid))
                zt.append(model.predict(X_test))
        return np.column_stack(zv), np.column_stack(zt)

    return fit_predict


def distill(
    features: FoldFeatures,
    soft_oof: np.ndarray,
    soft_test: np.ndarray,
    folds: np.ndarray,
    kind: str,
    *,
    use_test: bool = True,
    fit_predict: DistillFn | None = None,
    seed: int = 0,
    deadline: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Train a student on an ensemble's OOF / test predictions with the saved folds.

    Returns the student's model-space OOF (n_train, k) and test predictions (n_test, k). Rows whose fold
    is -1 are not fitted on; they get the fold students' mean prediction. Past ``deadline``
    (``time.monotonic()``) no further fold starts: CheckError."""
    fit_predict = fit_predict or lgbm_soft_regressor()
    folds = np.asarray(folds)
    z_oof, z_test = to_soft(soft_oof, kind), to_soft(soft_test, kind)
    unvalidated = np.flatnonzero(folds < 0)
    n, k = len(z_oof), as_2d(soft_oof).shape[1]
    oof = np.full((n, k), np.nan)
    extra = np.zeros((len(unvalidated), k))
    test = np.zeros((len(z_test), k))
    splits = ensemble_splits(folds)
    for i, (_, fit_rows, pred_rows) in enumerate(splits):
        if deadline is not None and time.monotonic() > deadline:
            raise CheckError(f"time budget: the student stopped after fold {i}/{len(splits)}")
        x_fit, x_valid, x_test = (
            tabular_only(x) for x in features.split(fit_rows, np.concatenate([pred_rows, unvalidated]))
        )
        if x_fit.shape[1] == 0:
            raise CheckError("distillation needs numeric or categorical input columns; this task has none")
        z_fit = z_oof[fit_rows]
        if use_test:
            x_fit = pd.concat([x_fit, x_test], ignore_index=True)
            z_fit = np.vstack([z_fit, z_test])
        zv, zt = fit_predict(x_fit, z_fit, x_valid, x_test, seed)
        pv = from_soft(zv, kind)
        oof[pred_rows] = pv[: len(pred_rows)]
        extra += pv[len(pred_rows) :]
        test += from_soft(zt, kind)
    oof[unvalidated] = extra / len(splits)
    return tidy(oof, kind), tidy(test / len(splits), kind)


def distill_ensemble(
    data: TaskData,
    folds: np.ndarray,
    scorer: Scorer,
    ens_oof: np.ndarray,
    ens_test: np.ndarray,
    *,
    recipe: str = "base",
    use_test: bool = True,
    fit_predict: DistillFn | None = None,
    seed: int = 0,
    deadline: float | None = None,
) -> EnsembleResult:
    """Distil an ensemble into one model on the task's tabular features (recipe ``recipe``)."""
    from medalist.solve.features import prepare_features

    if "tabular" not in data.train:
        raise CheckError("distillation needs a tabular input map; this task has none")
    features = prepare_features(data, recipe, ("tabular",), seed)
    oof, test = distill(
        features,
        ens_oof,
        ens_test,
        folds,
        scorer.kind,
        use_test=use_test,
        fit_predict=fit_predict,
        seed=seed,
        deadline=deadline,
    )
    score, fold_scores = scorer.cv(oof, folds)
    return EnsembleResult(
        "distill_lgbm", oof, test, score, fold_scores, info={"recipe": recipe, "use_test": use_test}
    )
