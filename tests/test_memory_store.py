"""The memory store: idempotent writes, re-embedding, a corrupt file, kill -9 during writes; the embedders."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from medalist.memory.embed import HashingEmbedder, SentenceEmbedder, default_embedder, sentence_model_reason
from medalist.memory.store import Entry, MemoryStore, default_memory_path, open_store

SRC = Path(__file__).resolve().parents[1] / "src"


def _entry(i: int, kind: str = "stage_pass", task: str = "t1", stage: str = "metric") -> Entry:
    return Entry(key=f"{kind}:{task}:{i}", kind=kind, task_key=task, stage=stage, content=f"code {i}",
                 data={"i": i}, text=f"stage {stage} of task {task} number {i}")  # fmt: skip


def test_writes_are_idempotent_and_update_data(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite")
    assert store.put_entries([_entry(1), _entry(2)]) == 2
    assert store.put_entries([_entry(1), _entry(2)]) == 0
    moved = _entry(1)
    moved.data = {"i": 1, "rank": 3}
    assert store.put_entries([moved, _entry(3)]) == 1
    stored = {e.key: e for e in store.entries()}
    assert len(stored) == 3 and stored["stage_pass:t1:1"].data == {"i": 1, "rank": 3}
    assert store.put_task("t1", {"task_type": "binary"}, "a binary task") is True
    assert store.put_task("t1", {"task_type": "binary"}, "a binary task") is False
    assert store.count() == {"stage_pass": 3, "stage_fail": 0, "experiment": 0, "ensemble": 0, "tasks": 1}
    with pytest.raises(ValueError, match="unknown memory entry kind"):
        store.put_entries([_entry(9, kind="nonsense")])
    assert store.forget(str(stored["stage_pass:t1:2"].id)) == 1
    assert store.forget("t1") == 3  # its two remaining entries and its card
    assert store.count()["tasks"] == 0 and not store.entries()


def test_vectors_of_another_embedder_are_remade(tmp_path):
    store = MemoryStore(tmp_path / "m.sqlite")
    store.put_entries([_entry(i) for i in range(4)])
    store.put_task("t1", {}, "a task")
    small, large = HashingEmbedder(64), HashingEmbedder(128)
    first = store.embedded(small, store.entries())
    assert all(e.embedder == small.name and e.embedding.shape == (64,) for e in first)
    again = store.entries()  # read back: the vectors were saved
    assert all(e.embedder == small.name and e.embedding.shape == (64,) for e in again)
    remade = store.embedded(large, again)
    assert all(e.embedding.shape == (128,) for e in remade)
    assert {e.embedder for e in store.entries()} == {large.name}
    assert store.embedded_tasks(large)[0].embedding.shape == (128,)
    assert store.embedded_tasks(small)[0].embedder == small.name


def test_a_corrupt_file_gives_one_warning_line_and_no_memory(tmp_path):
    bad = tmp_path / "memory.sqlite"
    bad.write_bytes(b"this is not a database\n" * 200)
    lines: list[str] = []
    assert open_store(bad, warn=lines.append) is None
    assert len(lines) == 1 and "\n" not in lines[0]
    assert str(bad) in lines[0] and "running without memory" in lines[0]
    lines.clear()
    assert open_store(tmp_path, warn=lines.append) is None  # a directory, not a file
    assert len(lines) == 1
    lines.clear()
    other = tmp_path / "ledger.sqlite"  # a valid SQLite file of something else is left untouched
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE experiments (id INTEGER)")
    assert open_store(other, warn=lines.append) is None and "not a medalist memory" in lines[0]
    with sqlite3.connect(other) as con:
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["experiments"]
    lines.clear()
    good = open_store(tmp_path / "fresh" / "memory.sqlite", warn=lines.append)
    assert isinstance(good, MemoryStore) and not lines


def test_default_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDALIST_MEMORY", str(tmp_path / "x.sqlite"))
    assert default_memory_path() == tmp_path / "x.sqlite"
    store = open_store()
    assert store is not None and store.path == tmp_path / "x.sqlite"
    monkeypatch.delenv("MEDALIST_MEMORY")
    assert default_memory_path().name == "memory.sqlite"


WRITER = """
import sys
from medalist.memory.store import Entry, MemoryStore
store = MemoryStore(sys.argv[1])
batch = 0
while True:
    store.put_entries([
        Entry(key=f"k{batch}-{i}", kind="experiment", task_key="t", stage="solve", content="x" * 2000,
              data={"batch": batch}, text="t")
        for i in range(50)
    ])
    batch += 1
"""


def test_kill_9_during_writes_leaves_a_readable_store(tmp_path):
    path = tmp_path / "m.sqlite"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.3)
            if path.exists():
                try:
                    with sqlite3.connect(path, timeout=5) as con:
                        if con.execute("SELECT count(*) FROM entries").fetchone()[0] >= 200:
                            break
                except sqlite3.Error:
                    continue
        assert proc.poll() is None, "the writer stopped by itself"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = open_store(path, warn=pytest.fail)
    assert store is not None
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    entries = store.entries(kinds=("experiment",))
    assert len(entries) >= 200 and len(entries) % 50 == 0  # whole transactions only
    assert store.put_entries([_entry(1)]) == 1  # and it still takes writes


def test_hashing_embedder_is_deterministic_normalised_and_meaningful():
    emb = HashingEmbedder()
    texts = ["binary classification of titanic passengers", "binary classification of titanic survivors",
             "image segmentation of satellite tiles", ""]  # fmt: skip
    v = emb.embed(texts)
    assert v.shape == (4, emb.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-5) and not v[3].any()
    assert np.array_equal(v, HashingEmbedder().embed(texts))
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]


def test_sentence_embedder_where_installed(tmp_path, monkeypatch):
    reason = sentence_model_reason()
    if reason is not None:
        pytest.skip(f"no local sentence-embedding model: {reason}")
    monkeypatch.setenv("MEDALIST_CACHE_DIR", str(tmp_path / "cache"))
    emb = SentenceEmbedder()
    v = emb.embed(
        ["predict house sale prices", "predict the price of houses", "classify tweets about disasters"]
    )
    assert v.shape == (3, emb.dim) and emb.dim == 384
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert emb.name.startswith("sentence-") and isinstance(default_embedder(), SentenceEmbedder)
    store = MemoryStore(tmp_path / "m.sqlite")  # vectors of the hashing embedder are remade by this one
    store.put_entries([_entry(i) for i in range(3)])
    store.embedded(HashingEmbedder(), store.entries())
    remade = store.embedded(emb, store.entries())
    assert all(e.embedder == emb.name and e.embedding.shape == (384,) for e in remade)
    assert {e.embedder for e in store.entries()} == {emb.name}
