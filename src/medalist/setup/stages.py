"""The setup stages as one table (design §2): a row per stage says which policy method decides it, which
check gates it, its split and modality (map stages), and which meta checks cover it.

The stage order, the machine's deciders and checks, and the stages a meta check rolls back through are
all read from this table, so adding a stage is adding one row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from medalist.setup import checks
from medalist.setup.data import map_name
from medalist.setup.spec import MODALITIES

if TYPE_CHECKING:
    from medalist.intake import Competition

FINAL_CHECK = "final_check"
PLAN = "plan"

Check = Callable[[Any, "Competition", dict[str, Any]], None]


@dataclass(frozen=True)
class Stage:
    """One setup stage. ``method`` names the Policy method that decides it (None: the machine's own
    end-to-end check); map stages carry their split and modality and run only when the plan has it."""

    name: str
    method: str | None
    check: Check | None
    split: str = ""
    modality: str = ""
    metas: tuple[str, ...] = ()  # meta checks covering this stage (each runs after its last covered stage)


def _input_maps(split: str, metas: tuple[str, ...]) -> tuple[Stage, ...]:
    """The input-map stages of one split, one per modality."""
    return tuple(
        Stage(
            map_name(split, m),
            "input_map",
            partial(checks.check_input_map, split=split, modality=m),
            split,
            m,
            metas,
        )
        for m in MODALITIES
    )


STAGES: tuple[Stage, ...] = (
    Stage("summary", "summarize", checks.check_summary),
    Stage("modalities", "detect_modalities", checks.check_modalities),
    Stage(PLAN, "plan", checks.check_plan),
    *_input_maps("train", ("train_ids_agree", "loader_aligned")),
    Stage(
        "train_tab_target",
        "target_map",
        checks.check_target_map,
        metas=("train_ids_agree", "target_roundtrip", "loader_aligned"),
    ),
    Stage(
        "target_transform",
        "target_transform",
        checks.check_target_transform,
        metas=("target_roundtrip", "loader_aligned"),
    ),
    *_input_maps("test", ("loader_aligned", "formatter_matches_sample")),
    Stage("metric", "metric", checks.check_metric, metas=("formatter_matches_sample",)),
    Stage("formatter", "formatter", checks.check_formatter, metas=("formatter_matches_sample",)),
    Stage(FINAL_CHECK, None, None),
)


def stage_order(arts: dict[str, Any], stages: Sequence[Stage] = STAGES) -> list[str]:
    """The stages to run, in order: up to the plan until it exists, then those of the plan's modalities."""
    plan = arts.get(PLAN)
    order = []
    for stage in stages:
        if stage.modality and (plan is None or stage.modality not in plan["modalities"]):
            continue
        order.append(stage.name)
        if stage.name == PLAN and plan is None:
            break
    return order


def stage_table(stages: Sequence[Stage] = STAGES) -> dict[str, Stage]:
    """The rows by stage name."""
    return {s.name: s for s in stages}


def covered_stages(meta: str, arts: dict[str, Any], stages: Sequence[Stage] = STAGES) -> list[str]:
    """The stages the meta check ``meta`` covers, in order (empty before the plan or for an unknown name):
    a failure rolls back to the first; the check runs after the last."""
    rows = stage_table(stages)
    return [s for s in stage_order(arts, stages) if meta in rows[s].metas]


__all__ = ["FINAL_CHECK", "STAGES", "Stage", "covered_stages", "stage_order", "stage_table"]
