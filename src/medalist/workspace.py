"""The on-disk workspace of one competition run: paths, atomic writes, JSON-lines logs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Workspace:
    """Paths of `<workdir>/<slug>/` (design §6)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def create(cls, workdir: str | Path, slug: str) -> Workspace:
        ws = cls(Path(workdir).expanduser().resolve() / slug)
        for sub in (ws.maps, ws.code, ws.experiments, ws.scripts, ws.submissions, ws.logs):
            sub.mkdir(parents=True, exist_ok=True)
        return ws

    @property
    def task_json(self) -> Path:
        return self.root / "task.json"

    @property
    def maps(self) -> Path:
        return self.root / "maps"

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def experiments(self) -> Path:
        return self.root / "experiments"

    @property
    def scripts(self) -> Path:
        return self.experiments / "scripts"

    @property
    def ledger(self) -> Path:
        return self.experiments / "ledger.sqlite"

    @property
    def submissions(self) -> Path:
        return self.root / "submissions"

    @property
    def submission_csv(self) -> Path:
        return self.root / "submission.csv"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def folds(self) -> Path:
        return self.maps / "folds.npy"

    def map_path(self, name: str) -> Path:
        """`name` like 'train_tab_input' -> maps/train_tab_input_map.parquet."""
        return self.maps / f"{name}_map.parquet"

    def oof_path(self, model: str, version: str) -> Path:
        return self.experiments / f"train_oof_{model}_{version}.npy"

    def test_path(self, model: str, version: str) -> Path:
        return self.experiments / f"test_preds_{model}_{version}.npy"

    def log_event(self, log: str, record: dict[str, Any]) -> None:
        """Append one JSON line to logs/<log>.jsonl (flushed and fsynced: survives kill -9)."""
        append_jsonl(self.logs / f"{log}.jsonl", record)


@contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        tmp_path.replace(path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    with _atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    with _atomic_target(path) as tmp, tmp.open("wb") as fh:
        np.save(fh, array)


def write_parquet_atomic(path: Path, frame: pd.DataFrame) -> None:
    with _atomic_target(path) as tmp:
        frame.to_parquet(tmp, index=False)


def write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    with _atomic_target(path) as tmp:
        frame.to_csv(tmp, index=False)


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=_json_default) + "\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill; the rest of the log stays readable
    return rows


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def user_cache_dir() -> Path:
    """$MEDALIST_CACHE_DIR, else $XDG_CACHE_HOME/medalist, else ~/.cache/medalist."""
    if os.environ.get("MEDALIST_CACHE_DIR"):
        return Path(os.environ["MEDALIST_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "medalist"
