"""Scores are recomputed by medalist from model-space predictions: decode, then the registry metric."""

from __future__ import annotations

import numpy as np

from medalist.metrics import get_metric
from medalist.setup.data import TaskData
from medalist.setup.spec import TargetTransform


def score_predictions(
    data: TaskData,
    pred: np.ndarray,
    rows: np.ndarray | None = None,
    transform: TargetTransform | None = None,
) -> float:
    """Metric of model-space ``pred`` (aligned with ``rows`` of the train set, all rows when None)."""
    t = transform or data.transform
    truth = data.target if rows is None else data.target.iloc[rows]
    decoded = t.decode(pred)
    return get_metric(data.spec.metric)(truth.to_numpy(), decoded.to_numpy())


def cv_scores(
    data: TaskData, oof: np.ndarray, folds: np.ndarray, transform: TargetTransform | None = None
) -> tuple[float, list[float]]:
    """Overall OOF score and per-fold scores (rows with fold < 0 are not scored)."""
    scored = np.flatnonzero(folds >= 0)
    overall = score_predictions(data, oof[scored], scored, transform)
    per_fold = []
    for f in np.unique(folds[scored]):
        rows = np.flatnonzero(folds == f)
        per_fold.append(score_predictions(data, oof[rows], rows, transform))
    return overall, per_fold
