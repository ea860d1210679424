"""`medalist grade` and `medalist bench`: plain typer commands on ``app``, mounted by the main CLI.

Bad input prints one line ``error: ...`` on stderr and exits with code 2 (no traceback).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from medalist.errors import MedalistError
from medalist.metrics import Direction

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
_err = Console(stderr=True, highlight=False)
_out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _fail(message: str) -> NoReturn:
    _err.print(f"error: {' '.join(message.split())}", markup=False, soft_wrap=True)
    raise SystemExit(2)


@app.command()
def grade(
    submission: Annotated[Path, typer.Argument(help="The submission CSV to grade.")],
    competition: Annotated[
        Path, typer.Option("--competition", "-c", help="Competition folder (shared or mle-bench layout).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate and score a submission, and place it on the competition's leaderboard."""
    from medalist.bench.grade import grade_submission

    if not submission.is_file():
        _fail(f"no submission file at {submission}")
    try:
        report = grade_submission(submission, competition)
    except MedalistError as exc:
        _fail(str(exc))
    if as_json:
        _out.print_json(json.dumps(report.to_dict()))
        return
    direction = Direction(report.is_lower_better).word
    table = Table(
        title=f"{report.competition_id}: {report.metric} ({direction} is better)", show_header=False
    )
    if report.valid_submission:
        table.add_row("score", f"{report.score}")
    else:
        table.add_row("score", "invalid submission")
        table.add_row("reason", report.reason or "")
    if report.n_teams:
        medal = next((m for m in ("gold", "silver", "bronze") if getattr(report, f"{m}_medal")), "none")
        table.add_row("medal", medal)
        table.add_row(
            "thresholds",
            f"gold {report.gold_threshold} · silver {report.silver_threshold} · bronze {report.bronze_threshold}"
            f" · median {report.median_threshold}",
        )
        table.add_row("above median", "yes" if report.above_median else "no")
        if report.percentile is not None:
            table.add_row("percentile", f"beats {report.percentile:.2f}% of {report.n_teams} teams")
    else:
        table.add_row("leaderboard", "none (no medals or percentile)")
    _out.print(table)


@app.command()
def bench(
    suite_dir: Annotated[
        Path, typer.Argument(help="Folder of competition folders (e.g. ../shared/competitions).")
    ],
    workdir: Annotated[Path, typer.Option("--workdir", "-w", help="Where run workspaces and the report go.")],
    time_budget: Annotated[
        float | None,
        typer.Option("--time-budget", "-t", help="Seconds per competition and seed (default: 300)."),
    ] = None,
    only: Annotated[str | None, typer.Option("--only", help="Comma-separated competition slugs.")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Runs per competition (for mean ± SEM, Pass@k).")] = 1,
    llm: Annotated[
        str | None,
        typer.Option("--llm", help="none | local | an OpenAI-compatible base URL (default: none)."),
    ] = None,
    setup_only: Annotated[
        bool, typer.Option("--setup-only", help="Run Phase I only; report Pass@k.")
    ] = False,
    report: Annotated[Path | None, typer.Option("--report", help="JSON report path.")] = None,
    max_llm_tokens: Annotated[
        int | None, typer.Option("--max-llm-tokens", help="LLM token budget per run.")
    ] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", help="LLM dollar budget per run.")] = None,
) -> None:
    """Run medalist on every competition of a suite, grade each run, and print one table.

    Each run builds its settings (and so its policies, with ``pipeline.build_policies``) from the settings
    file, the environment and these flags."""
    from medalist.bench.suite import format_table, run_suite, summary_lines
    from medalist.config import load_settings
    from medalist.report.suite_page import SUITE_PAGE

    if seeds < 1:
        _fail("--seeds must be at least 1")
    flags = {"time_budget": time_budget, "llm": llm, "max_llm_tokens": max_llm_tokens, "max_cost": max_cost}
    try:
        settings = load_settings(flags)
    except MedalistError as exc:
        _fail(str(exc))
    names = [s.strip() for s in only.split(",") if s.strip()] if only else None

    def progress(row) -> None:
        g = row.grade or {}
        what = (
            f"score {g.get('score')}"
            if g.get("valid_submission")
            else (g.get("reason") or row.error or "no grade")
        )
        _err.print(f"{row.competition} seed {row.seed}: {what} ({row.seconds:.0f}s)", markup=False)

    try:
        result = run_suite(
            suite_dir,
            workdir,
            settings.time_budget,
            only=names,
            seeds=seeds,
            llm=settings.llm_choice,
            setup_only=setup_only,
            report_path=report,
            progress=progress,
            max_llm_tokens=settings.llm_config.max_llm_tokens,
            max_cost=settings.llm_config.max_cost,
        )
    except MedalistError as exc:
        _fail(str(exc))
    _out.print(format_table(result))
    for line in summary_lines(result):
        _out.print(line, markup=False)
    _out.print(f"report: {report or Path(result.workdir) / 'bench_report.json'}", markup=False)
    page = Path(result.workdir) / SUITE_PAGE
    if page.is_file():
        _out.print(f"page: {page}", markup=False)
    sys.stdout.flush()
