"""Stackers on OOF predictions: ridge / logistic, a small LightGBM, and a two-level stack.

Each is trained with the task's saved folds (see :mod:`medalist.ensemble.core`): the stacker that
predicts fold ``f`` is fitted on the base OOF rows of the other folds, so its OOF is honest and its score
is the nested-CV score; the test prediction is the mean of the fold stackers applied to the base test
predictions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medalist.ensemble.core import (
    PROBA_EPS,
    Combiner,
    EnsembleResult,
    Fitted,
    Scorer,
    check_inputs,
    cross_fit,
    ensemble_splits,
    finish_result,
    tidy,
)
from medalist.ensemble.hill import HillClimb
from medalist.errors import CheckError

RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))


def lgbm_threads(n_rows: int) -> int:
    """LightGBM threads for a small fit: one below 20,000 rows, two above."""
    return 1 if n_rows < 20_000 else 2


def stack_features(X: Sequence[np.ndarray], kind: str) -> np.ndarray:
    """Stacker inputs: logits of probabilities (binary / multilabel), log-probabilities (multiclass),
    values otherwise; one block of columns per base model."""
    blocks = []
    for x in X:
        a = np.nan_to_num(np.asarray(x, dtype=float))
        if kind in ("binary", "multilabel"):
            p = np.clip(a, PROBA_EPS, 1 - PROBA_EPS)
            a = np.log(p) - np.log1p(-p)
        elif kind == "multiclass":
            a = np.log(tidy(a, kind).clip(PROBA_EPS, 1.0))
        blocks.append(a)
    return np.hstack(blocks)


def _raw_features(X: Sequence[np.ndarray]) -> np.ndarray:
    return np.hstack([np.nan_to_num(np.asarray(x, dtype=float)) for x in X])


class _Constant:
    """A classifier for training rows that hold a single class."""

    def __init__(self, label: int) -> None:
        self.classes_ = np.array([label])

    def predict_proba(self, F: np.ndarray) -> np.ndarray:
        return np.ones((len(F), 1))


def _proba(model: Any, F: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba placed into all ``n_classes`` columns (classes absent from training get 0)."""
    out = np.zeros((len(F), n_classes))
    out[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(F)
    return out


@dataclass
class _PerKindModel:
    """Fitted sub-models of a stacker and how to read their outputs in model space."""

    kind: str
    n_outputs: int
    models: list[Any]
    features: str  # "stack" (logit / log features) or "raw"

    def predict(self, X: Sequence[np.ndarray]) -> np.ndarray:
        F = stack_features(X, self.kind) if self.features == "stack" else _raw_features(X)
        if self.kind in ("regression", "ordinal"):
            cols = [np.asarray(m.predict(F), dtype=float).reshape(len(F), -1) for m in self.models]
            return np.hstack(cols)[:, : self.n_outputs]
        if self.kind == "multiclass":
            return tidy(_proba(self.models[0], F, self.n_outputs), self.kind)
        return np.column_stack([_proba(m, F, 2)[:, 1] for m in self.models])


def _classification_targets(y: np.ndarray, kind: str) -> list[np.ndarray]:
    if kind == "multilabel":
        return [y[:, j].astype(int) for j in range(y.shape[1])]
    return [y[:, 0].astype(int)]


@dataclass
class LinearStacker:
    """Ridge (alpha by efficient leave-one-out over a grid) for regression / ordinal; multinomial or binary
    logistic regression on standardised logit features for classification."""

    C: float = 1.0
    alphas: tuple[float, ...] = RIDGE_ALPHAS
    name: str = "ridge"

    def fit(self, oofs: Sequence[np.ndarray], rows: np.ndarray, folds: np.ndarray, scorer: Scorer) -> Fitted:
        kind = scorer.kind
        F = stack_features([o[rows] for o in oofs], kind)
        y = scorer.y[rows]
        if kind in ("regression", "ordinal"):
            return _PerKindModel(kind, scorer.n_outputs, [RidgeCV(alphas=self.alphas).fit(F, y)], "stack")
        models = []
        for target in _classification_targets(y, kind):
            if len(np.unique(target)) < 2:
                models.append(_Constant(int(target[0])))
                continue
            lr = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter on near-collinear base models
                lr.fit(F, target)
            models.append(lr)
        return _PerKindModel(kind, scorer.n_outputs, models, "stack")


@dataclass
class LGBMStacker:
    """A small, shallow, strongly regularised LightGBM on the raw base predictions."""

    n_estimators: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 7
    max_depth: int = 3
    min_child_samples: int = 50
    reg_lambda: float = 10.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    seed: int = 0
    num_threads: int = 0  # 0: one thread below 20,000 rows (thread start-up costs more than it saves), else 2
    name: str = "lgbm"

    def _params(self, n_rows: int) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_child_samples": int(min(self.min_child_samples, max(5, n_rows // 20))),
            "reg_lambda": self.reg_lambda,
            "subsample": self.subsample,
            "subsample_freq": 1,
            "colsample_bytree": self.colsample_bytree,
            "random_state": self.seed,
            "n_jobs": self.num_threads or lgbm_threads(n_rows),
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
        }

    def fit(self, oofs: Sequence[np.ndarray], rows: np.ndarray, folds: np.ndarray, scorer: Scorer) -> Fitted:
        import lightgbm as lgb

        kind = scorer.kind
        F = _raw_features([o[rows] for o in oofs])
        y = scorer.y[rows]
        params = self._params(len(rows))
        models: list[Any] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # feature-name chatter
            if kind in ("regression", "ordinal"):
                for j in range(scorer.n_outputs if kind == "regression" else 1):
                    models.append(lgb.LGBMRegressor(**params).fit(F, y[:, j]))
            else:
                for target in _classification_targets(y, kind):
                    if len(np.unique(target)) < 2:
                        models.append(_Constant(int(target[0])))
                    else:
                        models.append(lgb.LGBMClassifier(**params).fit(F, target))
        return _PerKindModel(kind, scorer.n_outputs, models, "raw")


@dataclass
class _TwoLevel:
    level1: list[Any]  # CrossFit objects (mean of their inner fold combiners)
    level2: Fitted

    def predict(self, X: Sequence[np.ndarray]) -> np.ndarray:
        return self.level2.predict([m.predict(X) for m in self.level1])


@dataclass
class MultiLevelStacker:
    """Level 1: several combiners on the base OOFs; level 2: a combiner on their OOFs.

    Fully nested: given its fit rows, it cross-fits level 1 over the folds inside those rows only, fits
    level 2 on those inner OOFs, and predicts new rows with the inner fold models' mean. Wrapped in
    :func:`cross_fit`, the outer fold's rows never reach either level."""

    level1: tuple[Combiner, ...] = field(
        default_factory=lambda: (LinearStacker(), LGBMStacker(), HillClimb())
    )
    level2: Combiner = field(default_factory=HillClimb)
    name: str = "multi"

    def fit(self, oofs: Sequence[np.ndarray], rows: np.ndarray, folds: np.ndarray, scorer: Scorer) -> Fitted:
        inner = [cross_fit(c, oofs, folds, scorer, rows=rows) for c in self.level1]
        top = self.level2.fit([cf.oof for cf in inner], rows, folds, scorer)
        return _TwoLevel(inner, top)


def stack_ensemble(
    combiner: Combiner,
    oofs: Sequence[np.ndarray],
    tests: Sequence[np.ndarray],
    folds: np.ndarray,
    scorer: Scorer,
    method: str | None = None,
) -> EnsembleResult:
    """Cross-fit ``combiner`` on the saved folds: honest OOF, nested-CV score, fold-mean test prediction."""
    check_inputs(oofs, tests, scorer)
    cf = cross_fit(combiner, oofs, folds, scorer, tests)
    assert cf.test is not None
    return finish_result(method or combiner.name, cf.oof, cf.test, oofs, folds, scorer, cf)


def ridge_stack(
    oofs: Sequence[np.ndarray], tests: Sequence[np.ndarray], folds: np.ndarray, scorer: Scorer, C: float = 1.0
) -> EnsembleResult:
    """Ridge stacker (regression / ordinal) or logistic stacker (classification)."""
    method = "ridge" if scorer.kind in ("regression", "ordinal") else "logistic"
    return stack_ensemble(LinearStacker(C=C), oofs, tests, folds, scorer, method)


def lgbm_stack(
    oofs: Sequence[np.ndarray], tests: Sequence[np.ndarray], folds: np.ndarray, scorer: Scorer, seed: int = 0
) -> EnsembleResult:
    """Small, shallow LightGBM stacker."""
    return stack_ensemble(LGBMStacker(seed=seed), oofs, tests, folds, scorer, "lgbm")


def multilevel_stack(
    oofs: Sequence[np.ndarray],
    tests: Sequence[np.ndarray],
    folds: np.ndarray,
    scorer: Scorer,
    level1: tuple[Combiner, ...] | None = None,
    level2: Combiner | None = None,
    seed: int = 0,
) -> EnsembleResult:
    """Two-level stack (default: logistic/ridge + LightGBM + hill climbing, then hill climbing on top)."""
    if len(ensemble_splits(folds)) < 3:
        raise CheckError("a multi-level stack needs at least 3 validated folds (one outer, two inner)")
    combiner = MultiLevelStacker(
        level1 or (LinearStacker(), LGBMStacker(seed=seed), HillClimb()), level2 or HillClimb()
    )
    res = stack_ensemble(combiner, oofs, tests, folds, scorer, "multi")
    res.info["level1"] = [c.name for c in combiner.level1]
    res.info["level2"] = combiner.level2.name
    return res
