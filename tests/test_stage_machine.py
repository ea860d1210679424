"""The stage machine with a policy that returns deliberately wrong artifacts (a scripted test policy, not an
LLM): retries carry the check's message; meta-check failures roll back and recover."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medalist.errors import CheckError
from medalist.intake import open_competition
from medalist.policy.expert import ExpertPolicy
from medalist.setup import run_setup
from medalist.setup.data import load_task_data
from medalist.setup.policy import StageContext

DROP_ROWS_FORMATTER = """
def format_submission(sample, test_ids, predictions):
    out = sample.copy()
    for col in predictions.columns:
        out[col] = predictions[col].to_numpy()
    return out.iloc[:-7]          # deliberately loses the last rows
"""


class WrongThenRightPolicy(ExpertPolicy):
    """Expert decisions, except: a wrong id column, a target transform that does not invert and a formatter
    that drops rows — each until the policy has seen the failure that points at it."""

    name = "scripted-wrong"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str | None, str | None]] = []
        self.credit_questions: list[tuple[str, str]] = []

    def _note(self, ctx: StageContext) -> None:
        self.seen.append((ctx.stage, ctx.attempt, ctx.error, ctx.meta_failure))

    def plan(self, ctx: StageContext) -> dict:
        self._note(ctx)
        plan = super().plan(ctx)
        if ctx.error is None:
            return {**plan, "id_column": "Name"}  # a test column, but not the sample's id
        return plan

    def target_transform(self, ctx: StageContext) -> dict:
        self._note(ctx)
        t = super().target_transform(ctx)
        if ctx.meta_failure is None:
            return {**t, "threshold": 1.5}  # no probability reaches it: decode(encode(y)) is all zeros
        return t

    def formatter(self, ctx: StageContext) -> dict:
        self._note(ctx)
        if ctx.meta_failure is None:
            return {"method": "script", "code": DROP_ROWS_FORMATTER}
        return super().formatter(ctx)

    def keep_artifact(self, ctx: StageContext) -> bool:
        self.credit_questions.append((ctx.stage, ctx.meta_failure or ""))
        return ctx.stage not in ("target_transform", "formatter")


def _records(ws) -> list[dict]:
    return [json.loads(line) for line in (ws.logs / "stages.jsonl").read_text().splitlines()]


def test_retries_and_rollbacks_recover(competitions, tmp_path):
    policy = WrongThenRightPolicy()
    spec, ws, _ = run_setup(competitions / "titanic" / "public", tmp_path, policy=policy)
    assert spec.id_column == "PassengerId" and spec.transform.threshold == 0.5
    log = _records(ws)

    # 1. wrong id column: the plan check fails and the retry carries its message
    plan = [r for r in log if r["stage"] == "plan"]
    assert [r["ok"] for r in plan] == [False, True]
    assert "id_column 'Name'" in plan[0]["error"] and "sample submission" in plan[0]["error"]
    retry = next(s for s in policy.seen if s[0] == "plan" and s[1] == 2)
    assert retry[2] == plan[0]["error"]

    # 2. a transform that does not invert: the round-trip meta check fails, the machine rolls back to the
    #    target map (kept after a credit question) and the transform is redone with the failure in context
    roundtrip = [r for r in log if r["stage"] == "meta:target_roundtrip"]
    assert [r["ok"] for r in roundtrip] == [False, True]
    assert "does not reproduce column 'Survived'" in roundtrip[0]["error"]
    kept = [r for r in log if r["stage"] == "train_tab_target" and r["kept"]]
    assert kept and kept[0]["rollback_from"] == "target_roundtrip"
    assert ("train_tab_target", "target_roundtrip: " + roundtrip[0]["error"]) in policy.credit_questions

    # 3. a formatter that drops rows: the formatter meta check fails, rolls back to the first test map,
    #    which is kept; the formatter is rewritten and the whole path then passes
    fmt = [r for r in log if r["stage"] == "meta:formatter_matches_sample"]
    assert [r["ok"] for r in fmt] == [False, True]
    assert "rows" in fmt[0]["error"]
    assert any(r["stage"] == "test_tab_input" and r["kept"] for r in log)
    assert [r["ok"] for r in log if r["stage"] == "final_check"] == [True]

    # every attempt is logged with the record's fields
    assert all(
        {"stage", "attempt", "ok", "error", "seconds", "policy", "prompt_tokens", "completion_tokens"}
        <= set(r)
        for r in log
    )
    assert load_task_data(ws).n_test == 418


class AlwaysWrongPolicy(ExpertPolicy):
    name = "always-wrong"

    def target_map(self, ctx: StageContext) -> pd.DataFrame:
        return super().target_map(ctx).iloc[:-3]  # loses labelled rows every time


def test_meta_failure_that_never_recovers_stops_cleanly(competitions, tmp_path):
    with pytest.raises(CheckError, match="train_ids_agree still fails after 2 rollbacks"):
        from medalist.setup.machine import StageMachine
        from medalist.workspace import Workspace

        comp = open_competition(competitions / "titanic" / "public")
        StageMachine(comp, Workspace.create(tmp_path, comp.slug), AlwaysWrongPolicy(), max_rollbacks=2).run()


class BrokenPolicy(ExpertPolicy):
    name = "broken"

    def metric(self, ctx: StageContext) -> dict:
        return {"metric": "log_loss", "lower_is_better": True}  # scores probabilities; titanic wants labels


def test_fallback_policy_takes_a_stage_the_primary_cannot_pass(competitions, tmp_path):
    spec, ws, _ = run_setup(
        competitions / "titanic" / "public",
        tmp_path,
        policy=BrokenPolicy(),
        fallback=ExpertPolicy(),
        max_attempts=2,
    )
    metric_rows = [r for r in _records(ws) if r["stage"] == "metric"]
    assert [(r["policy"], r["ok"]) for r in metric_rows] == [
        ("broken", False),
        ("broken", False),
        ("expert", True),
    ]
    assert "scores probas but the target transform outputs labels" in metric_rows[0]["error"]
    assert metric_rows[-1]["fallback"].startswith("broken failed metric")
    assert spec.metric == "accuracy"
