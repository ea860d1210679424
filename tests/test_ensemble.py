"""Ensembles on slices of real competitions: hill climbing, stackers, OOF discipline, post-processing,
distillation, and the ledger-facing builder.

Base models are small scikit-learn models trained with medalist's own folds on ~1,200 rows, so every
ensemble sees real, imperfect, correlated OOF predictions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from medalist.ensemble import (
    HillClimb,
    LGBMStacker,
    LinearStacker,
    MultiLevelStacker,
    Scorer,
    build_ensembles,
    cross_fit,
    fit_postprocess,
    hill_climb,
    hill_climb_ensemble,
    lgbm_stack,
    multilevel_stack,
    ridge_stack,
    stack_ensemble,
)
from medalist.ensemble.core import validated_rows
from medalist.ensemble.distill import distill_ensemble
from medalist.errors import CheckError
from medalist.metrics import Direction, get_metric
from medalist.setup.data import TaskData
from medalist.setup.spec import TargetTransform, TaskSpec
from medalist.solve.folds import make_folds
from medalist.solve.ledger import Ledger
from medalist.solve.types import ExperimentRecord
from medalist.submit import Candidate, choose, replaces
from medalist.workspace import Workspace, read_jsonl, write_npy_atomic

pytestmark = pytest.mark.shared

N_ROWS = 1200
N_TEST = 200
OBESITY = [
    "Insufficient_Weight",
    "Normal_Weight",
    "Obesity_Type_I",
    "Obesity_Type_II",
    "Obesity_Type_III",
    "Overweight_Level_I",
    "Overweight_Level_II",
]


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(1):  # the machine is shared; OpenMP spinning on busy cores is slow
        yield


# ---------------------------------------------------------------------------------------------- helpers
@dataclasses.dataclass
class Case:
    data: TaskData
    folds: np.ndarray
    names: list[str]
    oofs: list[np.ndarray]
    tests: list[np.ndarray]

    @property
    def scorer(self) -> Scorer:
        return Scorer(self.data)


def _task(
    root: Path,
    slug: str,
    target: str,
    transform: TargetTransform,
    metric: str,
    drop: tuple[str, ...] = (),
    target_fn: Callable[[pd.Series], pd.Series] | None = None,
) -> tuple[TaskData, np.ndarray, np.ndarray]:
    """A TaskData on a shuffled slice of a real competition, plus a numeric matrix for sklearn models."""
    train = pd.read_csv(root / slug / "public" / "train.csv").sample(frac=1.0, random_state=0).head(N_ROWS)
    train = train.reset_index(drop=True)
    test = pd.read_csv(root / slug / "public" / "test.csv").head(N_TEST).reset_index(drop=True)
    if target_fn is not None:
        train[target] = target_fn(train[target])
    id_col = train.columns[0]
    inputs = [c for c in train.columns if c not in (id_col, target, *drop)]
    spec = TaskSpec(
        slug=slug,
        task_type=transform.kind,
        metric=metric,
        lower_is_better=get_metric(metric).lower_is_better,
        id_column=id_col,
        target_columns=list(transform.columns),
        label_columns=[target],
        modalities=["tabular"],
        input_columns={"tabular": inputs},
        target_transform=transform.to_dict(),
    )
    target_frame = train[[target]].rename(columns={target: transform.columns[0]})
    data = TaskData(
        spec,
        train[id_col].astype(str).to_numpy(),
        test[id_col].astype(str).to_numpy(),
        {"tabular": train[inputs].copy()},
        {"tabular": test[inputs].copy()},
        target_frame,
        transform.encode(target_frame),
    )
    both = pd.concat([train[inputs], test[inputs]], ignore_index=True)
    num = both.select_dtypes("number")
    parts = [num.fillna(num.median())]
    cat = both.drop(columns=num.columns)
    cat = cat[[c for c in cat.columns if cat[c].nunique() <= 20]]
    if cat.shape[1]:
        parts.append(pd.get_dummies(cat.astype(str), dtype=float))
    x = pd.concat(parts, axis=1).to_numpy(dtype=float)
    return data, x[: len(train)], x[len(train) :]


def _models(kind: str) -> dict[str, object]:
    if kind in ("regression", "ordinal"):
        return {
            "ridge": make_pipeline(StandardScaler(), Ridge(1.0)),
            "rf": RandomForestRegressor(50, min_samples_leaf=3, n_jobs=1, random_state=0),
            "hgb": HistGradientBoostingRegressor(max_iter=40, learning_rate=0.15, random_state=0),
            "knn": make_pipeline(StandardScaler(), KNeighborsRegressor(15)),
        }
    return {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000)),
        "rf": RandomForestClassifier(50, min_samples_leaf=3, n_jobs=1, random_state=0),
        "hgb": HistGradientBoostingClassifier(max_iter=40, learning_rate=0.15, random_state=0),
        "knn": make_pipeline(StandardScaler(), KNeighborsClassifier(25)),
    }


def _case(data: TaskData, x: np.ndarray, x_test: np.ndarray) -> Case:
    """Four base models, k-fold on medalist's folds: OOF (n, k) and fold-mean test (n_test, k)."""
    folds = make_folds(data, 5, 0)
    kind, k = data.transform.kind, data.transform.n_outputs
    y = data.y[:, 0]
    names, oofs, tests = [], [], []
    for name, est in _models(kind).items():
        oof, test = np.zeros((len(x), k)), np.zeros((len(x_test), k))
        for f in np.unique(folds):
            fit, val = folds != f, folds == f
            if kind in ("regression", "ordinal"):
                est.fit(x[fit], y[fit])  # type: ignore[attr-defined]
                oof[val, 0] = est.predict(x[val])  # type: ignore[attr-defined]
                test[:, 0] += est.predict(x_test) / 5  # type: ignore[attr-defined]
            else:
                est.fit(x[fit], y[fit].astype(int))  # type: ignore[attr-defined]
                pv, pt = est.predict_proba(x[val]), est.predict_proba(x_test)  # type: ignore[attr-defined]
                if kind == "binary":
                    pv, pt = pv[:, 1:], pt[:, 1:]
                oof[val], test = pv, test + pt / 5
        names.append(name)
        oofs.append(oof)
        tests.append(test)
    return Case(data, folds, names, oofs, tests)


def _with_metric(case: Case, metric: str, output: str) -> Case:
    """The same predictions, scored with another metric / decoded to another output."""
    t = dataclasses.replace(case.data.transform, output=output)
    spec = dataclasses.replace(
        case.data.spec,
        metric=metric,
        lower_is_better=get_metric(metric).lower_is_better,
        target_transform=t.to_dict(),
    )
    return dataclasses.replace(case, data=dataclasses.replace(case.data, spec=spec))


_CACHE: dict[str, Case] = {}


def _cached(key: str, make: Callable[[], Case]) -> Case:
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


SPACESHIP = TargetTransform(
    kind="binary", output="proba", columns=["Transported"], classes=[False, True], label_dtype="bool"
)


@pytest.fixture
def concrete(competitions: Path) -> Case:
    """playground-series-s3e9: regression, RMSE."""
    t = TargetTransform(kind="regression", output="value", columns=["Strength"])
    return _cached(
        "concrete", lambda: _case(*_task(competitions, "playground-series-s3e9", "Strength", t, "rmse"))
    )


@pytest.fixture
def spaceship(competitions: Path) -> Case:
    """spaceship-titanic: binary, ROC AUC on P(Transported)."""
    return _cached(
        "spaceship",
        lambda: _case(
            *_task(
                competitions, "spaceship-titanic", "Transported", SPACESHIP, "roc_auc", drop=("Name", "Cabin")
            )
        ),
    )


@pytest.fixture
def spaceship_shuffled(competitions: Path) -> Case:
    """spaceship-titanic with the target permuted: nothing is learnable, every honest score is chance."""
    rng = np.random.default_rng(7)
    return _cached(
        "shuffled",
        lambda: _case(
            *_task(
                competitions,
                "spaceship-titanic",
                "Transported",
                SPACESHIP,
                "roc_auc",
                drop=("Name", "Cabin"),
                target_fn=lambda s: pd.Series(rng.permutation(s.to_numpy()), index=s.index),
            )
        ),
    )


@pytest.fixture
def obesity(competitions: Path) -> Case:
    """playground-series-s4e2: 7 classes, accuracy."""
    t = TargetTransform(kind="multiclass", output="label", columns=["NObeyesdad"], classes=OBESITY)
    return _cached(
        "obesity", lambda: _case(*_task(competitions, "playground-series-s4e2", "NObeyesdad", t, "accuracy"))
    )


@pytest.fixture
def overweight(competitions: Path) -> Case:
    """playground-series-s4e2 as 'Overweight_Level_I vs rest' (12% positive), F1."""
    t = TargetTransform(
        kind="binary", output="label", columns=["NObeyesdad"], classes=[0, 1], label_dtype="int"
    )
    return _cached(
        "overweight",
        lambda: _case(
            *_task(
                competitions,
                "playground-series-s4e2",
                "NObeyesdad",
                t,
                "f1",
                target_fn=lambda s: (s == "Overweight_Level_I").astype(int),
            )
        ),
    )


@pytest.fixture
def wine(competitions: Path) -> Case:
    """playground-series-s3e5: wine quality 3..8 as an ordinal regression, QWK."""
    t = TargetTransform(
        kind="ordinal", output="label", columns=["quality"], classes=[3, 4, 5, 6, 7, 8], label_dtype="int"
    )
    return _cached("wine", lambda: _case(*_task(competitions, "playground-series-s3e5", "quality", t, "qwk")))


def _best_single(case: Case) -> float:
    sc = case.scorer
    scores = [sc.cv(o, case.folds)[0] for o in case.oofs]
    return scores[sc.best_index(scores)]


# ---------------------------------------------------------------------------------------------- hill climbing
def test_hill_climb_array_core_on_real_oofs(concrete: Case) -> None:
    y = concrete.data.y[:, 0]

    def rmse(p: np.ndarray) -> float:
        return float(np.sqrt(np.mean((p[:, 0] - y) ** 2)))

    singles = [rmse(o) for o in concrete.oofs]
    w = hill_climb(concrete.oofs, rmse, Direction(True))
    assert w.shape == (4,) and np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    blend = sum(wi * o for wi, o in zip(w, concrete.oofs))
    assert rmse(blend) < min(singles)  # these four models are complementary: the blend must beat each
    assert (w > 0).sum() >= 2
    w_all = hill_climb(concrete.oofs, rmse, Direction(True), init_best=False)
    assert w_all.sum() == pytest.approx(1.0) and np.all(w_all > 0)  # equal start keeps every model
    assert hill_climb(concrete.oofs, rmse, Direction(True), max_iter=0)[int(np.argmin(singles))] == 1.0


@pytest.mark.parametrize("case_name", ["concrete", "obesity"])
def test_hill_climb_nested_score_is_honest_and_competitive(
    case_name: str, request: pytest.FixtureRequest
) -> None:
    case: Case = request.getfixturevalue(case_name)
    sc = case.scorer
    res = hill_climb_ensemble(case.oofs, case.tests, case.folds, sc)
    best = _best_single(case)
    assert sum(res.weights or []) == pytest.approx(1.0)
    assert len(res.info["fold_weights"]) == 5
    assert res.oof.shape == case.oofs[0].shape and res.test.shape == case.tests[0].shape
    # the nested score is the score of the saved OOF, recomputed by medalist
    assert res.cv_score == pytest.approx(sc.cv(res.oof, case.folds)[0])
    # in-sample it starts from the best single model, so it can only be as good or better
    assert not sc.better(best, res.insample_score)
    # nested CV pays for choosing weights, but only a little on these real, complementary models
    if sc.metric.lower_is_better:
        assert res.cv_score <= best * 1.01
    else:
        assert res.cv_score >= best - 0.01


# ---------------------------------------------------------------------------------------------- stackers
@pytest.mark.parametrize("case_name", ["concrete", "spaceship", "obesity", "wine"])
def test_stackers_shapes_and_scores(case_name: str, request: pytest.FixtureRequest) -> None:
    case: Case = request.getfixturevalue(case_name)
    sc = case.scorer
    n, k = case.oofs[0].shape
    results = [
        ridge_stack(case.oofs, case.tests, case.folds, sc),
        lgbm_stack(case.oofs, case.tests, case.folds, sc),
    ]
    if case_name == "obesity":  # keep the 7-class stack quick: no LightGBM inside the nested stack
        results.append(
            stack_ensemble(
                MultiLevelStacker((LinearStacker(), HillClimb()), HillClimb()),
                case.oofs,
                case.tests,
                case.folds,
                sc,
            )
        )
    else:
        results.append(multilevel_stack(case.oofs, case.tests, case.folds, sc))
    best = _best_single(case)
    for res in results:
        assert res.oof.shape == (n, k) and res.test.shape == (N_TEST, k), res.method
        assert np.isfinite(res.oof).all() and np.isfinite(res.test).all(), res.method
        if sc.kind == "multiclass":
            assert np.allclose(res.oof.sum(axis=1), 1.0) and np.allclose(res.test.sum(axis=1), 1.0)
        if sc.kind == "binary":
            assert res.oof.min() >= 0 and res.oof.max() <= 1
        assert res.cv_score == pytest.approx(sc.cv(res.oof, case.folds)[0])
        # a stacker of real models is in the league of the best one (honest, so it may lose a little)
        if sc.metric.lower_is_better:
            assert res.cv_score <= 1.05 * best, (res.method, res.cv_score, best)
        else:
            assert res.cv_score >= best - 0.03, (res.method, res.cv_score, best)


def test_multilabel_stackers(obesity: Case) -> None:
    """Two labels ('Obesity_Type_III', 'Insufficient_Weight') from the 7-class task, with the base models'
    probabilities of those classes as multilabel predictions."""
    labels = ["Obesity_Type_III", "Insufficient_Weight"]
    idx = [OBESITY.index(c) for c in labels]
    t = TargetTransform(kind="multilabel", output="proba", columns=labels)
    y = obesity.data.target["NObeyesdad"]
    target = pd.DataFrame({c: (y == c).astype(int) for c in labels})
    spec = dataclasses.replace(
        obesity.data.spec,
        metric="mean_columnwise_roc_auc",
        lower_is_better=False,
        target_transform=t.to_dict(),
    )
    data = dataclasses.replace(obesity.data, spec=spec, target=target, y=t.encode(target))
    case = Case(
        data,
        obesity.folds,
        obesity.names,
        [o[:, idx] for o in obesity.oofs],
        [o[:, idx] for o in obesity.tests],
    )
    sc = case.scorer
    best = _best_single(case)
    for fn in (hill_climb_ensemble, ridge_stack, lgbm_stack):
        res = fn(case.oofs, case.tests, case.folds, sc)
        assert res.oof.shape == (N_ROWS, 2) and res.test.shape == (N_TEST, 2)
        assert res.oof.min() >= 0 and res.oof.max() <= 1
        assert res.cv_score > best - 0.02, (res.method, res.cv_score, best)


# ---------------------------------------------------------------------------------------------- OOF discipline
def test_shuffled_target_control_scores_at_chance(spaceship_shuffled: Case) -> None:
    """Base models and stackers trained on a permuted target: every nested score must be chance (AUC 0.5,
    accuracy the majority rate), while a stacker scored on its own fit rows is visibly above chance."""
    case = spaceship_shuffled
    sc = case.scorer
    auc = {
        "hill": hill_climb_ensemble(case.oofs, case.tests, case.folds, sc).cv_score,
        "logistic": ridge_stack(case.oofs, case.tests, case.folds, sc).cv_score,
        "lgbm": lgbm_stack(case.oofs, case.tests, case.folds, sc).cv_score,
        "multi": multilevel_stack(case.oofs, case.tests, case.folds, sc).cv_score,
    }
    for method, score in auc.items():
        assert abs(score - 0.5) < 0.05, (method, score)  # sd of AUC under the null is ~0.017 here
    # positive control: the same LightGBM stacker, fitted and scored on the same rows, looks skilled
    rows = validated_rows(case.folds)
    fitted = LGBMStacker().fit(case.oofs, rows, case.folds, sc)
    assert sc(fitted.predict([o[rows] for o in case.oofs]), rows) > 0.6
    # the same predictions decoded to labels and scored by accuracy: the majority rate
    acc_case = _with_metric(case, "accuracy", "label")
    acc = acc_case.scorer
    majority = max(np.mean(case.data.y[:, 0]), 1 - np.mean(case.data.y[:, 0]))
    for res in (
        hill_climb_ensemble(case.oofs, case.tests, case.folds, acc),
        ridge_stack(case.oofs, case.tests, case.folds, acc),
    ):
        assert abs(res.cv_score - majority) < 0.05, (res.method, res.cv_score, majority)


def _flip_fold(case: Case, fold: int) -> Case:
    """The same task with the labels of one fold's rows flipped (binary)."""
    rows = np.flatnonzero(case.folds == fold)
    target = case.data.target.copy()
    col = target.columns[0]
    target.loc[rows, col] = ~target.loc[rows, col].astype(bool)
    data = dataclasses.replace(case.data, target=target, y=case.data.transform.encode(target))
    return dataclasses.replace(case, data=data)


def test_a_folds_labels_never_reach_its_own_ensemble_predictions(spaceship: Case) -> None:
    """Flip every label of fold 0: the ensemble OOF of fold 0 must not move at all (its combiners never
    saw those rows), while the other folds' OOF does move (their combiners did fit on fold 0)."""
    flipped = _flip_fold(spaceship, 0)
    in0 = spaceship.folds == 0
    for combiner in (
        HillClimb(),
        LinearStacker(),
        LGBMStacker(),
        MultiLevelStacker((LinearStacker(), LGBMStacker(), HillClimb()), HillClimb()),
    ):
        before = cross_fit(combiner, spaceship.oofs, spaceship.folds, spaceship.scorer)
        after = cross_fit(combiner, flipped.oofs, flipped.folds, flipped.scorer)
        np.testing.assert_allclose(after.oof[in0], before.oof[in0], err_msg=combiner.name)
        if combiner.name != "hill":  # weights may well stay put; fitted stackers cannot
            assert np.abs(after.oof[~in0] - before.oof[~in0]).max() > 1e-3, combiner.name


def test_test_predictions_are_rowwise_and_deterministic(spaceship: Case) -> None:
    sc = spaceship.scorer
    perm = np.random.default_rng(0).permutation(N_TEST)
    for fn in (ridge_stack, lgbm_stack, hill_climb_ensemble):
        a = fn(spaceship.oofs, spaceship.tests, spaceship.folds, sc)
        b = fn(spaceship.oofs, spaceship.tests, spaceship.folds, sc)
        c = fn(spaceship.oofs, [t[perm] for t in spaceship.tests], spaceship.folds, sc)
        assert a.test.shape == (N_TEST, 1)
        np.testing.assert_array_equal(a.test, b.test)
        np.testing.assert_array_equal(a.oof, b.oof)
        np.testing.assert_allclose(c.test, a.test[perm])  # no test-set statistics across rows
        np.testing.assert_array_equal(c.oof, a.oof)  # the test set plays no part in fitting
    cf = cross_fit(LinearStacker(), spaceship.oofs, spaceship.folds, sc, spaceship.tests)
    assert cf.test is not None
    np.testing.assert_allclose(cf.test, np.mean([m.predict(spaceship.tests) for m in cf.models], axis=0))


def test_never_validated_rows_are_left_out(spaceship: Case) -> None:
    """Rows of fold -1 (a time layout's first block) have no base OOF: they are neither fitted on nor
    scored, and still get a finite ensemble prediction."""
    folds = spaceship.folds.copy()
    folds[folds == 4] = -1
    out = folds < 0
    oofs = [np.where(out[:, None], np.nan, o) for o in spaceship.oofs]
    sc = spaceship.scorer
    for fn in (hill_climb_ensemble, ridge_stack, lgbm_stack):
        res = fn(oofs, spaceship.tests, folds, sc)
        assert np.isfinite(res.oof).all() and np.isfinite(res.test).all(), res.method
        assert len(res.fold_scores) == 4
        assert res.cv_score == pytest.approx(sc(res.oof[~out], np.flatnonzero(~out)))
    pp = fit_postprocess(np.nan_to_num(oofs[0]), folds, _with_metric(spaceship, "accuracy", "label").scorer)
    assert len(pp.fold_scores) == 4


# ---------------------------------------------------------------------------------------------- post-processing
def test_threshold_improves_f1_on_imbalanced_binary(overweight: Case) -> None:
    sc = overweight.scorer
    assert 0.08 < overweight.data.y.mean() < 0.16
    stacked = ridge_stack(
        overweight.oofs, overweight.tests, overweight.folds, sc
    ).oof  # calibrated probabilities
    forest = overweight.oofs[overweight.names.index("rf")]  # a single model's OOF
    for oof in (stacked, forest):
        pp = fit_postprocess(oof, overweight.folds, sc)
        assert pp.kind == "threshold" and pp.kept
        assert pp.nested_after > pp.nested_before + 0.01
        assert pp.transform.threshold < 0.5  # a rare positive class wants a lower cut
        assert pp.score == pp.nested_after and len(pp.fold_scores) == 5
        rows = validated_rows(overweight.folds)
        assert sc(oof[rows], rows, pp.transform) > sc(oof[rows], rows)
    assert sc.transform.threshold == 0.5  # the task's own transform is untouched


def test_cut_points_improve_qwk(wine: Case) -> None:
    sc = wine.scorer
    ridge = wine.oofs[wine.names.index("ridge")]  # one regression model's OOF values
    pp = fit_postprocess(ridge, wine.folds, sc)
    assert pp.kind == "cut_points" and pp.kept
    assert pp.nested_after > pp.nested_before + 0.01
    cuts = pp.transform.cut_points
    assert cuts is not None and len(cuts) == 5 and cuts == sorted(cuts)
    decoded = pp.transform.decode(ridge)
    assert set(decoded["quality"].unique()) <= {3, 4, 5, 6, 7, 8}


def test_regression_clipping(concrete: Case) -> None:
    sc = concrete.scorer
    pp = fit_postprocess(concrete.oofs[0], concrete.folds, sc)
    assert pp.kind == "clip" and pp.nested_after is not None
    if pp.kept:  # clipping is kept only when nested CV says it helps
        assert pp.nested_after < pp.nested_before
        assert pp.transform.clip_min == pytest.approx(concrete.data.target["Strength"].min())
    else:
        assert pp.transform.clip_min is None
    # RMSLE needs non-negative predictions: the decoding always clips at 0 for it
    rmsle = _with_metric(concrete, "rmsle", "value").scorer
    shifted = fit_postprocess(concrete.oofs[0] - 30.0, concrete.folds, rmsle)
    assert shifted.transform.clip_min is not None and shifted.transform.clip_min >= 0.0
    unhelpful = fit_postprocess(concrete.oofs[0], concrete.folds, rmsle)
    assert unhelpful.transform.clip_min is not None and unhelpful.transform.clip_min >= 0.0


# ---------------------------------------------------------------------------------------------- distillation
def test_distillation_student_imitates_its_teacher(concrete: Case) -> None:
    sc = concrete.scorer
    teacher = hill_climb_ensemble(concrete.oofs, concrete.tests, concrete.folds, sc)
    student = distill_ensemble(concrete.data, concrete.folds, sc, teacher.oof, teacher.test)
    assert student.oof.shape == teacher.oof.shape and student.test.shape == teacher.test.shape
    assert np.isfinite(student.oof).all() and np.isfinite(student.test).all()
    assert np.corrcoef(student.oof[:, 0], teacher.oof[:, 0])[0, 1] > 0.9
    assert np.corrcoef(student.test[:, 0], teacher.test[:, 0])[0, 1] > 0.9
    y_sd = float(np.std(concrete.data.y))
    assert student.cv_score < 0.8 * y_sd  # far better than predicting the mean


def test_distillation_stops_at_its_deadline(concrete: Case) -> None:
    """A student never runs on past the time left: no fold starts after the deadline."""
    sc = concrete.scorer
    teacher = hill_climb_ensemble(concrete.oofs, concrete.tests, concrete.folds, sc)
    with pytest.raises(CheckError, match="time budget"):
        distill_ensemble(
            concrete.data, concrete.folds, sc, teacher.oof, teacher.test, deadline=time.monotonic() - 1.0
        )


def test_distilled_oof_score_is_optimistic_so_it_is_not_a_cv_score(spaceship_shuffled: Case) -> None:
    """Why the ledger gives a student no cv_score: on a permuted target, where every honest score is
    0.5, the student's OOF AUC is far above chance (its soft targets came from models that saw each fold)."""
    case = spaceship_shuffled
    sc = case.scorer
    teacher_oof, teacher_test = np.mean(case.oofs, axis=0), np.mean(case.tests, axis=0)  # an equal blend
    assert abs(sc.cv(teacher_oof, case.folds)[0] - 0.5) < 0.05
    student = distill_ensemble(case.data, case.folds, sc, teacher_oof, teacher_test)
    assert student.cv_score > 0.65


# ---------------------------------------------------------------------------------------------- ledger
def _ledger_with_bases(tmp_path: Path, case: Case) -> tuple[Workspace, Ledger]:
    ws = Workspace.create(tmp_path, "spaceship")
    ledger = Ledger(ws.ledger)
    arrays = list(zip(case.names, case.oofs, case.tests))
    arrays.append(("rf_copy", case.oofs[1] + 1e-12, case.tests[1]))  # a near-duplicate of rf
    arrays.append(("broken", case.oofs[0][:-3], case.tests[0]))  # wrong number of rows
    for name, oof, test in arrays:
        version = "v1"
        rec = ledger.begin(
            ExperimentRecord(name=f"{name}_{version}", model=name, version=version, seconds=0.5)
        )
        write_npy_atomic(ws.oof_path(name, version), oof)
        write_npy_atomic(ws.test_path(name, version), test)
        ledger.finish(
            dataclasses.replace(
                rec,
                cv_score=0.0,
                oof_path=str(ws.oof_path(name, version)),
                test_path=str(ws.test_path(name, version)),
            )
        )
    return ws, ledger


def test_build_ensembles_records_each_ensemble_once(tmp_path: Path, spaceship: Case) -> None:
    case = _with_metric(spaceship, "accuracy", "label")
    ws, ledger = _ledger_with_bases(tmp_path, case)
    assert build_ensembles(ws, case.data, case.folds, ledger, time_budget=0.0) == []  # no time: nothing run
    recs = build_ensembles(ws, case.data, case.folds, ledger, time_budget=120.0)
    by_model = {r.model: r for r in recs}
    assert set(by_model) == {"ens_hill", "ens_ridge", "ens_lgbm", "ens_multi", "distill_lgbm"}
    sc = case.scorer
    best_single = _best_single(case)
    for r in recs:
        assert r.status == "done" and r.id is not None
        members = set(r.params["members"])
        assert len(members) == 4 and len(members & {"rf_v1", "rf_copy_v1"}) == 1  # one of the twins
        assert "broken_v1" not in members
        oof, test = np.load(r.oof_path), np.load(r.test_path)
        assert oof.shape == (N_ROWS, 1) and test.shape == (N_TEST, 1)
        t = TargetTransform.from_dict(r.params["transform"])
        assert set(t.decode(test)["Transported"].unique()) <= {True, False}
        if r.kind == "ensemble":
            assert r.name == f"{r.model}_{r.version}" and len(r.fold_scores) == 5
            assert r.params["raw_cv_score"] == pytest.approx(sc.cv(oof, case.folds)[0])
            assert r.cv_score >= r.params["raw_cv_score"]  # post-processing only kept when it helps
            assert r.cv_score > best_single - 0.03
    assert by_model["ens_hill"].params["weights"] is not None
    assert sum(by_model["ens_hill"].params["weights"]) == pytest.approx(1.0)
    dropped = next(e for e in read_jsonl(ws.logs / "ensemble.jsonl") if e["event"] == "members")["dropped"]
    assert "shapes" in dropped["broken_v1"] and "near-identical" in str(dropped)
    student = by_model["distill_lgbm"]
    assert student.kind == "distill" and student.cv_score is None
    # who made them, as the ledger keeps it; ensembles are never members of the next ones
    origins = {r.kind: ledger.get(r.name).origin for r in recs}  # type: ignore[union-attr]
    assert origins == {"ensemble": "ensemble", "distill": "distilled"}
    assert {r.kind for r in ledger.members()} == {"model"}
    assert student.parent in {r.name for r in recs if r.kind == "ensemble"}
    assert student.params["oof_score_optimistic"] > 0.5
    # a second run over the same members trains nothing and returns the same rows
    n_rows = len(ledger.records(None))
    again = build_ensembles(ws, case.data, case.folds, ledger, time_budget=120.0)
    assert [r.name for r in again] == [r.name for r in recs]
    assert len(ledger.records(None)) == n_rows
    # with fewer usable members than asked for, nothing is built
    assert build_ensembles(ws, case.data, case.folds, ledger, time_budget=60.0, min_models=10) == []


def test_many_outputs_skip_the_per_output_boosters(tmp_path: Path, spaceship: Case, monkeypatch) -> None:
    """Above MANY_OUTPUTS outputs the boosted stackers and the student (a booster per output) are skipped
    and the log says why; hill climbing and the linear stacker still run."""
    import medalist.ensemble.build as build

    monkeypatch.setattr(build, "MANY_OUTPUTS", 0)  # spaceship's one output now counts as "many"
    case = _with_metric(spaceship, "accuracy", "label")
    ws, ledger = _ledger_with_bases(tmp_path, case)
    recs = build_ensembles(ws, case.data, case.folds, ledger, time_budget=120.0)
    assert {r.model for r in recs} == {"ens_hill", "ens_ridge"}
    skipped = {
        e["name"].rsplit("_", 1)[0]: e["why"]
        for e in read_jsonl(ws.logs / "ensemble.jsonl")
        if e["event"] == "skip"
    }
    assert (
        set(skipped) == {"ens_lgbm", "ens_multi", "distill_lgbm"} and "per output" in skipped["distill_lgbm"]
    )


# ---------------------------------------------------------------------------------------------- choice
def test_an_ensemble_within_fold_noise_of_the_best_single_model_is_chosen(spaceship: Case) -> None:
    """Between single experiments and ensembles, a single one is chosen only when its CV lead exceeds one
    standard error of the per-fold difference (the best of many experiments is picked for its CV); between
    two of a kind, CV decides. Fold scores are the real ones of spaceship-titanic base models."""
    case = _with_metric(spaceship, "accuracy", "label")
    sc, metric = case.scorer, get_metric("accuracy")
    singles = []
    for name, oof in zip(case.names, case.oofs):
        cv, fold_scores = sc.cv(oof, case.folds)
        singles.append(Candidate(name, cv, Path(name), kind="model", fold_scores=list(fold_scores)))
    best = max(singles, key=lambda c: c.cv_score)
    assert choose(metric, singles) is best  # singles only: by CV
    spread = np.array(best.fold_scores) - np.mean(best.fold_scores)
    # an ensemble a hair behind, erring differently per fold: chosen
    close = Candidate(
        "ens_close",
        best.cv_score - 0.001,
        Path("e"),
        kind="ensemble",
        fold_scores=list(np.array(best.fold_scores) - 0.001 - spread[::-1]),
    )
    assert not metric.better(close.cv_score, best.cv_score)
    assert choose(metric, [*singles, close]) is close
    assert not replaces(
        metric, best, {"cv_score": close.cv_score, "kind": "ensemble", "fold_scores": close.fold_scores}
    )
    # an ensemble behind on every fold by far more than the folds disagree: the single model stays
    far = dataclasses.replace(
        close,
        name="ens_far",
        cv_score=best.cv_score - 0.02,
        fold_scores=list(np.array(best.fold_scores) - 0.02),
    )
    assert choose(metric, [*singles, far]) is best
    # two ensembles: CV decides
    ahead = dataclasses.replace(close, name="ens_ahead", cv_score=close.cv_score + 0.0005)
    assert choose(metric, [*singles, close, ahead]) is ahead
    # without comparable fold scores (another fold count), CV decides
    unpaired = dataclasses.replace(close, fold_scores=close.fold_scores[:3])
    assert choose(metric, [*singles, unpaired]) is best
