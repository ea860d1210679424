"""Retrieval: the most similar past tasks, RAG+ / RAG- entries for a task and stage, and prompt text."""

from __future__ import annotations

import json

import numpy as np

from medalist.memory.card import TaskCard, task_similarity
from medalist.memory.embed import Embedder, default_embedder
from medalist.memory.store import Entry, MemoryStore
from medalist.memory.writeback import stage_text

CHARS_PER_TOKEN = 4
MIN_TRUNCATED_CHARS = 200


def similar_tasks(
    store: MemoryStore,
    card: TaskCard,
    k: int = 5,
    embedder: Embedder | None = None,
    exclude: str | None = None,
) -> list[tuple[TaskCard, float]]:
    """The ``k`` stored tasks most similar to ``card`` (best first), with their similarity; ``exclude`` drops
    one task key (e.g. the task itself)."""
    emb = embedder or default_embedder()
    rows = [r for r in store.embedded_tasks(emb) if r.task_key != exclude]
    if not rows or k <= 0:
        return []
    query = emb.embed([card.text()])[0]
    scored = []
    for row in rows:
        other = TaskCard.from_dict(row.card)
        assert row.embedding is not None
        scored.append((other, task_similarity(card, other, query, row.embedding)))
    scored.sort(key=lambda pair: (-pair[1], pair[0].task_key))
    return scored[:k]


def scored_entries(
    store: MemoryStore, query: str, entries: list[Entry], embedder: Embedder
) -> list[tuple[Entry, float]]:
    """``entries`` with the cosine of their vectors to ``query``'s, best first."""
    if not entries:
        return []
    store.embedded(embedder, entries)
    q = embedder.embed([query])[0]
    matrix = np.stack([e.embedding for e in entries if e.embedding is not None])
    sims = matrix @ q
    order = sorted(range(len(entries)), key=lambda i: (-float(sims[i]), entries[i].id or 0))
    return [(entries[i], float(sims[i])) for i in order]


def rag(
    store: MemoryStore,
    card: TaskCard,
    stage: str | None,
    k: int = 3,
    positive: bool = True,
    embedder: Embedder | None = None,
) -> list[Entry]:
    """Top-``k`` RAG+ (``positive``: passes, experiments, ensembles) or RAG- (failures with their fixes)
    entries of ``stage`` (None: any stage), by cosine of the entry's text to the task card and stage."""
    emb = embedder or default_embedder()
    kinds = ("stage_pass", "experiment", "ensemble") if positive else ("stage_fail",)
    entries = store.entries(kinds=kinds, stage=stage)
    query = stage_text(card, stage) if stage else card.text()
    return [e for e, _ in scored_entries(store, query, entries, emb)[:k]]


def format_for_prompt(entries: list[Entry], max_tokens: int = 800) -> str:
    """Entries as prompt text within ``max_tokens`` (about 4 characters a token); the last block that only
    partly fits is cut, and dropped when less than 200 characters of it would fit."""
    budget = max_tokens * CHARS_PER_TOKEN
    blocks: list[str] = []
    used = 0
    for entry in entries:
        block = _block(entry)
        room = budget - used
        if len(block) > room:
            if room >= MIN_TRUNCATED_CHARS:
                blocks.append(block[: room - 4] + " ...")
            break
        blocks.append(block)
        used += len(block) + 2
    return "\n\n".join(blocks)


def _block(entry: Entry) -> str:
    if entry.kind == "stage_fail":
        head = f"[RAG- {entry.task_key} / {entry.stage}] this failed:"
        body = f"error: {entry.message}"
        if entry.fix:
            body += f"\nwhat passed afterwards:\n{entry.fix}"
        return f"{head}\n{body}"
    if entry.kind == "experiment":
        d = entry.data
        return (
            f"[RAG+ {entry.task_key} / experiment] {d.get('family')} features={d.get('features')} "
            f"rank {d.get('rank')}/{d.get('n_ranked')} cv {d.get('cv')} gain {d.get('gain', 0):+.3f}\n"
            f"params: {json.dumps(d.get('params', {}), default=str)}"
        )
    if entry.kind == "ensemble":
        return f"[RAG+ {entry.task_key} / ensemble] {entry.content}"
    return f"[RAG+ {entry.task_key} / {entry.stage}] this passed:\n{entry.content}"
