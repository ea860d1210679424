"""bench.html, the suite page: written by the suite runner (with test_grade's stand-in pipeline, which also
writes each run's report.html as the real pipeline does), one row per competition, links that resolve to
the runs' reports, the percentile chart, plotly.js inlined once."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from medalist import pipeline
from medalist.bench import cli as bench_cli
from medalist.bench.suite import run_suite
from medalist.report import write_report
from medalist.report.suite_page import SUITE_PAGE
from tests.test_grade import SUITE, _fake_pipeline


def _pipeline_with_reports(fake=None):
    fake = fake or _fake_pipeline()

    def run(*args, **kwargs):
        result = fake(*args, **kwargs)
        write_report(result.workspace)
        return result

    return run


def _links(page: str) -> list[str]:
    return re.findall(r'<a href="([^"#][^"]*)">', page)


def test_suite_page_links_every_run_and_draws_the_chart(competitions, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "run_competition", _pipeline_with_reports())
    work = tmp_path / "work"
    report = run_suite(competitions, work, 60, only=SUITE, seeds=2)
    page_path = work / SUITE_PAGE
    page = page_path.read_text(encoding="utf-8")
    links = _links(page)
    assert len(links) == len(report.rows) == 6
    for href in links:
        assert not Path(href).is_absolute()
        target = (page_path.parent / unquote(href)).resolve()
        assert target.is_file() and target.name == "report.html"
    assert {(work / unquote(h)).resolve() for h in links} == {
        (Path(r.workspace) / "report.html").resolve() for r in report.rows
    }
    for slug in SUITE:  # one row per competition, with the table's columns
        assert page.count(f">{slug}</td>") == 1
    assert "percentile" in page and "&gt;median</th>" in page and "valid 100.0%" in page
    assert 'data-figures="1"' in page and "Leaderboard percentile per competition" in page
    bundle = get_plotlyjs()
    assert page.count(bundle[:200]) == 1  # plotly.js inlined once
    rest = page.replace(bundle, "")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", rest)  # offline
    assert rest.count("Plotly.newPlot(") == 1


def test_a_run_without_report_is_marked_and_the_cli_names_the_page(competitions, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "run_competition", _fake_pipeline())  # writes no report.html
    args = ["bench", str(competitions), "--workdir", str(tmp_path / "w"), "-t", "5", "--only", "titanic"]
    res = CliRunner().invoke(bench_cli.app, args)
    assert res.exit_code == 0, res.output + res.stderr
    page_path = tmp_path / "w" / SUITE_PAGE
    assert f"page: {page_path}" in res.stdout
    page = page_path.read_text(encoding="utf-8")
    assert _links(page) == [] and "seed 0 (no report)" in page
