"""Malformed competition folders: the intake refuses its share directly; `medalist setup` exits 2 with one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medalist.errors import InputError
from medalist.intake import open_competition

try:  # tests/ as a package or as a plain folder of test modules
    from tests.malformed import CASES, N_TEST, make_malformed
except ImportError:
    from malformed import CASES, N_TEST, make_malformed

# Cases the intake itself must refuse: (what to call, table to read or None for open_competition).
INTAKE_CASES: dict[str, str | None] = {
    "missing_path": None,
    "path_is_file": None,
    "no_data": None,
    "empty_train": "train.csv",
    "header_only_train": "train.csv",
    "binary_train": "train.csv",
    "corrupt_zip": "train.csv.zip",
}


@pytest.fixture(scope="module")
def malformed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    return make_malformed(tmp_path_factory.mktemp("malformed"))


def test_make_malformed_builds_every_case(malformed: dict[str, tuple[Path, str]]) -> None:
    assert len(malformed) >= 14
    assert set(malformed) == set(CASES)
    for case, (path, regex) in malformed.items():
        re.compile(regex)
        if case == "missing_path":
            assert not path.exists()
        elif case == "path_is_file":
            assert path.is_file()
        else:
            assert (path / "description.md").is_file(), case


@pytest.mark.parametrize("case", sorted(INTAKE_CASES))
def test_intake_refuses(malformed: dict[str, tuple[Path, str]], case: str) -> None:
    path, regex = malformed[case]
    table = INTAKE_CASES[case]
    with pytest.raises(InputError) as info:
        comp = open_competition(path)
        assert table is not None and table in comp.tables
        comp.read_table(table)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(regex, message), message
    if table is not None:
        assert table in message  # names the file


@pytest.mark.parametrize("case", sorted(set(CASES) - set(INTAKE_CASES)))
def test_setup_level_cases_are_readable(malformed: dict[str, tuple[Path, str]], case: str) -> None:
    """The intake reads every table of the other folders: their problem is for setup to find."""
    comp = open_competition(malformed[case][0])
    assert comp.description_file == "description.md"
    assert comp.tables
    for rel in comp.tables:
        assert len(comp.read_table(rel)) > 0


def test_breakages_are_real(malformed: dict[str, tuple[Path, str]]) -> None:
    """Each setup-level folder is broken exactly as its name says."""

    def tables(case: str) -> dict[str, pd.DataFrame]:
        comp = open_competition(malformed[case][0])
        return {rel: comp.read_table(rel) for rel in comp.tables}

    t = tables("no_train")
    assert set(t) == {"test.csv", "sample_submission.csv"}
    t = tables("no_test")
    assert set(t) == {"train.csv", "sample_submission.csv"}
    t = tables("no_sample_submission")
    assert set(t) == {"train.csv", "test.csv"}

    t = tables("test_ids_differ_from_sample")
    assert not set(t["test.csv"]["id"]) & set(t["sample_submission.csv"]["id"])
    assert len(t["test.csv"]) == len(t["sample_submission.csv"])

    t = tables("target_all_nan")
    assert t["train.csv"]["target"].isna().all()
    assert t["train.csv"].drop(columns="target").notna().all().all()

    t = tables("duplicated_test_ids")
    assert t["test.csv"]["id"].duplicated().sum() == 5
    assert t["sample_submission.csv"]["id"].is_unique

    t = tables("sample_columns_unmatched")
    sample_cols = set(t["sample_submission.csv"].columns)
    assert not sample_cols & (set(t["train.csv"].columns) | set(t["test.csv"].columns))

    t = tables("no_shared_columns")
    shared = set(t["train.csv"].columns) & set(t["test.csv"].columns)
    assert shared == {"id"}

    t = tables("sample_rows_differ_no_id")
    assert len(t["sample_submission.csv"]) == N_TEST - 10 != len(t["test.csv"])
    assert not set(t["sample_submission.csv"].columns) & set(t["test.csv"].columns)  # no id column to join


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_setup_fails_cleanly(malformed: dict[str, tuple[Path, str]], case: str, tmp_path: Path) -> None:
    """`medalist setup <folder>` exits 2 with one `error:` line matching the case, never a traceback."""
    path, regex = malformed[case]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "medalist.cli", "setup", str(path), "--workdir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-3000:]
    assert proc.returncode == 2, output[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    last = lines[-1].strip()
    assert last.startswith("error:"), last
    assert re.search(regex, last), f"{case}: {last!r} does not match {regex!r}"
