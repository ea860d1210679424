"""Post-processing fitted on OOF predictions only: a new TargetTransform to decode with.

- binary / multilabel decoded to labels (accuracy, F1, MCC, ...): the decision threshold, searched over
  quantiles of the OOF probabilities;
- ordinal (QWK, ...): the cut points, by coordinate search over sorted cut points starting from the
  transform's (class midpoints by default);
- regression: clipping to the target range seen in training rows.

Each is scored by nested CV (fit on the other folds' rows, decode the held-out fold with it) and kept
only when that score beats decoding with the unchanged transform. Metrics that need non-negative values
(RMSLE) always get ``clip_min >= 0`` so decoded values are valid submissions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from medalist.ensemble.core import Scorer, ensemble_splits, validated_rows
from medalist.setup.spec import TargetTransform

N_THRESHOLDS = 64
N_CUT_CANDIDATES = 12
CUT_PASSES = 2
NONNEGATIVE_METRICS = ("rmsle", "mean_columnwise_rmsle")
POSITIVE_METRICS = ("rmse_log",)

Fitter = Callable[[np.ndarray, np.ndarray, Scorer, TargetTransform], TargetTransform]


@dataclass
class PostProcess:
    """The chosen decoding and the evidence for it."""

    transform: TargetTransform  # decode with this (the input transform when nothing was kept)
    kind: str  # threshold | cut_points | clip | none
    kept: bool = False
    nested_before: float | None = None
    nested_after: float | None = None
    fold_scores: list[float] = field(default_factory=list)  # per fold, of the kept decoding
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        """The nested-CV score of the decoding that is kept."""
        return self.nested_after if self.kept else self.nested_before

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "kept": self.kept,
            "nested_before": self.nested_before,
            "nested_after": self.nested_after,
            **self.params,
        }


def fit_threshold(oof: np.ndarray, rows: np.ndarray, scorer: Scorer, t: TargetTransform) -> TargetTransform:
    """The decision threshold that scores best on ``rows`` (candidates: quantiles of their predictions)."""
    p = oof[rows]
    qs = np.quantile(p.ravel(), np.linspace(0.01, 0.99, N_THRESHOLDS - 1))
    candidates = np.unique(np.round(np.append(qs, t.threshold), 6))
    scores = [scorer(p, rows, replace(t, threshold=float(c))) for c in candidates]
    best = scorer.best_index(scores)
    if not scorer.better(scores[best], scorer(p, rows, t)):
        return t
    return replace(t, threshold=float(candidates[best]))


def _initial_cuts(t: TargetTransform) -> np.ndarray:
    if t.cut_points:
        return np.asarray(t.cut_points, dtype=float)
    classes = np.asarray(t.classes, dtype=float)
    return (classes[:-1] + classes[1:]) / 2


def fit_cut_points(oof: np.ndarray, rows: np.ndarray, scorer: Scorer, t: TargetTransform) -> TargetTransform:
    """Ordinal cut points by coordinate search: each cut in turn tries quantiles of the predictions
    between its neighbours and keeps the best (a few passes, until nothing moves)."""
    p = oof[rows]
    cuts = _initial_cuts(t)
    if len(cuts) == 0:
        return t

    def score(c: np.ndarray) -> float:
        return scorer(p, rows, replace(t, cut_points=[float(v) for v in c]))

    current = score(cuts)
    lo_all, hi_all = float(np.min(p)), float(np.max(p))
    for _ in range(CUT_PASSES):
        moved = False
        for i in range(len(cuts)):
            lo = cuts[i - 1] if i > 0 else min(lo_all, cuts[i]) - 1e-9
            hi = cuts[i + 1] if i + 1 < len(cuts) else max(hi_all, cuts[i]) + 1e-9
            inside = p[(p > lo) & (p < hi)]
            if len(inside) >= N_CUT_CANDIDATES:  # dense where the predictions are
                grid = np.unique(np.quantile(inside, np.linspace(0, 1, N_CUT_CANDIDATES + 2)[1:-1]))
            else:
                grid = np.linspace(lo, hi, N_CUT_CANDIDATES + 2)[1:-1]
            best_v, best_s = cuts[i], current
            for v in grid:
                trial = cuts.copy()
                trial[i] = v
                s = score(trial)
                if scorer.better(s, best_s):
                    best_v, best_s = v, s
            if best_v != cuts[i]:
                cuts[i], current, moved = best_v, best_s, True
        if not moved:
            break
    return replace(t, cut_points=[float(v) for v in cuts])


def fit_clip(oof: np.ndarray, rows: np.ndarray, scorer: Scorer, t: TargetTransform) -> TargetTransform:
    """Clip decoded regression values to the target range of ``rows`` (never looser than ``t``'s clip)."""
    truth = scorer.data.target.iloc[rows].to_numpy(dtype=float)
    lo, hi = float(np.nanmin(truth)), float(np.nanmax(truth))
    if t.clip_min is not None:
        lo = max(lo, t.clip_min)
    if t.clip_max is not None:
        hi = min(hi, t.clip_max)
    return replace(t, clip_min=lo, clip_max=hi)


def _validity(t: TargetTransform, metric: str) -> TargetTransform:
    if t.kind != "regression":
        return t
    if metric in NONNEGATIVE_METRICS and (t.clip_min is None or t.clip_min < 0):
        return replace(t, clip_min=0.0)
    if metric in POSITIVE_METRICS and (t.clip_min is None or t.clip_min <= 0):
        return replace(t, clip_min=1e-9)
    return t


def _choose(scorer: Scorer, t: TargetTransform) -> tuple[str, Fitter | None]:
    if t.kind in ("binary", "multilabel") and t.output == "label":
        return "threshold", fit_threshold
    if t.kind == "ordinal" and t.classes and len(t.classes) > 1:
        return "cut_points", fit_cut_points
    if t.kind == "regression":
        return "clip", fit_clip
    return "none", None


def fit_postprocess(
    oof: np.ndarray, folds: np.ndarray, scorer: Scorer, transform: TargetTransform | None = None
) -> PostProcess:
    """Fit the post-processing that suits the task on OOF rows and keep it only if nested CV improves."""
    base = _validity(transform or scorer.transform, scorer.metric.name)
    oof = np.asarray(oof, dtype=float)
    oof = oof[:, None] if oof.ndim == 1 else oof
    before, before_folds = scorer.cv(oof, folds, base)
    kind, fitter = _choose(scorer, base)
    result = PostProcess(base, kind, False, before, None, before_folds)
    if fitter is None:
        return result
    parts, after_folds = [], []
    for _, fit_rows, pred_rows in ensemble_splits(folds):
        tf = fitter(oof, fit_rows, scorer, base)
        parts.append((oof[pred_rows], pred_rows, tf))
        after_folds.append(scorer(oof[pred_rows], pred_rows, tf))
    after = scorer.score_parts(parts)
    result.nested_after = after
    if scorer.better(after, before):
        final = fitter(oof, validated_rows(folds), scorer, base)
        result.transform, result.kept, result.fold_scores = final, True, after_folds
        result.params = _params(kind, final)
    return result


def _params(kind: str, t: TargetTransform) -> dict[str, Any]:
    if kind == "threshold":
        return {"threshold": t.threshold}
    if kind == "cut_points":
        return {"cut_points": t.cut_points}
    if kind == "clip":
        return {"clip_min": t.clip_min, "clip_max": t.clip_max}
    return {}
