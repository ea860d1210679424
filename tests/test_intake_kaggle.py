"""A Kaggle slug as input. There is no network here, so the Kaggle API is SCRIPTED: an object with the
official client's two methods that serves a real shared competition's public files as Kaggle's zip.
It tests the plumbing (credentials, download, unzip, description, cache, errors), not Kaggle itself."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from medalist.errors import InputError
from medalist.intake import kaggle as kaggle_intake
from medalist.intake import open_competition
from medalist.intake.kaggle import fetch_competition, has_credentials, kaggle_slug
from medalist.policy.expert import ExpertPolicy
from medalist.setup import run_setup


class ScriptedKaggleApi:
    """Serves ``public`` (minus its description) as ``<slug>.zip``; counts the downloads."""

    def __init__(self, public: Path, fail: str | None = None, evil: bool = False) -> None:
        self.public, self.fail, self.evil, self.downloads = public, fail, evil, 0

    def competition_download_files(self, competition: str, path: str, quiet: bool = True) -> None:
        self.downloads += 1
        if self.fail:
            raise RuntimeError(self.fail)
        with zipfile.ZipFile(Path(path) / f"{competition}.zip", "w") as zf:
            for f in sorted(self.public.iterdir()):
                if f.is_file() and f.name != "description.md":
                    zf.write(f, f.name)
            if self.evil:
                zf.writestr("../escape.txt", "outside")

    def competitions_list(self, search: str) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(
                ref=f"https://www.kaggle.com/competitions/{search}",
                title="Titanic - Machine Learning from Disaster",
                description="Use machine learning to create a model that predicts which passengers survived.",
                evaluation_metric="Categorization Accuracy",
            )
        ]


def _no_credentials(monkeypatch, home: Path) -> None:
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))


def test_slug_recognition_and_credentials(tmp_path, monkeypatch):
    assert kaggle_slug("titanic") == "titanic" and kaggle_slug("kaggle:playground-series-s4e2") == (
        "playground-series-s4e2"
    )
    assert kaggle_slug("some/folder") is None and kaggle_slug("Data Folder") is None
    _no_credentials(monkeypatch, tmp_path)
    assert not has_credentials()
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    assert has_credentials()
    assert has_credentials(env={"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k"}, home=tmp_path / "empty")


def test_bare_slug_without_credentials_is_one_clear_line(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "MEDALIST_CACHE_DIR": str(tmp_path / "cache")}
    res = subprocess.run(
        [sys.executable, "-m", "medalist.cli", "setup", "no-such-local-folder", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr
    assert "kaggle.json" in lines[0] and "not a folder" in lines[0]


def test_fetched_competition_sets_up_like_the_folder(competitions, tmp_path, monkeypatch):
    api = ScriptedKaggleApi(competitions / "titanic" / "public")
    monkeypatch.setenv("MEDALIST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(kaggle_intake, "_official_api", lambda slug: api)
    comp = open_competition("kaggle:titanic")
    assert comp.slug == "titanic" and comp.root == (tmp_path / "cache" / "kaggle" / "titanic" / "public")
    assert {"train.csv", "test.csv", "gender_submission.csv"} <= set(comp.tables)
    assert "Categorization Accuracy" in comp.description and comp.description_file == "description.md"
    spec, _, _ = run_setup(comp, tmp_path / "work", ExpertPolicy())
    assert (spec.id_column, spec.target_columns, spec.metric) == ("PassengerId", ["Survived"], "accuracy")
    assert not list((tmp_path / "cache" / "kaggle" / "titanic").glob(".download-*"))  # no scratch left
    open_competition("titanic")  # cached: no second download
    assert api.downloads == 1


@pytest.mark.parametrize(
    ("failure", "message"),
    [("(403) Forbidden", "accept the rules"), ("(404) Not Found", "no Kaggle competition is named")],
)
def test_refused_downloads_say_why_and_leave_nothing(competitions, tmp_path, failure, message):
    api = ScriptedKaggleApi(competitions / "titanic" / "public", fail=failure)
    with pytest.raises(InputError, match=message):
        fetch_competition("titanic", tmp_path, api=api)
    assert not (tmp_path / "titanic" / "public").exists()
    assert not list((tmp_path / "titanic").glob(".download-*"))


def test_a_zip_member_pointing_outside_is_refused(competitions, tmp_path):
    api = ScriptedKaggleApi(competitions / "titanic" / "public", evil=True)
    with pytest.raises(InputError, match="points outside"):
        fetch_competition("titanic", tmp_path / "cache", api=api)
    assert not (tmp_path / "cache" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
