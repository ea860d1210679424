"""The expert's prior from memory: what won on the most similar past tasks goes first.

Each similar task t (similarity w_t > 0) ranks its run's experiments; a family's score is the
similarity-weighted mean over those tasks of ``1 - (best_rank - 1) / (n_ranked - 1)`` (1 = it won that run).
Families tried but never in a run's top min(3, n/2) nor above its first baseline "never helped" and go
last, once at least ``MIN_EVIDENCE`` similar tasks tried them. Only tasks at least ``MIN_SIMILARITY`` alike
count: experience transfers between tasks that are alike, and on unrelated ones it reorders by chance
(leave-one-out over the 13 shared competitions at 120 s, every neighbour counted: leaf-classification's
prior came from three tabular tasks at similarity 0.27-0.37 and put the GBDTs first and the linear model,
its best family, last). An empty memory gives the empty prior (``medalist.solve.policy.Prior``), whose
``reorder`` is the identity.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from medalist.memory.card import TaskCard
from medalist.memory.embed import Embedder
from medalist.memory.retrieve import similar_tasks
from medalist.memory.store import MemoryStore
from medalist.solve.policy import EMPTY_PRIOR, Prior

TOP_PARAMS = 3
HELPFUL_RANK = 3
# Task similarity (0.5 text cosine + 0.5 numeric card) below which a past task says nothing about this one.
# Measured with MiniLM over the 13 shared competitions: a pair of the same kind of task (titanic and
# spaceship-titanic: binary, passengers, mixed columns) scores 0.73; every other pair 0.24-0.48.
MIN_SIMILARITY = 0.5
MIN_EVIDENCE = 2  # similar tasks that tried a family and found it never helped, before it goes last


def expert_prior(
    store: MemoryStore,
    card: TaskCard,
    k: int = 3,
    embedder: Embedder | None = None,
    exclude: str | None = None,
    min_similarity: float = MIN_SIMILARITY,
    nearest: list[tuple[TaskCard, float]] | None = None,
) -> Prior:
    """The prior from the ``k`` stored tasks most similar to ``card`` that are at least ``min_similarity``
    alike (``exclude``: a task key to leave out)."""
    if nearest is None:  # ``nearest``: similar_tasks(store, card, k, embedder, exclude) already computed
        nearest = similar_tasks(store, card, k, embedder, exclude)
    neighbours = [(c, s) for c, s in nearest if s >= min_similarity]
    score: dict[str, float] = defaultdict(float)
    weight: dict[str, float] = defaultdict(float)
    helped: set[str] = set()
    tried: dict[str, set[str]] = defaultdict(set)  # family -> the similar tasks that tried it
    recipe_gain: dict[str, float] = defaultdict(float)
    winners: list[tuple[float, str, dict[str, Any]]] = []
    for other, sim in neighbours:
        experiments = [e.data for e in store.entries(kinds=("experiment",), task_key=other.task_key)]
        best_rank: dict[str, tuple[int, int]] = {}
        for d in experiments:
            family, rank, n = str(d["family"]), int(d["rank"]), max(int(d["n_ranked"]), 1)
            tried[family].add(other.task_key)
            if rank <= max(1, min(HELPFUL_RANK, n // 2)) or float(d.get("gain") or 0.0) > 0:
                helped.add(family)
            if family not in best_rank or rank < best_rank[family][0]:
                best_rank[family] = (rank, n)
            winners.append((sim * (1 - (rank - 1) / max(n - 1, 1)), family, d.get("params") or {}))
            if d.get("recipe_gain") is not None:
                recipe_gain[str(d["features"])] += sim * float(d["recipe_gain"])
        for family, (rank, n) in best_rank.items():
            score[family] += sim * (1 - (rank - 1) / max(n - 1, 1))
            weight[family] += sim
    if not score:
        return EMPTY_PRIOR
    families = sorted(score, key=lambda f: (-score[f] / weight[f], f))
    return Prior(
        families=tuple(f for f in families if f in helped),
        params=_top_params(winners),
        recipes=tuple(r for r, g in sorted(recipe_gain.items(), key=lambda kv: (-kv[1], kv[0])) if g > 0),
        never_helped=tuple(f for f in families if f not in helped and len(tried[f]) >= MIN_EVIDENCE),
        sources=tuple((c.task_key, round(s, 4)) for c, s in neighbours),
    )


def _top_params(
    winners: list[tuple[float, str, dict[str, Any]]],
) -> tuple[tuple[str, tuple[dict[str, Any], ...]], ...]:
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    seen: set[str] = set()
    for _, family, params in sorted(winners, key=lambda w: (-w[0], w[1])):
        blob = json.dumps([family, params], sort_keys=True, default=str)
        if blob in seen or len(by_family[family]) >= TOP_PARAMS:
            continue
        seen.add(blob)
        by_family[family].append(params)
    return tuple((f, tuple(ps)) for f, ps in sorted(by_family.items()))
