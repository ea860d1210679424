"""A campaign: a pool of competitions run one after another, in curriculum, random or given order, with
the memory written after each, and progress in ``<workdir>/campaign.jsonl`` so a killed campaign resumes.

The caller binds ``run_one(comp_dir) -> dict`` to the pipeline. What it returns is kept in the task's row;
the campaign reads ``ok`` (setup passed, default True), ``workspace`` (written into memory when given),
and carries ``tokens``, ``score`` and ``percentile`` through. An exception from ``run_one`` is a failed row.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medalist.memory.curriculum import Candidate, CurriculumParams, CurriculumState, next_task
from medalist.memory.embed import Embedder
from medalist.memory.store import MemoryStore
from medalist.memory.writeback import remember_workspace
from medalist.workspace import append_jsonl, read_jsonl

ORDERS = ("curriculum", "random", "given")
CARRIED = ("tokens", "pass1", "score", "percentile", "medal", "error")


def run_campaign(
    pool: Sequence[str | Path],
    workdir: str | Path,
    run_one: Callable[[Path], dict[str, Any]],
    store: MemoryStore | None,
    order: str = "curriculum",
    seed: int = 0,
    max_attempts: int = 1,
    params: CurriculumParams | None = None,
    embedder: Embedder | None = None,
) -> list[dict[str, Any]]:
    """Run every competition folder of ``pool`` (each until it succeeds, at most ``max_attempts`` times);
    returns one row per attempt (this run's and the resumed ones'), in order."""
    if order not in ORDERS:
        raise ValueError(f"campaign order must be one of {ORDERS}, not {order!r}")
    log = Path(workdir) / "campaign.jsonl"
    candidates: dict[str, Candidate] = {}
    folders: dict[str, Path] = {}
    for folder in pool:
        cand = Candidate.from_folder(folder)
        candidates[cand.key], folders[cand.key] = cand, Path(folder)
    fixed = list(candidates)
    if order == "random":
        random.Random(seed).shuffle(fixed)
    events = read_jsonl(log)
    rows = [e for e in events if e.get("event") == "done"]
    started = [e for e in events if e.get("event") == "started"]
    interrupted = (
        started[-1]["task"] if len(started) > len(rows) and started[-1]["task"] in candidates else None
    )
    state = CurriculumState(tuple((r["task"], bool(r["ok"])) for r in rows))
    while True:
        remaining = [k for k in fixed if _open(k, state, max_attempts)]
        if not remaining:
            return rows
        if interrupted in remaining:
            key = interrupted
        elif order == "curriculum":
            key = (
                next_task([candidates[k] for k in remaining], store, state, params, embedder) or remaining[0]
            )
        else:
            key = remaining[0]
        interrupted = None
        append_jsonl(log, {"event": "started", "task": key, "order": len(rows) + 1, "time": time.time()})
        row = _attempt(key, folders[key], run_one, store)
        row.update(order=len(rows) + 1, policy_order=order)
        append_jsonl(log, row)
        rows.append(row)
        state = state.after(key, bool(row["ok"]))


def _open(key: str, state: CurriculumState, max_attempts: int) -> bool:
    attempts = [ok for k, ok in state.history if k == key]
    return not any(attempts) and len(attempts) < max_attempts


def _attempt(
    key: str, folder: Path, run_one: Callable[[Path], dict[str, Any]], store: MemoryStore | None
) -> dict[str, Any]:
    start = time.monotonic()
    row: dict[str, Any] = {"event": "done", "task": key, "folder": str(folder)}
    try:
        result = run_one(folder) or {}
        row["ok"] = bool(result.get("ok", True))
        row.update({k: result[k] for k in CARRIED if k in result})
        if result.get("workspace"):
            row["workspace"] = str(result["workspace"])
    except Exception as exc:  # one competition failing does not stop the campaign
        row.update(ok=False, error=" ".join(f"{type(exc).__name__}: {exc}".split())[:500])
    row["seconds"] = round(time.monotonic() - start, 3)
    if store is not None and row.get("workspace") and (Path(row["workspace"]) / "task.json").is_file():
        try:
            row["remembered"] = remember_workspace(store, row["workspace"])
        except Exception as exc:  # a workspace memory cannot read leaves the campaign going
            row["memory_error"] = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    return row
