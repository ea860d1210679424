"""The data profile (setup/eda.py) on real competitions' tables, and on altered copies whose drift and
duplicates are known."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from medalist.setup.data import TaskData
from medalist.setup.eda import EDA_FILE, mutual_information, write_eda
from tests.solve_helpers import S3E9, TITANIC, competition_workspace


@pytest.fixture()
def titanic(tmp_path, competitions):
    return competition_workspace(tmp_path, competitions, TITANIC)


def test_titanic_profile_is_written_and_reads_like_the_data(titanic):
    ws, data = titanic
    profile = write_eda(ws, data)
    assert json.loads((ws.root / EDA_FILE).read_text()) == profile
    assert profile["rows"] == {"train": 891, "test": 418}
    columns = profile["columns"]
    assert columns["n"] == 10 and sum(columns["by_kind"].values()) == 10
    by_name = {p["name"]: p for p in columns["profiles"]}
    assert by_name["Sex"]["kind"] == "categorical" and by_name["Sex"]["unique"] == 2
    assert by_name["Age"]["kind"] == "numeric" and 0.15 < by_name["Age"]["missing_train"] < 0.25
    assert profile["target"]["classes"] == {"0": 549, "1": 342}
    assert profile["signals"][0]["column"] == "Sex"  # the famous one
    assert profile["duplicates"]["test_rows_in_train"] == 0
    drift = profile["drift"]
    assert drift["auc"] < 0.65 and drift["verdict"] == "no drift"
    assert profile["seconds"] < 30


def _with_frames(data: TaskData, train: pd.DataFrame, test: pd.DataFrame, target: pd.DataFrame) -> TaskData:
    y = data.transform.encode(target)
    train_ids = np.array([f"r{i}" for i in range(len(train))])
    test_ids = np.array([f"t{i}" for i in range(len(test))])
    return replace(
        data,
        train_ids=train_ids,
        test_ids=test_ids,
        train={"tabular": train},
        test={"tabular": test},
        target=target,
        y=y,
    )


def test_a_shifted_test_column_is_found_by_adversarial_validation(titanic):
    ws, data = titanic
    test = data.test["tabular"].copy()
    test["Fare"] = test["Fare"] * 20 + 100
    shifted = _with_frames(data, data.train["tabular"], test, data.target)
    drift = write_eda(ws, shifted)["drift"]
    assert drift["auc"] > 0.9 and drift["verdict"] == "strong drift"
    assert drift["drivers"][0]["column"] == "Fare"


def test_duplicates_conflicts_and_test_rows_seen_in_train_are_counted(titanic):
    ws, data = titanic
    train, target = data.train["tabular"], data.target
    copies = train.iloc[:5]
    flipped = target.iloc[:5].copy()
    flipped.iloc[0, 0] = 1 - flipped.iloc[0, 0]  # one copy disagrees with its original's label
    test = pd.concat([data.test["tabular"], train.iloc[10:13]], ignore_index=True)
    dup = _with_frames(
        data,
        pd.concat([train, copies], ignore_index=True),
        test,
        pd.concat([target, flipped], ignore_index=True),
    )
    found = write_eda(ws, dup)["duplicates"]
    assert found["train_duplicate_rows"] == 5
    assert found["train_conflicting_groups"] == 1
    assert found["test_rows_in_train"] == 3


def test_regression_target_gets_a_histogram_and_quantiles(tmp_path, competitions):
    ws, data = competition_workspace(tmp_path, competitions, S3E9)
    target = write_eda(ws, data)["target"]
    assert target["kind"] == "regression"
    assert sum(target["histogram"]["counts"]) == data.n_train
    q = target["quantiles"]
    assert q["0.01"] <= q["0.5"] <= q["0.99"]
    assert target["min"] <= target["mean"] <= target["max"]


def test_mutual_information_is_zero_for_independent_codes_and_entropy_for_identical_ones():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, 20_000)
    b = rng.integers(0, 4, 20_000)
    assert mutual_information(a, b) < 0.002
    assert mutual_information(a, a) == pytest.approx(np.log(4), abs=0.01)


def test_an_image_only_task_gets_rows_and_target_but_no_column_statistics(titanic):
    ws, data = titanic
    paths = {
        "train": pd.DataFrame({"path": [f"/img/{i}.png" for i in range(data.n_train)]}),
        "test": pd.DataFrame({"path": [f"/img/t{i}.png" for i in range(data.n_test)]}),
    }
    images = replace(data, train={"image": paths["train"]}, test={"image": paths["test"]})
    profile = write_eda(ws, images)
    assert profile["rows"] == {"train": 891, "test": 418}
    assert profile["columns"]["n"] == 0 and profile["signals"] == []
    assert profile["target"]["classes"] == {"0": 549, "1": 342}
    assert profile["drift"]["auc"] is None
