"""The README's main job: the embedded example through `medalist run`, then solve / ensemble / submit on the
same workspace. Scored against the example's own held-out answers."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pandas as pd
from sklearn.metrics import roc_auc_score

from medalist.example import make_example
from medalist.metrics import get_metric
from medalist.pipeline import candidate_of
from medalist.solve.ledger import Ledger
from medalist.submit import choose


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medalist.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_example_run_then_more_work_on_the_same_workspace(tmp_path):
    comp = make_example(tmp_path / "examples", "breast-cancer")
    t0 = time.monotonic()
    res = _cli("run", str(comp), "--workdir", str(tmp_path / "runs"), "--time-budget", "40")
    seconds = time.monotonic() - t0
    assert res.returncode == 0, res.stderr[-2000:]
    assert seconds < 40 * 1.1 + 15  # the budget, plus interpreter start-up
    ws = tmp_path / "runs" / "breast-cancer"
    sub = pd.read_csv(ws / "submission.csv")
    answers = pd.read_csv(tmp_path / "examples" / "breast-cancer-answers.csv")
    sample = pd.read_csv(comp / "sample_submission.csv")
    assert list(sub.columns) == list(sample.columns) and sub["id"].tolist() == sample["id"].tolist()
    merged = answers.merge(sub, on="id", suffixes=("_true", ""))
    assert roc_auc_score(merged["malignant_true"], merged["malignant"]) > 0.97
    assert "best experiments and ensembles" in res.stdout

    ledger = Ledger(ws / "experiments" / "ledger.sqlite")
    before = {r.name for r in ledger.records("done")}
    kinds = {r.kind for r in ledger.records("done")}
    assert {"model", "ensemble"} <= kinds

    # ensembling again retrains nothing: every earlier row is kept as it was; the only new rows are
    # stacks the run's budget had skipped (e.g. the multi-level stack), never a base model
    stamps = {r.name: r.created_at for r in ledger.records("done")}
    # (a budget every stack and the distillation fit in even on a loaded machine: the command stops when done)
    res = _cli("ensemble", str(ws), "--time-budget", "90")
    assert res.returncode == 0, res.stderr[-2000:]
    after = {r.name: r for r in ledger.records("done")}
    assert before <= set(after) and all(after[n].created_at == stamps[n] for n in before)
    assert {after[n].kind for n in set(after) - before} <= {"ensemble", "distill"}
    res = _cli("ensemble", str(ws), "--time-budget", "20")
    assert res.returncode == 0, res.stderr[-2000:]
    assert {r.name for r in ledger.records("done")} == set(after)  # a second time: nothing new at all
    before = set(after)

    # more experiments: finished ones are never repeated
    res = _cli("solve", str(ws), "--time-budget", "15")
    assert res.returncode == 0, res.stderr[-2000:]
    done = [r.name for r in ledger.records("done")]
    assert len(done) == len(set(done)) and before <= set(done)

    # submit a named experiment (the worst base model, so not what a run would choose), then the best
    models = [r for r in ledger.records("done") if r.kind == "model" and r.model != "prior"]
    name = min(models, key=lambda r: r.cv_score).name  # roc_auc: higher is better
    res = _cli("submit", str(ws), "--experiment", name)
    assert res.returncode == 0 and json.loads((ws / "chosen.json").read_text())["name"] == name
    res = _cli("submit", str(ws))  # the choice of a run: best CV, an ensemble within fold noise of it
    assert res.returncode == 0, res.stderr[-2000:]
    metric = get_metric(json.loads((ws / "task.json").read_text())["metric"])
    best = choose(metric, [candidate_of(r) for r in ledger.records("done")])
    assert best is not None and json.loads((ws / "chosen.json").read_text())["name"] == best.name
    res = _cli("submit", str(ws), "--experiment", "no_such_experiment")
    assert res.returncode == 2 and res.stderr.strip().startswith("error:") and "Traceback" not in res.stderr


def test_run_rejects_bad_input_in_one_line(tmp_path):
    res = _cli("run", str(tmp_path / "missing"), "--workdir", str(tmp_path), "--time-budget", "10")
    assert res.returncode == 2
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "does not exist" in lines[0]
    res = _cli("run", str(tmp_path), "--workdir", str(tmp_path), "--time-budget", "-5")
    assert res.returncode == 2 and "time-budget" in res.stderr
