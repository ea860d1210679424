"""Greedy hill climbing with replacement (Caruana et al., 2004) on OOF predictions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from medalist.ensemble.core import (
    EnsembleResult,
    Scorer,
    check_inputs,
    cross_fit,
    finish_result,
    tidy,
    validated_rows,
)
from medalist.metrics import ScoreOrder

MAX_ITER = 100


def hill_climb(
    oofs: Sequence[np.ndarray],
    score_fn: Callable[[np.ndarray], float],
    order: ScoreOrder,
    max_iter: int = MAX_ITER,
    init_best: bool = True,
    tol: float = 0.0,
) -> np.ndarray:
    """Blend weights (summing to 1) chosen by greedy forward selection with replacement.

    Start from the best single model (``init_best``) or from the equal blend of all models; at each step
    add the one model (repeats allowed) whose inclusion scores best; stop when no addition improves the
    score by more than ``tol`` or after ``max_iter`` additions. ``score_fn`` scores a blend (same rows as
    ``oofs``)."""
    arrays = [np.asarray(o, dtype=float) for o in oofs]
    m = len(arrays)
    if m == 0:
        raise ValueError("hill_climb needs at least one prediction array")

    def better(a: float, b: float, margin: float = 0.0) -> bool:
        if not np.isfinite(a):
            return False
        if not np.isfinite(b):
            return True
        return order.better(a, b, margin)

    counts = np.zeros(m)
    if init_best:
        singles = [score_fn(a) for a in arrays]
        best = 0
        for j in range(1, m):
            if better(singles[j], singles[best]):
                best = j
        counts[best] = 1
        total = arrays[best].copy()
        current = singles[best]
    else:
        counts[:] = 1
        total = np.sum(arrays, axis=0)
        current = score_fn(total / m)
    for _ in range(max_iter):
        n = counts.sum()
        scores = [score_fn((total + a) / (n + 1)) for a in arrays]
        j = 0
        for i in range(1, m):
            if better(scores[i], scores[j]):
                j = i
        if not better(scores[j], current, tol):
            break
        counts[j] += 1
        total += arrays[j]
        current = scores[j]
    return counts / counts.sum()


@dataclass
class Blend:
    """A weighted average of base predictions."""

    weights: np.ndarray
    kind: str

    def predict(self, X: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros_like(np.asarray(X[0], dtype=float))
        for w, x in zip(self.weights, X):
            if w:
                out = out + w * np.asarray(x, dtype=float)
        return tidy(out, self.kind)


@dataclass
class HillClimb:
    """Combiner: hill-climbing weights fitted on the rows it is given, scored with the task metric."""

    max_iter: int = MAX_ITER
    init_best: bool = True
    name: str = "hill"

    def fit(self, oofs: Sequence[np.ndarray], rows: np.ndarray, folds: np.ndarray, scorer: Scorer) -> Blend:
        sub = [o[rows] for o in oofs]
        weights = hill_climb(sub, lambda p: scorer(p, rows), scorer.metric, self.max_iter, self.init_best)
        return Blend(weights, scorer.kind)


def hill_climb_ensemble(
    oofs: Sequence[np.ndarray],
    tests: Sequence[np.ndarray],
    folds: np.ndarray,
    scorer: Scorer,
    max_iter: int = MAX_ITER,
    init_best: bool = True,
) -> EnsembleResult:
    """Hill climbing scored by nested CV: weights chosen on the other folds' rows predict each fold.

    The reported weights and the test prediction come from a refit on every validated row; its score
    on those same rows is ``insample_score`` (optimistic, for reference only)."""
    check_inputs(oofs, tests, scorer)
    combiner = HillClimb(max_iter, init_best)
    cf = cross_fit(combiner, oofs, folds, scorer)
    rows = validated_rows(folds)
    final = combiner.fit(oofs, rows, folds, scorer)
    insample = scorer(final.predict([o[rows] for o in oofs]), rows)
    return finish_result(
        "hill",
        cf.oof,
        final.predict(tests),
        oofs,
        folds,
        scorer,
        final,
        insample_score=insample,
        weights=[float(w) for w in final.weights],
        info={"fold_weights": [[float(w) for w in m.weights] for m in cf.models]},  # type: ignore[attr-defined]
    )
