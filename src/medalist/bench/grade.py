"""Grade a submission file: validate it against the sample submission, score it with the registry metric,
and place the score on the competition's leaderboard.

Two competition layouts are read:

- shared (``../shared/competitions/<slug>``): ``public/``, ``private/answers.csv``, ``leaderboard.csv``
  (``rank,score``, best first) and ``grading.json`` (metric, direction, id and target columns, caveats);
- mle-bench's prepared layout: ``prepared/public/``, ``prepared/private/test.csv`` (the answers), a
  ``leaderboard.csv`` with a ``score`` column beside ``prepared/``, optionally ``config.yaml`` (answers,
  sample submission and grader name) and ``grading.json``.

Without ``grading.json`` the id column is the sample submission's first column, the target columns are
the other sample columns the answers hold, the metric comes from the grader name or the description, and
the direction is inferred from the leaderboard's order (else the metric's own).

Rows are matched by id; a repeated id is matched by order of appearance (its k-th occurrence in the
submission to its k-th occurrence in the answers). Ids are compared in a canonical text form (``1``,
``1.0`` and `` 1`` agree), labels too (``True``/``true``; ``1``/``1.0``). Ids of the sample that the
answers do not hold, or that ``grading.json`` lists in ``unscored_ids``, must be submitted but are not
scored. A submission that cannot be scored gives ``valid_submission: false``, ``score: null`` and a
one-line ``reason``; it never raises. A broken competition folder raises ``InputError``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medalist.bench.medals import infer_lower_is_better, place_on_leaderboard
from medalist.errors import InputError, MedalistError
from medalist.metrics import Metric, get_metric, recognize_metric

SCORE_DECIMALS = 5
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_MISSING = {"", "nan", "na", "n/a", "null", "none"}
_TEAM_COLUMNS = ("team", "team_id", "teamid", "teamId", "TeamId", "team_name", "teamName", "TeamName")


# ---------------------------------------------------------------- the competition
@dataclass(frozen=True)
class Competition:
    """What grading needs from a competition folder (either layout)."""

    slug: str
    root: Path
    layout: str  # "shared" | "mle-bench"
    public: Path
    sample_submission: Path
    answers: Path
    metric: str
    lower_is_better: bool
    direction_source: str  # "grading.json" | "leaderboard" | "metric"
    id_column: str
    target_columns: tuple[str, ...]
    unscored_ids: frozenset[str] = frozenset()
    modality: str | None = None
    leaderboard_scores: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)
    leaderboard_teams: tuple[str, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def n_teams(self) -> int:
        return len(self.leaderboard_scores)


def load_competition(path: str | Path) -> Competition:
    """Read a competition folder in the shared or the mle-bench layout; InputError when it is unusable."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"no competition folder at {root}")
    grading = _read_json(root / "grading.json")
    config = _read_config_yaml(root / "config.yaml")
    if (root / "public").is_dir() and (root / "private").is_dir():
        layout, public, private = "shared", root / "public", root / "private"
        answer_names = [grading.get("answers", ""), "answers.csv", "test.csv"]
    elif (root / "prepared" / "public").is_dir():
        layout, public, private = "mle-bench", root / "prepared" / "public", root / "prepared" / "private"
        answer_names = [
            grading.get("answers", ""),
            Path(config.get("answers", "")).name,
            "test.csv",
            "answers.csv",
        ]
    else:
        raise InputError(
            f"{root} is not a competition folder: expected public/ and private/answers.csv (shared layout) "
            "or prepared/public/ and prepared/private/test.csv (mle-bench layout)"
        )
    answers = next((private / n for n in answer_names if n and (private / n).is_file()), None)
    if answers is None:
        raise InputError(
            f"no answers file in {private} (expected {'answers.csv' if layout == 'shared' else 'test.csv'})"
        )
    sample = _find_sample(
        public, grading.get("sample_submission") or Path(config.get("sample_submission", "")).name
    )
    sample_cols = _read_header(sample)
    answer_cols = _read_header(answers)
    id_column = grading.get("id_column") or sample_cols[0]
    if id_column not in sample_cols or id_column not in answer_cols:
        raise InputError(f"id column {id_column!r} is not in both {sample.name} and {answers.name}")
    targets = grading.get("target_columns") or [c for c in sample_cols if c != id_column and c in answer_cols]
    if not targets:
        targets = [c for c in sample_cols if c != id_column]
    metric = _competition_metric(grading, config, public, root, len(targets))
    lb_scores, lb_teams = read_leaderboard(root / "leaderboard.csv")
    if "lower_is_better" in grading:
        lower, source = bool(grading["lower_is_better"]), "grading.json"
    else:
        inferred = infer_lower_is_better(lb_scores)
        lower, source = (
            (inferred, "leaderboard") if inferred is not None else (metric.lower_is_better, "metric")
        )
    return Competition(
        slug=str(grading.get("slug") or config.get("id") or root.name),
        root=root,
        layout=layout,
        public=public,
        sample_submission=sample,
        answers=answers,
        metric=metric.name,
        lower_is_better=lower,
        direction_source=source,
        id_column=id_column,
        target_columns=tuple(targets),
        unscored_ids=frozenset(canonical(str(v)) for v in grading.get("unscored_ids", [])),
        modality=grading.get("modality"),
        leaderboard_scores=lb_scores,
        leaderboard_teams=lb_teams,
    )


def read_leaderboard(path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Scores in leaderboard order (sorted by ``rank`` when it has one; rows without a score dropped) and
    team ids when a team column exists. A missing file is an empty leaderboard."""
    if not path.is_file():
        return np.zeros(0), None
    try:
        lb = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return np.zeros(0), None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read leaderboard {path}: {_one_line(exc)}") from exc
    if lb.empty:
        return np.zeros(0), None
    if "score" not in lb.columns:
        raise InputError(f"leaderboard {path} has no 'score' column (columns: {list(lb.columns)[:8]})")
    if "rank" in lb.columns:
        lb = lb.sort_values("rank", kind="stable")
    lb = lb.assign(score=pd.to_numeric(lb["score"], errors="coerce"))
    lb = lb[np.isfinite(lb["score"].to_numpy(dtype=float))]
    team_col = next((c for c in _TEAM_COLUMNS if c in lb.columns), None)
    teams = tuple(str(t) for t in lb[team_col].tolist()) if team_col else None
    return lb["score"].to_numpy(dtype=float), teams


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON: {_one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object")
    return data


def _read_config_yaml(path: Path) -> dict[str, str]:
    """The few fields of an mle-bench config.yaml grading needs (answers, sample_submission, grader name)."""
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    out: dict[str, str] = {}
    for key, pattern in (
        ("id", r"^id:\s*(\S+)"),
        ("answers", r"^\s+answers:\s*(\S+)"),
        ("sample_submission", r"^\s+sample_submission:\s*(\S+)"),
        ("grader", r"^grader:\s*\n\s+name:\s*(\S+)"),
    ):
        m = re.search(pattern, text, flags=re.MULTILINE)
        if m:
            out[key] = m.group(1).strip("'\"")
    return out


def _find_sample(public: Path, name: str) -> Path:
    if name and (public / name).is_file():
        return public / name
    csvs = sorted(p for p in public.iterdir() if p.suffix.lower() == ".csv")
    for pat in ("samplesubmission", "sample", "submission"):
        hits = [p for p in csvs if pat in re.sub(r"[-_ ]", "", p.name.lower())]
        if hits:
            return hits[0]
    raise InputError(f'no sample submission in {public}; name it in grading.json as "sample_submission"')


def _read_header(path: Path) -> list[str]:
    try:
        return list(pd.read_csv(path, nrows=0).columns)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {_one_line(exc)}") from exc


def _competition_metric(grading: dict, config: dict, public: Path, root: Path, n_targets: int) -> Metric:
    try:
        if grading.get("metric"):
            return get_metric(str(grading["metric"]))
        if config.get("grader"):
            name = config["grader"]
            try:
                return get_metric(name)
            except MedalistError:
                found = recognize_metric(re.sub(r"[-_]", " ", name), n_target_columns=n_targets)
                if found is not None:
                    return found
    except MedalistError as exc:
        raise InputError(f"{root}: {exc}") from exc
    for desc in (public / "description.md", root / "description.md"):
        if desc.is_file():
            found = recognize_metric(
                desc.read_text(encoding="utf-8", errors="replace"), n_target_columns=n_targets
            )
            if found is not None:
                return found
    raise InputError(f'cannot tell the metric of {root}: add grading.json with {{"metric": "<name>"}}')


# ---------------------------------------------------------------- the report
@dataclass
class GradeReport:
    """mle-bench's competition report fields, plus percentile, reason, n_teams, metric and the path."""

    competition_id: str
    score: float | None
    gold_threshold: float | None
    silver_threshold: float | None
    bronze_threshold: float | None
    median_threshold: float | None
    any_medal: bool | None
    gold_medal: bool | None
    silver_medal: bool | None
    bronze_medal: bool | None
    above_median: bool | None
    submission_exists: bool
    valid_submission: bool
    is_lower_better: bool
    percentile: float | None = None  # % of leaderboard teams strictly beaten
    reason: str | None = None  # why the submission is invalid (None when valid)
    n_teams: int = 0
    metric: str = ""
    submission_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grade_submission(submission: str | Path, competition: str | Path | Competition) -> GradeReport:
    """Validate, score and place ``submission`` for the competition folder ``competition`` (or a loaded one)."""
    comp = competition if isinstance(competition, Competition) else load_competition(competition)
    path = Path(submission).expanduser()
    score: float | None = None
    reason: str | None = None
    exists = path.is_file()
    if not exists:
        reason = f"no submission file at {path}"
    else:
        try:
            score = round(score_submission(path, comp), SCORE_DECIMALS)
        except InvalidSubmissionError as exc:
            reason = str(exc)
    place = place_on_leaderboard(score, comp.leaderboard_scores, comp.lower_is_better)
    th = place.thresholds
    return GradeReport(
        competition_id=comp.slug,
        score=score,
        gold_threshold=th.gold if th else None,
        silver_threshold=th.silver if th else None,
        bronze_threshold=th.bronze if th else None,
        median_threshold=th.median if th else None,
        any_medal=place.any_medal,
        gold_medal=place.gold_medal,
        silver_medal=place.silver_medal,
        bronze_medal=place.bronze_medal,
        above_median=place.above_median,
        submission_exists=exists,
        valid_submission=score is not None,
        is_lower_better=comp.lower_is_better,
        percentile=place.percentile,
        reason=reason,
        n_teams=place.n_teams,
        metric=comp.metric,
        submission_path=str(path),
    )


# ---------------------------------------------------------------- validation and scoring
class InvalidSubmissionError(MedalistError):
    """The submission cannot be scored; the message says why, on one line."""


def canonical(value: str) -> str:
    """Canonical text of an id or a label: numbers without a trailing .0, booleans capitalised, stripped."""
    s = str(value).strip()
    if _NUMBER.match(s):
        f = float(s)
        if f.is_integer() and abs(f) < 2**53:
            return str(int(f))
        return repr(f)
    low = s.lower()
    if low in ("true", "false"):
        return low.capitalize()
    return s


def _occurrence_keys(ids: list[str]) -> list[tuple[str, int]]:
    """(id, k) for the k-th occurrence of each id: repeated ids are matched by order of appearance."""
    seen: Counter[str] = Counter()
    out = []
    for i in ids:
        out.append((i, seen[i]))
        seen[i] += 1
    return out


def _read_strings(path: Path, what: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise InvalidSubmissionError(f"{what} is empty") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidSubmissionError(f"{what} is not a readable CSV: {_one_line(exc)}") from exc
    return frame


def _examples(items: list[str], n: int = 3) -> str:
    shown = ", ".join(repr(x[:40]) for x in items[:n])
    return shown + (", ..." if len(items) > n else "")


def _check_ids(sub_ids: list[str], sample_ids: list[str]) -> None:
    got, want = Counter(sub_ids), Counter(sample_ids)
    if got == want:
        return
    missing = list((want - got).elements())
    extra = list((got - want).elements())
    parts = [f"{len(sub_ids)} rows, the sample submission has {len(sample_ids)}"]
    if missing:
        parts.append(f"{len(missing)} ids missing ({_examples(missing)})")
    if extra:
        dup = [k for k in extra if k in want]
        unknown = [k for k in extra if k not in want]
        if dup:
            parts.append(f"{len(dup)} repeated ids ({_examples(dup)})")
        if unknown:
            parts.append(f"{len(unknown)} unknown ids ({_examples(unknown)})")
    raise InvalidSubmissionError("ids differ from the sample submission: " + "; ".join(parts))


def _is_missing(values: list[str]) -> np.ndarray:
    return np.array([v.strip().lower() in _MISSING for v in values], dtype=bool)


def _numeric(values: list[str], column: str, what: str) -> np.ndarray:
    missing = _is_missing(values)
    nums = pd.to_numeric(pd.Series(values, dtype=object).str.strip(), errors="coerce").to_numpy(dtype=float)
    bad = ~missing & ~np.isfinite(nums)
    if missing.any():
        raise InvalidSubmissionError(f"{what} column {column!r} has {int(missing.sum())} missing values")
    if bad.any():
        examples = [values[i] for i in np.flatnonzero(bad)]
        raise InvalidSubmissionError(f"{what} column {column!r} needs numbers, got {_examples(examples)}")
    return nums


def score_submission(path: Path, comp: Competition) -> float:
    """The unrounded metric of a submission file; raises InvalidSubmissionError with a one-line reason."""
    metric = get_metric(comp.metric)
    sample = _read_strings(comp.sample_submission, "sample submission")
    sub = _read_strings(path, "the submission")
    missing_cols = [c for c in sample.columns if c not in sub.columns]
    extra_cols = [c for c in sub.columns if c not in sample.columns]
    if missing_cols or extra_cols:
        parts = []
        if missing_cols:
            parts.append(f"missing columns {missing_cols[:5]}")
        if extra_cols:
            parts.append(f"unexpected columns {extra_cols[:5]}")
        raise InvalidSubmissionError("columns differ from the sample submission: " + "; ".join(parts))
    sub_ids = [canonical(v) for v in sub[comp.id_column].tolist()]
    _check_ids(sub_ids, [canonical(v) for v in sample[comp.id_column].tolist()])

    numeric = metric.scores in ("proba", "value")
    sub_vals: dict[str, np.ndarray] = {}
    for col in comp.target_columns:
        raw = sub[col].tolist()
        if numeric:
            sub_vals[col] = _numeric(raw, col, "target")
        else:
            miss = _is_missing(raw)
            if miss.any():
                raise InvalidSubmissionError(f"target column {col!r} has {int(miss.sum())} missing values")
            sub_vals[col] = np.array([canonical(v) for v in raw], dtype=object)

    answers = _answers_frame(comp)
    row_of = {key: i for i, key in enumerate(_occurrence_keys(sub_ids))}
    ans_keys = _occurrence_keys([canonical(v) for v in answers[comp.id_column].tolist()])
    keep = [i for i, key in enumerate(ans_keys) if key[0] not in comp.unscored_ids and key in row_of]
    unmatched = [key[0] for key in ans_keys if key[0] not in comp.unscored_ids and key not in row_of]
    if unmatched:
        raise InputError(f"{comp.answers} holds ids the sample submission lacks ({_examples(unmatched)})")
    if not keep:
        raise InputError(f"{comp.answers} has no scored rows")
    rows = np.array([row_of[ans_keys[i]] for i in keep])
    truth = _truth_matrix(answers.iloc[keep], comp, numeric)
    pred = np.column_stack([sub_vals[c][rows] for c in comp.target_columns])
    try:
        value = metric(truth, pred)
    except Exception as exc:  # a metric's complaint about these values: the submission is at fault
        raise InvalidSubmissionError(f"{metric.name} cannot score it: {_one_line(exc)}") from exc
    if not np.isfinite(value):
        raise InvalidSubmissionError(f"{metric.name} of this submission is not a finite number ({value})")
    return float(value)


def _answers_frame(comp: Competition) -> pd.DataFrame:
    try:
        return pd.read_csv(comp.answers, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read answers {comp.answers}: {_one_line(exc)}") from exc


def _truth_matrix(answers: pd.DataFrame, comp: Competition, numeric: bool) -> np.ndarray:
    cols = list(comp.target_columns)
    if all(c in answers.columns for c in cols):
        if numeric:
            try:
                return np.column_stack([_numeric(answers[c].tolist(), c, "answers") for c in cols])
            except InvalidSubmissionError as exc:
                raise InputError(f"{comp.answers}: {exc}") from exc
        return np.column_stack([[canonical(v) for v in answers[c].tolist()] for c in cols]).astype(object)
    # answers hold one label column while the submission has one probability column per class: one-hot
    others = [c for c in answers.columns if c != comp.id_column]
    if numeric and len(others) == 1:
        labels = np.array([canonical(v) for v in answers[others[0]].tolist()], dtype=object)
        return np.column_stack([(labels == canonical(c)).astype(float) for c in cols])
    raise InputError(
        f"{comp.answers} lacks the target columns {[c for c in cols if c not in answers.columns][:5]}"
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__
