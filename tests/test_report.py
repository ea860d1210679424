"""report.html from a workspace laid out as a run leaves it (real competition maps, a ledger with models, a
failure and an ensemble, logs): self-contained, every section drawn, and never failing on damaged parts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest
from plotly.offline import get_plotlyjs

from medalist.report import REPORT_FILE, write_report
from medalist.report import page as report_page
from medalist.setup.eda import write_eda
from medalist.solve.ledger import Ledger
from medalist.solve.types import ExperimentRecord
from medalist.workspace import append_jsonl, write_json_atomic, write_npy_atomic
from tests.solve_helpers import S3E9, TITANIC, competition_workspace


def _add(ledger: Ledger, ws, name: str, oof: np.ndarray | None, cv: float | None, **fields) -> None:
    model, version = name.rsplit("_", 1)
    rec = ledger.begin(ExperimentRecord(name, model, version, **fields))
    if oof is None:
        ledger.fail(rec, "time limit: stopped after fold 2/5")
        return
    write_npy_atomic(ws.oof_path(model, version), oof)
    rec.cv_score, rec.fold_scores, rec.seconds = cv, [cv - 0.01, cv + 0.01], 1.5
    rec.oof_path = str(ws.oof_path(model, version))
    ledger.finish(rec)


def _finished_run(tmp_path, competitions, comp=TITANIC):
    """A workspace with what a run writes: maps, eda.json, stage and LLM logs, a ledger and chosen.json."""
    ws, data = competition_workspace(tmp_path, competitions, comp)
    write_eda(ws, data)
    for stage, ok in (("summary", True), ("metric", False), ("metric", True)):
        ws.log_event(
            "stages",
            {
                "stage": stage,
                "attempt": 1,
                "ok": ok,
                "error": None if ok else "unknown metric",
                "seconds": 0.2,
                "policy": "llm",
                "prompt_tokens": 100,
                "completion_tokens": 20,
            },
        )
    for stage in ("summary", "metric"):
        append_jsonl(
            ws.logs / "llm_calls.jsonl",
            {
                "stage": stage,
                "model": "m",
                "prompt_tokens": 100,
                "completion_tokens": 20,
                "seconds": 0.5,
                "cost": 0.001,
            },
        )
    ws.log_event("run", {"event": "start", "time_budget": 60.0, "done": 0})
    rng = np.random.default_rng(0)
    y = data.y[:, 0]
    noisy = lambda s: np.clip(y * s + rng.normal(0.5 - s / 2, 0.2, len(y)), 0, 1)[:, None]  # noqa: E731
    ledger = Ledger(ws.ledger)
    _add(ledger, ws, "lgbm_aaaa1111", noisy(0.5), 0.80, features="base", origin="baseline")
    _add(ledger, ws, "catboost_bbbb2222", noisy(0.6), 0.82, features="count", origin="baseline")
    _add(ledger, ws, "rf_cccc3333", None, None, origin="baseline")
    _add(ledger, ws, "lgbm_dddd4444", noisy(0.55), 0.81, features="base", origin="trial")
    members = ["catboost_bbbb2222", "lgbm_aaaa1111"]
    params = {
        "method": "hill",
        "members": members,
        "weights": [0.7, 0.3],
        "member_scores": {"catboost_bbbb2222": 0.82, "lgbm_aaaa1111": 0.80},
    }
    _add(
        ledger, ws, "ens_hill_eeee5555", noisy(0.65), 0.83, kind="ensemble", origin="ensemble", params=params
    )
    write_json_atomic(
        ws.root / "chosen.json", {"name": "ens_hill_eeee5555", "cv_score": 0.83, "kind": "ensemble"}
    )
    return ws, data


def _sections(page: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)">', page)


def test_the_page_is_self_contained_with_plotly_inlined_once(tmp_path, competitions):
    ws, _ = _finished_run(tmp_path, competitions)
    t0 = time.monotonic()
    path = write_report(ws.root)
    assert time.monotonic() - t0 < 15
    assert path == ws.root / REPORT_FILE
    page = path.read_text(encoding="utf-8")
    bundle = get_plotlyjs()
    assert page.count(bundle[:200]) == 1  # plotly.js once, not per figure
    rest = page.replace(bundle, "")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)\s*=\s*["']?(https?:)?//""", rest)
    assert _sections(page) == ["task", "eda", "setup", "time", "experiments", "ensembles", "oof", "llm"]
    n_figures = rest.count('<div class="figure">')
    assert f'data-figures="{n_figures}"' in page and n_figures >= 12
    assert rest.count("Plotly.newPlot(") == n_figures
    assert len(page) < len(bundle) + 1_000_000  # the figures add little to plotly.js itself


def test_sections_show_what_the_run_did(tmp_path, competitions):
    ws, _ = _finished_run(tmp_path, competitions)
    page = write_report(ws.root).read_text(encoding="utf-8")
    assert "ens_hill_eeee5555 ★" in page  # the chosen one is marked on the leaderboard
    assert "time limit: stopped after fold 2/5" in page  # the failure and its reason
    assert "unknown metric" in page  # the setup stage's error
    assert "ROC (AUC" in page and "Confusion matrix" in page  # binary OOF diagnostics
    assert "Ensemble weights" in page
    assert "what tells test rows apart" in page  # the drift drivers


def test_regression_gets_residuals(tmp_path, competitions):
    ws, data = competition_workspace(tmp_path, competitions, S3E9)
    y = data.y
    ledger = Ledger(ws.ledger)
    _add(
        ledger,
        ws,
        "lgbm_ffff6666",
        y + np.random.default_rng(1).normal(0, 3, y.shape),
        3.0,
        origin="baseline",
    )
    write_json_atomic(ws.root / "chosen.json", {"name": "lgbm_ffff6666", "cv_score": 3.0, "kind": "model"})
    page = write_report(ws.root).read_text(encoding="utf-8")
    assert "Fit and residuals" in page and "RMSE (target units)" in page
    assert "eda" not in _sections(page)  # no eda.json: no section


def test_damaged_parts_never_fail_the_report(tmp_path, competitions, monkeypatch):
    ws, _ = _finished_run(tmp_path, competitions)
    ws.ledger.write_bytes(b"not a database" * 100)
    (ws.root / "eda.json").write_text("{broken")

    def broken(view):
        raise ValueError("boom")

    monkeypatch.setattr(
        report_page, "SECTIONS", (*report_page.SECTIONS[:2], ("setup", "Setup stages", broken))
    )
    page = write_report(ws.root).read_text(encoding="utf-8")
    assert _sections(page) == ["task", "setup"]
    assert "could not be drawn (ValueError: boom)" in page


def test_an_empty_folder_still_gets_a_page(tmp_path):
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert _sections(page) == ["task"]


@pytest.mark.shared
def test_cli_writes_the_report_and_grades_with_the_competition(tmp_path, competitions):
    ws, _ = _finished_run(tmp_path, competitions)
    (ws.root / "submission.csv").write_text(
        (competitions / "titanic" / "public" / "gender_submission.csv").read_text()
    )
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "medalist.cli",
            "report",
            str(ws.root),
            "--competition",
            str(competitions / "titanic"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    grade = json.loads((ws.root / "grade.json").read_text())
    assert grade["valid_submission"] and grade["score"] == pytest.approx(0.76555, abs=1e-4)
    assert "grade" in _sections((ws.root / REPORT_FILE).read_text(encoding="utf-8"))
