"""bench/memory_loo.py: the comparison table and summary (both score directions), the leave-one-out store
merge, reading a real ledger by time, and resuming a cut-off bench (with a stand-in for `medalist run`)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console

from medalist.memory.store import Entry, MemoryStore
from medalist.setup.spec import TaskSpec
from medalist.solve.ledger import Ledger
from medalist.solve.types import ExperimentRecord
from medalist.workspace import Workspace, append_jsonl, read_jsonl

REPO = Path(__file__).resolve().parents[1]


def _load_bench():
    """bench/ is not a package: load the script by its path."""
    spec = importlib.util.spec_from_file_location("bench_memory_loo", REPO / "bench" / "memory_loo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


loo = _load_bench()


def _row(comp: str, arm: str, lower: bool, cv_early, cv_final, pct, folds="f1", **extra) -> dict:
    return {
        "competition": comp,
        "arm": arm,
        "time_budget": 120.0,
        "seconds": 118.0,
        "metric": "rmse" if lower else "accuracy",
        "lower_is_better": lower,
        "cv_early": cv_early,
        "cv_final": cv_final,
        "early_seconds": 30.0,
        "percentile": pct,
        "score": None if pct is None else cv_final,  # a test score only with a valid submission
        "folds": folds,
        "memory_event": None,
        **extra,
    }


# ---------------------------------------------------------------------------- table and summary
def test_compare_follows_the_metric_direction():
    assert loo.compare(0.50, 0.45, lower=True) == "better"
    assert loo.compare(0.50, 0.45, lower=False) == "worse"
    assert loo.compare(0.80, 0.82, lower=False) == "better"
    assert loo.compare(0.8, 0.8, lower=False) == "tie"
    assert loo.compare(None, 0.8, lower=True) == "better"  # a run with no CV loses
    assert loo.compare(0.8, None, lower=True) == "worse"
    assert loo.compare(None, None, lower=True) is None and loo.compare(0.1, 0.2, lower=None) is None


def test_table_and_summary_from_hand_made_rows():
    rows = [
        _row("reg", "empty", True, 0.60, 0.50, 40.0),
        _row("reg", "memory", True, 0.55, 0.45, 55.0, memory_event={"retrieved": 7, "reordered": True}),
        _row("cls", "empty", False, 0.79, 0.80, 60.0),
        _row("cls", "memory", False, 0.81, 0.78, 50.0),
        _row("same", "empty", True, 1.0, 0.9, 30.0),
        _row("same", "memory", True, 1.0, 0.9, None, folds="f2"),  # invalid submission: percentile None
        _row("half", "empty", False, 0.7, 0.7, 90.0),  # no memory run yet: not compared
    ]
    lines = loo.summary(rows)
    assert lines[0].startswith("final CV better with memory on 1 of 3 (worse 1, tie 1)")
    assert "mean percentile empty 43.3 vs memory 35.0" in lines[0] and "not met" in lines[0]
    assert lines[1] == (
        "memory hurt: final CV worse on cls (0.80000 → 0.78000); "
        "percentile lower on cls (60.0 → 50.0), same (30.0 → -)"
    )
    assert lines[2].startswith("folds differ between the arms on same")
    assert lines[3:] == [
        "no valid submission from same (memory)",
        "no memory event in the memory run of cls, same",
    ]

    console = Console(record=True, width=220)
    loo.print_table(console, rows)
    text = console.export_text()
    reg = next(line for line in text.splitlines() if line.startswith("│ reg"))
    cls = next(line for line in text.splitlines() if line.startswith("│ cls"))
    half = next(line for line in text.splitlines() if line.startswith("│ half"))
    assert "rmse ↓" in reg and "0.50000 → 0.45000" in reg and "yes" in reg and "40.0 → 55.0" in reg
    assert "retrieved=7" in reg and "0.60000 → 0.55000" in reg
    assert "accuracy ↑" in cls and "│ no" in cls and "0.79000 → 0.81000" in cls
    assert "0.70000 → -" in half
    assert "CV@30s" in text and "memory hurt: final CV worse on cls" in text


def test_summary_says_when_the_target_is_met_and_memory_hurt_nowhere():
    rows = []
    for i in range(13):
        better = i < 9
        rows += [
            _row(f"c{i:02d}", "empty", False, 0.7, 0.70, 50.0),
            _row(f"c{i:02d}", "memory", False, 0.7, 0.71 if better else 0.70, 60.0 if better else 50.0),
        ]
    lines = loo.summary(rows)
    assert "better with memory on 9 of 13" in lines[0] and "target" in lines[0] and ": met" in lines[0]
    assert lines[1].startswith("memory hurt nowhere")


# ---------------------------------------------------------------------------- stores
def _store(path: Path, slug: str, n: int, about: str | None = None) -> MemoryStore:
    store = MemoryStore(path)
    store.put_task(slug, {"task_key": slug, "metric": "rmse"}, f"Competition {slug}")
    entries = [
        Entry(key=f"experiment:{about or slug}:{slug}:{i}", kind="experiment", task_key=about or slug,
              stage="solve", data={"family": "lgbm", "rank": i + 1, "n_ranked": n}, text=f"{slug} {i}")
        for i in range(n)
    ]  # fmt: skip
    store.put_entries(entries)
    return store


def test_loo_store_leaves_out_exactly_the_competition(tmp_path):
    stores = tmp_path / "stores"
    _store(stores / "a.sqlite", "a", 2)
    _store(stores / "b.sqlite", "b", 3)
    c = _store(stores / "c.sqlite", "c", 4)
    c.put_entries([Entry(key="stage_fail:b:x", kind="stage_fail", task_key="b", stage="folds", message="m")])

    target = tmp_path / "loo" / "b.sqlite"
    assert loo.build_loo_store(stores, "b", target) == ["a", "c"]
    merged = MemoryStore(target)
    assert [t.task_key for t in merged.tasks()] == ["a", "c"]
    assert {e.task_key for e in merged.entries()} == {"a", "c"}  # c's note about b is left out too
    assert merged.count()["experiment"] == 2 + 4

    assert loo.build_loo_store(stores, "a", tmp_path / "loo" / "a.sqlite") == ["b", "c"]
    other = MemoryStore(tmp_path / "loo" / "a.sqlite")
    assert [t.task_key for t in other.tasks()] == ["b", "c"]
    assert other.count()["experiment"] == 3 + 4 and other.count()["stage_fail"] == 1

    copy = tmp_path / "scratch" / "b.sqlite"
    loo.copy_store(target, copy)
    MemoryStore(copy).put_task("run", {"task_key": "run"}, "the run's own write-back")
    assert [t.task_key for t in MemoryStore(copy).tasks()] == ["a", "c", "run"]
    assert [t.task_key for t in MemoryStore(target).tasks()] == ["a", "c"]  # the copy took the write


# ---------------------------------------------------------------------------- ledger by time
def _finish(ledger: Ledger, name: str, cv: float, kind: str = "model", at: float | None = None) -> None:
    rec = ledger.begin(ExperimentRecord(name=name, model=name.split("_")[0], version="v", kind=kind))
    rec.cv_score, rec.fold_scores = cv, [cv]
    ledger.finish(rec)
    if at is not None:
        with closing(sqlite3.connect(ledger.path)) as con, con:
            con.execute("UPDATE experiments SET updated_at = ? WHERE id = ?", (at, rec.id))


def test_best_cv_by_time_from_a_real_ledger(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    t0 = 1_000_000.0
    _finish(ledger, "prior_x", 0.9, at=t0 + 5)
    _finish(ledger, "lgbm_a", 0.5, at=t0 + 20)
    _finish(ledger, "ens_hill", 0.3, kind="ensemble", at=t0 + 110)
    _finish(ledger, "feat_probe", 0.1, kind="probe", at=t0 + 10)  # not a submission kind
    failed = ledger.begin(ExperimentRecord(name="xgb_b", model="xgb", version="v"))
    ledger.fail(failed, "boom")

    scores = loo.done_scores(ledger.path)
    assert sorted(scores) == [(0.3, t0 + 110), (0.5, t0 + 20), (0.9, t0 + 5)]
    assert loo.best_cv(scores, lower=True, until=t0 + 30) == 0.5
    assert loo.best_cv(scores, lower=True) == 0.3
    assert loo.best_cv(scores, lower=False, until=t0 + 30) == 0.9
    assert loo.best_cv(scores, lower=True, until=t0 + 1) is None
    assert loo.done_scores(tmp_path / "absent.sqlite") == []


# ---------------------------------------------------------------------------- resume
class FakeMedalist:
    """Stands in for `medalist run`: writes a small workspace (task.json, a ledger with an early and a late
    experiment, run.jsonl, the public sample submission) and writes into the memory it is handed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Path]] = []

    def __call__(self, args: list[str], timeout: float, log_path: Path) -> int:
        public = Path(args[1])
        workdir = Path(args[args.index("--workdir") + 1])
        memory = Path(args[args.index("--memory") + 1])
        slug = public.parent.name
        self.calls.append((slug, workdir.name, memory))
        ws = Workspace.create(workdir, slug)
        TaskSpec(slug=slug, task_type="binary", metric="accuracy").save(ws.task_json)
        ledger = Ledger(ws.ledger)
        now = time.time()
        _finish(ledger, "lgbm_a", 0.70, at=now)
        _finish(ledger, "xgb_b", 0.75, at=now + 60)
        ws.log_event("run", {"event": "start", "time_budget": 120.0, "done": 0})
        if workdir.name == "memory":
            ws.log_event("run", {"event": "memory", "retrieved": 5})
        ws.log_event("run", {"event": "end", "best": "xgb_b", "cv": 0.75, "experiments": 2})
        sample = next(p for p in sorted(public.glob("*.csv")) if p.name not in ("train.csv", "test.csv"))
        shutil.copy(sample, ws.submission_csv)
        MemoryStore(memory).put_task(f"written-by-{slug}", {}, "the run's write-back")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("done\n")
        return 0


def test_resume_skips_finished_runs_and_redoes_cut_off_ones(competitions, tmp_path):
    layout = loo.Layout(tmp_path / "w")
    slugs = ["spaceship-titanic", "titanic"]
    # titanic's empty run finished before the bench was cut off; spaceship's was killed half-way
    append_jsonl(layout.results, _row("titanic", "empty", False, 0.7, 0.8, 50.0))
    _store(layout.store("titanic"), "titanic", 2)
    _store(layout.store("spaceship-titanic"), "junk", 1)
    (layout.workdir("empty") / "spaceship-titanic").mkdir(parents=True)
    (layout.workdir("empty") / "spaceship-titanic" / "leftover.txt").write_text("from the killed run")

    fake = FakeMedalist()
    console = Console(record=True, width=200)
    rows = loo.run_bench(competitions, layout, slugs, 120.0, fake, console)
    assert [(slug, arm) for slug, arm, _ in fake.calls] == [
        ("spaceship-titanic", "empty"),
        ("spaceship-titanic", "memory"),
        ("titanic", "memory"),
    ]
    assert not (layout.workdir("empty") / "spaceship-titanic" / "leftover.txt").exists()
    assert fake.calls[0][2] == layout.store("spaceship-titanic").resolve()
    assert {t.task_key for t in MemoryStore(layout.store("spaceship-titanic")).tasks()} == {
        "spaceship-titanic",  # the bench's write-back of the workspace
        "written-by-spaceship-titanic",  # the run's own
    }  # the killed run's leftover ('junk') is gone: the store started fresh

    memory_run = next(r for r in rows if r["competition"] == "titanic" and r["arm"] == "memory")
    assert fake.calls[2][2] == layout.scratch_store("titanic").resolve()
    assert memory_run["memory_sources"] == ["spaceship-titanic"]
    loo_tasks = {t.task_key for t in MemoryStore(layout.loo_store("titanic")).tasks()}
    assert loo_tasks == {"spaceship-titanic", "written-by-spaceship-titanic"}  # no titanic, no pollution
    assert memory_run["cv_early"] == 0.70 and memory_run["cv_final"] == 0.75
    assert memory_run["lower_is_better"] is False and memory_run["memory_event"] == {"retrieved": 5}
    assert memory_run["score"] is not None and memory_run["percentile"] is not None
    assert memory_run["returncode"] == 0 and memory_run["error"] is None and memory_run["folds"] is None

    assert len(read_jsonl(layout.results)) == 4
    again = FakeMedalist()
    assert len(loo.run_bench(competitions, layout, slugs, 120.0, again, console)) == 4
    assert again.calls == []
    with pytest.raises(SystemExit, match="another --workdir"):
        loo.run_bench(competitions, layout, slugs, 60.0, again, console)
    assert json.loads(layout.results.read_text().splitlines()[0])["competition"] == "titanic"
