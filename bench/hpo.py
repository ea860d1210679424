"""Benchmark: the two tuning engines (Optuna TPE vs HEBO) on the same folds — best CV reached per minute.

    python bench/hpo.py ../shared/competitions --only titanic,playground-series-s3e9,spaceship-titanic \
        --model lgbm --minutes 4 --workdir /tmp/hpo-bench

Each engine tunes the same model family on the same setup and folds; every trial is a full k-fold
experiment in its own ledger (so neither engine reuses the other's trials).
"""

from __future__ import annotations

import argparse
import json
from itertools import product
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from medalist.metrics import Direction, ScoreOrder
from medalist.policy.expert import ExpertPolicy
from medalist.setup import run_setup, setup_is_done
from medalist.setup.data import load_task_data
from medalist.solve.folds import load_or_make_folds
from medalist.solve.ledger import Ledger
from medalist.solve.models import get_model
from medalist.solve.runner import model_task, run_experiment
from medalist.solve.tuning import tune
from medalist.solve.types import ExperimentSpec
from medalist.workspace import Workspace


def best_by_minute(
    history: list[tuple[float, dict, float]], minutes: int, order: ScoreOrder
) -> list[float | None]:
    out: list[float | None] = []
    for m in range(1, minutes + 1):
        seen = [s for t, _, s in history if t <= 60 * m and s == s and abs(s) != float("inf")]
        out.append(order.best_of(seen, key=float) if seen else None)
    return out


def make_objective(ws: Workspace, data, folds, ledger: Ledger, model: str, engine: str):
    """CV score of one k-fold experiment with the trial's params (the worst score when it fails)."""
    worst = Direction(data.spec.lower_is_better).worst

    def objective(params: dict) -> float:
        spec = ExperimentSpec(model, params, note=f"hpo {engine}", origin="trial")
        rec = run_experiment(ws, data, folds, spec, ledger)
        return rec.cv_score if rec.status == "done" else worst

    return objective


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", type=Path)
    ap.add_argument("--only", required=True)
    ap.add_argument("--model", default="lgbm")
    ap.add_argument("--minutes", type=int, default=4)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medalist-hpo"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--seeds", default="0", help="comma-separated search seeds; each engine runs once per seed"
    )
    args = ap.parse_args()
    console = Console(width=150)
    rows = []
    for slug in args.only.split(","):
        ws = Workspace.create(args.workdir, slug)
        if not setup_is_done(ws):
            run_setup(args.suite / slug / "public", args.workdir, ExpertPolicy())
        data = load_task_data(ws)
        folds = load_or_make_folds(ws, data)
        family = get_model(args.model)
        space = family.search_space(model_task(data))
        order = Direction(data.spec.lower_is_better)
        for seed, engine in product([int(s) for s in args.seeds.split(",")], ("optuna", "hebo")):
            ledger = Ledger(ws.experiments / f"ledger_{engine}_{seed}.sqlite")
            objective = make_objective(ws, data, folds, ledger, args.model, engine)
            result = tune(
                objective,
                space,
                engine=engine,
                order=order,
                time_budget=60 * args.minutes,
                seed=seed,
            )
            curve = best_by_minute(result.history, args.minutes, order)
            trial_seconds = float(np.median([r.seconds for r in ledger.trials()] or [0.0]))
            rows.append(
                {
                    "competition": slug,
                    "metric": data.spec.metric,
                    "engine": engine,
                    "seed": seed,
                    "trials": len(result.history),
                    "trial_seconds": trial_seconds,
                    "best": result.best_score,
                    "by_minute": curve,
                }
            )
            console.print(
                f"{slug} {engine} seed {seed}: {len(result.history)} trials ({trial_seconds:.1f} s each), "
                f"best {result.best_score:.5f}"
            )
            if args.json:
                args.json.write_text(json.dumps(rows, indent=2))
    table = Table(title=f"best CV per minute: Optuna TPE vs HEBO ({args.model})")
    for c in ["competition", "metric", "engine", "seed", "trials", "s/trial"] + [
        f"{m} min" for m in range(1, args.minutes + 1)
    ]:
        table.add_column(c)
    for r in rows:
        table.add_row(
            r["competition"],
            r["metric"],
            r["engine"],
            str(r["seed"]),
            str(r["trials"]),
            f"{r['trial_seconds']:.1f}",
            *[("-" if v is None else f"{v:.5f}") for v in r["by_minute"]],
        )
    console.print(table)


if __name__ == "__main__":
    main()
