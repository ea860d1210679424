"""Kaggle submission end to end through the CLI. There is no network here, so the Kaggle API is SCRIPTED: an
object with the official client's two submission methods (competition_submit, competition_submissions) whose
answers each test writes (scores, statuses, HTTP errors). It tests the plumbing (upload, polling with backoff,
the record in submissions/kaggle.jsonl, the report, one-line errors), not Kaggle itself."""

from __future__ import annotations

import enum
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from medalist import pipeline
from medalist.cli import app
from medalist.intake import kaggle as kaggle_intake
from medalist.report import write_report
from medalist.submit import kaggle as kaggle_submit
from medalist.workspace import Workspace, read_jsonl, write_json_atomic
from tests.solve_helpers import TITANIC, task_spec
from tests.test_intake_kaggle import ScriptedKaggleApi


class Status(enum.Enum):  # the newer client reports statuses as an enum
    PENDING = 0
    COMPLETE = 1
    ERROR = 2


class ScriptedKaggleSubmissions:
    """Uploads are kept; each listing advances the newest upload through ``statuses``. ``new_client``: the
    newer client's shape (submit returns a ref, snake_case fields, enum status), else the older one's
    (camelCase, string status, nothing to match on but the message)."""

    def __init__(
        self,
        statuses: tuple[str, ...] = ("pending", "complete"),
        score: str = "0.77511",
        submit_error: str | None = None,
        error_description: str = "",
        new_client: bool = False,
    ) -> None:
        self.statuses, self.score, self.submit_error = statuses, score, submit_error
        self.error_description, self.new_client = error_description, new_client
        self.uploads: list[dict] = []
        self.listings = 0
        # an older submission with the same message must never be taken for the new one
        self.old = self._row(ref=100, message="same message", status="complete", score="0.5")

    def competition_submit(self, file_name: str, message: str, competition: str, quiet: bool = False):
        if self.submit_error:
            raise RuntimeError(self.submit_error)
        ref = 200 + len(self.uploads)
        self.uploads.append(
            {"file": file_name, "message": message, "competition": competition, "ref": ref, "polls": 0}
        )
        return SimpleNamespace(ref=ref, message="ok") if self.new_client else "Successfully submitted"

    def competition_submissions(self, competition: str):
        self.listings += 1
        rows = []
        for up in reversed(self.uploads):  # newest first, as Kaggle lists them
            status = self.statuses[min(up["polls"], len(self.statuses) - 1)]
            up["polls"] += 1
            score = self.score if status == "complete" else ""
            rows.append(self._row(up["ref"], up["message"], status, score))
        return [*rows, self.old]

    def _row(self, ref: int, message: str, status: str, score: str) -> SimpleNamespace:
        error = self.error_description if status == "error" else ""
        if self.new_client:
            return SimpleNamespace(
                ref=ref,
                description=message,
                status=Status[status.upper()],
                public_score=score,
                private_score="",
                error_description=error,
            )
        return SimpleNamespace(
            ref=ref,
            description=message,
            status=status,
            publicScore=score,
            privateScore="",
            errorDescription=error,
        )


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The waits between polls, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(kaggle_submit.time, "sleep", waited.append)
    return waited


def _workspace(root: Path, submission: str = "PassengerId,Survived\n892,0\n893,1\n") -> Workspace:
    """What a run leaves for the upload: task.json, the chosen submission.csv and chosen.json."""
    ws = Workspace.create(root, "titanic")
    task_spec(TITANIC, ["Pclass", "Sex"]).save(ws.task_json)
    ws.submission_csv.write_text(submission)
    write_json_atomic(ws.root / "chosen.json", {"name": "lgbm_1a2b", "cv_score": 0.8312})
    return ws


def _with_api(monkeypatch, api) -> None:
    monkeypatch.setattr(kaggle_submit, "official_api", lambda: api)


def _submit(ws: Workspace, *args: str):
    return CliRunner().invoke(app, ["submit", str(ws.root), "--kaggle", *args])


def _one_error_line(res) -> str:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("new_client", [False, True])
def test_upload_waits_for_the_score_and_records_it(tmp_path, monkeypatch, sleeps, new_client):
    ws = _workspace(tmp_path)
    api = ScriptedKaggleSubmissions(statuses=("pending", "pending", "complete"), new_client=new_client)
    _with_api(monkeypatch, api)
    res = _submit(ws, "--message", "same message", "--wait", "300")
    assert res.exit_code == 0, res.output
    assert "Kaggle public score for titanic: 0.77511" in res.stdout
    assert [(u["file"], u["message"], u["competition"]) for u in api.uploads] == [
        (str(ws.submission_csv), "same message", "titanic")
    ]
    assert sleeps == [5.0, 10.0, 20.0]  # backoff between the polls, stopped at the score
    (record,) = read_jsonl(ws.submissions / kaggle_submit.KAGGLE_LOG)
    assert record["status"] == "complete" and record["public_score"] == 0.77511 and record["ref"] == "200"
    page = (ws.root / "report.html").read_text(encoding="utf-8")
    assert 'id="kaggle"' in page and "0.77511" in page and "same message" in page


def test_default_message_names_the_chosen_submission(tmp_path, monkeypatch, sleeps):
    ws = _workspace(tmp_path)
    api = ScriptedKaggleSubmissions(statuses=("complete",))
    _with_api(monkeypatch, api)
    assert _submit(ws).exit_code == 0
    assert api.uploads[0]["message"] == "medalist: lgbm_1a2b (cv 0.8312)"


def test_no_credentials_is_one_line(tmp_path, monkeypatch):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    line = _one_error_line(_submit(_workspace(tmp_path)))
    assert "needs an API token" in line and "kaggle.json" in line


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("(403) Reason: Forbidden", "accept the rules at https://www.kaggle.com/c/titanic/rules"),
        (
            "(400) Bad Request: Your team has used its daily Submission allowance (5 of 5).",
            "daily submission limit for 'titanic' is reached",
        ),
        ("(500) Internal Server Error", "could not submit to Kaggle competition 'titanic': (500)"),
    ],
)
def test_refused_uploads_are_one_line_and_record_nothing(tmp_path, monkeypatch, sleeps, failure, message):
    ws = _workspace(tmp_path)
    _with_api(monkeypatch, ScriptedKaggleSubmissions(submit_error=failure))
    assert message in _one_error_line(_submit(ws))
    assert not (ws.submissions / kaggle_submit.KAGGLE_LOG).exists() and sleeps == []


def test_the_limit_is_read_from_the_response_body(tmp_path, monkeypatch, sleeps):
    """The newer client raises requests' HTTPError, whose text is only the status; Kaggle's reason is in the
    response body."""
    ws = _workspace(tmp_path)
    api = ScriptedKaggleSubmissions()
    error = RuntimeError("400 Client Error: Bad Request for url: https://www.kaggle.com/api/i/submit")
    error.response = SimpleNamespace(text='{"message": "Your team has used its daily Submission allowance"}')

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(api, "competition_submit", refuse)
    _with_api(monkeypatch, api)
    assert "daily submission limit for 'titanic' is reached" in _one_error_line(_submit(ws))


def test_a_rejected_submission_says_why_and_is_recorded(tmp_path, monkeypatch, sleeps):
    ws = _workspace(tmp_path)
    reason = "Submission must have 418 rows,\n got 2"
    _with_api(monkeypatch, ScriptedKaggleSubmissions(statuses=("pending", "error"), error_description=reason))
    line = _one_error_line(_submit(ws))
    assert line == "error: Kaggle rejected the submission to 'titanic': Submission must have 418 rows, got 2"
    (record,) = read_jsonl(ws.submissions / kaggle_submit.KAGGLE_LOG)
    assert record["status"] == "error" and record["public_score"] is None


def test_no_score_in_time_is_a_warning(tmp_path, monkeypatch, sleeps):
    ws = _workspace(tmp_path)
    _with_api(monkeypatch, ScriptedKaggleSubmissions(statuses=("pending",)))
    res = _submit(ws, "--wait", "30")
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: no public score from Kaggle after 30s")
    assert sum(sleeps) == 30.0 and sleeps == [5.0, 10.0, 15.0]  # bounded by --wait
    (record,) = read_jsonl(ws.submissions / kaggle_submit.KAGGLE_LOG)
    assert record["status"] == "pending"
    assert "pending" in write_report(ws.root).read_text(encoding="utf-8")


def test_run_kaggle_slug_with_submit_does_the_whole_trip(competitions, tmp_path, monkeypatch, sleeps):
    """Download (scripted intake API) -> run (a stand-in pipeline that writes what a run leaves) -> upload."""
    public = competitions / "titanic" / "public"
    real_api = kaggle_submit.official_api
    monkeypatch.setenv("MEDALIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(kaggle_intake, "_official_api", lambda slug: ScriptedKaggleApi(public))
    runs = []

    def fake_run(competition, workdir, settings=None, **kwargs):
        runs.append(competition)
        ws = _workspace(Path(workdir), (public / "gender_submission.csv").read_text())
        return pipeline.RunResult("titanic", ws.root, ws.submission_csv, seconds=1.0)

    monkeypatch.setattr(pipeline, "run_competition", fake_run)
    api = ScriptedKaggleSubmissions(statuses=("complete",), score="0.76555", new_client=True)
    _with_api(monkeypatch, api)
    args = ["run", "kaggle:titanic", "--workdir", str(tmp_path / "runs"), "-t", "5", "--submit"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert runs == ["kaggle:titanic"] and "Kaggle public score for titanic: 0.76555" in res.stdout
    assert api.uploads[0]["file"] == str(tmp_path / "runs" / "titanic" / "submission.csv")
    records = read_jsonl(tmp_path / "runs" / "titanic" / "submissions" / kaggle_submit.KAGGLE_LOG)
    assert [(r["competition"], r["public_score"]) for r in records] == [("titanic", 0.76555)]
    # without credentials the run does not start: the missing token is said before, not after it
    monkeypatch.setattr(kaggle_submit, "official_api", real_api)
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert "needs an API token" in _one_error_line(CliRunner().invoke(app, args)) and len(runs) == 1
