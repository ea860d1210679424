"""The suite runner: medalist on many competitions (and seeds), each graded, summarised in one table.

Each competition folder of the suite (shared or mle-bench layout) is run from its public folder only, in
``<workdir>/<slug>/seed<k>/`` (so seeds never share a workspace), then its submission is graded. The JSON
report is rewritten after every run, so a long suite leaves a readable partial report when stopped.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from medalist import pipeline
from medalist.bench.elo import LeaderboardRound, rate_against_leaderboards
from medalist.bench.grade import Competition, grade_submission, load_competition
from medalist.bench.passk import pass_at_k_table, setup_passed, stage_outcomes, stage_success_rates
from medalist.errors import InputError, MedalistError
from medalist.workspace import read_jsonl, write_json_atomic

PASS_KS = (1, 3, 10)
log = logging.getLogger(__name__)
_MODALITIES = ("image", "tabular", "text")


@dataclass
class SuiteRow:
    """One run (competition x seed) and its grade."""

    competition: str
    seed: int
    modality: str
    metric: str = ""
    seconds: float = 0.0
    error: str | None = None
    submission: str | None = None
    workspace: str | None = None  # the run's workspace (its report.html is linked from bench.html)
    grade: dict[str, Any] | None = None  # GradeReport.to_dict()
    setup_passed: bool | None = None
    stages: dict[str, bool] = field(default_factory=dict)  # stage -> passed (last attempt ok)
    stage_records: list[dict] = field(default_factory=list)
    n_experiments: int = 0
    best_cv: float | None = None
    best_name: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


@dataclass
class SuiteReport:
    """Everything a suite run produced; ``summary``, ``setup`` and ``elo`` are derived from ``rows``."""

    suite_dir: str
    workdir: str
    time_budget: float
    llm: str
    seeds: int
    setup_only: bool
    rows: list[SuiteRow] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)
    elo: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SuiteReport:
        rows = [SuiteRow(**r) for r in data.get("rows", [])]
        return cls(**{**data, "rows": rows})

    @classmethod
    def load(cls, path: str | Path) -> SuiteReport:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# ---------------------------------------------------------------- discovery
def discover(suite_dir: str | Path) -> dict[str, Path]:
    """Competition folders of a suite: slug -> folder (shared or mle-bench layout), sorted by slug."""
    root = Path(suite_dir).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"no suite folder at {root}")
    found = {
        p.name: p
        for p in sorted(root.iterdir())
        if p.is_dir() and ((p / "public").is_dir() or (p / "prepared" / "public").is_dir())
    }
    if not found:
        raise InputError(f"{root} holds no competition folders (each needs public/ or prepared/public/)")
    return found


def public_dir(comp_dir: Path) -> Path:
    return comp_dir / "public" if (comp_dir / "public").is_dir() else comp_dir / "prepared" / "public"


def modality_of(comp_dir: Path, workspace: Path | None = None) -> str:
    """Input modalities joined by '+': from the run's task.json, else grading.json's "modality"."""
    for path, key in (
        (workspace / "task.json" if workspace else None, "modalities"),
        (comp_dir / "grading.json", "modality"),
    ):
        if path is None or not path.is_file():
            continue
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get(key)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        text = " ".join(value) if isinstance(value, list) else str(value or "")
        found = [m for m in _MODALITIES if m in text.lower()]
        if found:
            return "+".join(found)
    return "unknown"


# ---------------------------------------------------------------- running
def run_suite(
    suite_dir: str | Path,
    workdir: str | Path,
    time_budget: float,
    only: Sequence[str] | None = None,
    seeds: int = 1,
    llm: str = "none",
    setup_only: bool = False,
    report_path: str | Path | None = None,
    progress: Callable[[SuiteRow], None] | None = None,
    max_llm_tokens: int | None = None,
    max_cost: float | None = None,
) -> SuiteReport:
    """Run, grade and summarise every competition of ``suite_dir`` (or those named in ``only``).

    The report goes to ``report_path`` (default ``<workdir>/bench_report.json``), rewritten after each
    run; ``progress`` is called with each finished row."""
    comps = discover(suite_dir)
    if only:
        unknown = [s for s in only if s not in comps]
        if unknown:
            raise InputError(f"not in the suite: {', '.join(unknown)} (known: {', '.join(comps)})")
        comps = {s: comps[s] for s in only}
    if seeds < 1:
        raise InputError("--seeds must be at least 1")
    if time_budget <= 0:
        raise InputError("--time-budget must be positive (seconds per competition and seed)")
    work = Path(workdir).expanduser().resolve()
    out = Path(report_path) if report_path else work / "bench_report.json"
    report = SuiteReport(
        str(Path(suite_dir).resolve()), str(work), float(time_budget), llm, seeds, setup_only
    )
    loaded: dict[str, Competition | None] = {}
    for slug, comp_dir in comps.items():
        for seed in range(seeds):
            row = _run_one(
                slug,
                comp_dir,
                work / slug / f"seed{seed}",
                time_budget,
                llm,
                seed,
                setup_only,
                loaded,
                max_llm_tokens,
                max_cost,
            )
            report.rows.append(row)
            if progress is not None:
                progress(row)
            finalize(report, loaded)
            write_json_atomic(out, report.to_dict())
            _write_page_quietly(report)
    return report


def _write_page_quietly(report: SuiteReport) -> None:
    try:
        write_bench_page(report)
    except Exception as e:  # the page is for people: it never stops the suite
        log.warning("no bench.html: %s: %s", type(e).__name__, e)


def _competition(slug: str, comp_dir: Path, loaded: dict[str, Competition | None]) -> Competition | None:
    if slug not in loaded:
        try:
            loaded[slug] = load_competition(comp_dir)
        except MedalistError:
            loaded[slug] = None  # no answers: the run is reported without a grade
    return loaded[slug]


def _run_one(
    slug: str,
    comp_dir: Path,
    run_dir: Path,
    time_budget: float,
    llm: str,
    seed: int,
    setup_only: bool,
    loaded: dict[str, Competition | None],
    max_llm_tokens: int | None,
    max_cost: float | None,
) -> SuiteRow:
    start = time.monotonic()
    row = SuiteRow(competition=slug, seed=seed, modality=modality_of(comp_dir))
    try:
        result = pipeline.run_competition(
            public_dir(comp_dir),
            run_dir,
            time_budget=time_budget,
            llm=llm,
            seed=seed,
            setup_only=setup_only,
            max_llm_tokens=max_llm_tokens,
            max_cost=max_cost,
        )
    except Exception as exc:  # one broken competition must not stop the suite
        row.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        row.seconds = round(time.monotonic() - start, 2)
        result = None
    if result is not None:
        row.seconds = round(result.seconds or (time.monotonic() - start), 2)
        row.error = result.error
        row.submission = str(result.submission) if result.submission else None
        row.workspace = str(result.workspace)
        row.n_experiments, row.best_cv, row.best_name = result.n_experiments, result.best_cv, result.best_name
        row.prompt_tokens, row.completion_tokens, row.cost = (
            result.prompt_tokens,
            result.completion_tokens,
            result.cost,
        )
        records = list(result.stage_records) or read_jsonl(Path(result.workspace) / "logs" / "stages.jsonl")
        row.stage_records = records
        row.modality = modality_of(comp_dir, Path(result.workspace))
    row.stages = stage_outcomes(row.stage_records)
    row.setup_passed = setup_passed(row.stage_records) and row.error is None
    comp = _competition(slug, comp_dir, loaded)
    if comp is not None:
        row.metric = comp.metric
        if not setup_only:
            sub = Path(row.submission) if row.submission else run_dir / "no-submission.csv"
            row.grade = grade_submission(sub, comp).to_dict()
    return row


# ---------------------------------------------------------------- aggregation
def _mean_sem(values: Sequence[float]) -> dict[str, Any]:
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return {"mean": None, "sem": None, "n": 0}
    sem = statistics.stdev(vals) / np.sqrt(len(vals)) if len(vals) > 1 else None
    return {"mean": float(np.mean(vals)), "sem": None if sem is None else float(sem), "n": len(vals)}


def _pct(flags: list[bool]) -> float | None:
    return 100.0 * float(np.mean(flags)) if flags else None


def summarize(rows: Sequence[SuiteRow]) -> dict[str, Any]:
    """Per seed: valid %, any-medal %, above-median %, median percentile (invalid = 0th); then mean ± SEM
    across seeds. Competitions with an empty leaderboard count for validity only."""
    graded = [r for r in rows if r.grade is not None]
    per_seed: dict[int, dict[str, float | None]] = {}
    for seed in sorted({r.seed for r in graded}):
        grades = [r.grade for r in graded if r.seed == seed]
        ranked = [g for g in grades if g["n_teams"] > 0]
        pcts = [g["percentile"] if g["percentile"] is not None else 0.0 for g in ranked]
        per_seed[seed] = {
            "valid_pct": _pct([g["valid_submission"] for g in grades]),
            "any_medal_pct": _pct([bool(g["any_medal"]) for g in ranked]),
            "gold_pct": _pct([bool(g["gold_medal"]) for g in ranked]),
            "above_median_pct": _pct([bool(g["above_median"]) for g in ranked]),
            "median_percentile": float(np.median(pcts)) if pcts else None,
        }
    keys = ("valid_pct", "any_medal_pct", "gold_pct", "above_median_pct", "median_percentile")
    out: dict[str, Any] = {k: _mean_sem([s[k] for s in per_seed.values()]) for k in keys}
    out["per_seed"] = {str(k): v for k, v in per_seed.items()}
    out["runs"] = len(rows)
    out["errors"] = sum(r.error is not None for r in rows)
    out["competitions"] = len({r.competition for r in rows})
    return out


def setup_summary(rows: Sequence[SuiteRow]) -> dict[str, Any]:
    """Per-stage success rates (overall and per modality) and Pass@k per modality over seeds."""
    with_records = [r for r in rows if r.stage_records]
    if not with_records:
        return {}
    successes: dict[str, list[bool]] = {}
    groups: dict[str, str] = {}
    for r in rows:
        successes.setdefault(r.competition, []).append(bool(r.setup_passed))
        groups[r.competition] = r.modality
    by_modality: dict[str, list[dict]] = {}
    for modality in sorted({r.modality for r in with_records}):
        runs = [r.stage_records for r in with_records if r.modality == modality]
        by_modality[modality] = [s.to_dict() for s in stage_success_rates(runs)]
    return {
        "stages": [s.to_dict() for s in stage_success_rates([r.stage_records for r in with_records])],
        "stages_by_modality": by_modality,
        "pass_at_k": pass_at_k_table(successes, groups, PASS_KS),
    }


def elo_summary(rows: Sequence[SuiteRow], loaded: dict[str, Competition | None]) -> dict[str, Any]:
    """Elo-MMR of medalist per seed against the leaderboards' teams, and mean ± SEM across seeds."""
    per_seed = {}
    for seed in sorted({r.seed for r in rows if r.grade is not None}):
        rounds = []
        for r in rows:
            comp = loaded.get(r.competition)
            if r.seed != seed or r.grade is None or comp is None or comp.n_teams == 0:
                continue
            rounds.append(
                LeaderboardRound(
                    r.competition,
                    comp.leaderboard_scores,
                    comp.lower_is_better,
                    r.grade["score"],
                    comp.leaderboard_teams,
                )
            )
        if rounds:
            per_seed[str(seed)] = rate_against_leaderboards(rounds).to_dict()
    if not per_seed:
        return {}
    reports = list(per_seed.values())
    return {
        "mu": _mean_sem([r["mu"] for r in reports]),
        "rating": _mean_sem([r["rating"] for r in reports]),
        "percentile": _mean_sem([r["percentile"] for r in reports]),
        "percentile_basis": reports[0]["percentile_basis"],
        "assumptions": reports[0]["assumptions"],
        "per_seed": per_seed,
    }


def finalize(report: SuiteReport, loaded: dict[str, Competition | None] | None = None) -> SuiteReport:
    """Recompute the report's summary, setup and Elo sections from its rows."""
    if loaded is None:
        loaded = {}
        for r in report.rows:
            if r.competition not in loaded:
                comp_dir = Path(report.suite_dir) / r.competition
                _competition(r.competition, comp_dir, loaded)
    report.summary = summarize(report.rows) if not report.setup_only else {"runs": len(report.rows)}
    report.setup = setup_summary(report.rows)
    report.elo = elo_summary(report.rows, loaded) if not report.setup_only else {}
    return report


# ---------------------------------------------------------------- display
def _fmt(ms: dict[str, Any] | None, digits: int = 1, unit: str = "") -> str:
    if not ms or ms.get("mean") is None:
        return "-"
    text = f"{ms['mean']:.{digits}f}{unit}"
    return text + (f" ± {ms['sem']:.{digits}f}{unit}" if ms.get("sem") is not None else "")


def _num(x: float | None, digits: int = 5) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


_LEFT_COLUMNS = ("competition", "modality", "metric", "medal", "failing stages")


def _by_competition(report: SuiteReport) -> dict[str, list[SuiteRow]]:
    by_comp: dict[str, list[SuiteRow]] = {}
    for r in report.rows:
        by_comp.setdefault(r.competition, []).append(r)
    return by_comp


def table_cells(report: SuiteReport) -> tuple[str, list[str], dict[str, list[str]]]:
    """The bench table as text: its title, columns and one row per competition (seeds aggregated)."""
    by_comp = _by_competition(report)
    cells: dict[str, list[str]] = {}
    if report.setup_only:
        title = f"medalist setup — {len(by_comp)} competitions x {report.seeds} seeds"
        columns = [
            "competition",
            "modality",
            "passed",
            *(f"pass@{k}" for k in PASS_KS),
            "failing stages",
            "s",
        ]
        for slug, rows in by_comp.items():
            ok = [bool(r.setup_passed) for r in rows]
            single = pass_at_k_table({slug: ok}, {slug: rows[0].modality}, PASS_KS)["all"]
            fails = Counter(s for r in rows for s, passed in r.stages.items() if not passed)
            cells[slug] = [
                slug,
                rows[0].modality,
                f"{sum(ok)}/{len(ok)}",
                *(_num(single.get(f"pass@{k}"), 3) for k in PASS_KS),
                ", ".join(s for s, _ in fails.most_common(2))
                or ("error" if any(r.error for r in rows) else ""),
                f"{np.mean([r.seconds for r in rows]):.0f}",
            ]
        return title, columns, cells
    title = f"medalist bench — {len(by_comp)} competitions x {report.seeds} seeds"
    columns = ["competition", "modality", "metric", "score", "valid", "medal", ">median", "percentile", "s"]
    for slug, rows in by_comp.items():
        grades = [r.grade for r in rows if r.grade is not None]
        scores = [g["score"] for g in grades if g["score"] is not None]
        ms = _mean_sem(scores)
        score = (
            "-" if ms["mean"] is None else f"{ms['mean']:.5g}" + (f" ± {ms['sem']:.2g}" if ms["sem"] else "")
        )
        medals = Counter(m for g in grades for m in ("gold", "silver", "bronze") if g.get(f"{m}_medal"))
        ranked = [g for g in grades if g["n_teams"] > 0]
        medal = ", ".join(f"{m} {medals[m]}/{len(grades)}" if len(grades) > 1 else m for m in medals) or (
            "-" if ranked else "n/a"
        )
        pcts = [g["percentile"] or 0.0 for g in ranked]
        cells[slug] = [
            slug,
            rows[0].modality,
            grades[0]["metric"] if grades else rows[0].metric,
            score,
            f"{sum(g['valid_submission'] for g in grades)}/{len(rows)}",
            medal,
            f"{sum(bool(g['above_median']) for g in ranked)}/{len(ranked)}" if ranked else "n/a",
            f"{np.mean(pcts):.1f}" if pcts else "n/a",
            f"{np.mean([r.seconds for r in rows]):.0f}",
        ]
    return title, columns, cells


def format_table(report: SuiteReport) -> Table:
    """One row per competition (seeds aggregated)."""
    title, columns, cells = table_cells(report)
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in _LEFT_COLUMNS else "right")
    for row in cells.values():
        table.add_row(*row)
    return table


def write_bench_page(report: SuiteReport) -> Path:
    """``<workdir>/bench.html``: the bench table with links to each run's report.html and a percentile chart."""
    from medalist.report import REPORT_FILE
    from medalist.report.suite_page import SUITE_PAGE, SuiteEntry, write_suite_page

    title, columns, cells = table_cells(report)
    entries = []
    for slug, rows in _by_competition(report).items():
        runs = [(f"seed {r.seed}", Path(r.workspace) / REPORT_FILE if r.workspace else None) for r in rows]
        pcts = [r.grade["percentile"] or 0.0 for r in rows if r.grade and r.grade["n_teams"] > 0]
        entries.append(SuiteEntry(slug, cells[slug], runs, pcts))
    page = Path(report.workdir) / SUITE_PAGE
    return write_suite_page(page, title, columns, entries, summary_lines(report))


def summary_lines(report: SuiteReport) -> list[str]:
    """Short lines under the table: rates with mean ± SEM across seeds, Elo-MMR, setup Pass@k."""
    lines = []
    s = report.summary
    if not report.setup_only and s:
        lines.append(
            f"valid {_fmt(s.get('valid_pct'), unit='%')} · any medal {_fmt(s.get('any_medal_pct'), unit='%')} · "
            f"above median {_fmt(s.get('above_median_pct'), unit='%')} · "
            f"median percentile {_fmt(s.get('median_percentile'))}"
            + (f"  (mean ± SEM over {report.seeds} seeds)" if report.seeds > 1 else "")
        )
        if s.get("errors"):
            lines.append(f"{s['errors']} of {s['runs']} runs ended with an error (see the JSON report)")
    if report.elo:
        e = report.elo
        lines.append(
            f"Elo-MMR: mu {_fmt(e['mu'], 0)}, rating mu-2σ {_fmt(e['rating'], 0)}, "
            f"percentile {_fmt(e['percentile'])} ({e['percentile_basis']})"
        )
    setup = report.setup
    if setup:
        for modality, row in setup.get("pass_at_k", {}).items():
            ks = " · ".join(f"pass@{k} {_num(row.get(f'pass@{k}'), 3)}" for k in PASS_KS)
            lines.append(f"setup {modality} ({row['tasks']} tasks): {ks}")
        stages = setup.get("stages", [])
        if stages:
            lines.append(
                "stage success: " + ", ".join(f"{st['stage']} {100 * st['rate']:.0f}%" for st in stages)
            )
    return lines
