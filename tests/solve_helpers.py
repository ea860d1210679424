"""Helpers for the solve tests: a TaskData / workspace assembled from a real competition's public files,
and a tiny model family and feature set (scikit-learn linear models on the numeric columns)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, Ridge

from medalist.setup.data import TaskData, align_maps, load_task_data
from medalist.setup.spec import TargetTransform, TaskSpec
from medalist.solve.types import ModelTask
from medalist.workspace import Workspace, write_parquet_atomic


@dataclass
class CompSpec:
    """What a test states about a competition (setup will later find this itself)."""

    slug: str
    id_column: str
    target_columns: list[str]
    transform: TargetTransform
    metric: str
    lower_is_better: bool
    task_type: str
    time_column: str | None = None
    group_column: str | None = None
    drop: list[str] = field(default_factory=list)


TITANIC = CompSpec(
    "titanic",
    "PassengerId",
    ["Survived"],
    TargetTransform("binary", "label", ["Survived"], classes=[0, 1], label_dtype="int"),
    "accuracy",
    False,
    "binary",
)
S3E9 = CompSpec(
    "playground-series-s3e9",
    "id",
    ["Strength"],
    TargetTransform("regression", "value", ["Strength"]),
    "rmse",
    True,
    "regression",
)
BIKES = CompSpec(
    "bike-sharing-demand",
    "datetime",
    ["count"],
    TargetTransform("regression", "value", ["count"], log=True, clip_min=0.0),
    "rmsle",
    True,
    "regression",
    time_column="datetime",
)


def _maps(frame: pd.DataFrame, test: pd.DataFrame, c: CompSpec) -> dict[str, pd.DataFrame]:
    inputs = [col for col in test.columns if col != c.id_column and col not in c.drop]
    tr_ids = frame[c.id_column].astype(str)
    te_ids = test[c.id_column].astype(str)
    return {
        "train_tab_target": pd.concat([tr_ids.rename("id"), frame[c.target_columns]], axis=1),
        "train_tab_input": pd.concat([tr_ids.rename("id"), frame[inputs]], axis=1),
        "test_tab_input": pd.concat([te_ids.rename("id"), test[inputs]], axis=1),
    }


def task_spec(c: CompSpec, inputs: list[str]) -> TaskSpec:
    return TaskSpec(
        slug=c.slug,
        task_type=c.task_type,
        metric=c.metric,
        lower_is_better=c.lower_is_better,
        id_column=c.id_column,
        target_columns=c.target_columns,
        label_columns=c.target_columns,
        modalities=["tabular"],
        input_columns={"tabular": inputs},
        time_column=c.time_column,
        group_column=c.group_column,
        target_transform=c.transform.to_dict(),
    )


def read_competition(
    comp_dir: Path, c: CompSpec, n_rows: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    pub = comp_dir / c.slug / "public"
    train = pd.read_csv(pub / "train.csv")
    test = pd.read_csv(pub / "test.csv")
    if n_rows is not None:
        train = train.iloc[:n_rows].reset_index(drop=True)
    return train, test


def competition_data(comp_dir: Path, c: CompSpec, n_rows: int | None = None) -> TaskData:
    """A TaskData straight from public/ (first ``n_rows`` train rows), aligned as setup would."""
    train, test = read_competition(comp_dir, c, n_rows)
    maps = _maps(train, test, c)
    return align_maps(task_spec(c, list(maps["train_tab_input"].columns[1:])), maps)


def competition_workspace(
    tmp: Path, comp_dir: Path, c: CompSpec, n_rows: int | None = None
) -> tuple[Workspace, TaskData]:
    """A workspace holding task.json and the maps (what scripts read), and its TaskData."""
    train, test = read_competition(comp_dir, c, n_rows)
    maps = _maps(train, test, c)
    ws = Workspace.create(tmp, c.slug)
    for name, frame in maps.items():
        write_parquet_atomic(ws.map_path(name), frame)
    task_spec(c, list(maps["train_tab_input"].columns[1:])).save(ws.task_json)
    return ws, load_task_data(ws)


class NumericFeatures:
    """FoldFeatures: the numeric and boolean tabular columns, NaN filled with the fold's train medians."""

    def __init__(self, data: TaskData) -> None:
        tr, te = data.train["tabular"], data.test["tabular"]
        cols = [
            c for c in tr.columns if pd.api.types.is_numeric_dtype(tr[c]) or pd.api.types.is_bool_dtype(tr[c])
        ]
        self.train = tr[cols].astype(float)
        self.test = te[cols].astype(float)

    def split(
        self, train_idx: np.ndarray, valid_idx: np.ndarray
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        x_tr = self.train.iloc[train_idx]
        med = x_tr.median()
        fill = lambda f: f.fillna(med).fillna(0.0)  # noqa: E731
        return fill(x_tr), fill(self.train.iloc[valid_idx]), fill(self.test)


class LinearFamily:
    """ModelFamily: logistic regression for classification, ridge for regression."""

    name = "linear"
    modalities = ("tabular",)

    def __init__(self, fail_on_fold: int | None = None, sleep: float = 0.0, bad_shape: bool = False) -> None:
        self.fail_on_fold = fail_on_fold
        self.sleep = sleep
        self.bad_shape = bad_shape
        self.calls = 0

    def available(self) -> str | None:
        return None

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {"C": 1.0} if task.is_classification else {"alpha": 1.0}

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return (
            {"C": ("logfloat", 1e-3, 1e2)} if task.is_classification else {"alpha": ("logfloat", 1e-3, 1e3)}
        )

    def fit_predict(self, X_train, y_train, X_valid, X_test, params, task, seed):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.fail_on_fold is not None and self.calls == self.fail_on_fold + 1:
            raise ValueError("boom\nsecond line")
        if self.sleep:
            time.sleep(self.sleep)
        y = np.asarray(y_train, dtype=float)
        if task.is_classification:
            model = LogisticRegression(C=params["C"], max_iter=500)
            mu, sd = X_train.mean(), X_train.std().replace(0, 1)
            model.fit((X_train - mu) / sd, y[:, 0].astype(int))
            pv, pt = model.predict_proba((X_valid - mu) / sd), model.predict_proba((X_test - mu) / sd)
            if task.kind == "binary":
                pv, pt = pv[:, 1:], pt[:, 1:]
        else:
            model = Ridge(alpha=params["alpha"], random_state=seed)
            model.fit(X_train, y)
            pv, pt = (
                model.predict(X_valid).reshape(len(X_valid), -1),
                model.predict(X_test).reshape(len(X_test), -1),
            )
        if self.bad_shape:
            pv = np.hstack([pv, pv])
        return pv, pt
