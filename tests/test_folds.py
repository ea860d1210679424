"""Folds on real competitions' targets: stratification, groups, time order, saving and reuse."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from medalist.errors import CheckError
from medalist.setup.spec import TargetTransform
from medalist.solve.folds import fold_splits, load_or_make_folds, make_folds, plan_folds
from tests.solve_helpers import BIKES, S3E9, TITANIC, CompSpec, competition_data, competition_workspace

S4E2 = CompSpec(
    "playground-series-s4e2",
    "id",
    ["NObeyesdad"],
    TargetTransform(
        "multiclass",
        "label",
        ["NObeyesdad"],
        classes=[
            "Insufficient_Weight",
            "Normal_Weight",
            "Obesity_Type_I",
            "Obesity_Type_II",
            "Obesity_Type_III",
            "Overweight_Level_I",
            "Overweight_Level_II",
        ],
    ),
    "accuracy",
    False,
    "multiclass",
)


def _ratios(labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per fold (rows) share of each label (columns)."""
    table = pd.crosstab(folds, labels, normalize="index")
    return table.to_numpy()


def test_binary_stratified_keeps_class_ratio_and_is_deterministic(competitions):
    data = competition_data(competitions, TITANIC)
    folds = make_folds(data, 5, seed=0)
    assert folds.shape == (891,) and folds.dtype == np.int64
    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 1
    y = data.y[:, 0]
    per_fold = np.array([y[folds == f].mean() for f in range(5)])
    assert np.abs(per_fold - y.mean()).max() < 0.01  # 342/891 survived in every fold, within one row
    assert np.array_equal(folds, make_folds(data, 5, seed=0))
    assert not np.array_equal(folds, make_folds(data, 5, seed=1))


def test_multiclass_stratified(competitions):
    data = competition_data(competitions, S4E2, n_rows=3000)
    folds, plan = plan_folds(data, 5, seed=3)
    assert plan.strategy == "stratified"
    overall = np.bincount(data.y[:, 0].astype(int)) / len(folds)
    assert np.abs(_ratios(data.y[:, 0], folds) - overall).max() < 0.005


def test_rare_classes_fall_back_gracefully(competitions):
    # leaf-classification: 99 species with ~9 rows each; 10 folds -> every class is rarer than n_splits
    classes = sorted(pd.read_csv(competitions / "leaf-classification/public/train.csv")["species"].unique())
    leaf = CompSpec(
        "leaf-classification",
        "id",
        ["species"],
        TargetTransform("multiclass", "label", ["species"], classes=classes),
        "log_loss",
        True,
        "multiclass",
    )
    data = competition_data(competitions, leaf)
    folds, _ = plan_folds(data, 10, seed=0)
    assert sorted(np.unique(folds)) == list(range(10))
    assert np.bincount(folds).min() >= len(folds) // 10 - 1
    # 5 folds: most classes have >= 5 rows and are stratified, so a class never has all rows in one fold
    folds5 = make_folds(data, 5, seed=0)
    counts = pd.crosstab(data.y[:, 0], folds5).to_numpy()
    big = counts.sum(axis=1) >= 5
    assert (counts[big] > 0).all()
    # a tiny slice where every class has fewer rows than folds: plain KFold with a note
    tiny = competition_data(competitions, leaf, n_rows=40)
    folds_t, plan_t = plan_folds(tiny, 5, seed=0)
    assert plan_t.strategy == "kfold" and "plain KFold" in plan_t.note
    assert sorted(np.unique(folds_t)) == [0, 1, 2, 3, 4]


def test_regression_binned_stratification(competitions):
    data = competition_data(competitions, S3E9, n_rows=1500)
    folds, plan = plan_folds(data, 5, seed=0)
    assert plan.strategy == "stratified_bins"
    y = data.y[:, 0]
    means = np.array([y[folds == f].mean() for f in range(5)])
    assert np.abs(means - y.mean()).max() < 0.03 * y.std() * 5  # fold means within a small band
    # quantiles of each fold match the overall ones closely
    q = np.quantile(y, [0.1, 0.5, 0.9])
    for f in range(5):
        assert np.abs(np.quantile(y[folds == f], [0.1, 0.5, 0.9]) - q).max() < 0.2 * y.std()


def test_multilabel_rarest_label_stratification(competitions):
    # spaceship-titanic rows labelled with three real boolean columns; VIP is rare (~2%)
    ml = CompSpec(
        "spaceship-titanic",
        "PassengerId",
        ["Transported", "CryoSleep", "VIP"],
        TargetTransform("multilabel", "label", ["Transported", "CryoSleep", "VIP"]),
        "accuracy",
        False,
        "multilabel",
        drop=["CryoSleep", "VIP"],
    )
    train = pd.read_csv(competitions / "spaceship-titanic/public/train.csv").dropna(
        subset=["CryoSleep", "VIP"]
    )
    n = len(train)
    data = competition_data(competitions, ml)
    keep = np.flatnonzero(~np.isnan(data.y).any(axis=1))
    assert len(keep) == n
    data.y, data.train_ids = data.y[keep], data.train_ids[keep]
    data.target = data.target.iloc[keep].reset_index(drop=True)
    data.train = {k: v.iloc[keep].reset_index(drop=True) for k, v in data.train.items()}
    folds, plan = plan_folds(data, 5, seed=0)
    assert plan.strategy == "stratified_rarest_label"
    for j in range(3):
        rates = np.array([data.y[folds == f, j].mean() for f in range(5)])
        assert np.abs(rates - data.y[:, j].mean()).max() < 0.01, (j, rates)


def test_group_folds_keep_groups_together(competitions):
    data = competition_data(competitions, replace(TITANIC, group_column="Ticket"))
    folds, plan = plan_folds(data, 5, seed=0)
    assert plan.strategy == "stratified_group"
    tickets = data.train["tabular"]["Ticket"].to_numpy()
    per_ticket = pd.Series(folds).groupby(tickets).nunique()
    assert per_ticket.max() == 1
    y = data.y[:, 0]
    assert np.abs(np.array([y[folds == f].mean() for f in range(5)]) - y.mean()).max() < 0.05
    # a group column that is not in the tabular map is ignored with a note
    missing = competition_data(competitions, replace(TITANIC, group_column="Household"))
    folds_m, plan_m = plan_folds(missing, 5, seed=0)
    assert plan_m.strategy == "stratified" and "Household" in plan_m.note and "ignored" in plan_m.note
    assert np.array_equal(folds_m, make_folds(competition_data(competitions, TITANIC), 5, 0))


def test_time_folds_are_forward_chaining(competitions):
    data = competition_data(competitions, BIKES, n_rows=3000)
    folds, plan = plan_folds(data, 4, seed=0)
    assert plan.strategy == "time" and plan.n_splits == 4
    times = pd.to_datetime(pd.Series(data.train_ids)).to_numpy()
    assert sorted(np.unique(folds)) == [-1, 0, 1, 2, 3]
    assert (np.bincount(folds + 1) == 600).all()  # 5 equal blocks of 3000 rows
    for f in range(-1, 3):  # every block ends before the next begins
        assert times[folds == f].max() < times[folds == f + 1].min()
    for f, train, valid in fold_splits(folds):
        assert times[train].max() < times[valid].min()
        assert set(folds[train]) == set(range(-1, f))
    # seed does not matter for time order
    assert np.array_equal(folds, make_folds(data, 4, seed=7))


def test_kfold_splits_partition_rows(competitions):
    data = competition_data(competitions, TITANIC)
    folds = make_folds(data, 5, 0)
    seen = np.zeros(len(folds), dtype=int)
    for f, train, valid in fold_splits(folds):
        assert len(np.intersect1d(train, valid)) == 0 and len(train) + len(valid) == len(folds)
        assert (folds[valid] == f).all()
        seen[valid] += 1
    assert (seen == 1).all()


def test_load_or_make_folds_saves_once_and_checks_length(tmp_path, competitions):
    ws, data = competition_workspace(tmp_path, competitions, TITANIC)
    folds = load_or_make_folds(ws, data, 5, seed=0)
    assert ws.folds.exists()
    mtime = ws.folds.stat().st_mtime_ns
    again = load_or_make_folds(ws, data, 10, seed=9)  # saved folds win over new arguments
    assert np.array_equal(folds, again) and ws.folds.stat().st_mtime_ns == mtime
    assert not list(ws.folds.parent.glob(".*.tmp"))
    np.save(ws.folds, folds[:-3])
    with pytest.raises(CheckError, match="891 rows"):
        load_or_make_folds(ws, data)
