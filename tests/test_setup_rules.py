"""The shared setup rules and the stage table.

The LLM policy is driven by a SCRIPTED chat server on loopback (tests/scripted_server.py), not a model: each
request is answered from a fixed script keyed by the prompt's "Stage: ..." line. What is tested is that
the plan the LLM policy builds from the model's few decisions derives the rest by the same rules as the
expert (a forecast gets its time column, hence time-ordered folds), and that the stage machine reads its
order, deciders, checks and rollback coverage from one table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medalist.errors import CheckError
from medalist.intake import open_competition
from medalist.llm import LLMConfig
from medalist.policy.expert import ExpertPolicy
from medalist.policy.llm import LLMPolicy
from medalist.setup import checks, rules, run_setup
from medalist.setup.data import load_task_data
from medalist.setup.machine import StageMachine
from medalist.setup.policy import StageContext
from medalist.setup.stages import STAGES, Stage, covered_stages, stage_order
from medalist.solve.folds import plan_folds
from medalist.workspace import Workspace
from tests.scripted_server import Reply, ScriptedChatServer

N_TRAIN, N_TEST = 120, 30


def _forecast_folder(root: Path) -> Path:
    """Daily sales: the test days all come after the training days."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2021-01-01", periods=N_TRAIN + N_TEST, freq="D")
    frame = pd.DataFrame(
        {
            "id": np.arange(1, N_TRAIN + N_TEST + 1),
            "date": days.strftime("%Y-%m-%d"),
            "promo": rng.integers(0, 2, N_TRAIN + N_TEST),
            "temperature": rng.normal(15, 5, N_TRAIN + N_TEST).round(1),
        }
    )
    sales = 100 + 10 * frame["promo"] + rng.normal(0, 3, len(frame)).round(2)
    root.mkdir(parents=True)
    frame.iloc[:N_TRAIN].assign(sales=sales[:N_TRAIN]).to_csv(root / "train.csv", index=False)
    frame.iloc[N_TRAIN:].to_csv(root / "test.csv", index=False)
    pd.DataFrame({"id": frame["id"].iloc[N_TRAIN:], "sales": 0.0}).to_csv(
        root / "sample_submission.csv", index=False
    )
    (root / "description.md").write_text(
        "# Store sales\n\nForecast the daily sales of a store for the days after the training period.\n"
    )
    return root


TRAIN_MAP = """```python
def build():
    df = read_table(TRAIN)
    df = df[df[LABELS].notna().all(axis=1)]
    out = df[COLUMNS].copy()
    out.insert(0, "id", make_keys(df[ID].tolist()))
    return out.reset_index(drop=True)
```"""
TARGET_MAP = """```python
def build():
    df = read_table(TRAIN)
    df = df[df[LABELS].notna().all(axis=1)]
    out = df[LABELS].copy()
    out.columns = TARGETS
    out.insert(0, "id", make_keys(df[ID].tolist()))
    return out.reset_index(drop=True)
```"""
TEST_MAP = """```python
def build():
    sample = read_table(SAMPLE)
    test = read_table(TEST).set_index(ID).loc[sample[ID]].reset_index()
    out = test[COLUMNS].copy()
    out.insert(0, "id", make_keys(sample[ID].tolist()))
    return out
```"""
FORECAST_ANSWERS = {
    "summary": "Forecast a store's daily sales from the date, promotions and temperature; the test days "
    "follow the training days.",
    "modalities": '{"train": "train.csv", "test": "test.csv", "sample_submission": "sample_submission.csv", '
    '"train_labels": null, "id_column": "id", "inputs": ["tabular"], "image_column": null}',
    "plan": '{"id_column": "id", "target_columns": ["sales"], "task_type": "regression", "text_columns": []}',
    "train_tab_input": TRAIN_MAP,
    "train_tab_target": TARGET_MAP,
    "target_transform": '{"output": "value", "log": false}',
    "test_tab_input": TEST_MAP,
    "metric": '{"metric": "rmse"}',
    "formatter": '{"method": "fill_sample", "alternative": "merge_on_id"}',
}


def _scripted_answer(body: dict) -> Reply:
    """The scripted server's answer: the fixed reply for the prompt's stage."""
    stage = body["messages"][-1]["content"].split("\n", 1)[0].removeprefix("Stage: ")
    return Reply(FORECAST_ANSWERS.get(stage, "I do not know."))


def test_a_forecast_set_up_by_the_llm_policy_gets_time_ordered_folds(tmp_path):
    folder = _forecast_folder(tmp_path / "store-sales")
    with ScriptedChatServer(_scripted_answer) as server:
        config = LLMConfig(base_url=server.base_url, model="scripted", cache=False, max_retries=0, timeout=30)
        with LLMPolicy(config, workdir=tmp_path, sandbox_timeout=120) as policy:
            spec, ws, records = run_setup(folder, tmp_path / "work", policy=policy, fallback=ExpertPolicy())
    plan_records = [r for r in records if r.stage == "plan"]
    assert [(r.ok, r.policy) for r in plan_records] == [(True, "llm")]  # the model took the plan
    assert spec.time_column == "date" and "date" in spec.datetime_columns
    folds, fold_plan = plan_folds(load_task_data(ws))
    assert fold_plan.strategy == "time"
    # forward chaining along the days (train rows are in date order): the earliest block is never validated
    assert folds[0] == -1 and (np.diff(folds) >= 0).all() and folds[-1] == fold_plan.n_splits - 1


def test_both_policies_derive_the_same_columns_from_the_same_decisions(tmp_path):
    comp = open_competition(_forecast_folder(tmp_path / "store-sales"))
    expert = ExpertPolicy()
    mods = expert.detect_modalities(StageContext(comp, "modalities"))
    expert_plan = expert.plan(StageContext(comp, "plan", artifacts={"modalities": mods}))
    from medalist.policy.llm_stages import derive_plan

    answer = {"id_column": "id", "target_columns": "ALL_OTHER", "task_type": "regression", "text_columns": []}
    llm_plan, derived = derive_plan(comp, mods, answer, rules.train_table(comp, mods["files"]))
    assert llm_plan == expert_plan and "time_column" in derived
    assert expert_plan["time_column"] == "date" and expert_plan["excluded_columns"] == {"id": "id column"}


def test_interleaved_periods_are_not_a_forecast():
    days = pd.Series(pd.date_range("2021-01-01", periods=40, freq="D").strftime("%Y-%m-%d"))
    train, test = pd.DataFrame({"d": days[::2].to_numpy()}), pd.DataFrame({"d": days[1::2].to_numpy()})
    assert rules.forecast_time_column(train, test, ["d"]) is None
    assert (
        rules.forecast_time_column(pd.DataFrame({"d": days[:20]}), pd.DataFrame({"d": days[20:]}), ["d"])
        == "d"
    )


# ---------------------------------------------------------------------------------------------- stage table
def test_order_and_rollback_coverage_come_from_the_table():
    assert stage_order({}) == ["summary", "modalities", "plan"]
    arts = {"plan": {"modalities": ["tabular", "text"]}}
    order = stage_order(arts)
    assert order == [
        "summary",
        "modalities",
        "plan",
        "train_tab_input",
        "train_txt_input",
        "train_tab_target",
        "target_transform",
        "test_tab_input",
        "test_txt_input",
        "metric",
        "formatter",
        "final_check",
    ]
    assert covered_stages("train_ids_agree", arts) == [
        "train_tab_input",
        "train_txt_input",
        "train_tab_target",
    ]
    assert covered_stages("loader_aligned", arts) == order[3:9]
    assert covered_stages("formatter_matches_sample", arts) == [
        "test_tab_input",
        "test_txt_input",
        *order[9:11],
    ]
    assert covered_stages("train_ids_agree", {}) == [] and covered_stages("no_such_check", arts) == []
    # every meta check covers some stage, and every stage is decided by a method of the policy protocol
    assert {m.name for m in checks.META_CHECKS} == {meta for s in STAGES for meta in s.metas}
    assert all(s.method is None or callable(getattr(ExpertPolicy, s.method)) for s in STAGES)


def _check_note(art: dict, comp, arts: dict) -> None:
    if not art.get("target_columns") == arts["plan"]["target_columns"]:
        raise CheckError("the note must repeat the plan's target columns")


class NotingPolicy(ExpertPolicy):
    """The expert plus a decision for an extra stage: wrong on the first try, right once it sees the check."""

    name = "noting"

    def __init__(self) -> None:
        self.tries: list[tuple[int, str | None]] = []

    def note(self, ctx: StageContext) -> dict:
        self.tries.append((ctx.attempt, ctx.error))
        if ctx.error is None:
            return {"target_columns": []}
        return {"target_columns": ctx.artifacts["plan"]["target_columns"]}


def test_adding_a_stage_is_one_row(competitions, tmp_path):
    at = [s.name for s in STAGES].index("metric")
    row = Stage("note", "note", _check_note, metas=("formatter_matches_sample",))
    table = (*STAGES[:at], row, *STAGES[at:])
    comp = open_competition(competitions / "titanic" / "public")
    policy = NotingPolicy()
    machine = StageMachine(comp, Workspace.create(tmp_path, comp.slug), policy, stages=table)
    spec = machine.run()
    assert spec.target_columns == ["Survived"]
    ran = [r.stage for r in machine.records if r.ok and not r.stage.startswith("meta:")]
    assert ran == stage_order(machine.arts, table)
    assert ran.index("test_tab_input") < ran.index("note") < ran.index("metric")
    # its check gated it: the first try failed and the retry saw why
    assert [(r.attempt, r.ok) for r in machine.records if r.stage == "note"] == [(1, False), (2, True)]
    assert policy.tries == [(1, None), (2, "the note must repeat the plan's target columns")]
    assert machine.arts["note"] == {"target_columns": ["Survived"]}
    assert "note" in covered_stages("formatter_matches_sample", machine.arts, table)


def test_a_stage_row_without_a_policy_method_fails_cleanly(competitions, tmp_path):
    table = (*STAGES[:1], Stage("oracle", "oracle", None), *STAGES[1:])
    comp = open_competition(competitions / "titanic" / "public")
    machine = StageMachine(comp, Workspace.create(tmp_path, comp.slug), ExpertPolicy(), stages=table)
    with pytest.raises(CheckError, match="setup stage 'oracle' failed: AttributeError"):
        machine.run()
