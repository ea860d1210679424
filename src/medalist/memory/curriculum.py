"""The curriculum over a pool of competitions (after Agent K, Grosnit et al. 2024, §3.3, Eq. 6-7).

Each candidate task tau is described by its public file tree (:func:`describe_tree`), embedded as e_tau.
Its score is

    S(tau) = alpha * ( mean_{top r} cos(e_tau, RAG+) - mean_{top r} cos(e_tau, RAG-) )
             - gamma * d(tau)
             - beta * exp(-lambda * t_tau)

- RAG+ / RAG-: the stored vectors of passes (stage_pass) and failures (stage_fail); the mean is over the r
  entries most similar to e_tau (0 when that side is empty).
- d(tau) in [0, 1]: structural difficulty, the mean of min-max normalised log(1 + files), log(1 + bytes) and
  log(1 + CSV columns) over the candidate pool (simpler tasks first).
- t_tau: how many picks ago tau last failed (1 = the previous pick); no penalty when it never failed.

The next task is the argmax of S (ties by key). The first pick (no history) is the structurally simplest
task: argmin d.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medalist.memory.embed import Embedder, default_embedder
from medalist.memory.store import MemoryStore

MAX_LISTED_FILES = 20
MAX_HEADER_COLUMNS = 40


@dataclass(frozen=True)
class CurriculumParams:
    alpha: float = 1.0  # weight of the success-minus-failure similarity
    beta: float = 0.5  # size of the recent-failure penalty
    lam: float = 0.5  # its decay per pick
    gamma: float = 1.0  # weight of the difficulty term
    top_r: int = 3  # similarities averaged on each side


@dataclass(frozen=True)
class Candidate:
    """A competition in the pool: its key, file-tree text and structural size."""

    key: str
    tree: str
    n_files: int
    n_bytes: int
    n_columns: int

    @classmethod
    def from_folder(cls, folder: str | Path) -> Candidate:
        path = Path(folder)
        key = _slug(path)
        files = [p for p in path.rglob("*") if p.is_file()]
        columns = sum(len(_csv_header(p)) for p in files if p.suffix.lower() == ".csv")
        return cls(key, describe_tree(path), len(files), sum(p.stat().st_size for p in files), columns)


@dataclass(frozen=True)
class CurriculumState:
    """What happened so far: (task key, succeeded) per pick, oldest first."""

    history: tuple[tuple[str, bool], ...] = ()

    def after(self, key: str, succeeded: bool) -> CurriculumState:
        return CurriculumState((*self.history, (key, succeeded)))

    def picks_since_failure(self, key: str) -> int | None:
        """t: how many picks ago ``key`` last failed (1 = the last pick), None when it never failed."""
        for back, (k, ok) in enumerate(reversed(self.history), start=1):
            if k == key and not ok:
                return back
        return None


def describe_tree(folder: str | Path) -> str:
    """The file tree of a competition folder as text: paths and sizes, CSV column headers; a directory of
    more than 20 files is summarised by extension."""
    root = Path(folder)
    lines = [f"{_slug(root)}/"]
    for directory in sorted([root, *[p for p in root.rglob("*") if p.is_dir()]]):
        files = sorted(p for p in directory.iterdir() if p.is_file())
        rel = directory.relative_to(root)
        prefix = "" if str(rel) == "." else f"{rel}/"
        if len(files) > MAX_LISTED_FILES:
            by_ext: dict[str, int] = {}
            for p in files:
                by_ext[p.suffix.lower() or "(none)"] = by_ext.get(p.suffix.lower() or "(none)", 0) + 1
            exts = ", ".join(f"{n} {e}" for e, n in sorted(by_ext.items()))
            size = sum(p.stat().st_size for p in files)
            lines.append(f"  {prefix} {len(files)} files ({exts}), {_size(size)}")
            continue
        for p in files:
            line = f"  {prefix}{p.name} ({_size(p.stat().st_size)})"
            header = _csv_header(p) if p.suffix.lower() == ".csv" else []
            if header:
                more = (
                    f", ... (+{len(header) - MAX_HEADER_COLUMNS})" if len(header) > MAX_HEADER_COLUMNS else ""
                )
                line += f" columns: {', '.join(header[:MAX_HEADER_COLUMNS])}{more}"
            lines.append(line)
    return "\n".join(lines)


def difficulties(candidates: Sequence[Candidate]) -> dict[str, float]:
    """d(tau): mean of the min-max normalised log sizes (files, bytes, CSV columns) over the pool."""
    stats = np.array(
        [[math.log1p(c.n_files), math.log1p(c.n_bytes), math.log1p(c.n_columns)] for c in candidates],
        dtype=float,
    ).reshape(len(candidates), 3)
    span = stats.max(axis=0) - stats.min(axis=0) if len(candidates) else np.ones(3)
    span[span == 0] = 1.0
    norm = (stats - stats.min(axis=0)) / span if len(candidates) else stats
    return {c.key: float(norm[i].mean()) for i, c in enumerate(candidates)}


def top_r_mean(vector: np.ndarray, matrix: np.ndarray, r: int) -> float:
    """Mean of the r largest cosines of ``vector`` to the rows of ``matrix`` (0 when it has none)."""
    if matrix.size == 0:
        return 0.0
    sims = np.sort(matrix @ vector)[::-1]
    return float(sims[: max(r, 1)].mean())


def curriculum_score(
    vector: np.ndarray,
    positives: np.ndarray,
    negatives: np.ndarray,
    difficulty: float,
    picks_since_failure: int | None,
    params: CurriculumParams,
) -> float:
    """S(tau) of the module docstring for one candidate."""
    similarity = top_r_mean(vector, positives, params.top_r) - top_r_mean(vector, negatives, params.top_r)
    penalty = (
        0.0 if picks_since_failure is None else params.beta * math.exp(-params.lam * picks_since_failure)
    )
    return params.alpha * similarity - params.gamma * difficulty - penalty


def score_candidates(
    candidates: Sequence[Candidate],
    store: MemoryStore | None,
    state: CurriculumState,
    params: CurriculumParams | None = None,
    embedder: Embedder | None = None,
) -> dict[str, float]:
    """S(tau) for every candidate."""
    p = params or CurriculumParams()
    emb = embedder or default_embedder()
    d = difficulties(candidates)
    vectors = emb.embed([c.tree for c in candidates])
    positives, negatives = _rag_matrices(store, emb)
    return {
        c.key: curriculum_score(
            vectors[i], positives, negatives, d[c.key], state.picks_since_failure(c.key), p
        )
        for i, c in enumerate(candidates)
    }


def next_task(
    candidates: Sequence[Candidate],
    store: MemoryStore | None,
    state: CurriculumState,
    params: CurriculumParams | None = None,
    embedder: Embedder | None = None,
) -> str | None:
    """The key of the next task to attempt (None for an empty pool): the structurally simplest first, then
    the argmax of S(tau)."""
    if not candidates:
        return None
    if not state.history:
        d = difficulties(candidates)
        return min(candidates, key=lambda c: (d[c.key], c.key)).key
    scores = score_candidates(candidates, store, state, params, embedder)
    return max(sorted(scores), key=lambda k: scores[k])


def _rag_matrices(store: MemoryStore | None, embedder: Embedder) -> tuple[np.ndarray, np.ndarray]:
    empty = np.zeros((0, 1), dtype=np.float32)
    if store is None:
        return empty, empty
    out = []
    for kinds in (("stage_pass",), ("stage_fail",)):
        entries = store.embedded(embedder, store.entries(kinds=kinds))
        vectors = [e.embedding for e in entries if e.embedding is not None]
        out.append(np.stack(vectors) if vectors else empty)
    return out[0], out[1]


def _slug(folder: Path) -> str:
    """The competition's name: the folder's, or its parent's for a ``<slug>/public`` folder."""
    return folder.parent.name if folder.name == "public" else folder.name


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            return next(csv.reader(fh), [])
    except OSError:
        return []


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
