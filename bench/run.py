"""Benchmark: `medalist run` on competitions in the shared layout, next to plain 5-fold LightGBM.

For each competition: `medalist run <comp>/public --time-budget S` in a subprocess (timed from outside),
then plain LightGBM with library-default parameters (100 rounds, learning rate 0.1, 31 leaves) on the same
setup and folds; both graded against private/answers.csv and placed on leaderboard.csv.

    python bench/run.py ../shared/competitions --time-budget 300 --workdir /tmp/bench [--only a,b] [--json out.json]
    python bench/run.py ../shared/competitions --time-budget 300 --table a.json b.json  # reprint, merged

With --json, a bench cut off resumes: competitions already in the report are not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medalist.bench.grade import grade_submission
from medalist.setup.data import load_task_data
from medalist.solve.folds import load_or_make_folds
from medalist.solve.ledger import Ledger
from medalist.solve.runner import run_experiment
from medalist.solve.types import ExperimentSpec
from medalist.submit import Candidate, write_candidate
from medalist.workspace import Workspace, read_jsonl

PLAIN_LGBM = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_child_samples": 20,
    "feature_fraction": 1.0,
    "bagging_fraction": 1.0,
    "bagging_freq": 0,
    "lambda_l1": 0.0,
    "lambda_l2": 0.0,
    "max_depth": -1,
    "n_estimators": 100,
    "early_stopping_rounds": 0,
    "fixed_rounds": 100,
}


def run_medalist(comp: Path, workdir: Path, budget: float, extra: list[str]) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medalist.cli",
            "run",
            str(comp / "public"),
            "--workdir",
            str(workdir),
            "--time-budget",
            str(budget),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=budget * 2 + 120)
    except subprocess.TimeoutExpired:  # far over budget: stop it (and its workers), report it, go on
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        stderr += f"\nkilled after {time.monotonic() - t0:.0f}s (budget {budget:g}s)"
    seconds = time.monotonic() - t0
    ws = Workspace(workdir / comp.name)
    runs = read_jsonl(ws.logs / "run.jsonl")
    end = next((r for r in reversed(runs) if r.get("event") == "end"), {})
    first = next((r for r in runs if r.get("event") == "first_submission"), {})
    return {
        "seconds": seconds,
        "returncode": proc.returncode,
        "error": stderr.strip().splitlines()[-1:] if proc.returncode else None,
        "experiments": end.get("experiments"),
        "best": end.get("best"),
        "cv": end.get("cv"),
        "first_submission_s": first.get("seconds"),
        "workspace": ws,
    }


def run_plain_lgbm(ws: Workspace) -> tuple[Path | None, float | None, float]:
    """Plain LightGBM on medalist's setup and folds; its own ledger, so the run's ledger is untouched."""
    t0 = time.monotonic()
    data = load_task_data(ws)
    folds = load_or_make_folds(ws, data)
    base = Workspace.create(ws.root, "baseline")
    ledger = Ledger(base.ledger)
    rec = run_experiment(base, data, folds, ExperimentSpec("lgbm", PLAIN_LGBM, "base", note="plain"), ledger)
    if rec.status != "done":
        return None, None, time.monotonic() - t0
    base.maps.mkdir(parents=True, exist_ok=True)
    (base.maps / "sample_submission.csv").write_bytes((ws.maps / "sample_submission.csv").read_bytes())
    path = write_candidate(base, data, Candidate("plain_lgbm", rec.cv_score, Path(rec.test_path)))
    return path, rec.cv_score, time.monotonic() - t0


def fmt(x, digits=5):
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def print_table(console: Console, rows: list[dict], budget: float) -> None:
    """The benchmark table and its summary line (above median, medals, within budget + 10%)."""
    table = Table(title=f"medalist run --time-budget {budget:g} vs plain 5-fold LightGBM")
    for c in (
        "competition",
        "metric",
        "score",
        "pct",
        "medal",
        "seconds",
        "exps",
        "first sub s",
        "plain lgbm",
        "plain pct",
    ):
        table.add_column(c, justify="left" if c in ("competition", "metric", "medal") else "right")
    for r in rows:
        g = r["grade"] or {}
        b = (r["baseline"] or {}).get("grade") or {}
        medal = next(
            (k.split("_")[0] for k in ("gold_medal", "silver_medal", "bronze_medal") if g.get(k)), "-"
        )
        table.add_row(
            r["competition"],
            g.get("metric", "-"),
            fmt(g.get("score")),
            fmt(g.get("percentile"), 1),
            medal,
            f"{r['seconds']:.0f}",
            fmt(r.get("experiments")),
            fmt(r.get("first_submission_s"), 1),
            fmt(b.get("score")),
            fmt(b.get("percentile"), 1),
        )
    console.print(table)
    graded = [r["grade"] for r in rows if r["grade"] and r["grade"].get("percentile") is not None]
    above = sum(1 for g in graded if g.get("above_median"))
    medals = sum(1 for g in graded if g.get("any_medal"))
    within = sum(1 for r in rows if r["seconds"] <= budget * 1.1)
    console.print(
        f"above median {above}/{len(graded)}; medals {medals}/{len(graded)}; "
        f"within budget+10% {within}/{len(rows)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("suite", type=Path)
    ap.add_argument("--time-budget", type=float, default=300.0)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medalist-bench"))
    ap.add_argument("--only", default="")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--extra", default="", help="extra flags for `medalist run`, space separated")
    ap.add_argument(
        "--table",
        type=Path,
        nargs="+",
        default=None,
        help="print the table of saved JSON reports (later wins)",
    )
    args = ap.parse_args()
    console = Console(width=max(Console().width, 140))
    if args.table:
        merged = {r["competition"]: r for path in args.table for r in json.loads(path.read_text())}
        print_table(console, [merged[k] for k in sorted(merged)], args.time_budget)
        return
    slugs = sorted(p.name for p in args.suite.iterdir() if (p / "public").is_dir())
    if args.only:
        wanted = args.only.split(",")
        slugs = [s for s in slugs if s in wanted]
    # resumable: competitions already in the JSON report are kept and not run again
    rows = json.loads(args.json.read_text()) if args.json and args.json.exists() else []
    done = {r["competition"] for r in rows}
    for slug in slugs:
        if slug in done:
            console.print(f"[dim]{slug}: already in {args.json}[/]")
            continue
        comp = args.suite / slug
        console.print(f"[bold]{slug}[/] …")
        m = run_medalist(comp, args.workdir, args.time_budget, args.extra.split())
        ws = m.pop("workspace")
        grade = grade_submission(ws.submission_csv, comp) if ws.submission_csv.exists() else None
        try:
            base_path, base_cv, base_s = run_plain_lgbm(ws)
            base_grade = grade_submission(base_path, comp) if base_path else None
        except Exception as e:  # the baseline is a reference; report, don't stop the bench
            console.print(f"  baseline failed: {e}")
            base_grade, base_cv, base_s = None, None, 0.0
        row = {
            "competition": slug,
            **m,
            "grade": grade.to_dict() if grade else None,
            "baseline": {
                "cv": base_cv,
                "seconds": base_s,
                "grade": base_grade.to_dict() if base_grade else None,
            },
        }
        rows.append(row)
        console.print(
            f"  score {fmt(grade.score if grade else None)} pct {fmt(grade.percentile if grade else None, 1)}"
            f" | plain lgbm {fmt(base_grade.score if base_grade else None)}  ({m['seconds']:.0f}s)"
        )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2, default=str))
    print_table(console, rows, args.time_budget)


if __name__ == "__main__":
    main()
