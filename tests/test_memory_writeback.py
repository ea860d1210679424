"""Write-back of a real workspace (a short `medalist run` of the embedded example) and the `memory` CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medalist.example import make_example
from medalist.memory.campaign import run_campaign
from medalist.memory.card import TaskCard
from medalist.memory.cli import memory_app
from medalist.memory.embed import HashingEmbedder
from medalist.memory.prior import expert_prior
from medalist.memory.retrieve import rag
from medalist.memory.store import MemoryStore
from medalist.memory.writeback import remember_workspace
from medalist.solve.ledger import Ledger
from medalist.solve.types import ExperimentRecord
from medalist.workspace import append_jsonl, read_jsonl


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("memory_run")
    comp = make_example(root / "examples", "breast-cancer")
    res = subprocess.run(
        [sys.executable, "-m", "medalist.cli", "run", str(comp), "--workdir", str(root / "runs"), "-t", "40"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    ws_root = root / "runs" / "breast-cancer"
    _at_least_two_models(ws_root)
    return ws_root


def _at_least_two_models(ws_root: Path) -> None:
    """Two baselines in the ledger whatever a loaded machine let the 40 s run finish (the runner skips one
    the run already finished)."""
    from medalist.setup.data import load_task_data
    from medalist.solve.folds import load_or_make_folds
    from medalist.solve.runner import run_experiment
    from medalist.solve.types import ExperimentSpec
    from medalist.workspace import Workspace

    ws = Workspace(ws_root)
    data = load_task_data(ws)
    folds = load_or_make_folds(ws, data)
    ledger = Ledger(ws.ledger)
    for model in ("linear", "lgbm"):
        rec = run_experiment(ws, data, folds, ExperimentSpec(model, {}, "base", 0), ledger)
        assert rec.status == "done", rec.error


@pytest.fixture
def ws(workspace, tmp_path) -> Path:
    """A private copy of the run's workspace (tests change it)."""
    return Path(shutil.copytree(workspace, tmp_path / "breast-cancer"))


def test_write_back_is_idempotent_and_adds_only_new_experiments(ws, tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite")
    added = remember_workspace(store, ws)
    counts = store.count()
    ledger = Ledger(ws / "experiments" / "ledger.sqlite")
    singles = [r for r in ledger.records("done") if r.kind == "model" and r.model != "prior" and r.cv_score]
    assert counts["tasks"] == 1 and counts["experiment"] == len(singles) >= 1
    assert counts["stage_pass"] >= 8 and counts["ensemble"] == 1
    assert added == sum(v for k, v in counts.items() if k != "tasks")
    assert remember_workspace(store, ws) == 0 and store.count() == counts

    experiments = [e.data for e in store.entries(kinds=("experiment",))]
    assert sorted(d["rank"] for d in experiments) == list(range(1, len(singles) + 1))
    first = min(singles, key=lambda r: r.id)
    assert next(d for d in experiments if d["family"] == first.model and d["features"] == "base")["gain"] == 0
    chosen = json.loads((ws / "chosen.json").read_text())
    assert store.entries(kinds=("ensemble",))[0].data["chosen"] == chosen["name"]
    card = TaskCard.from_workspace(ws)
    assert card.task_key == "breast-cancer" and card.task_type == "binary" and card.n_train > 0
    assert store.task("breast-cancer").card == card.to_dict()
    metric = [e for e in store.entries(kinds=("stage_pass",)) if e.stage == "metric"]
    assert len(metric) == 1 and card.metric in metric[0].content

    best = max(singles, key=lambda r: r.cv_score)
    more = ExperimentRecord(name=f"{best.model}_later", model=best.model, version="later", params={"x": 1},
                            features="base", seed=7)  # fmt: skip
    more = ledger.begin(more)
    more.cv_score, more.fold_scores, more.seconds = best.cv_score + 0.001, [best.cv_score + 0.001], 0.5
    ledger.finish(more)
    assert remember_workspace(store, ws) == 1
    ranks = {e.key.rsplit(":", 1)[1]: e.data["rank"] for e in store.entries(kinds=("experiment",))}
    assert ranks[more.name] == 1 and ranks[best.name] == 2  # the older entries' ranks moved
    assert remember_workspace(store, ws) == 0

    prior = expert_prior(store, card, embedder=HashingEmbedder())
    assert prior.families[0] == best.model and prior.params_for(best.model)[0] == {"x": 1}


def test_a_failure_is_remembered_with_the_fix_that_passed_later(ws, tmp_path):
    log = ws / "logs" / "stages.jsonl"
    records = read_jsonl(log)
    at = next(i for i, r in enumerate(records) if r["stage"] == "metric")
    failed = {**records[at], "ok": False, "error": "metric 'acc' is not a known metric"}
    log.unlink()
    for rec in [*records[:at], failed, *records[at:]]:
        append_jsonl(log, rec)
    store = MemoryStore(tmp_path / "m.sqlite")
    remember_workspace(store, ws)
    fails = store.entries(kinds=("stage_fail",))
    assert len(fails) == 1 and fails[0].stage == "metric" and "acc" in fails[0].message
    passed = next(e for e in store.entries(kinds=("stage_pass",)) if e.stage == "metric")
    assert fails[0].fix == passed.content != ""
    card = TaskCard.from_workspace(ws)
    warned = rag(store, card, "metric", k=3, positive=False, embedder=HashingEmbedder())
    assert [e.key for e in warned] == [fails[0].key]


def test_memory_cli_round_trips(ws, tmp_path):
    runner = CliRunner()
    first, second = str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")
    res = runner.invoke(memory_app, ["remember", str(ws), "--memory", first])
    assert res.exit_code == 0 and "remembered" in res.output
    n_entries = len(MemoryStore(first).entries())
    res = runner.invoke(memory_app, ["list", "--memory", first])
    assert res.exit_code == 0 and "breast-cancer" in res.output and "experiment=" in res.output
    res = runner.invoke(memory_app, ["list", "breast-cancer", "--memory", first])
    assert res.exit_code == 0 and len(res.output.strip().splitlines()) == n_entries
    entry_id = res.output.split()[0]
    res = runner.invoke(memory_app, ["show", entry_id, "--memory", first])
    assert res.exit_code == 0 and json.loads(res.output)["task_key"] == "breast-cancer"
    res = runner.invoke(memory_app, ["show", "breast-cancer", "--memory", first])
    assert res.exit_code == 0 and json.loads(res.output)["card"]["task_type"] == "binary"

    export = tmp_path / "memory.jsonl"
    res = runner.invoke(memory_app, ["export", str(export), "--memory", first])
    assert res.exit_code == 0 and len(export.read_text().splitlines()) == n_entries + 1
    res = runner.invoke(memory_app, ["import", str(export), "--memory", second])
    assert res.exit_code == 0 and f"imported {n_entries} new" in res.output
    res = runner.invoke(memory_app, ["import", str(export), "--memory", second])
    assert res.exit_code == 0 and "imported 0 new" in res.output
    a, b = MemoryStore(first), MemoryStore(second)
    assert [e.to_json() for e in a.entries()] == [e.to_json() for e in b.entries()]
    assert [t.to_json() for t in a.tasks()] == [t.to_json() for t in b.tasks()]

    res = runner.invoke(memory_app, ["forget", entry_id, "--memory", second])
    assert res.exit_code == 0 and len(MemoryStore(second).entries()) == n_entries - 1
    res = runner.invoke(memory_app, ["forget", "breast-cancer", "--memory", second])
    assert res.exit_code == 0 and not MemoryStore(second).entries() and not MemoryStore(second).tasks()
    res = runner.invoke(memory_app, ["show", "breast-cancer", "--memory", second])
    assert res.exit_code == 1
    res = runner.invoke(memory_app, ["where"], env={"MEDALIST_MEMORY": first})
    assert res.exit_code == 0 and res.output.strip() == first
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 100)
    res = runner.invoke(memory_app, ["list", "--memory", str(bad)])
    assert res.exit_code == 1 and "running without memory" in res.output


class Killed(BaseException):
    """Stands for a kill: not an Exception, so the campaign does not record it as a failed task."""


def _pool(root: Path) -> list[Path]:
    sizes = {"small": 1, "medium": 50, "large": 500}
    out = []
    for name, rows in sizes.items():
        folder = root / name / "public"
        folder.mkdir(parents=True)
        (folder / "train.csv").write_text("id,x,y\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(rows)))
        (folder / "test.csv").write_text("id,x\n1,1\n")
        out.append(folder)
    return out


def test_campaign_orders_remembers_and_resumes(ws, tmp_path):
    pool = _pool(tmp_path / "pool")
    store = MemoryStore(tmp_path / "m.sqlite")
    calls: list[str] = []

    def run_one(folder: Path) -> dict:
        calls.append(folder.parent.name)
        if folder.parent.name == "medium" and calls.count("medium") == 1:
            raise Killed
        if folder.parent.name == "large":
            raise RuntimeError("setup failed at the metric stage")
        return {"ok": True, "workspace": ws, "score": 0.9, "tokens": 0}

    workdir = tmp_path / "campaign"
    with pytest.raises(Killed):
        run_campaign(list(reversed(pool)), workdir, run_one, store, order="curriculum",
                     embedder=HashingEmbedder())  # fmt: skip
    assert calls == ["small", "medium"]  # the structurally simplest first
    rows = run_campaign(list(reversed(pool)), workdir, run_one, store, embedder=HashingEmbedder())
    assert calls == ["small", "medium", "medium", "large"]  # resumed with the interrupted task
    assert [r["task"] for r in rows] == ["small", "medium", "large"] and [r["order"] for r in rows] == [
        1,
        2,
        3,
    ]
    assert rows[0]["remembered"] > 0 and rows[1]["remembered"] == 0  # the same workspace twice
    assert rows[2]["ok"] is False and "metric stage" in rows[2]["error"] and rows[0]["score"] == 0.9
    assert run_campaign(pool, workdir, run_one, store) == rows and len(calls) == 4  # all done: nothing runs

    given = run_campaign(pool, tmp_path / "given", lambda f: {"ok": True}, None, order="given")
    assert [r["task"] for r in given] == ["small", "medium", "large"]
    shuffled = [
        r["task"] for r in run_campaign(pool, tmp_path / "r", lambda f: {}, None, order="random", seed=3)
    ]
    assert sorted(shuffled) == ["large", "medium", "small"]
    again = [
        r["task"] for r in run_campaign(pool, tmp_path / "r2", lambda f: {}, None, order="random", seed=3)
    ]
    assert again == shuffled
