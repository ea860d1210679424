"""``bench.html``: the suite page of `medalist bench`. One row per competition with links to each run's
report.html, the bench table's summary columns and a percentile chart; self-contained like report.html."""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import plotly.graph_objects as go

from medalist.report.page import section, write_page
from medalist.report.plots import figure, note, table

SUITE_PAGE = "bench.html"
RUNS_COLUMN = "runs"


@dataclass
class SuiteEntry:
    """One competition of the suite: its table cells (in column order), its runs and their percentiles."""

    competition: str
    cells: list[str]
    runs: list[tuple[str, Path | None]] = field(default_factory=list)  # label, the run's report.html
    percentiles: list[float] = field(default_factory=list)  # one per graded run with a leaderboard


def write_suite_page(
    path: str | Path, title: str, columns: Sequence[str], entries: Sequence[SuiteEntry], lines: Sequence[str]
) -> Path:
    """Write the suite page to ``path``; links to the runs' reports are relative to its folder."""
    t0 = time.monotonic()
    path = Path(path)
    rows = [[*e.cells, _run_links(e.runs, path.parent)] for e in entries]
    summary = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    parts = [
        section("summary", "Summary", summary or note("no run yet")),
        section("percentiles", "Leaderboard percentile", _percentile_chart(entries)),
        section("competitions", "Competitions", table(rows, [*columns, RUNS_COLUMN], markup=(RUNS_COLUMN,))),
    ]
    subtitle = f"{len(entries)} competitions · {sum(len(e.runs) for e in entries)} runs"
    return write_page(path, title, subtitle, [b for b, _ in parts], [link for _, link in parts], t0)


def _run_links(runs: Sequence[tuple[str, Path | None]], base: Path) -> str:
    links = []
    for label, report in runs:
        if report is not None and report.is_file():
            href = quote(Path(os.path.relpath(report, base)).as_posix())
            links.append(f'<a href="{html.escape(href)}">{html.escape(label)}</a>')
        else:
            links.append(f'<span class="note">{html.escape(label)} (no report)</span>')
    return " · ".join(links)


def _percentile_chart(entries: Sequence[SuiteEntry]) -> str:
    """Mean percentile per competition (bars, best first) with each run's percentile as a dot."""
    ranked = sorted((e for e in entries if e.percentiles), key=lambda e: -float(np.mean(e.percentiles)))
    if not ranked:
        return note("no graded run on a competition with a leaderboard")
    names = [e.competition for e in ranked]
    fig = go.Figure(
        [
            go.Bar(name="mean", x=names, y=[float(np.mean(e.percentiles)) for e in ranked]),
            go.Scatter(
                name="run",
                mode="markers",
                x=[e.competition for e in ranked for _ in e.percentiles],
                y=[p for e in ranked for p in e.percentiles],
                marker={"color": "#222", "size": 7},
            ),
        ]
    )
    fig.update_yaxes(title="beats % of teams", range=[0, 100])
    return figure(fig, "Leaderboard percentile per competition (invalid submissions count as 0)", 380)
