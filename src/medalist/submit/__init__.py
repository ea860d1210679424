"""Submit: decode an experiment's test predictions, format them like the sample, validate, write.

A submission is only ever written after validation, atomically; ``submission.csv`` is replaced only by
a candidate with a better CV score (design §1, issue 3.8), with one exception (:func:`replaces`): between
a single experiment and an ensemble, the single one must win by more than the noise of their per-fold
difference.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medalist.errors import CheckError, MedalistError
from medalist.metrics import Metric, get_metric
from medalist.setup.data import TaskData
from medalist.setup.formatter import format_submission, write_submission
from medalist.setup.spec import TargetTransform, TaskSpec
from medalist.workspace import Workspace, write_json_atomic

SAMPLE_COPY = "sample_submission.csv"


def read_sample(ws: Workspace, spec: TaskSpec) -> pd.DataFrame:
    """The sample submission, with its id column read as text (leading zeros and formats kept)."""
    path = ws.maps / SAMPLE_COPY
    if not path.exists():
        raise MedalistError(f"{path} is missing; rerun `medalist setup`")
    return pd.read_csv(
        path,
        dtype={spec.id_column: str},
        keep_default_na=False,
        na_values={c: ["", "NA", "NaN", "nan"] for c in spec.target_columns},
    )


@dataclass
class Candidate:
    """A scored set of test predictions that can become a submission."""

    name: str
    cv_score: float
    test_path: Path
    transform: dict | None = None
    kind: str = "model"  # the ledger kind: model | script | ensemble | ...
    fold_scores: list[float] = field(default_factory=list)

    def entry(self, file: Path | None = None) -> dict:
        """What ``chosen.json`` holds of this candidate (and :func:`replaces` reads of it)."""
        out = {
            "name": self.name,
            "cv_score": self.cv_score,
            "kind": self.kind,
            "fold_scores": self.fold_scores,
        }
        return out if file is None else {**out, "file": str(file)}


def _fold_noise(a: list[float] | None, b: list[float] | None) -> float | None:
    """Standard error of the mean per-fold difference of two candidates scored on the same folds."""
    if not a or not b or len(a) != len(b) or len(a) < 2:
        return None
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if not np.all(np.isfinite(d)):
        return None
    return float(np.std(d, ddof=1) / np.sqrt(len(d)))


def replaces(metric: Metric, cand: Candidate, current: dict | None) -> bool:
    """Whether ``cand`` should take the place of the current choice (``chosen.json``'s content).

    By CV, except between a single experiment and an ensemble: the single one keeps or takes the place
    only when it is better by more than one standard error of the per-fold difference. The best of many
    experiments is picked for its CV, which flatters it; an ensemble's CV is nested and its errors average.
    """
    if not current or current.get("cv_score") is None or cand.cv_score is None:
        return True
    better = metric.better(cand.cv_score, current["cv_score"])
    cand_ens, current_ens = cand.kind == "ensemble", current.get("kind") == "ensemble"
    noise = _fold_noise(cand.fold_scores, current.get("fold_scores"))
    if cand_ens == current_ens or noise is None:
        return better
    gap = abs(cand.cv_score - current["cv_score"])
    return (better or gap <= noise) if cand_ens else (better and gap > noise)


def choose(metric: Metric, candidates: list[Candidate]) -> Candidate | None:
    """The candidate :func:`promote` would end on when offered all of them, best CV first."""
    ranked = sorted(
        (c for c in candidates if c.cv_score is not None and np.isfinite(c.cv_score)),
        key=lambda c: metric.sort_key(c.cv_score),
    )
    best: Candidate | None = None
    for cand in ranked:
        if replaces(metric, cand, None if best is None else best.entry()):
            best = cand
    return best


def build_submission(
    ws: Workspace, data: TaskData, test_pred: np.ndarray, transform: TargetTransform | None = None
) -> pd.DataFrame:
    """Model-space test predictions -> a validated frame shaped like the sample submission."""
    spec = data.spec
    t = transform or data.transform
    sample = read_sample(ws, spec)
    decoded = t.decode(test_pred)
    formatter = spec.submission.get("formatter") or {"method": "fill_sample"}
    errors = []
    for fmt in (formatter, formatter.get("alternative")):
        if not fmt:
            continue
        try:
            frame = format_submission(decoded, data.test_ids, sample, spec.id_column, fmt)
            from medalist.setup.formatter import validate_submission

            validate_submission(frame, sample, spec.id_column, spec.target_columns, t)
            return frame
        except CheckError as e:
            errors.append(f"{fmt.get('method')}: {e}")
    raise CheckError("cannot format a valid submission: " + "; ".join(errors))


def write_candidate(ws: Workspace, data: TaskData, cand: Candidate) -> Path:
    """Write submissions/<name>.csv (validated) and return its path."""
    pred = np.load(cand.test_path)
    transform = TargetTransform.from_dict(cand.transform) if cand.transform else None
    frame = build_submission(ws, data, pred, transform)
    sample = read_sample(ws, data.spec)
    path = ws.submissions / f"{cand.name}.csv"
    return write_submission(
        frame, path, sample, data.spec.id_column, data.spec.target_columns, transform or data.transform
    )


def promote(ws: Workspace, data: TaskData, cand: Candidate, force: bool = False) -> bool:
    """Make ``cand`` the chosen submission.csv when it :func:`replaces` the current one (or ``force``)."""
    metric = get_metric(data.spec.metric)
    chosen = ws.root / "chosen.json"
    current = json.loads(chosen.read_text()) if chosen.exists() else None
    if not force and not replaces(metric, cand, current):
        return False
    path = write_candidate(ws, data, cand)
    tmp = ws.submission_csv.with_suffix(".csv.tmp")
    shutil.copyfile(path, tmp)
    tmp.replace(ws.submission_csv)
    write_json_atomic(chosen, cand.entry(path))
    return True


def chosen(ws: Workspace) -> dict | None:
    """What submission.csv currently holds: {name, cv_score, file}."""
    path = ws.root / "chosen.json"
    return json.loads(path.read_text()) if path.exists() else None
