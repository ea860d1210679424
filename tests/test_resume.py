"""kill -9 in the middle of `medalist run`, then the same command again on the same workdir: no finished
experiment is repeated or lost, and a valid submission is on disk at the end."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from medalist.bench.grade import grade_submission

SLUG = "playground-series-s3e9"


def _done_rows(ledger: Path) -> list[tuple[str, str]]:
    if not ledger.exists():
        return []
    try:
        with sqlite3.connect(ledger) as con:
            return con.execute("SELECT name, status FROM experiments ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the run is still creating its schema
        return []


def _run(comp: Path, workdir: Path, budget: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "medalist.cli",
            "run",
            str(comp / "public"),
            "--workdir",
            str(workdir),
            "--time-budget",
            str(budget),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_kill_9_then_resume(competitions, tmp_path):
    comp = competitions / SLUG
    ledger = tmp_path / SLUG / "experiments" / "ledger.sqlite"
    proc = _run(comp, tmp_path, 240)
    deadline = time.monotonic() + 200
    try:
        while time.monotonic() < deadline:
            done = [n for n, s in _done_rows(ledger) if s == "done" and not n.startswith("prior")]
            running = [n for n, s in _done_rows(ledger) if s == "running"]
            if len(done) >= 2 and running:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        else:
            raise AssertionError("the run never had two finished experiments and one running")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = _done_rows(ledger)
    finished = {n for n, s in before if s == "done"}
    interrupted = {n for n, s in before if s == "running"}
    assert interrupted, "the kill should have caught an experiment mid-way"
    experiments = tmp_path / SLUG / "experiments"
    mtimes = {p.name: p.stat().st_mtime_ns for p in experiments.glob("*.npy")}
    # A valid submission was already on disk before the kill.
    assert (tmp_path / SLUG / "submission.csv").exists()

    second = _run(comp, tmp_path, 60)
    _, err = second.communicate(timeout=400)
    assert second.returncode == 0, err.decode()[-2000:]

    after = _done_rows(ledger)
    done_after = [n for n, s in after if s == "done"]
    assert len(done_after) == len(set(done_after)), "an experiment finished twice"
    assert finished <= set(done_after), "a finished experiment was lost"
    for name, mtime in mtimes.items():  # arrays of finished experiments are untouched
        assert (experiments / name).stat().st_mtime_ns == mtime, name
    # the interrupted experiment was marked, not left running; nothing is left running at the end
    assert all(s != "running" for _, s in after)
    assert any(n in interrupted and s == "failed" for n, s in after)

    report = grade_submission(tmp_path / SLUG / "submission.csv", comp)
    assert report.valid_submission, report.reason
    sample = pd.read_csv(comp / "public" / "sample_submission.csv")
    assert len(pd.read_csv(tmp_path / SLUG / "submission.csv")) == len(sample)
