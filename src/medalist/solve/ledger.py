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
from contextlib import closing
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from medalist.errors import MedalistError
from medalist.metrics import ScoreOrder
from medalist.solve.types import ExperimentRecord
from medalist.sqlite import connect, write_transaction

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
    origin TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL DEFAULT 0,
    pid INTEGER NOT NULL DEFAULT 0,
    host TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS experiments_name ON experiments(name);
CREATE INDEX IF NOT EXISTS experiments_status ON experiments(status);
"""
MAX_ERROR_CHARS = 500
# Base experiments (they learn from the data): what ensembles combine and the solve policies build on.
ENSEMBLE_MEMBER_KINDS = ("model", "script")
# Whatever may become the submission.
SUBMISSION_KINDS = ("model", "script", "ensemble", "distill")
PRIOR = "prior"  # the training prior's model name: a floor, never a member


class ExperimentBusyError(MedalistError):
    """Another live process is running an experiment of the same name."""


class Ledger:
    """Experiments of one workspace: ``Ledger(ws.ledger)``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(connect(self.path)) as con:
            con.executescript(_SCHEMA)  # runs as one transaction of its own
        self._migrate()

    def _migrate(self) -> None:
        """Bring a ledger written by an older medalist up to the schema: the ``origin`` column, with an
        origin inferred once from kind and note for the rows it already holds. Idempotent."""
        if self._has_origin():
            return
        with write_transaction(self.path) as con:
            if "origin" in {row["name"] for row in con.execute("PRAGMA table_info(experiments)")}:
                return  # another process migrated it meanwhile
            con.execute("ALTER TABLE experiments ADD COLUMN origin TEXT NOT NULL DEFAULT ''")
            for row in con.execute("SELECT id, name, kind, note FROM experiments").fetchall():
                origin = _inferred_origin(row["name"], row["kind"], row["note"])
                con.execute("UPDATE experiments SET origin = ? WHERE id = ?", (origin, row["id"]))

    def _has_origin(self) -> bool:
        with closing(connect(self.path)) as con:
            return "origin" in {row["name"] for row in con.execute("PRAGMA table_info(experiments)")}

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[ExperimentRecord]:
        with closing(connect(self.path)) as con:
            return [_record(row) for row in con.execute(sql, args).fetchall()]

    @property
    def journal_mode(self) -> str:
        with closing(connect(self.path)) as con:
            return str(con.execute("PRAGMA journal_mode").fetchone()[0])

    # ------------------------------------------------------------------ state changes
    def begin(self, rec: ExperimentRecord) -> ExperimentRecord:
        """Start an attempt: insert a ``running`` row and return it (with its id).

        When a row of the same name is already ``done`` it is returned unchanged and nothing is written:
        the caller skips. Raises :class:`ExperimentBusyError` when a live process is running that name."""
        with write_transaction(self.path) as con:
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
        with write_transaction(self.path) as con:
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
        with write_transaction(self.path) as con:
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

    def members(self) -> list[ExperimentRecord]:
        """Done base experiments (the prior left out): what ensembles combine and policies build on."""
        return [r for r in self.records("done") if r.kind in ENSEMBLE_MEMBER_KINDS and r.model != PRIOR]

    def ranked(self, order: ScoreOrder, kind: str | None = None) -> list[ExperimentRecord]:
        """Done records with a finite CV score, best first."""
        return ranked(self.records("done", kind), order)

    def best(self, order: ScoreOrder, kind: str | None = None) -> ExperimentRecord | None:
        """The done record with the best CV score (None when there is none)."""
        return best(self.records("done", kind), order)

    def family_leaders(self, order: ScoreOrder) -> list[ExperimentRecord]:
        """The best base experiment of each model family, best first."""
        return family_leaders(self.members(), order)

    def trials(self, model: str | None = None) -> list[ExperimentRecord]:
        """Tuning trials (of ``model``; any status), in the order they were started."""
        return trials(self.records(None), model)

    def summary(self, order: ScoreOrder, limit: int = 10) -> str:
        """What was tried and how it scored (see :func:`summarize`)."""
        return summarize(self.records(None), order, limit)


# ------------------------------------------------------------------------------ questions over records
def ranked(records: list[ExperimentRecord], order: ScoreOrder) -> list[ExperimentRecord]:
    """The done records with a finite CV score, best first (the earlier of equals first)."""
    scored = [
        r for r in records if r.status == "done" and r.cv_score is not None and math.isfinite(r.cv_score)
    ]
    return sorted(scored, key=lambda r: (order.sort_key(r.cv_score), r.id or 0))


def best(
    records: list[ExperimentRecord], order: ScoreOrder, families: tuple[str, ...] | list[str] | None = None
) -> ExperimentRecord | None:
    """The best done record (of one of ``families`` when given); None when none has a score."""
    pool = ranked([r for r in records if families is None or r.model in families], order)
    return pool[0] if pool else None


def family_leaders(
    records: list[ExperimentRecord], order: ScoreOrder, families: tuple[str, ...] | list[str] | None = None
) -> list[ExperimentRecord]:
    """The best done record of each model family (of ``families`` when given), best first."""
    leaders: dict[str, ExperimentRecord] = {}
    for rec in ranked(records, order):
        if families is None or rec.model in families:
            leaders.setdefault(rec.model, rec)
    return list(leaders.values())


def is_trial(rec: ExperimentRecord) -> bool:
    """A tuning trial (known by its origin)."""
    return rec.origin == "trial"


def trials(records: list[ExperimentRecord], model: str | None = None) -> list[ExperimentRecord]:
    """The tuning trials among ``records`` (of ``model`` when given)."""
    return [r for r in records if is_trial(r) and (model is None or r.model == model)]


def summarize(records: list[ExperimentRecord], order: ScoreOrder, limit: int = 10) -> str:
    """What was tried and how it scored, best first, then the latest failures: one line each."""
    done = ranked(records, order)
    lines = []
    for r in done[:limit]:
        what = f"script {r.model}" if r.kind == "script" else f"{r.model} features={r.features or 'base'}"
        params = _short_params(r.params) if r.kind != "script" else ""
        lines.append(f"- {what}{params}: cv {r.cv_score:.5g} ({r.seconds:.0f}s)")
    for r in [r for r in records if r.status == "failed"][-3:]:
        lines.append(f"- FAILED {r.model} ({r.kind}): {_cut(r.error, 160)}")
    if len(done) > limit:
        lines.append(f"- … {len(done) - limit} more finished experiments")
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


def _inferred_origin(name: str, kind: str, note: str) -> str:
    """The origin of a row written before origins were recorded, from what it says of itself."""
    if kind in ("ensemble", "distill"):
        return "distilled" if kind == "distill" else "ensemble"
    if kind == "script":
        return "llm" if name.startswith("llm") else "script"
    note = note or ""
    if note.startswith("hpo"):
        return "trial"
    if note.startswith("llm"):
        return "llm"
    if note == "another seed of the best":
        return "seed"
    return "baseline"


def _short_params(params: dict[str, Any], limit: int = 4) -> str:
    if not params:
        return ""
    items = [f"{k}={_fmt(v)}" for k, v in list(params.items())[:limit]]
    return " params " + ",".join(items) + ("…" if len(params) > limit else "")


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit].rsplit(" ", 1)[0]
    return head.rstrip(",.;: ") + " …"
