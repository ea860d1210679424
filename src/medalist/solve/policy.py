"""What a solve policy sees (``SolveState``), what it answers (``Proposal``), and its protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from medalist.metrics import Direction
from medalist.solve import ledger
from medalist.solve.types import ExperimentRecord


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
    done: list[ExperimentRecord]  # base experiments with status done (the prior left out)
    failed: list[ExperimentRecord]  # experiments with status failed
    time_left: float  # seconds until the solve phase must stop
    time_total: float  # the solve phase's whole budget
    n_outputs: int = 1  # model outputs (classes for multiclass)

    @property
    def order(self) -> Direction:
        """The metric's direction: every comparison of scores goes through it."""
        return Direction(self.lower_is_better)

    def best(self, families: tuple[str, ...] | list[str] | None = None) -> ExperimentRecord | None:
        """The best finished experiment (of one of ``families`` when given)."""
        return ledger.best(self.done, self.order, families)

    def family_leaders(self) -> list[ExperimentRecord]:
        """The best finished experiment of each family usable here, best first."""
        return ledger.family_leaders(self.done, self.order, self.models)

    def trials(self, model: str | None = None) -> list[ExperimentRecord]:
        """Tuning trials so far (of ``model`` when given), finished or failed."""
        return ledger.trials(self.done + self.failed, model)

    def summary(self, limit: int = 10) -> str:
        """What was tried and how it scored, one line each (see :func:`medalist.solve.ledger.summarize`)."""
        return ledger.summarize(self.done + self.failed, self.order, limit)


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
    origin: str = "baseline"  # spec / script: the ledger origin of what it runs (tune: always "trial")
    warm_start: tuple[dict[str, Any], ...] = ()  # tune: parameter sets tried first (from memory)


@dataclass(frozen=True)
class Prior:
    """What long-term memory says about tasks like this one (built by ``medalist.memory.expert_prior``).

    families: those that ranked best on the most similar past tasks, best first; never_helped: families tried
    there that never helped (they go last); recipes: feature recipes that beat their family's base recipe;
    params: family -> winning parameter sets, best first (a tuning round's first trials); sources: (task,
    similarity) it came from. The empty prior changes nothing."""

    families: tuple[str, ...] = ()
    params: tuple[tuple[str, tuple[dict[str, Any], ...]], ...] = ()
    recipes: tuple[str, ...] = ()
    never_helped: tuple[str, ...] = ()
    sources: tuple[tuple[str, float], ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.families or self.recipes or self.never_helped or self.params)

    def params_for(self, family: str) -> tuple[dict[str, Any], ...]:
        """The winning parameter sets of ``family`` (best first; empty when none)."""
        return tuple(dict(p) for p in dict(self.params).get(family, ()))

    def reorder(self, names: list[str], helpful: tuple[str, ...] | None = None) -> list[str]:
        """``names`` with the helpful ones first (in the prior's order), the unknown ones next (in their given
        order) and those that never helped last; the identity for an empty prior. ``helpful`` defaults to
        the prior's families (pass ``recipes`` to order recipes)."""
        helpful = self.families if helpful is None else helpful
        first = [n for n in helpful if n in names]
        last = [n for n in names if n in self.never_helped and n not in first]
        return first + [n for n in names if n not in first and n not in last] + last

    def summary(self) -> dict[str, Any]:
        """The prior in a few fields, for the run log's ``memory`` event."""
        return {
            "similar_tasks": [list(s) for s in self.sources],
            "families_first": list(self.families),
            "families_last": list(self.never_helped),
            "recipes_first": list(self.recipes),
            "warm_starts": {f: len(ps) for f, ps in self.params},
        }


EMPTY_PRIOR = Prior()


class SolvePolicy(Protocol):
    """Chooses the next experiments of the solve loop (design §3)."""

    name: str

    def propose(self, state: SolveState) -> list[Proposal]:
        """The next experiments to run, best first; an empty list ends the solve phase."""
        ...
