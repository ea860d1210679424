"""Leaderboard placement: Kaggle's medal thresholds (as mle-bench applies them), median, percentile.

Medal positions by the number of teams N (kaggle.com/progression):

==================  =======================  ===========  ===========
teams N             gold                     silver       bronze
==================  =======================  ===========  ===========
N < 100             top 10%                  top 20%      top 40%
100 <= N < 250      rank 10                  top 20%      top 40%
250 <= N < 1000     rank 10 + int(0.002 N)   rank 50      rank 100
N >= 1000           rank 10 + int(0.002 N)   top 5%       top 10%
==================  =======================  ===========  ===========

"top x%" is rank ``max(1, int(N * x))``. A threshold is the score of the team at that rank; a score
earns a medal when it is at least as good as the threshold, and medals are exclusive (gold beats silver
beats bronze). "Above median" is strictly better than the median of the leaderboard's scores; the
percentile is the share (in %) of teams the score strictly beats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from medalist.metrics import Direction


@dataclass(frozen=True)
class Thresholds:
    """Scores needed for each medal, and the leaderboard's median."""

    gold: float
    silver: float
    bronze: float
    median: float


@dataclass(frozen=True)
class Placement:
    """Where a score lands on a leaderboard. With no teams every field but ``n_teams`` is None."""

    n_teams: int
    thresholds: Thresholds | None
    gold_medal: bool | None
    silver_medal: bool | None
    bronze_medal: bool | None
    any_medal: bool | None
    above_median: bool | None
    percentile: float | None  # % of teams strictly beaten (0..100)
    rank: int | None  # 1 + the number of teams strictly better

    def to_dict(self) -> dict:
        return asdict(self)


def medal_positions(n_teams: int) -> tuple[int, int, int]:
    """Ranks (1-based) whose scores are the gold, silver and bronze thresholds for ``n_teams`` teams."""
    n = int(n_teams)
    if n < 1:
        raise ValueError("a leaderboard needs at least one team for medal thresholds")

    def top(share: float) -> int:
        return max(1, int(n * share))

    if n < 100:
        return top(0.1), top(0.2), top(0.4)
    if n < 250:
        return 10, top(0.2), top(0.4)
    if n < 1000:
        return 10 + int(n * 0.002), 50, 100
    return 10 + int(n * 0.002), top(0.05), top(0.1)


def _clean(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=float).ravel()
    return s[np.isfinite(s)]


def best_first(scores: Sequence[float] | np.ndarray, lower_is_better: bool) -> np.ndarray:
    """Finite scores sorted best first."""
    return Direction(lower_is_better).best_first(_clean(scores))


def medal_thresholds(scores: Sequence[float] | np.ndarray, lower_is_better: bool) -> Thresholds | None:
    """Thresholds of a leaderboard (any order), or None when it has no teams."""
    s = best_first(scores, lower_is_better)
    if len(s) == 0:
        return None
    g, si, b = medal_positions(len(s))
    return Thresholds(float(s[g - 1]), float(s[si - 1]), float(s[b - 1]), float(np.median(s)))


def infer_lower_is_better(scores_in_order: Sequence[float] | np.ndarray) -> bool | None:
    """Direction from a leaderboard listed best first: lower is better when the first score is below the
    last (as mle-bench does); when they are equal, the sign most steps take; None when all are equal."""
    s = _clean(scores_in_order)
    if len(s) < 2:
        return None
    if s[0] != s[-1]:
        return bool(s[0] < s[-1])
    steps = np.sign(np.diff(s))
    total = steps.sum()
    return None if total == 0 else bool(total > 0)


def place_on_leaderboard(
    score: float | None, scores: Sequence[float] | np.ndarray, lower_is_better: bool
) -> Placement:
    """Medals, above-median, percentile and rank of ``score`` among the leaderboard ``scores``.

    ``score`` None (no valid submission) wins nothing: medals and above-median are False, percentile and
    rank None. An empty leaderboard gives None everywhere (nothing to compare with).
    """
    s = _clean(scores)
    n = len(s)
    order = Direction(lower_is_better)
    th = medal_thresholds(s, lower_is_better)
    if th is None:
        return Placement(0, None, None, None, None, None, None, None, None)
    if score is None or not np.isfinite(score):
        return Placement(n, th, False, False, False, False, False, None, None)

    def at_least(a: float, b: float) -> bool:
        return not order.better(b, a)

    gold = at_least(score, th.gold)
    silver = not gold and at_least(score, th.silver)
    bronze = not gold and not silver and at_least(score, th.bronze)
    above_median = order.better(score, th.median)
    key, mine = order.sort_key(s), order.sort_key(score)  # ascending best first
    beaten = int(np.sum(key > mine))
    better = int(np.sum(key < mine))
    return Placement(
        n_teams=n,
        thresholds=th,
        gold_medal=gold,
        silver_medal=silver,
        bronze_medal=bronze,
        any_medal=gold or silver or bronze,
        above_median=bool(above_median),
        percentile=round(100.0 * beaten / n, 4),
        rank=better + 1,
    )
