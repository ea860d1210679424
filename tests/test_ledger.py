"""The SQLite ledger: round trip, WAL mode, a second process reading, stale running rows."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

from medalist.metrics import Direction
from medalist.solve.ledger import ExperimentBusyError, Ledger
from medalist.solve.types import ExperimentRecord


def _rec(name: str, model: str = "lgbm", **kw) -> ExperimentRecord:  # type: ignore[no-untyped-def]
    return ExperimentRecord(name=name, model=model, version=name[-8:], **kw)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_round_trip_and_queries(tmp_path):
    led = Ledger(tmp_path / "ledger.sqlite")
    assert led.journal_mode == "wal"
    a = led.begin(
        _rec(
            "lgbm_aaaaaaaa",
            params={"lr": 0.05, "nested": {"depth": [3, 4]}},
            features="count",
            seed=3,
            parent="root",
            note="first",
        )
    )
    assert a.status == "running" and a.id is not None and a.created_at > 0
    assert led.get("lgbm_aaaaaaaa").status == "running"
    a.cv_score, a.fold_scores, a.seconds = 0.81, [0.8, 0.82, 0.81], 12.5
    a.oof_path, a.test_path, a.code_hash = "/x/oof.npy", "/x/test.npy", "abc"
    led.finish(a)
    got = led.get("lgbm_aaaaaaaa")
    assert got.status == "done" and got.error == ""
    for field in (
        "name",
        "model",
        "version",
        "kind",
        "params",
        "features",
        "seed",
        "cv_score",
        "fold_scores",
        "seconds",
        "parent",
        "oof_path",
        "test_path",
        "code_hash",
        "note",
        "id",
    ):
        assert getattr(got, field) == getattr(a, field), field
    assert led.is_done("lgbm_aaaaaaaa")

    # a done name is never started again: begin returns the row unchanged and writes nothing
    again = led.begin(_rec("lgbm_aaaaaaaa", params={"other": 1}))
    assert again.id == a.id and again.status == "done" and again.params == a.params
    assert len(led.records(None)) == 1

    b = led.begin(_rec("xgb_bbbbbbbb", model="xgb"))
    led.fail(b, "ValueError: bad\nthings happened   here")
    assert led.get("xgb_bbbbbbbb").error == "ValueError: bad things happened here"
    c = led.begin(_rec("xgb_cccccccc", model="xgb", kind="script"))
    c.cv_score, c.fold_scores = 0.84, [0.83, 0.85]
    led.finish(c)
    d = led.begin(_rec("ens_dddddddd", model="hill", kind="ensemble"))
    d.cv_score = 0.79
    led.finish(d)

    assert [r.name for r in led.records()] == ["lgbm_aaaaaaaa", "xgb_cccccccc", "ens_dddddddd"]
    assert [r.name for r in led.records("failed")] == ["xgb_bbbbbbbb"]
    assert [r.name for r in led.records(kind="script")] == ["xgb_cccccccc"]
    higher, lower = Direction(False), Direction(True)
    assert led.best(higher).name == "xgb_cccccccc"
    assert led.best(lower).name == "ens_dddddddd"
    assert led.best(higher, kind="model").name == "lgbm_aaaaaaaa"
    assert led.best(higher, kind="distill") is None

    text = led.summary(higher)
    lines = text.splitlines()
    assert lines[:3] == [
        "- script xgb: cv 0.84 (0s)",
        "- lgbm features=count params lr=0.05,nested={'depth': [3, 4]}: cv 0.81 (12s)",
        "- hill features=base: cv 0.79 (0s)",
    ]
    assert lines[3] == "- FAILED xgb (model): ValueError: bad things happened here"
    assert led.summary(lower, limit=1).splitlines() == [
        "- hill features=base: cv 0.79 (0s)",
        "- FAILED xgb (model): ValueError: bad things happened here",
        "- … 2 more finished experiments",
    ]

    # a retry of the failed name keeps the failure as history and adds a new attempt
    b2 = led.begin(_rec("xgb_bbbbbbbb", model="xgb"))
    assert b2.id != b.id and b2.status == "running"
    b2.cv_score = 0.5
    led.finish(b2)
    assert led.get("xgb_bbbbbbbb").id == b2.id


def test_stale_running_rows_become_interrupted_failures(tmp_path):
    path = tmp_path / "ledger.sqlite"
    led = Ledger(path)
    mine = led.begin(_rec("mine_00000000"))
    stale = led.begin(_rec("dead_00000000"))
    with sqlite3.connect(path) as con:  # as if a killed process had started it
        con.execute("UPDATE experiments SET pid = ? WHERE id = ?", (_dead_pid(), stale.id))
    assert led.mark_stale_running() == 1
    assert led.get("dead_00000000").status == "failed" and led.get("dead_00000000").error == "interrupted"
    assert led.get("mine_00000000").status == "running"  # this process is alive
    assert led.mark_stale_running() == 0
    retry = led.begin(_rec("dead_00000000"))
    assert retry.status == "running" and retry.id > mine.id
    assert [r.error for r in led.records("failed")] == ["interrupted"]


def test_second_process_reads_while_a_write_is_open_and_busy_names(tmp_path):
    path = tmp_path / "ledger.sqlite"
    led = Ledger(path)
    done = led.begin(_rec("lgbm_11111111"))
    done.cv_score = 0.7
    led.finish(done)
    # another process holds a running row and sleeps: this process may not start that name
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from medalist.solve.ledger import Ledger
            from medalist.solve.types import ExperimentRecord
            Ledger({str(path)!r}).begin(ExperimentRecord(name="held_22222222", model="m", version="22222222"))
            print("started", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "started"
        with pytest.raises(ExperimentBusyError, match="held_22222222"):
            led.begin(_rec("held_22222222"))
        assert led.mark_stale_running() == 0  # its owner is alive
        # an uncommitted write transaction in this process does not block a reader in another
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE experiments SET cv_score = 0.99 WHERE name = 'lgbm_11111111'")
        reader = subprocess.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent(f"""
                from medalist.solve.ledger import Ledger
                led = Ledger.__new__(Ledger)
                import pathlib; led.path = pathlib.Path({str(path)!r})
                print([(r.name, r.cv_score) for r in led.records()], led.get("held_22222222").status)
            """),
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
        con.execute("ROLLBACK")
        con.close()
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout.strip() == "[('lgbm_11111111', 0.7)] running"
    finally:
        holder.kill()
        holder.wait()
    assert led.mark_stale_running() == 1
    assert led.begin(_rec("held_22222222")).status == "running"
