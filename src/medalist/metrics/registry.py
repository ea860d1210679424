"""The metric registry.

A metric scores submission-space arrays (what the answers file and a submission hold in their target
columns), both of shape (n, k). ``scores`` says what a submission must hold for it: ``label`` (class
labels), ``proba`` (probabilities or scores) or ``value`` (numbers).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from sklearn import metrics as skm

from medalist.errors import MedalistError

LOGLOSS_EPS = 1e-15
T = TypeVar("T")


class ScoreOrder:
    """Which way scores improve, and every comparison that follows from it: the one place a metric's
    direction is branched on (mixed into :class:`Metric` and :class:`Direction`)."""

    lower_is_better: bool

    def better(self, a: float, b: float, margin: float = 0.0) -> bool:
        """True when score ``a`` is better than ``b`` by more than ``margin``."""
        return a < b - margin if self.lower_is_better else a > b + margin

    @property
    def worst(self) -> float:
        return float("inf") if self.lower_is_better else float("-inf")

    @property
    def word(self) -> str:
        """ "lower" or "higher", as in "lower is better"."""
        return "lower" if self.lower_is_better else "higher"

    @property
    def sense(self) -> str:
        """What an optimiser does with the score: "minimize" or "maximize"."""
        return "minimize" if self.lower_is_better else "maximize"

    def sort_key(self, score: Any) -> Any:
        """A key that sorts ascending best first (a score or an array of them; lower is better for it)."""
        return score if self.lower_is_better else -score

    def best_of(self, items: Iterable[T], key: Callable[[T], float]) -> T:
        """The item with the best ``key`` (the first of equals); ValueError when there is none."""
        return min(items, key=lambda item: self.sort_key(key(item)))

    def best_index(self, scores: Sequence[float]) -> int:
        """Index of the best score, non-finite ones counted as the worst."""
        keys = self.sort_key(np.asarray(scores, dtype=float))
        return int(np.argmin(np.where(np.isfinite(keys), keys, np.inf)))

    def best_first(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        """The scores sorted best first."""
        s = np.sort(np.asarray(scores, dtype=float))
        return s if self.lower_is_better else s[::-1]


@dataclass(frozen=True)
class Direction(ScoreOrder):
    """A score direction without a metric (a leaderboard's, a search's)."""

    lower_is_better: bool


@dataclass(frozen=True)
class Metric(ScoreOrder):
    """One competition metric."""

    name: str
    fn: Callable[[np.ndarray, np.ndarray], float]
    lower_is_better: bool
    scores: str  # "label" | "proba" | "value"
    patterns: tuple[str, ...] = field(default=())  # regexes (lower-case text) that name it
    multi_column: bool = False  # scores several target columns together
    priority: int = 0  # among several matches in a text, the highest priority wins

    def __call__(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(self.fn(_as_2d(y_true), _as_2d(y_pred)))


def _as_2d(a: np.ndarray) -> np.ndarray:
    arr = np.asarray(a)
    return arr.reshape(-1, 1) if arr.ndim == 1 else arr


def _col(a: np.ndarray) -> np.ndarray:
    if a.shape[1] != 1:
        raise MedalistError(f"this metric scores one column, got {a.shape[1]}")
    return a[:, 0]


def _num(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=float)


def _labels(a: np.ndarray) -> np.ndarray:
    """Labels compared as strings of their canonical form (so 1, 1.0 and '1' agree; True and 'True' too)."""
    out = []
    for v in a.ravel():
        if isinstance(v, (bool, np.bool_)):
            out.append(str(bool(v)))
        elif isinstance(v, (int, np.integer)) or (
            isinstance(v, (float, np.floating)) and float(v).is_integer()
        ):
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return np.array(out, dtype=object).reshape(a.shape)


# ---------------------------------------------------------------- label metrics
def accuracy(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.all(_labels(t) == _labels(p), axis=1)))


def balanced_accuracy(t: np.ndarray, p: np.ndarray) -> float:
    return skm.balanced_accuracy_score(_labels(_col(t)[:, None])[:, 0], _labels(_col(p)[:, None])[:, 0])


def _binary_pos(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tl, pl = _labels(_col(t)[:, None])[:, 0], _labels(_col(p)[:, None])[:, 0]
    vals = set(tl) | set(pl)
    pos = next((c for c in ("1", "True", "true", "yes", "Yes") if c in vals), None)
    if pos is None:
        pos = sorted(vals)[-1]
    return tl == pos, pl == pos


def f1(t: np.ndarray, p: np.ndarray) -> float:
    yt, yp = _binary_pos(t, p)
    return skm.f1_score(yt, yp, zero_division=0.0)


def micro_f1(t: np.ndarray, p: np.ndarray) -> float:
    if t.shape[1] > 1:  # multi-label indicator columns
        return skm.f1_score(
            _num(t).astype(int), (_num(p) >= 0.5).astype(int), average="micro", zero_division=0.0
        )
    return skm.f1_score(_labels(t)[:, 0], _labels(p)[:, 0], average="micro", zero_division=0.0)


def macro_f1(t: np.ndarray, p: np.ndarray) -> float:
    if t.shape[1] > 1:
        return skm.f1_score(
            _num(t).astype(int), (_num(p) >= 0.5).astype(int), average="macro", zero_division=0.0
        )
    return skm.f1_score(_labels(t)[:, 0], _labels(p)[:, 0], average="macro", zero_division=0.0)


def mcc(t: np.ndarray, p: np.ndarray) -> float:
    return skm.matthews_corrcoef(_labels(t)[:, 0], _labels(p)[:, 0])


def qwk(t: np.ndarray, p: np.ndarray) -> float:
    yt = np.rint(_num(_col(t))).astype(int)
    yp = np.rint(_num(_col(p))).astype(int)
    return skm.cohen_kappa_score(yt, yp, weights="quadratic")


# ---------------------------------------------------------------- probability metrics
def roc_auc(t: np.ndarray, p: np.ndarray) -> float:
    if t.shape[1] == 1 and p.shape[1] == 1:
        return skm.roc_auc_score(_num(t[:, 0]), _num(p[:, 0]))
    if t.shape[1] == 1:  # class labels vs per-class scores: one-vs-rest macro
        return skm.roc_auc_score(t[:, 0], _num(p), multi_class="ovr")
    return mean_columnwise_roc_auc(t, p)  # one-hot truth: mean over columns


def mean_columnwise_roc_auc(t: np.ndarray, p: np.ndarray) -> float:
    tt, pp = _num(t), _num(p)
    vals = [skm.roc_auc_score(tt[:, j], pp[:, j]) for j in range(tt.shape[1]) if len(np.unique(tt[:, j])) > 1]
    if not vals:
        raise MedalistError("ROC AUC needs both classes in at least one column")
    return float(np.mean(vals))


def log_loss(t: np.ndarray, p: np.ndarray) -> float:
    """Kaggle's log loss: rows divided by their sum, then clipped to [eps, 1-eps]."""
    pp = _num(p)
    if pp.shape[1] == 1:  # binary: probability of the positive class
        tt = _num(t)[:, 0]
        q = np.clip(pp[:, 0], LOGLOSS_EPS, 1 - LOGLOSS_EPS)
        return float(-np.mean(tt * np.log(q) + (1 - tt) * np.log(1 - q)))
    tt = _num(t)
    if tt.shape[1] != pp.shape[1]:
        raise MedalistError(f"log loss needs one-hot truth with {pp.shape[1]} columns, got {tt.shape[1]}")
    sums = pp.sum(axis=1, keepdims=True)
    sums[sums == 0] = 1.0
    q = np.clip(pp / sums, LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    return float(-np.mean(np.sum(tt * np.log(q), axis=1)))


def map_at_k(t: np.ndarray, p: np.ndarray, k: int = 3) -> float:
    """Mean average precision at k: truth one label per row (or space-separated), prediction space-separated."""
    total = 0.0
    for truth, pred in zip(t[:, 0], p[:, 0]):
        actual = str(truth).split()
        guesses = str(pred).split()[:k]
        hits, score_ = 0, 0.0
        seen: set[str] = set()
        for i, g in enumerate(guesses):
            if g in actual and g not in seen:
                hits += 1
                score_ += hits / (i + 1)
            seen.add(g)
        total += score_ / min(len(actual), k) if actual else 0.0
    return total / len(t)


def normalized_gini(t: np.ndarray, p: np.ndarray) -> float:
    return 2 * skm.roc_auc_score(_num(_col(t)), _num(_col(p))) - 1


# ---------------------------------------------------------------- value metrics
def rmse(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((_num(t) - _num(p)) ** 2)))


def rmsle(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log1p(_num(t)) - np.log1p(np.maximum(_num(p), 0))) ** 2)))


def rmse_log(t: np.ndarray, p: np.ndarray) -> float:
    tiny = 1e-12
    return float(
        np.sqrt(np.mean((np.log(np.maximum(_num(t), tiny)) - np.log(np.maximum(_num(p), tiny))) ** 2))
    )


def mae(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(_num(t) - _num(p))))


def medae(t: np.ndarray, p: np.ndarray) -> float:
    return float(np.median(np.abs(_num(t) - _num(p))))


def mape(t: np.ndarray, p: np.ndarray) -> float:
    return skm.mean_absolute_percentage_error(_num(t), _num(p))


def r2(t: np.ndarray, p: np.ndarray) -> float:
    return skm.r2_score(_num(t), _num(p))


def spearman(t: np.ndarray, p: np.ndarray) -> float:
    from scipy.stats import spearmanr

    vals = [spearmanr(_num(t)[:, j], _num(p)[:, j]).statistic for j in range(t.shape[1])]
    return float(np.nanmean(vals))


def mean_columnwise_rmsle(t: np.ndarray, p: np.ndarray) -> float:
    tt, pp = _num(t), np.maximum(_num(p), 0)
    return float(np.mean(np.sqrt(np.mean((np.log1p(tt) - np.log1p(pp)) ** 2, axis=0))))


def _m(
    name: str, fn: Callable, lower: bool, scores: str, *patterns: str, multi: bool = False, priority: int = 0
) -> Metric:
    return Metric(name, fn, lower, scores, tuple(patterns), multi, priority)


_ALL = [
    _m(
        "accuracy",
        accuracy,
        False,
        "label",
        r"\baccuracy\b",
        r"classification accuracy",
        r"percentage of .*correct",
    ),
    _m("balanced_accuracy", balanced_accuracy, False, "label", r"balanced accuracy", priority=2),
    _m(
        "roc_auc",
        roc_auc,
        False,
        "proba",
        r"\bauc\b",
        r"roc[ -]?auc",
        r"area under the (roc|receiver)",
        r"receiver operating characteristic",
        priority=1,
    ),
    _m(
        "mean_columnwise_roc_auc",
        mean_columnwise_roc_auc,
        False,
        "proba",
        r"mean column-?wise (roc )?auc",
        r"column-?wise (roc )?auc",
        r"average of the individual aucs",
        r"mean (roc )?auc .*each (predicted )?column",
        multi=True,
        priority=3,
    ),
    _m(
        "log_loss",
        log_loss,
        True,
        "proba",
        r"log(arithmic)?[ -]?loss",
        r"cross[ -]?entropy",
        r"\blogloss\b",
        priority=1,
    ),
    _m("rmse", rmse, True, "value", r"root[ -]mean[ -]squared?[ -]error", r"\brmse\b"),
    _m(
        "rmse_log",
        rmse_log,
        True,
        "value",
        r"(rmse|root[ -]mean[ -]squared?[ -]error).{0,40}between the log(arithm)? of the predicted",
        r"logarithm of the predicted value and the logarithm of the observed",
        priority=3,
    ),
    _m("rmsle", rmsle, True, "value", r"root mean squared? log(arithmic)? error", r"\brmsle\b", priority=2),
    _m(
        "mean_columnwise_rmsle",
        mean_columnwise_rmsle,
        True,
        "value",
        r"column-?wise .{0,40}(rmsle|root mean squared? log)",
        r"mean (of the )?(rmsle|root mean squared logarithmic errors?) .{0,30}columns",
        multi=True,
        priority=4,
    ),
    _m("mae", mae, True, "value", r"mean absolute error", r"\bmae\b"),
    _m("medae", medae, True, "value", r"median absolute error", r"\bmedae\b", priority=1),
    _m("mape", mape, True, "value", r"mean absolute percentage error", r"\bmape\b", priority=1),
    _m("r2", r2, False, "value", r"\br2\b", r"r\^2", r"r-squared", r"coefficient of determination"),
    _m(
        "qwk",
        qwk,
        False,
        "label",
        r"quadratic weighted kappa",
        r"\bqwk\b",
        r"weighted kappa",
        r"cohen'?s kappa",
        priority=3,
    ),
    _m("f1", f1, False, "label", r"\bf1\b", r"f1[ -]score", r"\bf_1\b", r"\bf-score\b", r"f_\{?1\}?"),
    _m("micro_f1", micro_f1, False, "label", r"micro[ -]?(averaged )?f1", r"mean f1", priority=2),
    _m("macro_f1", macro_f1, False, "label", r"macro[ -]?(averaged )?f1", priority=2),
    _m("mcc", mcc, False, "label", r"matthews correlation", r"\bmcc\b", priority=2),
    _m("map_at_k", map_at_k, False, "label", r"mean average precision", r"\bmap@\d", priority=2),
    _m("spearman", spearman, False, "value", r"spearman", priority=2),
    _m(
        "normalized_gini",
        normalized_gini,
        False,
        "proba",
        r"normali[sz]ed gini",
        r"gini coefficient",
        priority=2,
    ),
]

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}

_ALIASES = {
    "auc": "roc_auc",
    "rocauc": "roc_auc",
    "logloss": "log_loss",
    "mlogloss": "log_loss",
    "cross_entropy": "log_loss",
    "kappa": "qwk",
    "quadratic_weighted_kappa": "qwk",
    "f1_score": "f1",
    "rmsle_log": "rmse_log",
    "mean_squared_log_error": "rmsle",
    "gini": "normalized_gini",
    "map@3": "map_at_k",
    "map3": "map_at_k",
}


def get_metric(name: str) -> Metric:
    """The metric called ``name`` (canonical name or a common alias)."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in METRICS:
        raise MedalistError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[key]


def score(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Score submission-space arrays with the metric called ``name``."""
    return get_metric(name)(y_true, y_pred)


def _evaluation_text(text: str) -> str:
    """The part of a description about evaluation, when it has one; else the whole text."""
    low = text.lower()
    m = re.search(r"(^|\n)\s*(#+\s*)?(evaluation|metric|scoring)\b", low)
    if not m:
        return low
    return low[m.start() : m.start() + 3000]


def recognize_metric(text: str, n_target_columns: int = 1) -> Metric | None:
    """The metric a description's evaluation text names, or None when it names none it knows."""
    for chunk in (_evaluation_text(text), text.lower()):
        found: list[tuple[int, int, Metric]] = []
        for m in _ALL:
            for pat in m.patterns:
                hit = re.search(pat, chunk)
                if hit:
                    found.append((m.priority, -hit.start(), m))
                    break
        if found:
            found.sort(key=lambda x: (x[0], x[1]), reverse=True)
            best = found[0][2]
            if n_target_columns > 1 and best.name == "rmsle":
                return METRICS["mean_columnwise_rmsle"]
            if n_target_columns > 1 and best.name == "roc_auc" and "column" in chunk:
                return METRICS["mean_columnwise_roc_auc"]
            return best
    return None
