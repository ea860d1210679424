"""The family registry: every registered family carries its facts, and the policies read them from there."""

from __future__ import annotations

import math

import pytest

from medalist.policy import expert_solve
from medalist.policy.expert_solve import ExpertSolver
from medalist.solve.models import FAMILIES, MODEL_NAMES, get_model
from medalist.solve.models.base import RESOURCE_PARAMS, Family
from medalist.solve.models.registry import (
    MANY_CLASSES,
    baseline_order,
    family_named,
    gbdt_families,
    tabular_families,
)
from medalist.solve.policy import SolveState
from medalist.solve.types import ExperimentRecord, ExperimentSpec, ModelTask

ORDERS = ("tabular", "text", "image", MANY_CLASSES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_registered_family_has_its_facts(name: str) -> None:
    info = FAMILIES[name]
    family = get_model(name)
    assert isinstance(family, Family) and family.name == name
    assert info.modalities == tuple(family.modalities) and info.modalities[0] in ("tabular", "text", "image")
    assert info.classification_only == family.classification_only
    assert info.cost > 0 and info.row_cost >= 0 and 0 <= info.baseline_share < 1 and info.min_budget >= 0
    # every family is proposed first somewhere (LightGBM also on text, over the text features)
    assert info.baseline and set(info.baseline) <= set(ORDERS)
    # a bound on the baseline only for families that read the table alone
    assert (info.baseline_share > 0) == info.tabular_only
    assert all(a == a.lower() and a.isalnum() for a in info.aliases)


def test_img_pretrained_has_its_place() -> None:
    info = FAMILIES["img_pretrained"]
    assert info.cost == FAMILIES["img_embed_lgbm"].cost and not info.network
    assert baseline_order("image") == ("img_embed_lgbm", "img_pretrained", "fusion", "cnn")


def test_orders_and_groups_come_from_the_facts() -> None:
    for key in ORDERS:
        ranks = [FAMILIES[n].baseline[key] for n in baseline_order(key)]
        assert len(set(ranks)) == len(ranks)  # no two families share a place
    assert baseline_order("tabular") == ("lgbm", "catboost", "xgb", "linear", "et", "mlp", "knn", "rf")
    assert baseline_order(MANY_CLASSES) == ("linear", "mlp", "knn", "et", "lgbm", "rf")
    assert gbdt_families() == ("lgbm", "catboost", "xgb")
    assert set(tabular_families()) == {"lgbm", "xgb", "catboost", "linear", "knn", "rf", "et", "mlp"}
    assert {n for n, i in FAMILIES.items() if i.network} == {"fusion", "cnn", "transformer_ft"}
    assert {n for n, i in FAMILIES.items() if i.embedding_cache} == {"st_embed_lr", "st_embed_lgbm"}
    aliases = [a for info in FAMILIES.values() for a in info.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & set(FAMILIES)


def test_a_model_may_name_a_family_by_an_alias() -> None:
    models = ["lgbm", "linear", "et"]
    assert family_named("LightGBM", models) == "lgbm"
    assert family_named("Logistic_Regression", models) == "linear"
    assert family_named("LGBM", models) == "lgbm"
    assert family_named("xgboost", models) is None  # a known alias, but not of a family usable here
    assert family_named("deep_forest", models) is None


def test_hyper_params_leave_resources_to_medalist() -> None:
    task = ModelTask("binary", 1, "accuracy", False, 2)
    lgbm = get_model("lgbm")
    known = lgbm.hyper_params(task)  # type: ignore[attr-defined]
    assert {"num_leaves", "learning_rate"} <= known and not known & RESOURCE_PARAMS
    assert "n_threads" in lgbm.default_params(task, 1000)  # a resource medalist sets itself


def _state(**kw) -> SolveState:  # type: ignore[no-untyped-def]
    base = {
        "task_kind": "binary",
        "metric": "accuracy",
        "lower_is_better": False,
        "n_train": 1000,
        "n_test": 500,
        "modalities": ["tabular"],
        "n_columns": {"tabular": 10},
        "models": list(MODEL_NAMES),
        "recipes": ["base"],
        "done": [],
        "failed": [],
        "time_left": 300.0,
        "time_total": 300.0,
    }
    return SolveState(**{**base, **kw})


def test_the_expert_reads_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changing a fact in the registry changes the expert: it keeps no table of its own."""
    assert gbdt_families() == expert_solve.GBDTS and tabular_families() == expert_solve.TABULAR_FAMILIES
    solver = ExpertSolver()
    assert solver.propose(_state())[0].model == "lgbm"
    cheap_first = {**FAMILIES["linear"].baseline, "tabular": -1}
    monkeypatch.setitem(FAMILIES, "linear", _replace(FAMILIES["linear"], baseline=cheap_first))
    first = solver.propose(_state())[0]
    assert first.model == "linear"
    assert first.max_seconds == pytest.approx(FAMILIES["linear"].baseline_share * 300.0)
    # a minimum budget keeps a family out of a short run
    monkeypatch.setitem(FAMILIES, "linear", _replace(FAMILIES["linear"], min_budget=math.inf))
    assert solver.propose(_state())[0].model == "lgbm"
    # estimates before a family has run come from its relative cost
    name = ExperimentSpec("lgbm").name
    lgbm = ExperimentRecord(name, "lgbm", name[-8:], cv_score=0.8, seconds=10.0, status="done")
    state = _state(done=[lgbm], models=["lgbm", "catboost"], time_left=25.0, time_total=25.0)
    skipped = solver.propose(state)[0]  # catboost: 3x lgbm's 10 s does not fit 25 s; a seed of lgbm does
    assert (skipped.model, skipped.origin) == ("lgbm", "seed")
    monkeypatch.setitem(FAMILIES, "catboost", _replace(FAMILIES["catboost"], cost=2.0))
    assert solver.propose(state)[0].model == "catboost"


def _replace(info, **changes):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(info, **changes)
