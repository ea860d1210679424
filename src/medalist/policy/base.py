"""The Policy protocol: every setup decision goes through one of these methods.

A policy returns an artifact for a stage; the stage machine checks it. On a retry, ``ctx.error`` holds
the check's message; after a meta-check rollback, ``ctx.meta_failure`` says why and ``ctx.previous``
holds the stage's earlier artifact, which the policy may keep (``keep_artifact``) or redo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

if TYPE_CHECKING:
    from medalist.intake import Competition


@dataclass
class StageContext:
    """What a policy sees when it takes a stage's decision."""

    competition: Competition
    stage: str
    attempt: int = 1
    artifacts: dict[str, Any] = field(default_factory=dict)  # artifacts of the stages before this one
    previous: Any = None  # this stage's previous artifact (retry or rollback)
    error: str | None = None  # the check message of the previous attempt
    meta_failure: str | None = None  # "<meta check>: <message>" when a rollback led here
    split: str = ""  # map stages: "train" | "test"
    modality: str = ""  # map stages: "tabular" | "text" | "image"
    memory: list[str] = field(default_factory=list)  # retrieved examples from long-term memory


@dataclass
class Usage:
    """Tokens a policy spent on its last decision (zero for the expert)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    code: str | None = None  # code the policy wrote for the decision, kept under code/
    fallback: str | None = None  # set when another policy took the decision, with the reason


class Policy(Protocol):
    """One method per setup decision (design §2)."""

    name: str

    def summarize(self, ctx: StageContext) -> str:
        """A short summary of the task from the description and files."""
        ...

    def detect_modalities(self, ctx: StageContext) -> dict[str, Any]:
        """Which files play which role and which input modalities exist.

        Returns {"files": {"train": rel, "test": rel | None, "sample_submission": rel,
        "train_labels": rel | None}, "inputs": ["tabular", "text", "image"], "image": {...} }.
        """
        ...

    def plan(self, ctx: StageContext) -> dict[str, Any]:
        """Columns and task type: id_column, target_columns, label_columns, task_type, input_columns
        (modality -> columns), categorical_columns, datetime_columns, excluded_columns, group/time column."""
        ...

    def input_map(self, ctx: StageContext) -> pd.DataFrame:
        """The ``ctx.split`` input map of ``ctx.modality``: column ``id`` + the inputs."""
        ...

    def target_map(self, ctx: StageContext) -> pd.DataFrame:
        """Column ``id`` + the submission's target columns, in submission space, one row per train row."""
        ...

    def target_transform(self, ctx: StageContext) -> dict[str, Any]:
        """A TargetTransform as a dict (see setup/spec.py)."""
        ...

    def metric(self, ctx: StageContext) -> dict[str, Any]:
        """{"metric": canonical name, "lower_is_better": bool}."""
        ...

    def formatter(self, ctx: StageContext) -> dict[str, Any]:
        """{"method": "fill_sample" | "merge_on_id", "alternative": {...}} (see setup/formatter.py)."""
        ...

    def keep_artifact(self, ctx: StageContext) -> bool:
        """Credit assignment after a meta-check failure: keep ``ctx.previous`` (True) or redo it (False)."""
        ...

    def usage(self) -> Usage:
        """What the last decision cost; reset on read."""
        ...


def __getattr__(name: str) -> Any:
    """Re-export of the solve policy's names, which live in :mod:`medalist.solve.policy` (imported on use:
    solve's modules import setup, which imports this module)."""
    if name in ("Proposal", "SolvePolicy", "SolveState"):
        from medalist.solve import policy

        return getattr(policy, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
