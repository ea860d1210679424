"""The experiment ledger: one SQLite file in the workspace (WAL mode, one transaction per state change).

Every attempt of an experiment is a row; a name may have several rows (earlier failures kept as history)
but at most one ``done`` row, because :meth:`Ledger.begin` hands back the done row instead of starting
again. Rows carry the pid of the process that runs them, so :meth:`Ledger.mark_stale_running` turns only
the rows of dead processes (a kill -9, a crash) into failures ("interrupted") and they are retried.

Each call opens its own short-lived connection, so a ledger is safe to use from several processes (one
writer at a time; readers never block in WAL mode) and after a fork.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from medalist.errors import MedalistError
from medalist.solve.types import ExperimentRecord

_COLUMNS = [f.name for f in fields(ExperimentRecord) if f.name != "id"]
_JSON = {"params", "fold_scores"}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'model',
    params TEXT NOT NULL DEFAULT '{}',
    features TEXT NOT NULL DEFAULT '',
    seed INTEGER NOT NULL DEFAULT 0,
    cv_score REAL,
    fold_scores TEXT NOT NULL DEFAULT '[]',
    seconds REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    parent TEXT,
    oof_path TEXT NOT NULL DEFAULT '',
    test_path TEXT NOT NULL DEFAULT '',
    code_hash TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL DEFAULT 0,
    pid INTEGER NOT NULL DEFAULT 0,
    host TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS experiments_name ON experiments(name);
CREATE INDEX IF NOT EXISTS experiments_status ON experiments(status);
"""
MAX_ERROR_CHARS = 500


class ExperimentBusyError(MedalistError):
    """Another live process is running an experiment of the same name."""


class Ledger:
    """Experiments of one workspace: ``Ledger(ws.ledger)``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con:
            con.executescript(_SCHEMA)  # runs as one transaction of its own

    # ------------------------------------------------------------------ connections
    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA busy_timeout=60000")
        return con

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: committed on success, rolled back on any exception."""
        with closing(self._connect()) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[ExperimentRecord]:
        with closing(self._connect()) as con:
            return [_record(row) for row in con.execute(sql, args).fetchall()]

    @property
    def journal_mode(self) -> str:
        with closing(self._connect()) as con:
            return str(con.execute("PRAGMA journal_mode").fetchone()[0])

    # ------------------------------------------------------------------ state changes
    def begin(self, rec: ExperimentRecord) -> ExperimentRecord:
        """Start an attempt: insert a ``running`` row and return it (with its id).

        When a row of the same name is already ``done`` it is returned unchanged and nothing is written:
        the caller skips. Raises :class:`ExperimentBusyError` when a live process is running that name."""
        with self._write() as con:
            rows = con.execute(
                "SELECT * FROM experiments WHERE name = ? AND status IN ('done', 'running') ORDER BY id",
                (rec.name,),
            ).fetchall()
            done = [r for r in rows if r["status"] == "done"]
            if done:
                return _record(done[0])
            for r in rows:
                if _alive(r["pid"], r["host"]) and r["pid"] != os.getpid():
                    raise ExperimentBusyError(
                        f"experiment {rec.name} is being run by process {r['pid']}; wait for it or stop it"
                    )
                # our own or a dead process's leftover: close it before starting again
                con.execute(
                    "UPDATE experiments SET status='failed', error='interrupted', updated_at=? WHERE id=?",
                    (time.time(), r["id"]),
                )
            now = time.time()
            started = replace(rec, status="running", error="", id=None, created_at=rec.created_at or now)
            values = _values(started)
            cur = con.execute(
                f"INSERT INTO experiments ({', '.join(_COLUMNS)}, updated_at, pid, host) "
                f"VALUES ({', '.join('?' * len(_COLUMNS))}, ?, ?, ?)",
                (*values, now, os.getpid(), socket.gethostname()),
            )
            started.id = int(cur.lastrowid or 0)
            return started

    def finish(self, rec: ExperimentRecord) -> ExperimentRecord:
        """Mark the attempt ``done`` with the record's results (cv_score, fold_scores, paths, seconds...)."""
        return self._update(replace(rec, status="done", error=""))

    def fail(self, rec: ExperimentRecord, error: str) -> ExperimentRecord:
        """Mark the attempt ``failed`` with a one-line error."""
        line = " ".join(str(error).split())
        if len(line) > MAX_ERROR_CHARS:
            line = line[: MAX_ERROR_CHARS - 3] + "..."
        return self._update(replace(rec, status="failed", error=line or "failed"))

    def _update(self, rec: ExperimentRecord) -> ExperimentRecord:
        if rec.id is None:
            raise MedalistError(f"experiment {rec.name} has no ledger id: call Ledger.begin first")
        with self._write() as con:
            sets = ", ".join(f"{c} = ?" for c in _COLUMNS)
            cur = con.execute(
                f"UPDATE experiments SET {sets}, updated_at = ? WHERE id = ?",
                (*_values(rec), time.time(), rec.id),
            )
            if cur.rowcount != 1:
                raise MedalistError(f"ledger row {rec.id} ({rec.name}) does not exist")
        return rec

    def mark_stale_running(self) -> int:
        """Rows left ``running`` by a dead process become ``failed`` ("interrupted"); returns how many."""
        with self._write() as con:
            rows = con.execute("SELECT id, pid, host FROM experiments WHERE status = 'running'").fetchall()
            stale = [r["id"] for r in rows if not _alive(r["pid"], r["host"])]
            now = time.time()
            for i in stale:
                con.execute(
                    "UPDATE experiments SET status='failed', error='interrupted', updated_at=? WHERE id=?",
                    (now, i),
                )
        return len(stale)

    # ------------------------------------------------------------------ reads
    def get(self, name: str) -> ExperimentRecord | None:
        """The done row of ``name`` if any, else its latest attempt, else None."""
        rows = self._query(
            "SELECT * FROM experiments WHERE name = ? ORDER BY (status = 'done') DESC, id DESC LIMIT 1",
            (name,),
        )
        return rows[0] if rows else None

    def is_done(self, name: str) -> bool:
        return bool(
            self._query("SELECT * FROM experiments WHERE name = ? AND status = 'done' LIMIT 1", (name,))
        )

    def records(self, status: str | None = "done", kind: str | None = None) -> list[ExperimentRecord]:
        """Rows with that status (None: all) and kind (None: all), in the order they were started."""
        where, args = [], []
        if status is not None:
            where.append("status = ?")
            args.append(status)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        return self._query(f"SELECT * FROM experiments{clause} ORDER BY id", tuple(args))

    def best(self, lower_is_better: bool, kind: str | None = None) -> ExperimentRecord | None:
        """The done record with the best CV score (None when there is none)."""
        ranked = _ranked(self.records("done", kind), lower_is_better)
        return ranked[0] if ranked else None

    def summary(self, limit: int, lower_is_better: bool) -> str:
        """A compact text table: counts, the ``limit`` best done experiments, the latest failures."""
        everything = self.records(None)
        done = [r for r in everything if r.status == "done"]
        failed = [r for r in everything if r.status == "failed"]
        running = [r for r in everything if r.status == "running"]
        direction = "lower" if lower_is_better else "higher"
        lines = [
            f"{len(done)} done, {len(failed)} failed, {len(running)} running; CV: {direction} is better",
        ]
        ranked = _ranked(done, lower_is_better)[:limit]
        if ranked:
            lines.append(
                f"{'#':>3} {'name':<32} {'kind':<8} {'features':<12} {'cv':>10} {'fold sd':>8} {'sec':>7}"
            )
            for i, r in enumerate(ranked, 1):
                sd = _std(r.fold_scores)
                lines.append(
                    f"{i:>3} {_cut(r.name, 32):<32} {_cut(r.kind, 8):<8} {_cut(r.features, 12):<12} "
                    f"{_fmt(r.cv_score):>10} {_fmt(sd):>8} {r.seconds:>7.1f}"
                    + (f"  parent={r.parent}" if r.parent else "")
                )
        # the latest failure of each name that never finished
        finished = {r.name for r in done}
        latest: dict[str, ExperimentRecord] = {}
        for r in failed:
            if r.name not in finished:
                latest[r.name] = r
        if latest:
            lines.append("failed:")
            for r in list(latest.values())[-max(1, min(limit, 5)) :]:
                lines.append(f"  {_cut(r.name, 32)}: {_cut(r.error, 160)}")
        if running:
            lines.append("running: " + ", ".join(r.name for r in running[:10]))
        return "\n".join(lines)


# -------------------------------------------------------------------------------------------- helpers
def _values(rec: ExperimentRecord) -> tuple[Any, ...]:
    out = []
    for c in _COLUMNS:
        v = getattr(rec, c)
        if c in _JSON:
            v = json.dumps(v, sort_keys=True, default=_json_default)
        elif c == "cv_score" and v is not None:
            v = float(v)
        out.append(v)
    return tuple(out)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _record(row: sqlite3.Row) -> ExperimentRecord:
    kw = {c: row[c] for c in _COLUMNS}
    for c in _JSON:
        kw[c] = json.loads(kw[c]) if kw[c] else ({} if c == "params" else [])
    return ExperimentRecord(**kw, id=row["id"])


def _alive(pid: int, host: str) -> bool:
    """True when ``pid`` is a live process on this host (rows of other hosts are assumed alive)."""
    if host and host != socket.gethostname():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _ranked(records: list[ExperimentRecord], lower_is_better: bool) -> list[ExperimentRecord]:
    scored = [r for r in records if r.cv_score is not None and math.isfinite(r.cv_score)]
    return sorted(scored, key=lambda r: (r.cv_score if lower_is_better else -r.cv_score, r.id or 0))  # type: ignore[operator]


def _std(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if len(vals) < 2:
        return None
    mean = sum(vals) / len(vals)
    return math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.5g}"


def _cut(s: str, n: int) -> str:
    s = s or ""
    return s if len(s) <= n else s[: n - 1] + "…"
