"""Metric registry: implementations, directions, what each scores, and recognition from text.

Every metric takes submission-space arrays: ``y_true`` and ``y_pred`` of shape (n, k) holding what the
answer file and the submission file hold in their target columns (labels, probabilities or values).
"""

from medalist.metrics.registry import (
    METRICS,
    Direction,
    Metric,
    ScoreOrder,
    get_metric,
    recognize_metric,
    score,
)

__all__ = ["METRICS", "Direction", "Metric", "ScoreOrder", "get_metric", "recognize_metric", "score"]
