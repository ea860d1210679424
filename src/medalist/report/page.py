"""``report.html``: one self-contained page per workspace (plotly.js inlined once, no network needed)."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template

from medalist.errors import InputError
from medalist.report.collect import GRADE_FILE, RunView, read_run
from medalist.report.diagnostics import oof_diagnostics
from medalist.report.experiments import ensembles, experiments, timeline
from medalist.report.plots import note
from medalist.report.sections import eda, grade, kaggle_submissions, llm_calls, setup_stages, task_card
from medalist.workspace import write_json_atomic, write_text_atomic

REPORT_FILE = "report.html"
FIGURE_MARK = '<div class="figure">'
log = logging.getLogger(__name__)

Section = Callable[[RunView], "str | None"]
SECTIONS: tuple[tuple[str, str, Section], ...] = (
    ("task", "Task", task_card),
    ("eda", "Data profile", eda),
    ("setup", "Setup stages", setup_stages),
    ("time", "Where the time went", timeline),
    ("experiments", "Experiments", experiments),
    ("ensembles", "Ensembles", ensembles),
    ("oof", "Chosen submission: out-of-fold diagnostics", oof_diagnostics),
    ("llm", "LLM calls", llm_calls),
    ("grade", "Grade", grade),
    ("kaggle", "Kaggle submissions", kaggle_submissions),
)


def write_report(
    ws_root: str | Path, competition: str | Path | None = None, out: str | Path | None = None
) -> Path:
    """Write ``<ws_root>/report.html`` (or ``out``) and return its path.

    ``competition``: the competition folder with answers; the submission is graded and the grade kept in
    ``grade.json`` beside the run. A section that cannot be drawn says why on the page instead of failing.
    """
    t0 = time.monotonic()
    root = Path(ws_root).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"no workspace at {root}")
    view = read_run(root)
    if competition is not None:
        view.grade = _grade(view, competition) or view.grade
    blocks, nav = [], []
    for anchor, title, build in SECTIONS:
        try:
            body = build(view)
        except Exception as e:  # a report never fails a run: the section says what went wrong
            log.warning("report section %s failed: %s: %s", anchor, type(e).__name__, e)
            body = note(f"This section could not be drawn ({type(e).__name__}: {e}).")
        if body:
            block, link = section(anchor, title, body)
            blocks.append(block)
            nav.append(link)
    return _write_page(view, blocks, nav, Path(out) if out else root / REPORT_FILE, t0)


def section(anchor: str, title: str, body: str) -> tuple[str, str]:
    """A page section's HTML and its nav link."""
    return (
        f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>',
        f'<a href="#{anchor}">{html.escape(title)}</a>',
    )


def _grade(view: RunView, competition: str | Path) -> dict | None:
    from medalist.bench.grade import grade_submission

    try:
        report = grade_submission(view.ws.submission_csv, competition).to_dict()
    except Exception as e:  # no answers, a broken folder: the page goes without a grade
        log.warning("report: no grade (%s: %s)", type(e).__name__, e)
        return None
    write_json_atomic(view.ws.root / GRADE_FILE, report)
    return report


def _write_page(view: RunView, blocks: list[str], nav: list[str], path: Path, t0: float) -> Path:
    task = view.task
    title = f"medalist report: {task.get('slug') or view.ws.root.name}"
    subtitle = f"{task.get('task_type', '?')} · {task.get('metric', '?')} · {view.ws.root}"
    return write_page(path, title, subtitle, blocks, nav, t0)


def write_page(path: Path, title: str, subtitle: str, blocks: list[str], nav: list[str], t0: float) -> Path:
    """Write one self-contained page (plotly.js inlined once) from its section blocks and nav links."""
    from plotly.offline import get_plotlyjs

    sections = "\n".join(blocks)
    template = Template(resources.files("medalist.report").joinpath("page.html").read_text(encoding="utf-8"))
    page = template.substitute(
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        nav="".join(nav),
        sections=sections,
        n_figures=sections.count(FIGURE_MARK),
        plotlyjs=get_plotlyjs().replace("</script", "<\\/script"),
        seconds=f"{time.monotonic() - t0:.1f}",
        written=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    write_text_atomic(path, page)
    path.chmod(0o644)  # a page to share: readable by others, unlike the private temp file it came from
    return path
