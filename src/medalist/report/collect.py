"""Read what a run left in its workspace, tolerantly: every artifact is optional."""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medalist.setup.eda import EDA_FILE
from medalist.submit.kaggle import KAGGLE_LOG
from medalist.workspace import Workspace, read_jsonl

log = logging.getLogger(__name__)

GRADE_FILE = "grade.json"  # a GradeReport.to_dict() kept beside the run, where one was graded


@dataclass
class RunView:
    """Everything the report shows, read once from a workspace."""

    ws: Workspace
    task: dict[str, Any] = field(default_factory=dict)
    eda: dict[str, Any] | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    run_events: list[dict[str, Any]] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)  # ledger rows, oldest first
    chosen: dict[str, Any] | None = None
    llm_calls: list[dict[str, Any]] = field(default_factory=list)
    grade: dict[str, Any] | None = None
    kaggle: list[dict[str, Any]] = field(default_factory=list)  # uploads to Kaggle and their scores

    @property
    def lower_is_better(self) -> bool:
        return bool(self.task.get("lower_is_better"))

    def done(self) -> list[dict[str, Any]]:
        """Finished rows with a finite CV score."""
        return [r for r in self.experiments if r["status"] == "done" and _finite(r.get("cv_score"))]


def read_run(ws_root: str | Path) -> RunView:
    """Read a workspace's task, EDA, logs, ledger, chosen submission, grade and Kaggle uploads (each where
    present)."""
    ws = Workspace(Path(ws_root).expanduser().resolve())
    return RunView(
        ws=ws,
        task=_read_json(ws.task_json) or {},
        eda=_read_json(ws.root / EDA_FILE),
        stages=read_jsonl(ws.logs / "stages.jsonl"),
        run_events=read_jsonl(ws.logs / "run.jsonl"),
        experiments=read_ledger(ws.ledger),
        chosen=_read_json(ws.root / "chosen.json"),
        llm_calls=read_jsonl(ws.logs / "llm_calls.jsonl"),
        grade=_read_json(ws.root / GRADE_FILE),
        kaggle=read_jsonl(ws.submissions / KAGGLE_LOG),
    )


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """Every ledger row as a dict (params and fold_scores parsed), read-only; [] when there is no ledger."""
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10.0)) as con:
            con.row_factory = sqlite3.Row
            rows = [dict(r) for r in con.execute("SELECT * FROM experiments ORDER BY created_at, id")]
    except sqlite3.DatabaseError as e:  # a damaged or foreign file: the report goes on without experiments
        log.warning("report: cannot read the ledger %s (%s)", path, e)
        return []
    for row in rows:
        for key, empty in (("params", {}), ("fold_scores", [])):
            try:
                row[key] = json.loads(row.get(key) or "null") or empty
            except json.JSONDecodeError:
                row[key] = empty
        row.setdefault("origin", "")
    return rows


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and x == x and abs(x) != float("inf")
