"""The model zoo on slices of real competitions: output shapes, probabilities, and each family beats a
trivial (prior / mean) prediction on held-out rows by the competition's metric."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medalist.errors import InputError
from medalist.setup.data import TaskData, align_maps
from medalist.setup.spec import TargetTransform, TaskSpec
from medalist.solve.features import prepare_features
from medalist.solve.models import MODEL_NAMES, available_models, get_model
from medalist.solve.scoring import score_predictions
from medalist.solve.types import ModelTask

TABULAR = ["lgbm", "xgb", "catboost", "linear", "knn", "rf", "et", "mlp"]
FAST: dict[str, dict[str, Any]] = {  # small budgets: the whole file runs in about a minute on 2 cores
    "lgbm": {"n_estimators": 300, "early_stopping_rounds": 30, "fixed_rounds": 100, "learning_rate": 0.1},
    "xgb": {"n_estimators": 300, "early_stopping_rounds": 30, "fixed_rounds": 100, "eta": 0.1},
    "catboost": {
        "n_estimators": 200,
        "early_stopping_rounds": 30,
        "fixed_rounds": 100,
        "learning_rate": 0.15,
    },
    "rf": {"n_estimators": 60},
    "et": {"n_estimators": 60},
    "mlp": {"max_epochs": 40, "patience": 6, "fixed_epochs": 10},
}
S4E2_CLASSES = [
    "Insufficient_Weight",
    "Normal_Weight",
    "Obesity_Type_I",
    "Obesity_Type_II",
    "Obesity_Type_III",
    "Overweight_Level_I",
    "Overweight_Level_II",
]


def comp_data(
    comp_dir: Path,
    slug: str,
    targets: list[str],
    transform: TargetTransform,
    metric: str,
    lower_is_better: bool,
    *,
    id_col: str = "id",
    text: tuple[str, ...] = (),
    n_rows: int | None = None,
    one_hot: str | None = None,
    derive: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> TaskData:
    """TaskData from public/ (a seeded sample of ``n_rows`` train rows, the first 200 test rows)."""
    train = pd.read_csv(comp_dir / slug / "public" / "train.csv")
    test = pd.read_csv(comp_dir / slug / "public" / "test.csv").head(200)
    if n_rows is not None and n_rows < len(train):
        train = train.sample(n_rows, random_state=0).reset_index(drop=True)
    for name, fn in (derive or {}).items():
        train[name] = fn(train)
    if one_hot:
        for t in targets:
            train[t] = (train[one_hot] == t).astype(float)
    inputs = [c for c in test.columns if c != id_col and c not in drop]
    tab = [c for c in inputs if c not in text]
    tr_id, te_id = train[id_col].astype(str).rename("id"), test[id_col].astype(str).rename("id")
    maps = {"train_tab_target": pd.concat([tr_id, train[targets]], axis=1)}
    modalities = []
    for code, modality, cols in (("tab", "tabular", tab), ("txt", "text", list(text))):
        if cols:
            modalities.append(modality)
            maps[f"train_{code}_input"] = pd.concat([tr_id, train[cols]], axis=1)
            maps[f"test_{code}_input"] = pd.concat([te_id, test[cols]], axis=1)
    spec = TaskSpec(
        slug=slug,
        metric=metric,
        lower_is_better=lower_is_better,
        id_column=id_col,
        target_columns=targets,
        modalities=modalities,
        target_transform=transform.to_dict(),
    )
    return align_maps(spec, maps)


def _task(data: TaskData) -> ModelTask:
    return ModelTask.from_transform(data.transform, data.spec.metric, data.spec.lower_is_better)


def _holdout(n: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(0).permutation(n)
    cut = int(0.8 * n)
    return np.sort(perm[:cut]), np.sort(perm[cut:])


def fit_holdout(
    name: str, data: TaskData, params: dict[str, Any] | None = None, seed: int = 0, recipe: str = "base"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(valid predictions, test predictions, valid rows) of one family on an 80/20 split."""
    family = get_model(name)
    tr, va = _holdout(data.n_train)
    x_tr, x_va, x_te = prepare_features(data, recipe, family.modalities, seed).split(tr, va)
    pv, pt = family.fit_predict(
        x_tr,
        data.y[tr],
        x_va,
        x_te,
        {**FAST.get(name, {}), **(params or {})},
        _task(data),
        seed,
        y_valid=data.y[va],
    )
    return pv, pt, va


def trivial_score(data: TaskData, rows: np.ndarray) -> float:
    """The metric of predicting the training rows' prior / mean for every held-out row."""
    tr = np.setdiff1d(np.arange(data.n_train), rows)
    mean = data.transform.perfect(data.y[tr]).mean(axis=0, keepdims=True)
    return score_predictions(data, np.repeat(mean, len(rows), axis=0), rows)


def check_outputs(pv: np.ndarray, pt: np.ndarray, data: TaskData, n_valid: int) -> None:
    task = _task(data)
    assert pv.shape == (n_valid, task.n_outputs) and pt.shape == (data.n_test, task.n_outputs)
    assert np.isfinite(pv).all() and np.isfinite(pt).all()
    if task.is_classification:
        assert pv.min() >= 0 and pv.max() <= 1 and pt.min() >= 0 and pt.max() <= 1
    if task.kind == "multiclass":
        np.testing.assert_allclose(pv.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(pt.sum(axis=1), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------------------- tasks
@pytest.fixture(scope="module")
def tasks(competitions: Path) -> dict[str, TaskData]:
    targets = ["formation_energy_ev_natom", "bandgap_energy_ev"]
    spooky = ["EAP", "HPL", "MWS"]
    return {
        "titanic": comp_data(
            competitions,
            "titanic",
            ["Survived"],
            TargetTransform("binary", "label", ["Survived"], classes=[0, 1], label_dtype="int"),
            "accuracy",
            False,
            id_col="PassengerId",
        ),
        "s4e2": comp_data(
            competitions,
            "playground-series-s4e2",
            ["NObeyesdad"],
            TargetTransform("multiclass", "label", ["NObeyesdad"], classes=S4E2_CLASSES),
            "accuracy",
            False,
            n_rows=1500,
        ),
        "s3e9": comp_data(
            competitions,
            "playground-series-s3e9",
            ["Strength"],
            TargetTransform("regression", "value", ["Strength"]),
            "rmse",
            True,
            n_rows=1500,
        ),
        "nomad": comp_data(
            competitions,
            "nomad2018-predict-transparent-conductors",
            targets,
            TargetTransform("regression", "value", targets, log=True, clip_min=0.0),
            "mean_columnwise_rmsle",
            True,
            n_rows=1500,
        ),
        "spooky": comp_data(
            competitions,
            "spooky-author-identification",
            spooky,
            TargetTransform("multiclass", "proba", spooky, classes=spooky),
            "log_loss",
            True,
            text=("text",),
            n_rows=1500,
            one_hot="author",
        ),
    }


@pytest.mark.parametrize("dataset", ["titanic", "s4e2", "s3e9", "nomad"])
@pytest.mark.parametrize("name", TABULAR)
def test_tabular_family_beats_trivial_prediction(name: str, dataset: str, tasks: dict[str, TaskData]) -> None:
    data = tasks[dataset]
    pv, pt, va = fit_holdout(name, data)
    check_outputs(pv, pt, data, len(va))
    score, trivial = score_predictions(data, pv, va), trivial_score(data, va)
    metric_better = score < trivial if data.spec.lower_is_better else score > trivial
    assert metric_better, f"{name} on {dataset}: {score:.4f} vs trivial {trivial:.4f}"


def test_tfidf_linear_on_spooky(tasks: dict[str, TaskData]) -> None:
    data = tasks["spooky"]
    pv, pt, va = fit_holdout("tfidf_linear", data)
    check_outputs(pv, pt, data, len(va))
    score, trivial = score_predictions(data, pv, va), trivial_score(data, va)
    assert score < trivial - 0.2, (score, trivial)  # ~0.70 vs ~1.09 log loss on 1,200 training sentences
    # a tabular model on text statistics alone is far weaker
    lgbm_score = score_predictions(data, fit_holdout("lgbm", data)[0], va)
    assert score < lgbm_score - 0.1


@pytest.mark.parametrize("name", ["lgbm", "catboost", "mlp"])
def test_deterministic_and_silent(
    name: str, tasks: dict[str, TaskData], capfd: pytest.CaptureFixture[str]
) -> None:
    data = tasks["titanic"]
    a = fit_holdout(name, data, seed=3)
    b = fit_holdout(name, data, seed=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("name", ["lgbm", "xgb", "linear", "mlp"])
def test_fold_missing_a_class_still_predicts_every_class(name: str, tasks: dict[str, TaskData]) -> None:
    data = tasks["s4e2"]
    family = get_model(name)
    absent = 4  # Obesity_Type_III
    tr = np.flatnonzero(data.y[:, 0] != absent)[:1000]
    va = np.setdiff1d(np.arange(data.n_train), tr)
    x_tr, x_va, x_te = prepare_features(data, "base", family.modalities).split(tr, va)
    pv, pt = family.fit_predict(x_tr, data.y[tr], x_va, x_te, FAST.get(name, {}), _task(data), 0, data.y[va])
    check_outputs(pv, pt, data, len(va))
    assert pv[:, absent].max() < 0.01
    seen = data.y[va, 0] != absent
    assert (pv[seen].argmax(axis=1) == data.y[va][seen, 0]).mean() > 0.6


@pytest.mark.parametrize("name", ["lgbm", "xgb", "catboost", "mlp"])
def test_full_fit_without_validation_rows(name: str, tasks: dict[str, TaskData]) -> None:
    """All rows as training and no validation rows (the final fit); early stopping then holds out 10%."""
    data = tasks["s3e9"]
    family = get_model(name)
    x_tr, x_va, x_te = prepare_features(data, "base", family.modalities).split(
        np.arange(data.n_train), np.array([], dtype=int)
    )
    pv, pt = family.fit_predict(x_tr, data.y, x_va, x_te, FAST.get(name, {}), _task(data), 0)
    assert pv.shape == (0, 1) and pt.shape == (data.n_test, 1) and np.isfinite(pt).all()
    _, pt_fold, _ = fit_holdout(name, data)
    assert np.corrcoef(pt[:, 0], pt_fold[:, 0])[0, 1] > 0.9


@pytest.mark.parametrize("name", ["lgbm", "linear", "rf"])
def test_multilabel_one_model_per_label(name: str, competitions: Path) -> None:
    labels = ["Survived", "first_class"]
    data = comp_data(
        competitions,
        "titanic",
        labels,
        TargetTransform("multilabel", "proba", labels),
        "mean_columnwise_roc_auc",
        False,
        id_col="PassengerId",
        derive={"first_class": lambda f: (f["Pclass"] == 1).astype(int)},
        drop=("Pclass",),
    )
    pv, pt, va = fit_holdout(name, data)
    check_outputs(pv, pt, data, len(va))
    assert score_predictions(data, pv, va) > 0.8


def test_ordinal_regresses_on_the_value(competitions: Path) -> None:
    data = comp_data(
        competitions,
        "titanic",
        ["Pclass"],
        TargetTransform("ordinal", "label", ["Pclass"], classes=[1, 2, 3], label_dtype="int"),
        "qwk",
        False,
        id_col="PassengerId",
        drop=("Pclass",),
    )
    pv, pt, va = fit_holdout("lgbm", data)
    check_outputs(pv, pt, data, len(va))
    assert pv.min() > 0.5 and pv.max() < 3.5  # values on the class scale (1..3), not probabilities
    assert score_predictions(data, pv, va) > 0.6


def test_registry_and_parameter_spaces() -> None:
    assert set(TABULAR) | {"tfidf_linear"} <= set(MODEL_NAMES)
    assert set(TABULAR) <= set(available_models(("tabular",)))
    assert "tfidf_linear" not in available_models(("tabular",))
    assert "tfidf_linear" in available_models(("text",))
    assert not set(TABULAR) & set(available_models(("text",)))
    nb = {"nbsvm", "tfidf_nb"}  # classification only: not offered where they could only fail
    assert nb <= set(available_models(("text",), "multiclass"))
    assert not nb & set(available_models(("text",), "regression"))
    assert "tfidf_linear" in available_models(("text",), "regression")
    with pytest.raises(InputError, match="unknown model"):
        get_model("gpt")
    for kind, n_out in (("binary", 1), ("multiclass", 5), ("regression", 2)):
        task = ModelTask(kind, n_out, "accuracy", False, 5 if kind == "multiclass" else 0)
        for name in [*TABULAR, "tfidf_linear"]:
            family = get_model(name)
            assert family.name == name and family.available() is None
            small, large = family.default_params(task, 500), family.default_params(task, 500_000)
            space = family.search_space(task)
            assert space and set(space) <= set(small), name
            for key, spec in space.items():
                assert spec[0] in ("int", "float", "logfloat", "cat"), (name, key)
                if spec[0] == "cat":
                    assert len(spec[1]) >= 2
                else:
                    assert spec[1] < spec[2]
            assert set(small) == set(large)
    lgbm = get_model("lgbm")
    t = ModelTask("binary", 1, "roc_auc", False)
    assert lgbm.default_params(t, 500)["num_leaves"] < lgbm.default_params(t, 500_000)["num_leaves"]


def test_mlp_stops_at_its_time_bound(tasks: dict[str, TaskData]) -> None:
    """A fold's time bound ends training after the epoch that crosses it: with a bound already passed, a
    200-epoch budget trains exactly what a 1-epoch budget trains (same seed), and still predicts."""
    data = tasks["titanic"]
    bounded = fit_holdout("mlp", data, {"max_epochs": 200, "patience": 200, "max_seconds": 1e-9}, seed=1)
    one_epoch = fit_holdout("mlp", data, {"max_epochs": 1, "patience": 200}, seed=1)
    np.testing.assert_array_equal(bounded[0], one_epoch[0])
    np.testing.assert_array_equal(bounded[1], one_epoch[1])
    check_outputs(bounded[0], bounded[1], data, len(bounded[2]))
    unbounded = fit_holdout("mlp", data, {"max_epochs": 20, "patience": 200}, seed=1)
    assert not np.array_equal(unbounded[0], bounded[0])


@pytest.mark.parametrize("higher_is_better", [False, True])
def test_lightgbm_time_bound_stops_at_the_best_iteration_so_far(higher_is_better: bool) -> None:
    """LightGBM's bound runs before early stopping, so it tracks the best iteration itself: stopped at the
    fourth, it names the best of the four on the stopping rows (the last one when there are no such rows)."""
    import lightgbm as lgb

    from medalist.solve.models.gbdt import _LGBMTimeBound

    sign = -1.0 if higher_is_better else 1.0
    bound = _LGBMTimeBound(3600.0)
    for it, loss in enumerate([3.0, 2.0, 2.5]):
        bound(
            SimpleNamespace(
                iteration=it, evaluation_result_list=[("valid_0", "m", sign * loss, higher_is_better)]
            )
        )
    bound.deadline = 0.0
    with pytest.raises(lgb.callback.EarlyStopException) as stop:
        bound(
            SimpleNamespace(
                iteration=3, evaluation_result_list=[("valid_0", "m", sign * 2.2, higher_is_better)]
            )
        )
    assert stop.value.best_iteration == 1 and stop.value.best_score[0][2] == sign * 2.0
    blind = _LGBMTimeBound(0.0)
    with pytest.raises(lgb.callback.EarlyStopException) as stop:
        blind(SimpleNamespace(iteration=7, evaluation_result_list=[]))
    assert stop.value.best_iteration == 7


@pytest.mark.parametrize("model", ["catboost", "lgbm", "xgb"])
def test_gbdt_stops_at_its_time_bound(tasks: dict[str, TaskData], model: str) -> None:
    """The same for the GBDTs (a callback each, beside early stopping): a bound already passed keeps the
    first tree only, so its predictions barely leave the base rate while the unbounded model's spread out.
    (LightGBM's bound used to be dropped whenever early stopping was on.)"""
    data = tasks["titanic"]
    bounded = fit_holdout(model, data, {"max_seconds": 1e-9}, seed=1)
    full = fit_holdout(model, data, seed=1)
    check_outputs(bounded[0], bounded[1], data, len(bounded[2]))
    assert np.std(bounded[0]) < 0.2 * np.std(full[0]), (np.std(bounded[0]), np.std(full[0]))
