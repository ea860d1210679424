"""The expert's setup rules on small competition folders built for one rule each (the real 13 are in
test_setup_real.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medalist.policy.expert import ExpertPolicy
from medalist.setup import run_setup
from medalist.setup.data import load_task_data


def _folder(
    root: Path,
    train: pd.DataFrame,
    test: pd.DataFrame,
    sample: pd.DataFrame,
    text: str,
    extra: dict[str, pd.DataFrame] | None = None,
) -> Path:
    root.mkdir(parents=True)
    train.to_csv(root / "train.csv", index=False)
    test.to_csv(root / "test.csv", index=False)
    sample.to_csv(root / "sample_submission.csv", index=False)
    for name, frame in (extra or {}).items():
        frame.to_csv(root / name, index=False)
    (root / "description.md").write_text(text)
    return root


def test_forecast_gets_a_time_column_and_time_ordered_folds(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "id": range(400),
            "date": pd.date_range("2020-01-01", periods=400).astype(str),
            "x": rng.normal(size=400),
        }
    )
    df["y"] = 2 * df["x"] + rng.normal(size=400)
    comp = _folder(
        tmp_path / "forecast",
        df.iloc[:300],
        df.iloc[300:].drop(columns="y"),
        df.iloc[300:][["id"]].assign(y=0.0),
        "Predict y.\n\n## Evaluation\n\nRoot mean squared error.",
    )
    spec, ws, _ = run_setup(comp, tmp_path / "ws", ExpertPolicy())
    assert spec.time_column == "date" and spec.metric == "rmse" and spec.task_type == "regression"
    from medalist.solve.folds import make_folds

    folds = make_folds(load_task_data(ws))
    assert (folds[:50] == -1).all() and (np.diff(folds[folds >= 0]) >= 0).all()


def test_train_only_columns_labels_file_and_one_hot_with_prefix(tmp_path):
    rng = np.random.default_rng(1)
    n = 300
    x = rng.normal(size=(n, 3))
    status = np.array(["A", "B", "C"])[rng.integers(0, 3, n)]
    train = pd.DataFrame({"row_id": range(n), "f0": x[:, 0], "f1": x[:, 1], "leak": x[:, 2]})
    labels = pd.DataFrame({"row_id": range(n), "Status": status})
    test = pd.DataFrame({"row_id": range(n, n + 100), "f0": rng.normal(size=100), "f1": rng.normal(size=100)})
    sample = pd.DataFrame({"row_id": test["row_id"], "Status_A": 1 / 3, "Status_B": 1 / 3, "Status_C": 1 / 3})
    comp = _folder(
        tmp_path / "labels",
        train,
        test,
        sample,
        "Predict Status.\n\n## Evaluation\n\nMulti-class logarithmic loss.",
        {"train_labels.csv": labels},
    )
    spec, ws, _ = run_setup(comp, tmp_path / "ws", ExpertPolicy())
    assert spec.label_columns == ["Status"] and spec.task_type == "multiclass"
    assert spec.target_columns == ["Status_A", "Status_B", "Status_C"] and spec.metric == "log_loss"
    assert "leak" not in spec.input_columns["tabular"] and "leak" in spec.excluded_columns
    data = load_task_data(ws)
    assert data.target.sum(axis=1).eq(1).all()
    assert data.transform.decode(np.eye(3)[[0, 1, 2]]).columns.tolist() == spec.target_columns


def test_ordinal_multilabel_and_unlabelled_rows(tmp_path):
    rng = np.random.default_rng(2)
    n = 200
    train = pd.DataFrame({"id": range(n), "a": rng.normal(size=n), "quality": rng.integers(3, 9, n)})
    train.loc[:9, "quality"] = np.nan  # unlabelled rows are dropped from every train map
    test = pd.DataFrame({"id": range(n, n + 50), "a": rng.normal(size=50)})
    sample = pd.DataFrame({"id": test["id"], "quality": 5})
    comp = _folder(tmp_path / "ordinal", train, test, sample, "## Evaluation\n\nQuadratic weighted kappa.")
    spec, ws, _ = run_setup(comp, tmp_path / "ws1", ExpertPolicy())
    assert spec.task_type == "ordinal" and spec.metric == "qwk"
    assert load_task_data(ws).n_train == n - 10

    labels = rng.integers(0, 2, (n, 3))
    train = pd.DataFrame(
        {"id": range(n), "a": rng.normal(size=n), "t1": labels[:, 0], "t2": labels[:, 1], "t3": labels[:, 2]}
    )
    test = pd.DataFrame({"id": range(n, n + 50), "a": rng.normal(size=50)})
    sample = pd.DataFrame({"id": test["id"], "t1": 0.5, "t2": 0.5, "t3": 0.5})
    comp = _folder(
        tmp_path / "multilabel", train, test, sample, "## Evaluation\n\nThe mean column-wise ROC AUC."
    )
    spec, _, _ = run_setup(comp, tmp_path / "ws2", ExpertPolicy())
    assert spec.task_type == "multilabel" and spec.metric == "mean_columnwise_roc_auc"
    assert spec.transform.output == "proba"
