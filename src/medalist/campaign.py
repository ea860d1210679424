"""A campaign: every competition of a pool through the pipeline, in curriculum, random or given order, with
long-term memory written as it goes (the ordering and the resumable log are :mod:`medalist.memory.campaign`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from medalist.errors import MedalistError
from medalist.pipeline import run_competition

if TYPE_CHECKING:
    from medalist.config import Settings


def pool_folders(pool_dir: Path) -> list[Path]:
    """The competitions of a pool: ``<pool>/<slug>/public`` folders (the shared layout, answers beside
    them), else every sub-folder that holds files."""
    subdirs = sorted(p for p in Path(pool_dir).iterdir() if p.is_dir())
    public = [p / "public" for p in subdirs if (p / "public").is_dir()]
    folders = public or [p for p in subdirs if any(p.iterdir())]
    if not folders:
        raise MedalistError(f"{pool_dir} holds no competition folder")
    return folders


def campaign_runner(
    settings: Settings, workdir: Path, *, setup_only: bool = False
) -> Callable[[Path], dict[str, Any]]:
    """``run_one(folder)`` for :func:`medalist.memory.campaign.run_campaign`: runs the competition, grades it
    when answers are beside it (``<slug>/private/answers.csv``), and reports the setup's Pass@1 (the share
    of stages the first policy passed at its first attempt) and tokens. Memory is written by the run
    itself; the campaign's own write-back then adds nothing."""

    def run_one(folder: Path) -> dict[str, Any]:
        result = run_competition(folder, workdir, settings, setup_only=setup_only)
        first = [
            r for r in result.stage_records if r.get("attempt") == 1 and not r["stage"].startswith("meta:")
        ]
        row: dict[str, Any] = {
            "ok": result.error is None,
            "workspace": str(result.workspace),
            "tokens": result.prompt_tokens + result.completion_tokens,
            "pass1": round(sum(1 for r in first if r["ok"]) / len(first), 4) if first else None,
            "error": result.error,
        }
        comp_root = folder.parent if folder.name == "public" else folder
        if result.submission and (comp_root / "private" / "answers.csv").is_file():
            from medalist.bench.grade import grade_submission

            grade = grade_submission(result.submission, comp_root)
            row.update(score=grade.score, percentile=grade.percentile)
        return row

    return run_one


def run_pool(
    pool_dir: Path,
    workdir: Path,
    settings: Settings,
    *,
    order: str = "curriculum",
    setup_only: bool = False,
    warn: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every competition of ``pool_dir`` (see :func:`pool_folders`) in ``order``; one row per task."""
    from medalist.memory.campaign import ORDERS, run_campaign
    from medalist.memory.session import RunMemory

    if order not in ORDERS:
        raise MedalistError(f"--order must be one of {', '.join(ORDERS)}, not {order!r}")
    folders = pool_folders(pool_dir)
    memory = RunMemory.open(settings.memory_path, warn=warn)
    runner = campaign_runner(settings, workdir, setup_only=setup_only)
    store = memory.store if memory is not None else None
    return run_campaign(folders, workdir, runner, store, order, seed=settings.seed)


def campaign_table(rows: list[dict[str, Any]], order: str) -> Table:
    """One row per task: order, setup, Pass@1, tokens, score, percentile, seconds."""
    table = Table(title=f"campaign over {len(rows)} competitions ({order} order)")
    for col in ("#", "competition", "setup", "pass@1", "tokens", "score", "pct", "s"):
        table.add_column(col, justify="left" if col == "competition" else "right")
    for r in rows:
        table.add_row(
            str(r.get("order")),
            r["task"],
            "ok" if r["ok"] else f"[red]failed[/] {(r.get('error') or '')[:40]}",
            _fmt(r.get("pass1"), 2),
            str(r.get("tokens", "")),
            _fmt(r.get("score"), 5),
            _fmt(r.get("percentile"), 1),
            f"{r.get('seconds', 0):.0f}",
        )
    return table


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"
