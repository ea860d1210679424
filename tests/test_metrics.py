"""The metric registry: every metric against scikit-learn / scipy or a hand-computed case, directions,
aliases, and recognition from real and synthetic description text."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn import metrics as skm

from medalist.errors import MedalistError
from medalist.metrics import METRICS, get_metric, recognize_metric, score
from tests.conftest import all_slugs

RNG = np.random.default_rng(0)


def m(name: str):
    """The registry metric ``name`` (tests call metrics through here; see the coverage test)."""
    return get_metric(name)


def col(a) -> np.ndarray:
    return np.asarray(a).reshape(-1, 1)


# ---------------------------------------------------------------- label metrics
def test_accuracy_matches_sklearn_and_compares_labels_as_labels():
    t = RNG.integers(0, 3, 200)
    p = np.where(RNG.random(200) < 0.7, t, RNG.integers(0, 3, 200))
    assert m("accuracy")(col(t), col(p)) == pytest.approx(skm.accuracy_score(t, p))
    # 1, 1.0 and "1" are the same label; True and "True" too
    truth = np.array([1, 0, 1, 1], dtype=object)
    pred = np.array(["1", 0.0, 1.0, "0"], dtype=object)
    assert m("accuracy")(col(truth), col(pred)) == pytest.approx(0.75)
    tb = np.array([True, False, True], dtype=object)
    pb = np.array(["True", "False", "False"], dtype=object)
    assert m("accuracy")(col(tb), col(pb)) == pytest.approx(2 / 3)


def test_balanced_accuracy_matches_sklearn():
    t = np.array(["a"] * 80 + ["b"] * 20)
    p = np.array(["a"] * 70 + ["b"] * 10 + ["b"] * 15 + ["a"] * 5)
    assert m("balanced_accuracy")(col(t), col(p)) == pytest.approx(skm.balanced_accuracy_score(t, p))
    assert m("balanced_accuracy")(col(t), col(p)) == pytest.approx((70 / 80 + 15 / 20) / 2)


def test_f1_is_f1_of_the_positive_class():
    t = RNG.integers(0, 2, 300)
    p = np.where(RNG.random(300) < 0.8, t, 1 - t)
    assert m("f1")(col(t), col(p)) == pytest.approx(skm.f1_score(t, p))
    # True/False labels: the positive class is True
    tb, pb = t.astype(bool), p.astype(bool)
    assert m("f1")(col(tb), col(pb)) == pytest.approx(skm.f1_score(tb, pb))
    # hand case: tp=2, fp=1, fn=1 -> 2*2/(2*2+1+1)
    assert m("f1")(col([1, 1, 1, 0, 0]), col([1, 1, 0, 1, 0])) == pytest.approx(4 / 6)


def test_micro_and_macro_f1_match_sklearn():
    t = RNG.integers(0, 4, 300)
    p = np.where(RNG.random(300) < 0.6, t, RNG.integers(0, 4, 300))
    assert m("micro_f1")(col(t), col(p)) == pytest.approx(skm.f1_score(t, p, average="micro"))
    assert m("macro_f1")(col(t), col(p)) == pytest.approx(skm.f1_score(t, p, average="macro"))
    # multi-label indicator columns, probabilities cut at 0.5
    tm = RNG.integers(0, 2, (100, 3))
    pm = np.clip(tm + RNG.normal(0, 0.4, (100, 3)), 0, 1)
    hard = (pm >= 0.5).astype(int)
    assert m("micro_f1")(tm, pm) == pytest.approx(skm.f1_score(tm, hard, average="micro"))
    assert m("macro_f1")(tm, pm) == pytest.approx(skm.f1_score(tm, hard, average="macro"))


def test_mcc_matches_sklearn():
    t = RNG.integers(0, 2, 250)
    p = np.where(RNG.random(250) < 0.75, t, 1 - t)
    assert m("mcc")(col(t), col(p)) == pytest.approx(skm.matthews_corrcoef(t, p))


def test_qwk_matches_sklearn_quadratic_kappa_and_rounds_values():
    t = RNG.integers(3, 9, 400)
    p = np.clip(t + RNG.integers(-2, 3, 400), 3, 8)
    expected = skm.cohen_kappa_score(t, p, weights="quadratic")
    assert m("qwk")(col(t), col(p)) == pytest.approx(expected)
    # predictions given as floats are rounded to the nearest label
    assert m("qwk")(col(t), col(p + 0.3)) == pytest.approx(expected)
    assert m("qwk")(col(t), col(t)) == pytest.approx(1.0)


def test_map_at_k_hand_case():
    truth = col(["a", "b", "c", "d"])
    pred = col(["a b c", "c b a", "x y c", "d d e"])
    # ap@3: 1 ; 1/2 ; 1/3 ; 1 (repeat of a hit is not counted twice)
    assert m("map_at_k")(truth, pred) == pytest.approx((1 + 1 / 2 + 1 / 3 + 1) / 4)
    # guesses past k are ignored
    assert m("map_at_k")(col(["z"]), col(["a b c z"])) == 0.0
    # a repeated guess counts once: a a b with truth b -> hit at position 3
    assert m("map_at_k")(col(["b"]), col(["a a b"])) == pytest.approx(1 / 3)


# ---------------------------------------------------------------- probability metrics
def test_roc_auc_binary_multiclass_and_one_hot():
    t = RNG.integers(0, 2, 300)
    s = t * 0.3 + RNG.random(300)
    assert m("roc_auc")(col(t), col(s)) == pytest.approx(skm.roc_auc_score(t, s))
    labels = RNG.integers(0, 3, 300)
    probs = RNG.dirichlet([1, 1, 1], 300) + np.eye(3)[labels] * 0.5
    probs /= probs.sum(axis=1, keepdims=True)
    assert m("roc_auc")(col(labels), probs) == pytest.approx(
        skm.roc_auc_score(labels, probs, multi_class="ovr")
    )
    onehot = np.eye(3)[labels]
    by_col = np.mean([skm.roc_auc_score(onehot[:, j], probs[:, j]) for j in range(3)])
    assert m("roc_auc")(onehot, probs) == pytest.approx(by_col)


def test_mean_columnwise_roc_auc_skips_single_class_columns():
    t = RNG.integers(0, 2, (200, 3))
    t[:, 2] = 0  # only one class: not scorable, left out of the mean
    p = t * 0.4 + RNG.random((200, 3))
    expected = np.mean([skm.roc_auc_score(t[:, j], p[:, j]) for j in range(2)])
    assert m("mean_columnwise_roc_auc")(t, p) == pytest.approx(expected)
    with pytest.raises(MedalistError):
        m("mean_columnwise_roc_auc")(np.zeros((5, 2)), RNG.random((5, 2)))


def test_normalized_gini_matches_kaggle_formula():
    def gini(actual, pred):  # Kaggle's cumulative-sum formulation (Porto Seguro forums)
        order = np.lexsort((np.arange(len(actual)), -pred))
        a = actual[order]
        cum = np.cumsum(a) / a.sum()
        return cum.sum() / len(a) - (len(a) + 1) / (2 * len(a))

    t = RNG.integers(0, 2, 500).astype(float)
    p = t * 0.2 + RNG.random(500)
    expected = gini(t, p) / gini(t, t)
    assert m("normalized_gini")(col(t), col(p)) == pytest.approx(expected, abs=1e-9)


def test_log_loss_binary_matches_sklearn_and_clips():
    t = RNG.integers(0, 2, 300)
    q = np.clip(t * 0.5 + RNG.random(300) * 0.5, 0.01, 0.99)
    assert m("log_loss")(col(t), col(q)) == pytest.approx(skm.log_loss(t, q))
    # a confident wrong answer costs -log(1e-15), not infinity
    assert m("log_loss")(col([1]), col([0.0])) == pytest.approx(-math.log(1e-15))
    assert m("log_loss")(col([0]), col([1.0])) == pytest.approx(-math.log(1e-15), rel=1e-3)


def test_log_loss_multiclass_normalises_rows_then_clips():
    onehot = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    pred = np.array([[2, 1, 1], [0.2, 0.6, 0.2], [0, 1, 0], [0.5, 0.5, 0.0]])
    # row 1 -> [0.5, .25, .25]; row 3: true class has 0 -> clipped to 1e-15
    hand = -(math.log(0.5) + math.log(0.6) + math.log(1e-15) + math.log(0.5)) / 4
    assert m("log_loss")(onehot, pred) == pytest.approx(hand)
    ok = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    labels = onehot[:3].argmax(axis=1)
    assert m("log_loss")(onehot[:3], ok) == pytest.approx(skm.log_loss(labels, ok, labels=[0, 1, 2]))
    with pytest.raises(MedalistError):
        m("log_loss")(onehot, pred[:, :2])


# ---------------------------------------------------------------- value metrics
def test_regression_metrics_match_sklearn():
    t = RNG.gamma(2.0, 10.0, 300) + 0.5
    p = t * RNG.normal(1.0, 0.2, 300) + 0.1
    p = np.abs(p) + 0.01
    assert m("rmse")(col(t), col(p)) == pytest.approx(skm.root_mean_squared_error(t, p))
    assert m("rmsle")(col(t), col(p)) == pytest.approx(skm.root_mean_squared_log_error(t, p))
    assert m("rmse_log")(col(t), col(p)) == pytest.approx(skm.root_mean_squared_error(np.log(t), np.log(p)))
    assert m("mae")(col(t), col(p)) == pytest.approx(skm.mean_absolute_error(t, p))
    assert m("medae")(col(t), col(p)) == pytest.approx(skm.median_absolute_error(t, p))
    assert m("mape")(col(t), col(p)) == pytest.approx(skm.mean_absolute_percentage_error(t, p))
    assert m("r2")(col(t), col(p)) == pytest.approx(skm.r2_score(t, p))
    assert m("spearman")(col(t), col(p)) == pytest.approx(spearmanr(t, p).statistic)


def test_rmsle_treats_negative_predictions_as_zero():
    t = np.array([1.0, 2.0, 3.0])
    assert m("rmsle")(col(t), col([-5.0, 2.0, 3.0])) == pytest.approx(
        m("rmsle")(col(t), col([0.0, 2.0, 3.0]))
    )
    assert m("rmsle")(col(t), col([0.0, 2.0, 3.0])) == pytest.approx(math.sqrt(math.log(2) ** 2 / 3))


def test_mean_columnwise_rmsle_is_the_mean_of_per_column_rmsle():
    t = RNG.random((200, 2)) * 5
    p = t + RNG.normal(0, 0.3, (200, 2)).clip(-0.2, None)
    per_col = [skm.root_mean_squared_log_error(t[:, j], np.maximum(p[:, j], 0)) for j in range(2)]
    assert m("mean_columnwise_rmsle")(t, p) == pytest.approx(np.mean(per_col))
    # hand case: column errors log(2) and 0 -> mean of RMSLEs is log(2)/2, not the pooled sqrt(log(2)^2/2)
    tt, pp = np.array([[0.0, 5.0]]), np.array([[1.0, 5.0]])
    assert m("mean_columnwise_rmsle")(tt, pp) == pytest.approx(math.log(2) / 2)


def test_spearman_averages_columns():
    t = RNG.random((100, 2))
    p = t + RNG.normal(0, 0.2, (100, 2))
    expected = np.mean([spearmanr(t[:, j], p[:, j]).statistic for j in range(2)])
    assert m("spearman")(t, p) == pytest.approx(expected)


# ---------------------------------------------------------------- registry behaviour
LOWER = {"log_loss", "rmse", "rmse_log", "rmsle", "mean_columnwise_rmsle", "mae", "medae", "mape"}


def test_directions():
    for name, metric in METRICS.items():
        assert metric.lower_is_better == (name in LOWER), name
        assert metric.better(0.1, 0.2) == (name in LOWER)
        assert metric.worst == (math.inf if name in LOWER else -math.inf)


def test_aliases_and_unknown_names():
    assert get_metric("AUC").name == "roc_auc"
    assert get_metric("logloss").name == "log_loss"
    assert get_metric("quadratic weighted kappa").name == "qwk"
    assert get_metric("MAP@3").name == "map_at_k"
    assert get_metric("Mean-Columnwise-RMSLE").name == "mean_columnwise_rmsle"
    assert score("rmse", np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(math.sqrt(2))
    with pytest.raises(MedalistError, match="unknown metric"):
        get_metric("bleu")


def test_every_registry_metric_is_tested():
    source = Path(__file__).read_text(encoding="utf-8")
    tested = set(re.findall(r'\bm\("(\w+)"\)', source))
    assert set(METRICS) <= tested, f"metrics without a test here: {sorted(set(METRICS) - tested)}"


# ---------------------------------------------------------------- recognition from text
@pytest.mark.parametrize("slug", all_slugs() or ["<shared competitions missing>"])
def test_recognize_metric_on_real_descriptions(competitions, slug):
    folder = competitions / slug
    grading = json.loads((folder / "grading.json").read_text())
    text = (folder / "public" / "description.md").read_text(encoding="utf-8")
    found = recognize_metric(text, n_target_columns=len(grading["target_columns"]))
    assert found is not None and found.name == grading["metric"]
    assert found.lower_is_better == grading["lower_is_better"]


SYNTHETIC = [
    (
        "Submissions are evaluated on area under the ROC curve between the predicted probability and the "
        "observed target.",
        1,
        "roc_auc",
    ),
    ("Submissions are scored on the root mean squared error.", 1, "rmse"),
    ("The evaluation metric for this competition is RMSLE.", 1, "rmsle"),
    ("Submissions are evaluated using the multi-class logarithmic loss.", 3, "log_loss"),
    ("Submissions are evaluated with binary cross-entropy.", 1, "log_loss"),
    (
        "Submissions are scored based on the quadratic weighted kappa, which measures the agreement between "
        "two ratings.",
        1,
        "qwk",
    ),
    (
        "Submissions are evaluated on Mean Absolute Error (MAE) between the predicted and actual values.",
        1,
        "mae",
    ),
    ("Submissions will be evaluated on the median absolute error.", 1, "medae"),
    ("The evaluation metric is Mean Absolute Percentage Error (MAPE).", 1, "mape"),
    ("Submissions are scored by the coefficient of determination.", 1, "r2"),
    ("The metric is the F1 score between the predicted and expected answers.", 1, "f1"),
    ("Submissions are evaluated on the macro F1 score across the classes.", 1, "macro_f1"),
    ("The metric is the micro-averaged F1 score.", 1, "micro_f1"),
    (
        "Your score is the percentage of passengers you correctly predict. This is known as accuracy.",
        1,
        "accuracy",
    ),
    ("Submissions are evaluated with balanced accuracy.", 1, "balanced_accuracy"),
    ("Submissions are evaluated on the Matthews correlation coefficient (MCC).", 1, "mcc"),
    ("Submissions are evaluated according to the Mean Average Precision @ 3 (MAP@3).", 1, "map_at_k"),
    ("Submissions are evaluated using the Normalized Gini Coefficient.", 1, "normalized_gini"),
    ("Submissions are scored with the Spearman rank correlation.", 1, "spearman"),
    (
        "Submissions are evaluated using the mean column-wise ROC AUC. In other words, the score is the "
        "average of the individual AUCs of each predicted column.",
        6,
        "mean_columnwise_roc_auc",
    ),
    (
        "Submissions are scored on the mean of the RMSLE over the two target columns.",
        2,
        "mean_columnwise_rmsle",
    ),
    ("Submissions are scored on the root mean squared logarithmic error.", 2, "mean_columnwise_rmsle"),
    (
        "Submissions are evaluated on Root-Mean-Squared-Error (RMSE) between the logarithm of the predicted "
        "value and the logarithm of the observed sales price.",
        1,
        "rmse_log",
    ),
    (
        "# Overview\nBuild the most accurate model you can; accuracy matters to us.\n\n## Evaluation\n"
        "Submissions are evaluated on area under the ROC curve.",
        1,
        "roc_auc",
    ),
]


@pytest.mark.parametrize(("text", "n_targets", "expected"), SYNTHETIC)
def test_recognize_metric_on_synthetic_phrasings(text, n_targets, expected):
    found = recognize_metric(text, n_target_columns=n_targets)
    assert found is not None and found.name == expected


def test_recognize_metric_returns_none_without_a_metric():
    assert recognize_metric("Predict which passengers survived. Good luck!") is None
