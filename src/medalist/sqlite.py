"""SQLite connections shared by the ledger and the memory store: WAL, full sync, a 60 s busy wait, rows
by name, and immediate write transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

BUSY_SECONDS = 60.0


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with rows readable by column name."""
    con = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    con.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
    return con


@contextmanager
def write_transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """One immediate transaction: committed on success, rolled back on any exception."""
    with closing(connect(path)) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
