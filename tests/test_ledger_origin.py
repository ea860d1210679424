"""Ledger origins (who made each experiment), the migration of older ledger files, and the questions the
ledger answers (members, best, family leaders, tuning trials, summary)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from medalist.metrics import Direction
from medalist.solve.folds import load_or_make_folds
from medalist.solve.ledger import Ledger, family_leaders, ranked
from medalist.solve.loop import SolveLoop
from medalist.solve.policy import Proposal, SolveState
from medalist.solve.types import ExperimentRecord
from tests.solve_helpers import TITANIC, competition_workspace
from tests.test_runner import GOOD_SCRIPT

HIGHER, LOWER = Direction(False), Direction(True)

# The experiments table as medalist wrote it before origins were recorded.
OLD_SCHEMA = """
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'model', params TEXT NOT NULL DEFAULT '{}', features TEXT NOT NULL DEFAULT '',
    seed INTEGER NOT NULL DEFAULT 0, cv_score REAL, fold_scores TEXT NOT NULL DEFAULT '[]',
    seconds REAL NOT NULL DEFAULT 0, status TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', parent TEXT,
    oof_path TEXT NOT NULL DEFAULT '', test_path TEXT NOT NULL DEFAULT '', code_hash TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL DEFAULT 0, updated_at REAL NOT NULL DEFAULT 0,
    pid INTEGER NOT NULL DEFAULT 0, host TEXT NOT NULL DEFAULT ''
);
CREATE INDEX experiments_name ON experiments(name);
"""
OLD_ROWS = [  # (name, model, kind, note) -> the origin a migration gives it
    (("prior_00000000", "prior", "model", "training prior"), "baseline"),
    (("lgbm_00000001", "lgbm", "model", "baseline of a model family"), "baseline"),
    (("lgbm_00000002", "lgbm", "model", "hpo hebo"), "trial"),
    (("lgbm_00000003", "lgbm", "model", "another seed of the best"), "seed"),
    (("xgb_00000004", "xgb", "model", "llm: counts help trees"), "llm"),
    (("llm_script_00000005", "llm_script", "script", ""), "llm"),
    (("mine_00000006", "mine", "script", ""), "script"),
    (("ens_hill_00000007", "ens_hill", "ensemble", "ens_hill over 3 members"), "ensemble"),
    (("distill_lgbm_00000008", "distill_lgbm", "distill", "LightGBM student"), "distilled"),
]


def _origins(path: Path) -> dict[str, str]:
    return {r.name: r.origin for r in Ledger(path).records(None)}


def test_an_old_ledger_gets_origins_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as con:
        con.executescript(OLD_SCHEMA)
        for (name, model, kind, note), _ in OLD_ROWS:
            con.execute(
                "INSERT INTO experiments (name, model, version, kind, status, note, cv_score) "
                "VALUES (?, ?, ?, ?, 'done', ?, 0.5)",
                (name, model, name[-8:], kind, note),
            )
    assert _origins(path) == {row[0]: origin for row, origin in OLD_ROWS}
    # inferred once: opening it again changes nothing, not even an origin set since
    with sqlite3.connect(path) as con:
        con.execute("UPDATE experiments SET origin = 'user' WHERE name = 'lgbm_00000001'")
    again = _origins(path)
    assert again["lgbm_00000001"] == "user" and again["lgbm_00000002"] == "trial"
    with sqlite3.connect(path) as con:
        columns = [row[1] for row in con.execute("PRAGMA table_info(experiments)")]
    assert columns.count("origin") == 1
    # the migrated file takes new rows with their own origin
    led = Ledger(path)
    new = led.begin(ExperimentRecord("et_00000009", "et", "00000009", origin="seed"))
    assert led.get(new.name).origin == "seed"
    assert [r.name for r in led.trials()] == ["lgbm_00000002"] and led.trials("xgb") == []


def _finished(led: Ledger, name: str, model: str, cv: float | None, **kw) -> ExperimentRecord:  # type: ignore[no-untyped-def]
    rec = led.begin(ExperimentRecord(name, model, name[-8:], **kw))
    rec.cv_score = cv
    return led.finish(rec)


def test_the_ledger_answers_its_questions(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "ledger.sqlite")
    _finished(led, "prior_00000000", "prior", 0.6, origin="baseline")
    _finished(led, "lgbm_00000001", "lgbm", 0.80, origin="baseline")
    _finished(led, "lgbm_00000002", "lgbm", 0.83, origin="trial", note="hpo optuna")
    _finished(led, "linear_00000003", "linear", 0.78, origin="baseline")
    _finished(led, "nan_00000004", "linear", float("nan"), origin="baseline")
    _finished(led, "llm_script_00000005", "llm_script", 0.81, kind="script", origin="llm")
    _finished(led, "ens_hill_00000006", "ens_hill", 0.85, kind="ensemble", origin="ensemble")
    failed = led.begin(ExperimentRecord("xgb_00000007", "xgb", "00000007", origin="trial"))
    led.fail(failed, "ValueError: no")

    members = [r.name for r in led.members()]
    assert members == [
        "lgbm_00000001",
        "lgbm_00000002",
        "linear_00000003",
        "nan_00000004",
        "llm_script_00000005",
    ]
    assert led.best(HIGHER).name == "ens_hill_00000006"
    assert led.best(HIGHER, kind="model").name == "lgbm_00000002"
    assert led.best(LOWER, kind="model").name == "prior_00000000"
    assert [r.name for r in led.ranked(LOWER, kind="script")] == ["llm_script_00000005"]
    assert "nan_00000004" not in {r.name for r in led.ranked(HIGHER)}  # no score, no rank
    assert [r.name for r in led.family_leaders(HIGHER)] == [
        "lgbm_00000002",
        "llm_script_00000005",
        "linear_00000003",
    ]
    assert led.family_leaders(LOWER)[0].name == "linear_00000003"
    assert [r.name for r in led.trials()] == ["lgbm_00000002", "xgb_00000007"]
    assert [r.name for r in led.trials("lgbm")] == ["lgbm_00000002"]
    assert led.summary(HIGHER, limit=2).splitlines() == [
        "- ens_hill features=base: cv 0.85 (0s)",
        "- lgbm features=base: cv 0.83 (0s)",
        "- FAILED xgb (model): ValueError: no",
        "- … 4 more finished experiments",
    ]
    # the same questions over any list of records, with families to choose from
    records = led.records(None)
    assert [r.model for r in family_leaders(records, HIGHER, ["linear", "prior"])] == ["linear", "prior"]
    ties = [ExperimentRecord(f"m_{i}", "m", str(i), cv_score=0.5, status="done", id=i) for i in (3, 1, 2)]
    assert [r.id for r in ranked(ties, LOWER)] == [1, 2, 3]  # the earlier of equals first


class EveryOrigin:
    """A scripted policy: a baseline, another seed of it, a model's script, then one short tuning round."""

    name = "scripted"

    def __init__(self) -> None:
        self.queue = [
            Proposal("spec", model="linear", why="baseline"),
            Proposal("spec", model="linear", seed=1, why="seed", origin="seed"),
            Proposal("script", code=GOOD_SCRIPT, name="llm_logreg", why="llm: a script", origin="llm"),
        ]

    def propose(self, state: SolveState) -> list[Proposal]:
        if self.queue:
            return [self.queue.pop(0)]
        if not state.trials():
            parent = state.best(["linear"])
            assert parent is not None
            return [Proposal("tune", model="linear", tune_seconds=5.0, why="tune", parent=parent.name)]
        return []


def test_the_solve_loop_records_who_made_each_experiment(tmp_path: Path, competitions: Path) -> None:
    ws, data = competition_workspace(tmp_path, competitions, TITANIC)
    folds = load_or_make_folds(ws, data, 5, seed=0)
    ledger = Ledger(ws.ledger)
    loop = SolveLoop(ws, data, folds, ledger, EveryOrigin(), deadline=time.monotonic() + 120.0)
    loop.run_prior()
    loop.run()
    by_note = {r.note: r for r in ledger.records(None)}
    assert by_note["training prior"].origin == "baseline"
    assert by_note["baseline"].origin == "baseline" and by_note["seed"].origin == "seed"
    script = next(r for r in ledger.records(None) if r.kind == "script")
    assert script.status == "done" and script.origin == "llm"
    trials = ledger.trials("linear")
    assert trials and all(r.note.startswith("hpo") for r in trials)
    assert {r.origin for r in ledger.records(None)} == {"baseline", "seed", "llm", "trial"}
    assert "prior" not in {r.model for r in ledger.members()}
