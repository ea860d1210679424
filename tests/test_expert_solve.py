"""The expert's solve schedule: what it proposes next for a given ledger state and time left."""

from __future__ import annotations

import pytest

from medalist.policy.expert_solve import ExpertSolver
from medalist.solve.models import FAMILIES
from medalist.solve.policy import SolveState
from medalist.solve.types import ExperimentRecord, ExperimentSpec

MODELS = ["lgbm", "xgb", "catboost", "linear", "knn", "rf", "et", "mlp", "tfidf_linear"]
RECIPES = ["base", "count", "target_enc", "interactions"]


def _rec(
    model: str, cv: float, seconds: float = 10.0, features: str = "base", origin: str = "baseline"
) -> ExperimentRecord:
    spec = ExperimentSpec(model, {}, features)
    return ExperimentRecord(
        spec.name,
        model,
        spec.version(),
        params={},
        features=features,
        cv_score=cv,
        seconds=seconds,
        status="done",
        origin=origin,
    )


def _state(done, modalities=("tabular",), time_left=200.0, lower=False, failed=()) -> SolveState:
    return SolveState(
        "binary",
        "roc_auc",
        lower,
        5000,
        1000,
        list(modalities),
        {"tabular": 10},
        MODELS,
        RECIPES,
        list(done),
        list(failed),
        time_left,
        300.0,
    )


def test_baselines_first_cheap_and_strong_first():
    solver = ExpertSolver()
    first = solver.propose(_state([]))
    assert [(p.kind, p.model, p.features) for p in first] == [("spec", "lgbm", "base")]
    second = solver.propose(_state([_rec("lgbm", 0.8)]))
    assert second[0].model == "catboost"
    text = _state([], modalities=("text", "tabular"))
    text.n_columns = {"text": 1, "tabular": 2}
    assert solver.propose(text)[0].model == "tfidf_linear"
    # a substantial table goes first, then the modalities take turns
    text.n_columns = {"text": 1, "tabular": 40}
    assert solver.propose(text)[0].model == "lgbm"
    assert (
        solver.propose(_state([_rec("lgbm", 0.8)], modalities=("text", "tabular")))[0].model == "tfidf_linear"
    )


def test_skips_what_does_not_fit_the_time_left():
    solver = ExpertSolver()
    done = [_rec("lgbm", 0.8, seconds=30.0)]
    # catboost is estimated at ~3x lgbm = 90 s: it does not fit in 60 s, xgb (~45 s) does
    state = _state(done, time_left=60.0)
    state.time_total = 100.0
    assert solver.propose(state)[0].model == "xgb"
    assert solver.propose(_state(done, time_left=5.0)) == []


def test_tunes_in_time_when_baselines_are_slow():
    solver = ExpertSolver()
    done = [_rec("lgbm", 0.8, seconds=20.0), _rec("catboost", 0.81, seconds=25.0)]
    state = _state(done, time_left=150.0)  # 150 of 300 s left and nothing tuned yet
    proposal = solver.propose(state)[0]
    assert proposal.kind == "tune" and proposal.model == "catboost"
    assert proposal.tune_seconds >= 2 * 25.0


def test_a_tuning_round_too_short_for_two_trials_goes_to_the_next_family():
    """house-prices at 300 s: a 56 s round on a 66 s CatBoost ran a single 112 s trial. A round must fit two
    trials at its parent's cost, else the next best family is tuned; with more time left the best is."""
    solver = ExpertSolver()
    done = [_rec("lgbm", 0.8, seconds=20.0), _rec("catboost", 0.81, seconds=70.0)]
    short = solver.propose(_state(done, time_left=150.0))[0]  # a round would get 52.5 s
    assert short.kind == "tune" and short.model == "lgbm", short
    slow = [_rec("lgbm", 0.8, seconds=30.0), _rec("catboost", 0.81, seconds=70.0)]
    assert solver.propose(_state(slow, time_left=150.0))[0].kind == "spec"  # nothing fits two trials
    roomy = _state(done, time_left=140.0 / 0.35 + 1.0)
    roomy.time_total = 800.0  # the same share of the solve left, so tuning still comes first
    long = solver.propose(roomy)[0]
    assert long.kind == "tune" and long.model == "catboost" and long.tune_seconds >= 140.0


def test_recipes_then_tuning_then_diversity():
    solver = ExpertSolver()
    base = [
        _rec(m, cv)
        for m, cv in [
            ("lgbm", 0.80),
            ("catboost", 0.82),
            ("xgb", 0.79),
            ("linear", 0.70),
            ("et", 0.75),
            ("mlp", 0.7),
            ("knn", 0.6),
            ("rf", 0.76),
        ]
    ]
    step = solver.propose(_state(base))[0]
    assert (step.model, step.features) == ("catboost", "count")  # recipes on the best family
    recipes = [_rec("catboost", 0.81, features=r) for r in ("count", "target_enc", "interactions")]
    tune = solver.propose(_state(base + recipes, time_left=200.0))[0]
    assert tune.kind == "tune" and tune.model == "catboost" and tune.features == "base"
    assert 30.0 <= tune.tune_seconds <= 200.0
    tuned = [_rec("catboost", 0.83, origin="trial")]
    nxt = solver.propose(_state(base + recipes + tuned, time_left=200.0))[0]
    # catboost is tuned; lgbm (best GBDT is catboost, so no second tuning) -> diversity: other GBDTs on the recipe
    assert nxt.kind == "spec"


def test_tunes_the_best_family_even_when_it_is_not_a_gbdt():
    """leaf-classification-like: a linear model far ahead of the GBDTs gets tuned first."""
    solver = ExpertSolver()
    done = [_rec("linear", 0.12), _rec("lgbm", 0.71), _rec("knn", 0.9)]
    done += [_rec("linear", 0.13, features=r) for r in ("count", "target_enc", "interactions")]
    state = _state(done, lower=True, time_left=250.0)
    state.models = ["linear", "lgbm", "knn"]
    proposal = solver.propose(state)[0]
    assert proposal.kind == "tune" and proposal.model == "linear"


def test_many_classes_put_linear_models_before_gbdts():
    solver = ExpertSolver()
    state = _state([], time_left=250.0)
    state.task_kind, state.n_outputs = "multiclass", 99
    assert solver.propose(state)[0].model == "linear"
    state.n_outputs = 7
    assert solver.propose(state)[0].model == "lgbm"


def test_many_classes_leave_xgb_and_catboost_out():
    """leaf-like, 99 classes: baselines and diversity use LightGBM as the only GBDT; time goes to the leader."""
    solver = ExpertSolver()
    done = [_rec(m, cv) for m, cv in [("linear", 0.12), ("mlp", 0.35), ("knn", 0.9), ("et", 0.7)]]
    done += [_rec("lgbm", 0.71), _rec("rf", 0.8)]
    seen = []
    for _ in range(12):
        state = _state(done, lower=True, time_left=250.0)
        state.task_kind, state.n_outputs = "multiclass", 99
        proposal = solver.propose(state)
        if not proposal:
            break
        p = proposal[0]
        seen.append(p.model)
        origin = "trial" if p.kind == "tune" else "baseline"
        done.append(_rec(p.model, 0.5, features=p.features, origin=origin))
    assert seen and "xgb" not in seen and "catboost" not in seen
    assert "linear" in seen  # the leader gets tuned


def test_time_left_after_the_schedule_goes_to_more_tuning_then_more_seeds():
    solver = ExpertSolver()
    done = [_rec("lgbm", 0.80)]
    first = solver.propose(_with_models(done, ["lgbm"]))[0]
    assert first.kind == "tune" and first.round == 0
    trials = [_rec("lgbm", 0.81 + i / 1000, origin="trial") for i in range(8)]
    trials = [
        ExperimentRecord(
            f"lgbm_t{i}",
            "lgbm",
            f"t{i}",
            params={"num_leaves": 20 + i},
            features="base",
            cv_score=r.cv_score,
            seconds=5.0,
            status="done",
            origin="trial",
        )
        for i, r in enumerate(trials)
    ]
    seeds = [
        ExperimentRecord(
            ExperimentSpec("lgbm", {"num_leaves": 27}, "base", s).name,
            "lgbm",
            "x",
            cv_score=0.8,
            seconds=5.0,
            status="done",
        )
        for s in (1, 2)
    ]
    again = solver.propose(_with_models(done + trials + seeds, ["lgbm"]))[0]
    assert again.kind == "tune" and again.round == 8 and "further" in again.why
    many = [
        ExperimentRecord(
            f"lgbm_u{i}",
            "lgbm",
            f"u{i}",
            params={"num_leaves": 27},
            features="base",
            cv_score=0.805,
            seconds=5.0,
            status="done",
            origin="trial",
        )
        for i in range(60)
    ]
    last = solver.propose(_with_models(done + trials + seeds + many, ["lgbm"]))[0]
    assert last.kind == "spec" and last.seed >= 3 and last.why == "another seed of the best"


def test_with_the_best_family_at_its_trial_cap_the_runner_up_is_tuned():
    """playground-series-s3e5 at 900 s stopped at 624 s: CatBoost had its 60 trials and its seeds, and
    nothing else was ever tuned. The idle time now tunes the next family."""
    solver = ExpertSolver()
    base = [_rec("catboost", 0.50), _rec("xgb", 0.49), _rec("linear", 0.48), _rec("knn", 0.40)]
    capped = [
        ExperimentRecord(
            f"catboost_u{i}", "catboost", f"u{i}", params={"depth": 6}, features="base",
            cv_score=0.505, seconds=3.0, status="done", origin="trial",
        )
        for i in range(60)
    ]  # fmt: skip
    seeds = [
        ExperimentRecord(
            ExperimentSpec("catboost", {"depth": 6}, "base", s).name, "catboost", "x",
            cv_score=0.5, seconds=3.0, status="done",
        )
        for s in range(1, 6)
    ]  # fmt: skip
    models = ["catboost", "xgb", "linear", "knn"]
    nxt = solver.propose(_with_models(base + capped + seeds, models))[0]
    assert nxt.kind == "tune" and nxt.model == "xgb" and nxt.round == 0
    xgb_capped = [
        ExperimentRecord(
            f"xgb_u{i}", "xgb", f"x{i}", params={"eta": 0.1}, features="base",
            cv_score=0.49, seconds=3.0, status="done", origin="trial",
        )
        for i in range(60)
    ]  # fmt: skip
    then = solver.propose(_with_models(base + capped + seeds + xgb_capped, models))[0]
    assert then.kind == "tune" and then.model == "linear"
    # below the cap, the best family keeps its tuning and its seeds come before any runner-up
    assert solver.propose(_with_models(base + capped[:10] + seeds, models))[0].model == "catboost"


def _with_models(done, models):
    state = _state(done, time_left=250.0)
    state.models, state.recipes = models, ["base"]
    return state


def test_sentence_embeddings_follow_tfidf_where_their_encoding_fits():
    solver = ExpertSolver()
    models = [*MODELS, "nbsvm", "st_embed_lr", "st_embed_lgbm"]

    def text_state(done, n_texts: int, time_left: float = 264.0) -> SolveState:
        state = _state(done, modalities=("text", "tabular"), time_left=time_left)
        state.models, state.n_columns = models, {"text": 1, "tabular": 2}
        state.n_train, state.n_test = n_texts - n_texts // 3, n_texts // 3
        return state

    tfidf = [_rec("nbsvm", 0.75, seconds=38.0), _rec("lgbm", 0.70, seconds=2.0)]
    tfidf += [_rec("tfidf_linear", 0.76, seconds=22.0), _rec("catboost", 0.69, seconds=7.0)]
    assert solver.propose(text_state([], 10_876))[0].model == "nbsvm"
    # nlp-getting-started's size (10,876 texts, ~121 s by the row cost) with ~190 s left: embeddings next
    assert solver.propose(text_state(tfidf, 10_876, time_left=190.0))[0].model == "st_embed_lr"
    # spooky-author-identification's size (19,579 texts, ~218 s) does not fit: the next table family
    assert solver.propose(text_state(tfidf, 19_579, time_left=190.0))[0].model == "xgb"
    # once one embedding family has encoded the texts, the other is estimated without the encoding
    done = [_rec("st_embed_lr", 0.78, seconds=99.0), *tfidf]
    for m in ("xgb", "linear", "et", "mlp", "knn", "rf"):
        done.append(_rec(m, 0.6, seconds=3.0))
    state = text_state(done, 10_876, time_left=40.0)
    state.time_total = 40.0  # no tuning-first rule in the way
    proposals = solver.propose(state)
    assert proposals and proposals[0].model == "st_embed_lgbm"


def test_tabular_baselines_are_bounded_text_networks_keep_their_own_bounds():
    solver = ExpertSolver()
    first = solver.propose(_state([]))[0]
    assert first.model == "lgbm" and first.max_seconds == pytest.approx(
        FAMILIES["lgbm"].baseline_share * 300.0
    )
    text = _state([], modalities=("text", "tabular"))
    text.models, text.n_columns = [*MODELS, "transformer_ft"], {"text": 1, "tabular": 2}
    assert solver.propose(text)[0].model == "tfidf_linear"
    assert solver.propose(text)[0].max_seconds == 0.0
    five = [_rec(m, 0.8) for m in ("lgbm", "catboost", "xgb", "linear", "et")]
    mlp = solver.propose(_state(five))[0]
    assert mlp.model == "mlp" and mlp.max_seconds == pytest.approx(FAMILIES["mlp"].baseline_share * 300.0)
    # tuning trials and later experiments carry no baseline bound
    done = [_rec(m, 0.8) for m in MODELS]
    assert all(p.max_seconds == 0.0 for p in solver.propose(_state(done)))


def test_a_slow_network_baseline_may_take_at_most_half_the_time_left():
    """leaf-classification at 300 s: linear, image-embedding LightGBM and the MLP are done with ~150 s left;
    the fusion net (estimated ~150 s from what ran) is left out then, and starts when time is ample."""
    solver = ExpertSolver()
    done = [
        _rec("linear", 0.12, seconds=1.7),
        _rec("img_embed_lgbm", 0.56, seconds=95.3),
        _rec("mlp", 0.35, seconds=11.1),
    ]

    def leaf(time_left: float, total: float) -> SolveState:
        state = _state(done, modalities=("tabular", "image"), time_left=time_left, lower=True)
        state.task_kind, state.n_outputs = "multiclass", 99
        state.models = ["linear", "mlp", "knn", "et", "lgbm", "rf", "img_embed_lgbm", "fusion"]
        state.n_columns = {"tabular": 192, "image": 1}
        state.time_total = total  # over 55 % of it left: baselines still come before tuning
        return state

    assert solver.propose(leaf(150.0, 262.0))[0].model == "knn"
    assert solver.propose(leaf(400.0, 600.0))[0].model == "fusion"
