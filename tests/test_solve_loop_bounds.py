"""The solve loop turns a proposal's training bound into the per-fold bound the family sees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from medalist.policy.base import Proposal, SolveState
from medalist.solve.folds import load_or_make_folds
from medalist.solve.ledger import Ledger
from medalist.solve.loop import SolveLoop
from medalist.solve.runner import fold_jobs
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
