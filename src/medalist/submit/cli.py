"""The Kaggle part of `medalist submit --kaggle` and `medalist run --submit`: one line for each outcome,
exit code 2 with ``error: ...`` (no traceback) when Kaggle refuses, a warning when the score is late."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from typer.exceptions import Exit

from medalist.submit import kaggle
from medalist.submit.kaggle import KaggleError

_err = Console(stderr=True, highlight=False)
_out = Console(highlight=False)


def kaggle_api_or_exit() -> Any:
    """The official Kaggle client, or exit 2 with one line saying why it cannot be had."""
    try:
        return kaggle.official_api()  # looked up at call time: tests stand a scripted API in
    except KaggleError as e:
        _fail(str(e))


def upload_and_report(ws_root: Path, message: str | None, wait: float, api: Any) -> None:
    """Upload the workspace's submission.csv, print its public score and refresh report.html to show it."""
    from medalist.report import write_report

    try:
        with _err.status(f"uploading to Kaggle and waiting up to {wait:.0f}s for the public score…"):
            sub = kaggle.submit_to_kaggle(ws_root, message, wait, api=api)
    except KaggleError as e:
        _fail(str(e))
    try:
        write_report(ws_root)
    except Exception as e:  # the report is for people: it never fails a submission
        _err.print(f"warning: no report.html: {type(e).__name__}: {e}", markup=False, soft_wrap=True)
    if sub.status == "complete":
        _out.print(
            f"Kaggle public score for {sub.competition}: {sub.public_score}", markup=False, soft_wrap=True
        )
        return
    _err.print(
        f"warning: no public score from Kaggle after {wait:.0f}s; {sub.file} was submitted to "
        f"{sub.competition} (see https://www.kaggle.com/c/{sub.competition}/submissions)",
        markup=False,
        soft_wrap=True,
    )


def _fail(message: str) -> NoReturn:
    _err.print(f"error: {' '.join(message.split())}", markup=False, soft_wrap=True)
    raise Exit(2)
