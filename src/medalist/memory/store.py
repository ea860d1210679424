"""The long-term memory: one SQLite file shared by every workdir (design §4).

Two tables: ``tasks`` (one task card per competition, keyed by its slug) and ``entries`` (what was learnt:
``stage_pass`` and ``stage_fail`` from setup, ``experiment`` and ``ensemble`` from solving). Every entry has a
unique ``key``, so writing the same thing twice changes nothing. RAG+ are the passes, RAG- the failures.
Vectors are float32 blobs, with the name of the embedder that made them; :meth:`MemoryStore.embedded`
re-embeds the rows another embedder made. WAL mode, one transaction per write: a killed writer loses at
most its own open transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medalist.memory.embed import Embedder
from medalist.sqlite import connect, write_transaction

ENTRY_KINDS = ("stage_pass", "stage_fail", "experiment", "ensemble")
POSITIVE_KINDS = ("stage_pass", "experiment", "ensemble")
SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    task_key TEXT PRIMARY KEY,
    card TEXT NOT NULL,
    text TEXT NOT NULL,
    embedder TEXT NOT NULL DEFAULT '',
    embedding BLOB,
    updated_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('stage_pass', 'stage_fail', 'experiment', 'ensemble')),
    task_key TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT '',
    content TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    fix TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL DEFAULT '{}',
    text TEXT NOT NULL DEFAULT '',
    embedder TEXT NOT NULL DEFAULT '',
    embedding BLOB,
    created_at REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_task ON entries(task_key, kind);
CREATE INDEX IF NOT EXISTS entries_stage ON entries(kind, stage);
"""
_ENTRY_FIELDS = ("key", "kind", "task_key", "stage", "content", "message", "fix", "data", "text")
log = logging.getLogger("medalist.memory")


@dataclass
class Entry:
    """One remembered item. ``data`` holds the kind's details (experiments: family, params, features, seed,
    cv, rank, n_ranked, gain, seconds, rows, origin; ensembles: the chosen candidate and the ensembles)."""

    key: str
    kind: str
    task_key: str
    stage: str = ""
    content: str = ""
    message: str = ""
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    embedder: str = ""
    embedding: np.ndarray | None = field(default=None, repr=False)
    created_at: float = 0.0
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Portable form (no vector: the importing store embeds it again)."""
        return {
            "type": "entry",
            **{f: getattr(self, f) for f in _ENTRY_FIELDS},
            "created_at": self.created_at,
        }


@dataclass
class TaskRow:
    """A stored task card: the card's fields as a dict, its text and vector."""

    task_key: str
    card: dict[str, Any]
    text: str
    embedder: str = ""
    embedding: np.ndarray | None = field(default=None, repr=False)
    updated_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"type": "task", "task_key": self.task_key, "card": self.card, "text": self.text}


def default_memory_path() -> Path:
    """The memory file the settings name ($MEDALIST_MEMORY, medalist.toml), else the user data dir's
    medalist/memory.sqlite; an error when the settings turn memory off."""
    from medalist.config import load_settings

    path = load_settings().memory_path
    if path is None:
        raise ValueError("memory is turned off (memory = off)")
    return path


_Embedded = Entry | TaskRow  # what carries a text and the vector of an embedder


class MemoryStore:
    """``MemoryStore(path)``: opens (creating when absent) the memory at ``path``. Raises sqlite3.Error,
    OSError or ValueError on a file that is not a readable memory; :func:`open_store` turns that into one
    warning line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(connect(self.path)) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "entries" not in tables:
                raise ValueError(f"not a medalist memory (it holds tables {sorted(tables)[:5]})")
            check = con.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            con.executescript(_SCHEMA)  # runs as one transaction of its own
            con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))

    # ------------------------------------------------------------------ writes
    def put_task(self, task_key: str, card: dict[str, Any], text: str) -> bool:
        """Insert or update one task card; True when something changed (a changed text drops its vector)."""
        blob = json.dumps(card, sort_keys=True, default=str)
        with write_transaction(self.path) as con:
            row = con.execute("SELECT card, text FROM tasks WHERE task_key = ?", (task_key,)).fetchone()
            if row is not None and row["card"] == blob and row["text"] == text:
                return False
            con.execute(
                "INSERT INTO tasks (task_key, card, text, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(task_key) DO UPDATE SET card = excluded.card, updated_at = excluded.updated_at, "
                "embedder = CASE WHEN tasks.text = excluded.text THEN tasks.embedder ELSE '' END, "
                "embedding = CASE WHEN tasks.text = excluded.text THEN tasks.embedding ELSE NULL END, "
                "text = excluded.text",
                (task_key, blob, text, time.time()),
            )
        return True

    def put_entries(self, entries: Sequence[Entry]) -> int:
        """Insert ``entries`` in one transaction; an entry whose key is stored updates its ``data`` and
        ``fix`` (ranks move as a run goes on) and is not counted. Returns how many were new."""
        added = 0
        with write_transaction(self.path) as con:
            for e in entries:
                if e.kind not in ENTRY_KINDS:
                    raise ValueError(f"unknown memory entry kind {e.kind!r}; one of {ENTRY_KINDS}")
                data = json.dumps(e.data, sort_keys=True, default=str)
                cur = con.execute(
                    "INSERT OR IGNORE INTO entries (key, kind, task_key, stage, content, message, fix, data, "
                    "text, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (e.key, e.kind, e.task_key, e.stage, e.content, e.message, e.fix, data, e.text,
                     e.created_at or time.time()),
                )  # fmt: skip
                if cur.rowcount:
                    added += 1
                else:
                    con.execute(
                        "UPDATE entries SET data = ?, fix = ? WHERE key = ? AND (data != ? OR fix != ?)",
                        (data, e.fix, e.key, data, e.fix),
                    )
        return added

    def forget(self, ident: str) -> int:
        """Delete entry ``ident`` (its id), or task ``ident`` (its key) with all its entries: rows deleted."""
        with write_transaction(self.path) as con:
            if ident.isdigit():
                return con.execute("DELETE FROM entries WHERE id = ?", (int(ident),)).rowcount
            n = con.execute("DELETE FROM entries WHERE task_key = ?", (ident,)).rowcount
            return n + con.execute("DELETE FROM tasks WHERE task_key = ?", (ident,)).rowcount

    # ------------------------------------------------------------------ reads
    def tasks(self) -> list[TaskRow]:
        with closing(connect(self.path)) as con:
            rows = con.execute("SELECT * FROM tasks ORDER BY task_key").fetchall()
        return [_task_row(r) for r in rows]

    def task(self, task_key: str) -> TaskRow | None:
        with closing(connect(self.path)) as con:
            row = con.execute("SELECT * FROM tasks WHERE task_key = ?", (task_key,)).fetchone()
        return _task_row(row) if row is not None else None

    def entries(
        self,
        kinds: Sequence[str] | None = None,
        task_key: str | None = None,
        stage: str | None = None,
        entry_id: int | None = None,
    ) -> list[Entry]:
        """Stored entries, oldest first, filtered by kinds, task and stage."""
        where: list[str] = []
        args: list[Any] = []
        if kinds:
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            args += list(kinds)
        for column, value in (("task_key", task_key), ("stage", stage), ("id", entry_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM entries" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id"
        with closing(connect(self.path)) as con:
            return [_entry(r) for r in con.execute(sql, args).fetchall()]

    def count(self) -> dict[str, int]:
        """Entries per kind, plus 'tasks'."""
        with closing(connect(self.path)) as con:
            out = dict.fromkeys(ENTRY_KINDS, 0)
            out.update({r[0]: r[1] for r in con.execute("SELECT kind, count(*) FROM entries GROUP BY kind")})
            out["tasks"] = con.execute("SELECT count(*) FROM tasks").fetchone()[0]
        return out

    # ------------------------------------------------------------------ vectors
    def embedded_tasks(self, embedder: Embedder) -> list[TaskRow]:
        """All task cards with vectors made by ``embedder`` (missing or foreign vectors re-embedded, saved)."""
        rows = self.tasks()
        self._embed_stale(
            embedder,
            rows,
            "UPDATE tasks SET embedder = ?, embedding = ? WHERE task_key = ? AND text = ?",
            lambda r: (r.task_key, r.text),
        )
        return rows

    def embedded(self, embedder: Embedder, entries: list[Entry]) -> list[Entry]:
        """``entries`` with vectors made by ``embedder`` (stale ones re-embedded and saved in one write)."""
        self._embed_stale(
            embedder,
            entries,
            "UPDATE entries SET embedder = ?, embedding = ? WHERE key = ?",
            lambda e: (e.key,),
        )
        return entries

    def _embed_stale(
        self,
        embedder: Embedder,
        items: Sequence[_Embedded],
        update_sql: str,
        where: Callable[[Any], tuple[Any, ...]],
    ) -> None:
        """Embed the ``items`` without a vector from ``embedder`` (in place) and save their vectors in one
        write: ``update_sql`` takes the embedder name, the vector and then ``where(item)``."""
        stale = [x for x in items if x.embedder != embedder.name or x.embedding is None]
        if not stale:
            return
        vectors = embedder.embed([x.text for x in stale])
        with write_transaction(self.path) as con:
            for x, v in zip(stale, vectors):
                x.embedder, x.embedding = embedder.name, v
                con.execute(update_sql, (embedder.name, v.astype(np.float32).tobytes(), *where(x)))

    # ------------------------------------------------------------------ portable copies
    def export_jsonl(self, path: str | Path) -> int:
        """Write every task and entry as JSON lines (no vectors); returns the number of lines."""
        lines = [json.dumps(t.to_json(), default=str) for t in self.tasks()]
        lines += [json.dumps(e.to_json(), default=str) for e in self.entries()]
        Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return len(lines)

    def import_jsonl(self, path: str | Path) -> int:
        """Merge an export into this store (idempotent); returns the number of new entries."""
        entries = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("type") == "task":
                self.put_task(obj["task_key"], obj["card"], obj["text"])
            elif obj.get("type") == "entry":
                entries.append(
                    Entry(**{f: obj[f] for f in _ENTRY_FIELDS}, created_at=obj.get("created_at", 0))
                )
        return self.put_entries(entries)


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype=np.float32).copy()


def _task_row(row: sqlite3.Row) -> TaskRow:
    return TaskRow(
        row["task_key"], json.loads(row["card"]), row["text"], row["embedder"], _vector(row["embedding"]),
        row["updated_at"],
    )  # fmt: skip


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(
        key=row["key"], kind=row["kind"], task_key=row["task_key"], stage=row["stage"], content=row["content"],
        message=row["message"], fix=row["fix"], data=json.loads(row["data"]), text=row["text"],
        embedder=row["embedder"], embedding=_vector(row["embedding"]), created_at=row["created_at"], id=row["id"],
    )  # fmt: skip


def open_store(
    path: str | Path | None = None, warn: Callable[[str], None] | None = None
) -> MemoryStore | None:
    """The memory at ``path`` (else $MEDALIST_MEMORY, else the user data dir). A file that cannot be opened
    or read gives one warning line (to ``warn``, else the 'medalist.memory' logger) and None: the run goes
    on without memory."""
    target = Path(path).expanduser() if path is not None else default_memory_path()
    try:
        return MemoryStore(target)
    except (sqlite3.Error, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        message = f"memory unavailable at {target}: {reason}; running without memory"
        (warn or log.warning)(message)
        return None
