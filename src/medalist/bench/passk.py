"""Setup success: the unbiased Pass@k estimator and per-stage success rates (Agent K, Table 4).

Stage records are the lines of ``<workdir>/<slug>/logs/stages.jsonl``: one dict per attempt,
``{stage, attempt, ok, error, seconds, policy, prompt_tokens, completion_tokens}``. A stage passes in a run
(one seed) when its last attempt is ok; a setup run passes when it has records and every stage it
attempted passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from math import comb

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of the chance that at least one of ``k`` runs passes, from ``c`` passes in ``n``
    runs: ``1 - C(n-c, k) / C(n, k)``, computed as a product so large ``n`` does not overflow."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs at least k={k} runs, got n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=float)))


def pass_at_k_exact(n: int, c: int, k: int) -> float:
    """The same estimate with exact binomial coefficients (for checking; slow for large n)."""
    return 1.0 - comb(n - c, k) / comb(n, k)


def stage_outcomes(records: Iterable[Mapping]) -> dict[str, bool]:
    """Stage -> passed (its last attempt, by ``attempt`` then file order, is ok), in first-seen order."""
    last: dict[str, tuple[float, int, bool]] = {}
    for i, rec in enumerate(records):
        stage = rec.get("stage")
        if not stage:
            continue
        attempt = rec.get("attempt")
        key = (float(attempt) if isinstance(attempt, (int, float)) else float("-inf"), i, bool(rec.get("ok")))
        if stage not in last or key[:2] >= last[stage][:2]:
            last[stage] = key
    return {stage: v[2] for stage, v in last.items()}


def setup_passed(records: Iterable[Mapping]) -> bool:
    """A setup run passes when it recorded at least one stage and every stage's last attempt is ok."""
    outcomes = stage_outcomes(records)
    return bool(outcomes) and all(outcomes.values())


@dataclass(frozen=True)
class StageRate:
    """How often a stage passed, over the runs that attempted it."""

    stage: str
    attempted: int
    passed: int
    mean_attempts: float

    @property
    def rate(self) -> float:
        return self.passed / self.attempted if self.attempted else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "rate": self.rate}


def stage_success_rates(runs: Sequence[Sequence[Mapping]]) -> list[StageRate]:
    """Per-stage success over runs (each run: its stage records), in the order stages first appear."""
    order: list[str] = []
    attempted: dict[str, int] = {}
    passed: dict[str, int] = {}
    attempts: dict[str, list[int]] = {}
    for records in runs:
        outcomes = stage_outcomes(records)
        counts: dict[str, int] = {}
        for rec in records:
            if rec.get("stage"):
                counts[rec["stage"]] = counts.get(rec["stage"], 0) + 1
        for stage, ok in outcomes.items():
            if stage not in attempted:
                order.append(stage)
                attempted[stage], passed[stage], attempts[stage] = 0, 0, []
            attempted[stage] += 1
            passed[stage] += int(ok)
            attempts[stage].append(counts[stage])
    return [StageRate(s, attempted[s], passed[s], float(np.mean(attempts[s]))) for s in order]


def pass_at_k_table(
    successes: Mapping[str, Sequence[bool]], groups: Mapping[str, str], ks: Sequence[int] = (1, 3, 10)
) -> dict[str, dict[str, float | int | None]]:
    """Pass@k per group (e.g. modality), averaged over the group's tasks, plus an ``all`` row.

    ``successes`` maps a task to its per-seed outcomes; ``groups`` a task to its group. Pass@k is None
    where a task has fewer than k seeds.
    """
    by_group: dict[str, list[str]] = {}
    for task in successes:
        by_group.setdefault(groups.get(task, "unknown"), []).append(task)
    by_group["all"] = list(successes)
    table: dict[str, dict[str, float | int | None]] = {}
    for group, tasks in by_group.items():
        row: dict[str, float | int | None] = {"tasks": len(tasks)}
        for k in ks:
            vals = [
                pass_at_k(len(successes[t]), sum(map(bool, successes[t])), k)
                for t in tasks
                if len(successes[t]) >= k
            ]
            row[f"pass@{k}"] = float(np.mean(vals)) if vals and len(vals) == len(tasks) else None
        table[group] = row
    return table
