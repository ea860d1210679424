"""Benchmark: long-term memory, leave-one-out over the shared competitions (expert policy).

Phase 1 ("empty" arm): every competition runs with a fresh memory store of its own, W/stores/<slug>.sqlite,
into which the run writes back what it learnt. Phase 2 ("memory" arm): every competition c runs again with a
memory merged from the other competitions' stores (W/loo/<c>.sqlite, c itself left out), handed to the run
as a throwaway copy so that its write-back does not change the leave-one-out store. Both arms use the same
seed, hence the same folds (checked: the table says where they differ).

Per run: the best CV reached at 30 s and at the end (done ledger rows by their updated_at, counted from the
launch of `medalist run`), the chosen submission's test score and leaderboard percentile, the seconds and the
run's memory event. Every finished run appends one JSON line to W/results.jsonl; a rerun skips those and
redoes any other run from scratch (its workspace and store are deleted first).

    python bench/memory_loo.py ../shared/competitions --workdir /tmp/loo [--time-budget 120] [--only a,b]
    python bench/memory_loo.py ../shared/competitions --workdir /tmp/loo --table   # reprint the table
    python bench/memory_loo.py ... --cli "python stub.py"   # another program in place of `medalist` (a stub)
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from medalist.bench.grade import grade_submission
from medalist.errors import MedalistError
from medalist.memory.store import MemoryStore
from medalist.memory.writeback import remember_workspace
from medalist.metrics import get_metric
from medalist.setup.spec import TaskSpec
from medalist.solve.ledger import SUBMISSION_KINDS
from medalist.workspace import Workspace, append_jsonl, read_jsonl

ARMS = ("empty", "memory")
EARLY_SECONDS = 30.0
TARGET_BETTER = (9, 13)  # the target: better final CV on at least 9 of 13
# args (after the program), timeout in seconds, file for its output -> return code
Launcher = Callable[[list[str], float, Path], int]


@dataclass(frozen=True)
class Layout:
    """Where the bench keeps things under its workdir."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results.jsonl"

    @property
    def stores(self) -> Path:
        return self.root / "stores"

    def workdir(self, arm: str) -> Path:
        return self.root / arm

    def store(self, slug: str) -> Path:
        """The empty arm's store of ``slug``: what its run wrote back."""
        return self.stores / f"{slug}.sqlite"

    def loo_store(self, slug: str) -> Path:
        """The memory of every other competition."""
        return self.root / "loo" / f"{slug}.sqlite"

    def scratch_store(self, slug: str) -> Path:
        """The copy of the leave-one-out store that the memory arm's run reads and writes."""
        return self.root / "scratch" / f"{slug}.sqlite"

    def log(self, arm: str, slug: str) -> Path:
        return self.root / "logs" / f"{arm}-{slug}.log"


# ---------------------------------------------------------------------------- running
def cli_launcher(program: Sequence[str]) -> Launcher:
    """Runs ``program`` (e.g. python -m medalist.cli) with the args in its own process group, its output
    to the log file; far over its timeout the whole group is killed."""

    def launch(args: list[str], timeout: float, log_path: Path) -> int:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # each run starts with a cold cache (sentence embeddings): the memory arm runs a competition after
        # the empty arm did, and must not find its texts already encoded
        cache = log_path.with_suffix(".cache")
        shutil.rmtree(cache, ignore_errors=True)
        env = {**os.environ, "MEDALIST_CACHE_DIR": str(cache)}
        with log_path.open("w", encoding="utf-8") as log:
            proc = subprocess.Popen(
                [*program, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
                env=env,
            )
            try:
                return proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:  # stop it and its workers; the bench goes on
                os.killpg(proc.pid, signal.SIGKILL)
                log.write(f"\nkilled by the bench after {timeout:.0f}s\n")
                return proc.wait()

    return launch


def remove_store(path: Path) -> None:
    """Delete a SQLite store with its WAL and shared-memory files."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite store (through SQLite's backup, so WAL content is included)."""
    remove_store(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def build_loo_store(stores: Path, slug: str, target: Path) -> list[str]:
    """Merge every store in ``stores`` but ``slug``'s into a new store at ``target`` (through
    export_jsonl / import_jsonl); anything about ``slug`` another store holds is forgotten too. Returns the
    competitions merged."""
    remove_store(target)
    merged = MemoryStore(target)
    sources = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(stores.glob("*.sqlite")):
            if path.stem == slug:
                continue
            export = Path(tmp) / f"{path.stem}.jsonl"
            MemoryStore(path).export_jsonl(export)
            merged.import_jsonl(export)
            sources.append(path.stem)
    merged.forget(slug)
    return sources


def run_arm(
    comp: Path, layout: Layout, arm: str, budget: float, memory: Path, launch: Launcher, early: float
) -> dict[str, Any]:
    """One `medalist run` of ``comp`` with the memory at ``memory``, from scratch, and what it reached."""
    workdir = layout.workdir(arm).resolve()
    ws = Workspace(workdir / comp.name)
    shutil.rmtree(ws.root, ignore_errors=True)
    args = ["run", str((comp / "public").resolve()), "--workdir", str(workdir)]
    args += ["--time-budget", f"{budget:g}", "--memory", str(memory.resolve())]
    started, t0 = time.time(), time.monotonic()
    returncode = launch(args, budget * 2 + 120, layout.log(arm, comp.name))
    seconds = time.monotonic() - t0
    return {
        "competition": comp.name,
        "arm": arm,
        "time_budget": budget,
        "seconds": round(seconds, 1),
        "returncode": returncode,
        "error": _last_line(layout.log(arm, comp.name)) if returncode else None,
        **measure(ws, comp, started, early),
    }


def run_empty(comp: Path, layout: Layout, budget: float, launch: Launcher, early: float) -> dict[str, Any]:
    """Phase 1: a fresh store; the bench writes the workspace back too (idempotent: adds only what the
    run's own write-back missed, e.g. after a crash), so phase 2 has every run to learn from."""
    store_path = layout.store(comp.name)
    remove_store(store_path)
    row = run_arm(comp, layout, "empty", budget, store_path, launch, early)
    ws = Workspace(layout.workdir("empty").resolve() / comp.name)
    added = remember_workspace(MemoryStore(store_path), ws.root) if ws.task_json.is_file() else 0
    return {**row, "writeback_added_by_bench": added}


def run_memory(comp: Path, layout: Layout, budget: float, launch: Launcher, early: float) -> dict[str, Any]:
    """Phase 2: the memory of the other competitions, as a throwaway copy."""
    loo = layout.loo_store(comp.name)
    sources = build_loo_store(layout.stores, comp.name, loo)
    scratch = layout.scratch_store(comp.name)
    copy_store(loo, scratch)
    row = run_arm(comp, layout, "memory", budget, scratch, launch, early)
    return {**row, "memory_sources": sources}


# ---------------------------------------------------------------------------- measuring
def measure(ws: Workspace, comp: Path, started: float, early: float) -> dict[str, Any]:
    """What one run reached: best CV by ``early`` seconds after ``started`` and at the end, the chosen
    submission's grade, the run's memory event and a digest of its folds."""
    metric, lower = task_direction(ws)
    scores = done_scores(ws.ledger)
    log = read_jsonl(ws.logs / "run.jsonl")
    end = next((r for r in reversed(log) if r.get("event") == "end"), {})
    event = next((r for r in reversed(log) if r.get("event") == "memory"), None)
    grade = grade_submission(ws.submission_csv, comp)
    return {
        "metric": metric,
        "lower_is_better": lower,
        "cv_early": best_cv(scores, lower, started + early),
        "cv_final": best_cv(scores, lower),
        "chosen_cv": end.get("cv"),
        "experiments": end.get("experiments"),
        "early_seconds": early,
        "memory_event": {k: v for k, v in event.items() if k != "event"} if event is not None else None,
        "folds": hashlib.sha1(ws.folds.read_bytes()).hexdigest()[:12] if ws.folds.is_file() else None,
        "score": grade.score,
        "percentile": grade.percentile,
        "grade": grade.to_dict(),
    }


def task_direction(ws: Workspace) -> tuple[str | None, bool | None]:
    """(metric, lower is better) from task.json's metric (its own flag when medalist does not know it)."""
    if not ws.task_json.is_file():
        return None, None
    spec = TaskSpec.load(ws.task_json)
    try:
        return spec.metric, get_metric(spec.metric).lower_is_better
    except MedalistError:
        return spec.metric, spec.lower_is_better


def done_scores(ledger: Path) -> list[tuple[float, float]]:
    """(cv, updated_at) of the ledger's done rows that could be submitted, with a finite CV."""
    if not ledger.is_file():
        return []
    kinds = ",".join("?" * len(SUBMISSION_KINDS))
    sql = f"SELECT cv_score, updated_at FROM experiments WHERE status = 'done' AND kind IN ({kinds})"
    with closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as con:
        rows = con.execute(sql, SUBMISSION_KINDS).fetchall()
    return [(float(cv), float(at)) for cv, at in rows if cv is not None and math.isfinite(cv)]


def best_cv(
    scores: list[tuple[float, float]], lower: bool | None, until: float | None = None
) -> float | None:
    """The best CV among rows done by ``until`` (a wall-clock time; None: all of them)."""
    reached = [cv for cv, at in scores if until is None or at <= until]
    if not reached or lower is None:
        return None
    return min(reached) if lower else max(reached)


def _last_line(path: Path) -> str | None:
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else None


# ---------------------------------------------------------------------------- comparing
def paired(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """competition -> arm -> its row (a later row of the same run wins), competitions sorted."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["competition"], {})[row["arm"]] = row
    return dict(sorted(out.items()))


def compare(empty: float | None, memory: float | None, lower: bool | None) -> str | None:
    """'better', 'worse' or 'tie' for memory against empty; a missing score loses; None when both are
    missing or the direction is unknown."""
    if lower is None or (empty is None and memory is None):
        return None
    if empty is None or memory is None:
        return "better" if empty is None else "worse"
    if math.isclose(empty, memory, rel_tol=1e-12, abs_tol=1e-12):
        return "tie"
    return "better" if (memory < empty) == lower else "worse"


def _direction(arms: dict[str, dict[str, Any]]) -> bool | None:
    return next((r["lower_is_better"] for r in arms.values() if r.get("lower_is_better") is not None), None)


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """The summary lines: final CV better on N of M, mean percentiles, and where memory hurt."""
    pairs = {c: arms for c, arms in paired(rows).items() if set(ARMS) <= set(arms)}
    if not pairs:
        return ["no competition has run in both arms yet"]
    verdicts = {
        c: compare(a["empty"]["cv_final"], a["memory"]["cv_final"], _direction(a)) for c, a in pairs.items()
    }
    better = sum(v == "better" for v in verdicts.values())
    # a competition with a leaderboard counts (an arm without a valid submission scores 0 there); one
    # without a leaderboard (no percentile in either arm) is left out of the mean
    ranked = [a for a in pairs.values() if any(a[arm].get("percentile") is not None for arm in ARMS)]
    pct = {arm: [a[arm].get("percentile") or 0.0 for a in ranked] for arm in ARMS}
    mean = {arm: sum(v) / max(1, len(v)) for arm, v in pct.items()}
    need, of = TARGET_BETTER
    met = better * of >= need * len(pairs) and mean["memory"] > mean["empty"]
    lines = [
        f"final CV better with memory on {better} of {len(pairs)} "
        f"(worse {sum(v == 'worse' for v in verdicts.values())}, tie {sum(v == 'tie' for v in verdicts.values())}); "
        f"mean percentile empty {mean['empty']:.1f} vs memory {mean['memory']:.1f} over {len(ranked)} with a leaderboard "
        f"(no valid submission counts 0); "
        f"target ({need} of {of} better and a higher mean percentile): {'met' if met else 'not met'}"
    ]
    cv_hurt = [
        f"{c} ({fmt(a['empty']['cv_final'])} → {fmt(a['memory']['cv_final'])})"
        for c, a in pairs.items()
        if verdicts[c] == "worse"
    ]
    pct_hurt = [
        f"{c} ({fmt(a['empty'].get('percentile'), 1)} → {fmt(a['memory'].get('percentile'), 1)})"
        for c, a in pairs.items()
        if (a["memory"].get("percentile") or 0.0) < (a["empty"].get("percentile") or 0.0)
    ]
    if cv_hurt or pct_hurt:
        lines.append(
            "memory hurt: final CV worse on "
            + (", ".join(cv_hurt) or "none")
            + "; percentile lower on "
            + (", ".join(pct_hurt) or "none")
        )
    else:
        lines.append("memory hurt nowhere: no final CV worse, no percentile lower")
    folds = [c for c, a in pairs.items() if a["empty"].get("folds") != a["memory"].get("folds")]
    if folds:
        lines.append(f"folds differ between the arms on {', '.join(folds)}: their CVs are not comparable")
    failed = [f"{r['competition']} ({r['arm']})" for r in rows if r.get("score") is None]
    if failed:
        lines.append(f"no valid submission from {', '.join(failed)}")
    silent = [c for c, a in pairs.items() if a["memory"].get("memory_event") is None]
    if silent:
        lines.append(f"no memory event in the memory run of {', '.join(silent)}")
    return lines


def fmt(x: Any, digits: int = 5) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _event_text(event: dict[str, Any] | None) -> str:
    if event is None:
        return "-"
    return " ".join(f"{k}={v}" for k, v in event.items() if isinstance(v, int | float)) or "seen"


def print_table(console: Console, rows: list[dict[str, Any]]) -> None:
    """One row per competition: both arms side by side, then the summary lines."""
    budgets = sorted({r["time_budget"] for r in rows})
    early = next((r["early_seconds"] for r in rows if r.get("early_seconds")), EARLY_SECONDS)
    table = Table(title=f"medalist run --time-budget {'/'.join(f'{b:g}' for b in budgets)}: empty → memory")
    columns = ("competition", "metric", f"CV@{early:g}s", "final CV", "better?", "pct", "seconds", "memory")
    for column in columns:
        table.add_column(
            column, justify="left" if column in ("competition", "metric", "better?") else "right"
        )
    for slug, arms in paired(rows).items():
        empty, memory = arms.get("empty", {}), arms.get("memory", {})
        lower = _direction(arms)
        metric = next((r["metric"] for r in arms.values() if r.get("metric")), "-")
        arrow = "" if lower is None else " ↓" if lower else " ↑"
        verdict = compare(empty.get("cv_final"), memory.get("cv_final"), lower) if empty and memory else None
        table.add_row(
            slug,
            metric + arrow,
            f"{fmt(empty.get('cv_early'))} → {fmt(memory.get('cv_early'))}",
            f"{fmt(empty.get('cv_final'))} → {fmt(memory.get('cv_final'))}",
            {"better": "yes", "worse": "[red]no[/]", "tie": "tie"}.get(verdict or "", "-"),
            f"{fmt(empty.get('percentile'), 1)} → {fmt(memory.get('percentile'), 1)}",
            f"{fmt(empty.get('seconds'), 0)} / {fmt(memory.get('seconds'), 0)}",
            _event_text(memory.get("memory_event")),
        )
    console.print(table)
    for line in summary(rows):
        console.print(line)


# ---------------------------------------------------------------------------- the bench
def run_bench(
    suite: Path,
    layout: Layout,
    slugs: list[str],
    budget: float,
    launch: Launcher,
    console: Console,
    early: float = EARLY_SECONDS,
) -> list[dict[str, Any]]:
    """Phase 1 then phase 2 over ``slugs``, skipping the runs results.jsonl already holds."""
    rows = read_jsonl(layout.results)
    other = sorted({r["time_budget"] for r in rows} - {budget})
    if other:
        raise SystemExit(f"{layout.results} holds runs at --time-budget {other}; use another --workdir")
    finished = {(r["competition"], r["arm"]) for r in rows}
    for arm in ARMS:
        for slug in slugs:
            if (slug, arm) in finished:
                console.print(f"[dim]{slug} ({arm}): already in {layout.results}[/]")
                continue
            console.print(f"[bold]{slug}[/] ({arm}) …")
            run = run_empty if arm == "empty" else run_memory
            row = run(suite / slug, layout, budget, launch, early)
            if arm == "memory":
                console.print(f"  memory from {len(row['memory_sources'])} competitions")
            append_jsonl(layout.results, row)
            rows.append(row)
            console.print(
                f"  final CV {fmt(row['cv_final'])} pct {fmt(row['percentile'], 1)} ({row['seconds']:.0f}s)"
                + (f" error: {row['error']}" if row["error"] else "")
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("suite", type=Path, help="competitions in the shared layout (../shared/competitions)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medalist-loo"))
    ap.add_argument("--time-budget", type=float, default=120.0)
    ap.add_argument("--only", default="", help="competitions to run, comma separated (default: all)")
    ap.add_argument("--table", action="store_true", help="only reprint the table from results.jsonl")
    ap.add_argument(
        "--cli",
        default=f"{shlex.quote(sys.executable)} -m medalist.cli",
        help="the program that does `run` (default: this Python's medalist)",
    )
    args = ap.parse_args()
    console = Console(width=max(Console().width, 150))
    layout = Layout(args.workdir)
    if not args.table:
        slugs = sorted(p.name for p in args.suite.iterdir() if (p / "public").is_dir())
        if args.only:
            wanted = set(args.only.split(","))
            unknown = wanted - set(slugs)
            if unknown:
                raise SystemExit(f"not in {args.suite}: {', '.join(sorted(unknown))}")
            slugs = [s for s in slugs if s in wanted]
        launch = cli_launcher(shlex.split(args.cli))
        run_bench(args.suite, layout, slugs, args.time_budget, launch, console)
    print_table(console, read_jsonl(layout.results))


if __name__ == "__main__":
    main()
