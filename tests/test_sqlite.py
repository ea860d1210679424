"""The shared SQLite helpers: connection settings and immediate write transactions."""

from __future__ import annotations

from contextlib import closing

import pytest

from medalist.sqlite import connect, write_transaction


def test_write_transaction_commits_on_success_and_rolls_back_on_error(tmp_path):
    path = tmp_path / "t.sqlite"
    with write_transaction(path) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(RuntimeError), write_transaction(path) as con:
        con.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError("stop")
    with closing(connect(path)) as con:
        rows = [row["x"] for row in con.execute("SELECT x FROM t")]
        assert rows == [1]
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA busy_timeout").fetchone()[0] == 60000
