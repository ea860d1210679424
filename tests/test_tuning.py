"""Hyper-parameter search with both engines on a cheap real objective (ridge CV on a competition slice)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medalist.errors import MedalistError
from medalist.metrics import Direction
from medalist.solve import tuning
from medalist.solve.folds import fold_splits, make_folds
from medalist.solve.tuning import hebo_unavailable, tune
from tests.solve_helpers import S3E9, NumericFeatures, competition_data

SPACE = {
    "x": ("float", -2.0, 2.0),
    "n": ("int", 1, 9),
    "lr": ("logfloat", 1e-4, 1.0),
    "kind": ("cat", ["a", "b", None]),
}


def _toy(p: dict) -> float:
    """Minimum 0 at x=0.7, n=4, lr=1e-2, kind='b'; raises for kind None."""
    if p["kind"] is None:
        raise RuntimeError("unsupported kind")
    return (p["x"] - 0.7) ** 2 + abs(p["n"] - 4) / 4 + abs(math.log10(p["lr"]) + 2) / 2 + (p["kind"] != "b")


def _check_history(res, space, n):  # type: ignore[no-untyped-def]
    assert len(res.history) == n
    secs = [h[0] for h in res.history]
    assert secs == sorted(secs)
    for _, params, _ in res.history:
        assert set(params) == set(space)
        assert -2 <= params["x"] <= 2 and isinstance(params["n"], int) and 1 <= params["n"] <= 9
        assert 1e-4 <= params["lr"] <= 1.0 and params["kind"] in ("a", "b", None)


def test_optuna_minimises_counts_failures_and_is_seeded():
    res = tune(_toy, SPACE, engine="optuna", order=Direction(True), n_trials=60, time_budget=60, seed=0)
    _check_history(res, SPACE, 60)
    failed = [h for h in res.history if h[1]["kind"] is None]
    assert failed and all(h[2] == math.inf for h in failed) and res.n_failed == len(failed)
    assert res.last_error == "RuntimeError: unsupported kind"
    assert res.best_score == min(h[2] for h in res.history) and res.best_params["kind"] is not None
    startup = min(h[2] for h in res.history[:10])  # TPE's random start-up trials
    assert res.best_score < startup - 0.2  # the model-guided trials improved on random search
    again = tune(_toy, SPACE, engine="optuna", order=Direction(True), n_trials=60, time_budget=60, seed=0)
    assert [h[1] for h in again.history] == [h[1] for h in res.history]


def test_time_budget_stops_the_search(monkeypatch):
    """The budget is wall time from the call, import and set-up included; a fake clock that each trial
    advances by 0.1 s makes the count exact (a real clock on a loaded machine made it flaky)."""
    now = [0.0]
    monkeypatch.setattr(tuning, "time", SimpleNamespace(monotonic=lambda: now[0]))

    def slow(p: dict) -> float:
        now[0] += 0.1
        return p["x"]

    res = tune(
        slow,
        {"x": ("float", 0, 1)},
        engine="optuna",
        order=Direction(False),
        n_trials=None,
        time_budget=0.45,
        seed=1,
    )
    assert len(res.history) == 5  # trials start at 0.0, 0.1, ..., 0.4 s; none at 0.5
    assert [round(h[0], 1) for h in res.history] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert res.best_score == max(h[2] for h in res.history)


def test_every_trial_failing_is_not_a_crash_and_bad_spaces_are_refused():
    res = tune(
        lambda p: float("nan"),
        {"x": ("float", 0, 1)},
        engine="optuna",
        order=Direction(False),
        n_trials=3,
        time_budget=10,
        seed=0,
    )
    assert res.best_params == {} and res.best_score == -math.inf and res.n_failed == 3
    assert "objective returned nan" in res.last_error
    with pytest.raises(MedalistError, match="'lr'"):
        tune(_toy, {"lr": ("logfloat", 0, 1)}, order=Direction(True), n_trials=1, time_budget=1)
    with pytest.raises(MedalistError, match="unknown tuning engine"):
        tune(_toy, SPACE, engine="grid", order=Direction(True), n_trials=1, time_budget=1)


@pytest.fixture(scope="module")
def knn_objective(competitions):
    """CV RMSE of a kNN regressor on the numeric columns of playground-series-s3e9 (1,500 rows), on shared
    folds. Best near k=10-20 with uniform weights (~14.3); k=1 scores ~17.9, k=300 ~15.5."""
    data = competition_data(competitions, S3E9, n_rows=1500)
    folds = make_folds(data, 5, 0)
    X = NumericFeatures(data).train.to_numpy()
    y = data.y[:, 0]
    cv = [(tr, va) for _, tr, va in fold_splits(folds)]

    def objective(p: dict) -> float:
        model = make_pipeline(StandardScaler(), KNeighborsRegressor(p["k"], weights=p["weights"]))
        return float(-cross_val_score(model, X, y, cv=cv, scoring="neg_root_mean_squared_error").mean())

    return objective


KNN_SPACE = {"k": ("int", 1, 300), "weights": ("cat", ["uniform", "distance"])}


def test_optuna_tunes_a_real_cv_objective(knn_objective):
    res = tune(
        knn_objective, KNN_SPACE, engine="optuna", order=Direction(True), n_trials=15, time_budget=60, seed=0
    )
    assert res.best_score == pytest.approx(knn_objective(res.best_params))
    assert res.best_score < 14.6 and 5 <= res.best_params["k"] <= 60
    assert res.best_score < knn_objective({"k": 1, "weights": "uniform"})


@pytest.mark.skipif(hebo_unavailable() is not None, reason=f"HEBO unavailable: {hebo_unavailable()}")
def test_hebo_tunes_and_survives_failures(knn_objective):
    # HEBO fits a GP and runs an evolutionary search per suggestion (2-10 s each, after 1 + n_params
    # quasi-random trials): one model-guided trial per search here
    res = tune(
        knn_objective, KNN_SPACE, engine="hebo", order=Direction(True), n_trials=4, time_budget=120, seed=0
    )
    assert res.engine == "hebo" and len(res.history) == 4
    assert res.best_score == pytest.approx(knn_objective(res.best_params))
    assert res.best_score < 15.0
    state = np.random.get_state()[1].copy()
    toy = tune(_toy, SPACE, engine="hebo", order=Direction(False), n_trials=6, time_budget=120, seed=3)
    _check_history(toy, SPACE, 6)
    assert np.array_equal(state, np.random.get_state()[1])  # global RNG state restored
    assert all(h[2] == -math.inf for h in toy.history if h[1]["kind"] is None)
    assert toy.best_score == max(h[2] for h in toy.history if math.isfinite(h[2]))


def test_hebo_budget_is_checked_between_trials():
    if hebo_unavailable() is not None:
        with pytest.raises(MedalistError, match="HEBO unavailable"):
            tune(_toy, SPACE, engine="hebo", order=Direction(True), n_trials=1, time_budget=5)
        return
    res = tune(
        lambda p: p["x"],
        {"x": ("float", 0, 1), "k": ("int", 3, 3)},
        engine="hebo",
        order=Direction(True),
        n_trials=None,
        time_budget=0.0,
        seed=0,
    )
    assert res.history == [] and res.best_params == {}
