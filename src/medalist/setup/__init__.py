"""Phase I: set a competition up as a checked stage machine (design §2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medalist.intake import Competition, open_competition
from medalist.setup.data import map_name
from medalist.setup.machine import StageMachine, StageRecord
from medalist.setup.policy import Policy, StageContext
from medalist.setup.spec import TaskSpec
from medalist.workspace import Workspace


def setup_is_done(ws: Workspace) -> bool:
    """True when task.json and every map it names exist (a finished setup)."""
    if not ws.task_json.exists():
        return False
    spec = TaskSpec.load(ws.task_json)
    names = ["train_tab_target"] + [map_name(s, m) for m in spec.modalities for s in ("train", "test")]
    return all(ws.map_path(n).exists() for n in names)


def run_setup(
    competition: str | Path | Competition,
    workdir: str | Path,
    policy: Policy,
    fallback: Policy | None = None,
    on_record: Callable[[StageRecord], None] | None = None,
    max_attempts: int = 3,
    recall: Callable[[StageContext], list[str]] | None = None,
) -> tuple[TaskSpec, Workspace, list[StageRecord]]:
    """Run every setup stage with ``policy`` (the expert's: ``medalist.policy.expert.ExpertPolicy()``);
    writes task.json, maps and logs/stages.jsonl under <workdir>/<slug>/."""
    comp = competition if isinstance(competition, Competition) else open_competition(competition)
    ws = Workspace.create(workdir, comp.slug)
    machine = StageMachine(
        comp, ws, policy, fallback=fallback, on_record=on_record, max_attempts=max_attempts, recall=recall
    )
    spec = machine.run()
    return spec, ws, machine.records


__all__ = ["StageRecord", "TaskSpec", "run_setup", "setup_is_done"]
