"""What every ensemble shares: the scorer, the combiner protocol and honest fold-wise fitting.

OOF discipline. Base predictions are out-of-fold already; a combiner (hill-climbing weights, a stacker)
is fitted on them with the task's saved folds: the combiner that produces the ensemble OOF of fold ``f``
is fitted on rows of the other folds only, so no row's own label (nor any label of its fold) reaches its
prediction. The score of that OOF is the ensemble's nested-CV score. Rows whose fold is -1 (never
validated) are left out of every fit and every score. Test predictions are the fold combiners' mean
(stackers) or a refit on every validated row (hill climbing); test labels do not exist here.

All predictions are model space (see :mod:`medalist.setup.spec`): binary (n, 1) P(positive), multiclass
(n, C) probabilities, multilabel (n, L) probabilities, regression (n, T) values, ordinal (n, 1) values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.metrics import Metric, get_metric
from medalist.setup.data import TaskData
from medalist.setup.spec import TargetTransform
from medalist.solve.scoring import cv_scores, score_predictions

PROBA_EPS = 1e-6


@dataclass
class Scorer:
    """Scores model-space predictions of train rows with medalist's own decoding and metric."""

    data: TaskData
    transform: TargetTransform = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.transform is None:
            self.transform = self.data.transform
        self.metric: Metric = get_metric(self.data.spec.metric)

    @property
    def kind(self) -> str:
        return self.transform.kind

    @property
    def n_outputs(self) -> int:
        return self.transform.n_outputs

    @property
    def y(self) -> np.ndarray:
        """Model-space targets (n_train, k)."""
        y = np.asarray(self.data.y, dtype=float)
        return y[:, None] if y.ndim == 1 else y

    def __call__(
        self, pred: np.ndarray, rows: np.ndarray | None = None, transform: TargetTransform | None = None
    ) -> float:
        """Metric of ``pred`` (aligned with ``rows``; all train rows when None)."""
        return score_predictions(self.data, pred, rows, transform or self.transform)

    def cv(
        self, oof: np.ndarray, folds: np.ndarray, transform: TargetTransform | None = None
    ) -> tuple[float, list[float]]:
        """Overall and per-fold scores of an OOF array over validated rows."""
        return cv_scores(self.data, oof, folds, transform or self.transform)

    def score_parts(self, parts: Sequence[tuple[np.ndarray, np.ndarray, TargetTransform]]) -> float:
        """One score over several row sets, each decoded with its own transform (per-fold post-processing)."""
        decoded = pd.concat([t.decode(p) for p, _, t in parts], ignore_index=True)
        rows = np.concatenate([r for _, r, _ in parts])
        truth = self.data.target.iloc[rows]
        return self.metric(truth.to_numpy(), decoded.to_numpy())

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b``."""
        return self.metric.better(a, b)

    def best_index(self, scores: Sequence[float]) -> int:
        """Index of the best score (non-finite ones count as the worst)."""
        return self.metric.best_index(scores)


class Fitted(Protocol):
    """A fitted combiner: base predictions (list of (n, k) arrays) -> ensemble prediction (n, n_outputs)."""

    def predict(self, X: Sequence[np.ndarray]) -> np.ndarray: ...


class Combiner(Protocol):
    """Something that learns to combine base predictions (hill climbing, a stacker, a stack of stackers).

    ``fit`` may read ``oofs``, ``scorer.y`` and ``folds`` at ``rows`` only (the rows it is allowed to see)."""

    name: str

    def fit(
        self, oofs: Sequence[np.ndarray], rows: np.ndarray, folds: np.ndarray, scorer: Scorer
    ) -> Fitted: ...


@dataclass
class EnsembleResult:
    """One ensemble: honest OOF (the nested-CV predictions), test predictions and their scores."""

    method: str
    oof: np.ndarray
    test: np.ndarray
    cv_score: float  # nested-CV score of ``oof``
    fold_scores: list[float]
    insample_score: float | None = None  # the final combiner scored on the rows it was fitted on
    weights: list[float] | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class CrossFit:
    """The fold combiners of :func:`cross_fit` and what they predicted."""

    oof: np.ndarray  # (n_train, k); NaN on rows that were not predicted
    models: list[Fitted]
    test: np.ndarray | None = None

    def predict(self, X: Sequence[np.ndarray]) -> np.ndarray:
        """Mean prediction of the fold combiners."""
        return np.mean([m.predict(X) for m in self.models], axis=0)


def validated_rows(folds: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.asarray(folds) >= 0)


def ensemble_splits(
    folds: np.ndarray, rows: np.ndarray | None = None
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(fold, fit rows, predict rows) over validated ``rows``: each fold is predicted by the other folds.

    Time-ordered fold layouts are treated the same way (the base OOFs hold no time order to leak; a
    forward-only split would leave the first fold without any ensemble prediction)."""
    folds = np.asarray(folds)
    rows = validated_rows(folds) if rows is None else np.asarray(rows)
    out = []
    for f in np.unique(folds[rows]):
        mask = folds[rows] == f
        out.append((int(f), rows[~mask], rows[mask]))
    return out


def cross_fit(
    combiner: Combiner,
    oofs: Sequence[np.ndarray],
    folds: np.ndarray,
    scorer: Scorer,
    tests: Sequence[np.ndarray] | None = None,
    rows: np.ndarray | None = None,
) -> CrossFit:
    """Fit ``combiner`` once per fold on the other folds' rows and predict the fold (and the test set)."""
    splits = ensemble_splits(folds, rows)
    if len(splits) < 2:
        raise CheckError("ensembling needs at least 2 validated folds; the saved folds have fewer")
    n, k = len(oofs[0]), scorer.n_outputs
    oof = np.full((n, k), np.nan)
    models: list[Fitted] = []
    test_sum = None
    for _, fit_rows, pred_rows in splits:
        model = combiner.fit(oofs, fit_rows, folds, scorer)
        oof[pred_rows] = model.predict([o[pred_rows] for o in oofs])
        models.append(model)
        if tests is not None:
            t = model.predict(tests)
            test_sum = t if test_sum is None else test_sum + t
    test = None if test_sum is None else test_sum / len(models)
    return CrossFit(oof, models, test)


def finish_result(
    method: str,
    cf_oof: np.ndarray,
    test: np.ndarray,
    oofs: Sequence[np.ndarray],
    folds: np.ndarray,
    scorer: Scorer,
    final: Fitted,
    **extra: Any,
) -> EnsembleResult:
    """Score the nested OOF, fill never-validated rows with the final combiner's prediction, wrap up."""
    folds = np.asarray(folds)
    oof = cf_oof.copy()
    unvalidated = np.flatnonzero(folds < 0)
    if len(unvalidated):
        fill = final.predict([np.nan_to_num(o[unvalidated]) for o in oofs])
        oof[unvalidated] = np.nan_to_num(fill)
    score, fold_scores = scorer.cv(oof, folds)
    return EnsembleResult(method, oof, np.asarray(test, dtype=float), score, fold_scores, **extra)


def as_2d(a: np.ndarray) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    return arr[:, None] if arr.ndim == 1 else arr


def tidy(pred: np.ndarray, kind: str) -> np.ndarray:
    """Keep predictions in model space: probabilities in [0, 1], multiclass rows summing to 1."""
    p = as_2d(pred)
    if kind in ("binary", "multilabel"):
        return np.clip(p, 0.0, 1.0)
    if kind == "multiclass":
        p = np.clip(p, 0.0, None)
        s = p.sum(axis=1, keepdims=True)
        s[s <= 0] = 1.0
        return p / s
    return p


def check_inputs(oofs: Sequence[np.ndarray], tests: Sequence[np.ndarray] | None, scorer: Scorer) -> None:
    """Raise CheckError when base predictions do not fit the task's shapes."""
    if not oofs:
        raise CheckError("no base predictions to ensemble")
    k, n = scorer.n_outputs, scorer.data.n_train
    for i, o in enumerate(oofs):
        if o.shape != (n, k):
            raise CheckError(f"base OOF #{i} has shape {o.shape}; this task needs ({n}, {k})")
    if tests is not None:
        if len(tests) != len(oofs):
            raise CheckError(f"{len(oofs)} OOF arrays but {len(tests)} test arrays")
        for i, t in enumerate(tests):
            if t.ndim != 2 or t.shape[1] != k:
                raise CheckError(
                    f"base test predictions #{i} have shape {t.shape}; this task needs (n_test, {k})"
                )
