"""Policy protocols. The setup protocol lives in :mod:`medalist.setup.policy` (re-exported here for now)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from medalist.setup.policy import Policy, StageContext, Usage

__all__ = ["Policy", "Proposal", "SolvePolicy", "SolveState", "StageContext", "Usage"]


@dataclass
class SolveState:
    """What a solve policy sees: the task, what the ledger holds, and the time left."""

    task_kind: str  # TargetTransform kind
    metric: str
    lower_is_better: bool
    n_train: int
    n_test: int
    modalities: list[str]
    n_columns: dict[str, int]  # modality -> input columns
    models: list[str]  # families usable here for this task
    recipes: list[str]  # feature recipes that apply
    done: list[Any]  # ExperimentRecords with status done (kind model/script)
    failed: list[Any]  # ExperimentRecords with status failed
    time_left: float  # seconds until the solve phase must stop
    time_total: float  # the solve phase's whole budget
    ledger_summary: str = ""
    n_outputs: int = 1  # model outputs (classes for multiclass)


@dataclass
class Proposal:
    """The next experiment: a declarative spec, a tuning run over a spec's params, or a script."""

    kind: str  # "spec" | "tune" | "script"
    model: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    features: str = "base"
    seed: int = 0
    tune_seconds: float = 0.0  # tune: the search's time budget
    code: str = ""  # script: experiment-contract code
    name: str = ""  # script: its ledger name
    why: str = ""  # one line: the reason, for the log and the reader
    parent: str | None = None
    round: int = 0  # tune: the family's tuning trials before this round (a round is proposed once)
    max_seconds: float = 0.0  # spec: a soft bound on the experiment's training time (0: the time left)


class SolvePolicy(Protocol):
    """Chooses the next experiments of the solve loop (design §3)."""

    name: str

    def propose(self, state: SolveState) -> list[Proposal]:
        """The next experiments to run, best first; an empty list ends the solve phase."""
        ...
