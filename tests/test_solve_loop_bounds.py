"""The solve loop turns a proposal's training bound into the per-fold bound the family sees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from medalist.solve import loop as loop_module
from medalist.solve.folds import load_or_make_folds
from medalist.solve.ledger import Ledger
from medalist.solve.loop import SolveLoop
from medalist.solve.policy import Proposal, SolveState
from medalist.solve.runner import fold_jobs
from medalist.solve.tuning import hebo_unavailable
from tests.solve_helpers import TITANIC, competition_workspace


class TwoMLPs:
    """A scripted policy (plumbing test): an MLP with a 30 s bound, then one without, then nothing."""

    name = "scripted"

    def __init__(self) -> None:
        self.queue = [
            Proposal("spec", model="mlp", why="bounded", max_seconds=30.0),
            Proposal("spec", model="mlp", seed=1, why="unbounded"),
        ]

    def propose(self, state: SolveState) -> list[Proposal]:
        return [self.queue.pop(0)] if self.queue else []


def test_a_proposal_bound_reaches_the_folds(tmp_path: Path, competitions: Path) -> None:
    ws, data = competition_workspace(tmp_path, competitions, TITANIC)
    folds = load_or_make_folds(ws, data, 5, seed=0)
    ledger = Ledger(ws.ledger)
    loop = SolveLoop(ws, data, folds, ledger, TwoMLPs(), deadline=time.monotonic() + 600.0)
    loop.run()
    records = {r.note: r for r in ledger.records("done")}
    waves = -(-5 // fold_jobs())
    # the bounded one: its 30 s shared by the waves of parallel folds
    assert records["bounded"].params["max_seconds"] == pytest.approx(30.0 / waves)
    # the other: 80 % of the time left (about 600 s) shared the same way
    assert 0.8 * 500 / waves < records["unbounded"].params["max_seconds"] <= 0.8 * 600 / waves
    assert records["bounded"].cv_score > 0.7 and records["unbounded"].cv_score > 0.7


class LinearThenTune:
    """A scripted policy (plumbing test): a linear baseline, then one short tuning round on it."""

    name = "scripted"

    def __init__(self) -> None:
        self.queue = [Proposal("spec", model="linear", why="baseline")]

    def propose(self, state: SolveState) -> list[Proposal]:
        if self.queue:
            return [self.queue.pop(0)]
        if not any(r.origin == "trial" for r in state.done + state.failed):
            parent = state.done[-1].name
            return [Proposal("tune", model="linear", tune_seconds=6.0, why="tune", parent=parent)]
        return []


@pytest.mark.parametrize("hebo_from", [1e9, 0.0])
def test_auto_tuning_engine_follows_the_trial_cost(
    tmp_path: Path, competitions: Path, monkeypatch: pytest.MonkeyPatch, hebo_from: float
) -> None:
    """'auto' tunes with TPE when the parent experiment took less than the threshold (here: any, as it is
    raised out of reach), else with HEBO when HEBO runs on this machine (here: any, as it is 0)."""
    monkeypatch.setattr(loop_module, "HEBO_MIN_TRIAL_SECONDS", hebo_from)
    ws, data = competition_workspace(tmp_path, competitions, TITANIC)
    folds = load_or_make_folds(ws, data, 5, seed=0)
    ledger = Ledger(ws.ledger)
    events: list[tuple[str, dict]] = []
    loop = SolveLoop(
        ws,
        data,
        folds,
        ledger,
        LinearThenTune(),
        deadline=time.monotonic() + 120.0,
        on_event=lambda kind, info: events.append((kind, info)),
        tune_engine="auto",
    )
    loop.run()
    baseline = ledger.records("done")[0]
    assert baseline.note == "baseline" and baseline.seconds > 0
    trials = [r for r in ledger.records(status=None) if r.origin == "trial"]
    expected = "optuna" if hebo_from > baseline.seconds or hebo_unavailable() is not None else "hebo"
    assert trials and {r.note for r in trials} == {f"hpo {expected}"}
    tuned = [info for kind, info in events if kind == "tuned"]
    assert tuned == [{**tuned[0], "engine": expected, "trials": len(trials)}]


def test_resolve_engine() -> None:
    cheap = loop_module.HEBO_MIN_TRIAL_SECONDS / 2
    assert loop_module.resolve_engine("auto", cheap) == "optuna"
    slow_or_unknown = "optuna" if hebo_unavailable() is not None else "hebo"
    assert loop_module.resolve_engine("auto", 2 * loop_module.HEBO_MIN_TRIAL_SECONDS) == slow_or_unknown
    assert loop_module.resolve_engine("auto", None) == slow_or_unknown
    assert loop_module.resolve_engine("hebo", cheap) == "hebo"  # a named engine is taken as given


class LGBMThenTune:
    """A scripted policy (plumbing test): a LightGBM baseline, then one 10 s tuning round on it, with the
    trial slack set (when asked) so that a trial may train for at most 6 s."""

    name = "scripted"

    def __init__(self, slack_to_six: bool) -> None:
        self.slack_to_six = slack_to_six
        self.started = False

    def propose(self, state: SolveState) -> list[Proposal]:
        if not self.started:
            self.started = True
            return [Proposal("spec", model="lgbm", why="baseline")]
        if any(r.origin == "trial" for r in state.done + state.failed):
            return []
        parent = state.done[-1]
        if self.slack_to_six:
            loop_module.TRIAL_SLACK = 6.0 / parent.seconds
        return [Proposal("tune", model="lgbm", tune_seconds=10.0, why="tune", parent=parent.name)]


@pytest.mark.parametrize("slack_to_six", [False, True])
def test_tuning_trials_train_within_the_round_and_their_slack(
    tmp_path: Path, competitions: Path, monkeypatch: pytest.MonkeyPatch, slack_to_six: bool
) -> None:
    """Each trial's training bound is the round's time left (10 s at most here, not 80 % of the solve's
    600 s), and at most TRIAL_SLACK times its parent's seconds; 2 folds fitted side by side share it whole.
    Bounds never go below the 5 s per-fold floor, so these checks hold unless setting up the search takes
    4 s."""
    monkeypatch.setattr(loop_module, "TRIAL_SLACK", 1e9)
    ws, data = competition_workspace(tmp_path, competitions, TITANIC)
    folds = load_or_make_folds(ws, data, 2, seed=0)
    ledger = Ledger(ws.ledger)
    policy = LGBMThenTune(slack_to_six)
    SolveLoop(
        ws, data, folds, ledger, policy, deadline=time.monotonic() + 600.0, tune_engine="optuna", fold_jobs=2
    ).run()
    baseline, *trials = ledger.records("done")
    assert baseline.params["max_seconds"] > 0.8 * 500  # outside a round: 80 % of the time left
    assert len(trials) >= 2 and all(r.note == "hpo optuna" for r in trials)
    bounds = [r.params["max_seconds"] for r in trials]
    assert bounds == sorted(bounds, reverse=True) and bounds[-1] == 5.0, bounds  # the round's time runs out
    if slack_to_six:
        assert bounds[0] == pytest.approx(6.0), bounds
    else:
        assert 6.0 < bounds[0] <= 10.0, bounds
    assert max(r.cv_score for r in trials) > 0.75, [r.cv_score for r in trials]  # the prior scores 0.62
