"""A disk cache of chat responses keyed by the request, so a rerun is reproducible and free."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CachedResponse:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str
    finish_reason: str | None = None


def request_key(
    model: str,
    messages: Sequence[dict[str, Any]],
    temperature: float,
    max_tokens: int,
    stop: Sequence[str] | None,
    occurrence: int = 0,
    seed: int | None = None,
) -> str:
    """SHA-256 of the request. `occurrence` counts identical requests within one run, so the n-th
    repeat of a request (a retry hoping for a different sample) replays the n-th answer on a rerun.
    A `seed` makes its own entries (requests without one keep the keys they always had)."""
    payload = {
        "model": model,
        "messages": [dict(m) for m in messages],
        "temperature": float(temperature),
        "max_tokens": int(max_tokens),
        "stop": list(stop) if stop else None,
        "occurrence": occurrence,
    }
    if seed is not None:
        payload["seed"] = int(seed)
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """SQLite table of responses (WAL mode; safe for several processes). One connection per operation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                "text TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
                "created REAL NOT NULL, finish_reason TEXT)"
            )
            columns = {row[1] for row in con.execute("PRAGMA table_info(responses)")}
            if "finish_reason" not in columns:  # a cache written before finish reasons were kept
                con.execute("ALTER TABLE responses ADD COLUMN finish_reason TEXT")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            with con:  # one transaction
                yield con
        finally:
            con.close()

    def get(self, key: str) -> CachedResponse | None:
        with self._db() as con:
            row = con.execute(
                "SELECT text, prompt_tokens, completion_tokens, model, finish_reason FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        return CachedResponse(*row) if row else None

    def put(self, key: str, response: CachedResponse) -> None:
        with self._db() as con:
            con.execute(
                "INSERT OR REPLACE INTO responses (key, model, text, prompt_tokens, completion_tokens, "
                "created, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    response.model,
                    response.text,
                    response.prompt_tokens,
                    response.completion_tokens,
                    time.time(),
                    response.finish_reason,
                ),
            )

    def __len__(self) -> int:
        with self._db() as con:
            return int(con.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
