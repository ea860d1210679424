"""One competition end to end: setup -> solve -> ensemble -> submit (used by `medalist run` and the bench)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunResult:
    """What a run left behind."""

    slug: str
    workspace: Path
    submission: Path | None = None
    seconds: float = 0.0
    n_experiments: int = 0
    best_cv: float | None = None
    best_name: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    error: str | None = None
    stage_records: list[dict] = field(default_factory=list)


def run_competition(
    competition_dir: str | Path,
    workdir: str | Path,
    time_budget: float = 300.0,
    llm: str = "none",
    seed: int = 0,
    setup_only: bool = False,
) -> RunResult:
    """Run medalist on one competition folder; never raises for a bad competition (error in the result)."""
    raise NotImplementedError("pipeline.run_competition is being written (issue 2/3)")
