"""The solve loop: ask the policy for the next experiment, run it on the shared folds, keep the best
submission on disk, until the policy is done or the time is up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medalist.metrics import Direction
from medalist.setup.data import TaskData
from medalist.solve.ledger import Ledger
from medalist.solve.policy import Proposal, SolvePolicy, SolveState
from medalist.solve.runner import run_experiment
from medalist.solve.types import ExperimentRecord, ExperimentSpec, FoldFeatures, ModelTask
from medalist.workspace import Workspace

Event = Callable[[str, dict[str, Any]], None]


# "auto" tunes with HEBO only when a trial takes at least this long: HEBO spends 1-4 s choosing each trial,
# which cheap trials cannot repay. bench/hpo.py, LightGBM, 2 min, seeds 1 and 2: titanic (0.6 s a trial)
# TPE 0.8418 / 0.8406 in ~190 trials vs HEBO 0.8328 / 0.8384 in ~28; spaceship-titanic (~6 s a trial)
# HEBO 0.8102 / 0.8093 vs TPE 0.8090 / 0.8083
HEBO_MIN_TRIAL_SECONDS = 3.0
# A tuning trial trains for at most this many times its expected cost (its parent's seconds), and never past
# the round's end: HEBO's first draws on playground-series-s4e2 took 161 s and 72 s where the parent took 23 s,
# in a round of about 70 s. Families without a time bound (linear, forests, k-NN) run to the end.
TRIAL_SLACK = 3.0


def resolve_engine(name: str, trial_seconds: float | None = None) -> str:
    """ "auto" -> Optuna's TPE when a trial is known to take less than HEBO_MIN_TRIAL_SECONDS, else HEBO where
    it runs, else TPE. Any other name is taken as given."""
    if name != "auto":
        return name
    if trial_seconds is not None and trial_seconds < HEBO_MIN_TRIAL_SECONDS:
        return "optuna"
    from medalist.solve.tuning import hebo_unavailable

    return "hebo" if hebo_unavailable() is None else "optuna"


class PriorFamily:
    """The training prior (class shares or target mean): the floor every model must beat."""

    name = "prior"
    modalities = ("tabular", "text", "image")

    def available(self) -> str | None:
        return None

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {}

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {}

    def fit_predict(self, X_train, y_train, X_valid, X_test, params, task, seed, **_: Any):
        y = np.asarray(y_train, dtype=float)
        if task.kind == "multiclass":
            prior = np.bincount(y[:, 0].astype(int), minlength=task.n_outputs) / len(y)
        else:
            prior = y.mean(axis=0)
        return np.tile(prior, (len(X_valid), 1)), np.tile(prior, (len(X_test), 1))


class _NoFeatures:
    """Row placeholders for the prior (it reads no inputs)."""

    def __init__(self, n_train: int, n_test: int) -> None:
        self.n_train, self.n_test = n_train, n_test

    def split(self, train_idx: np.ndarray, valid_idx: np.ndarray):
        return (
            pd.DataFrame(index=range(len(train_idx))),
            pd.DataFrame(index=range(len(valid_idx))),
            pd.DataFrame(index=range(self.n_test)),
        )


@dataclass
class SolveLoop:
    """Runs proposals from a policy until it stops proposing or the deadline passes."""

    ws: Workspace
    data: TaskData
    folds: np.ndarray
    ledger: Ledger
    policy: SolvePolicy
    deadline: float  # time.monotonic() value
    on_event: Event = lambda kind, info: None
    on_record: Callable[[ExperimentRecord], None] = lambda rec: None
    tune_engine: str = "auto"
    skip_models: tuple[str, ...] = ()
    fold_jobs: int | None = None  # folds fitted side by side (Settings.fold_jobs); None: the default
    _features: dict[tuple[str, tuple[str, ...]], FoldFeatures] = field(default_factory=dict)

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def run_prior(self) -> ExperimentRecord:
        """The prior as an experiment: a valid first submission within seconds."""
        rec = run_experiment(
            self.ws,
            self.data,
            self.folds,
            ExperimentSpec("prior", note="training prior", origin="baseline"),
            self.ledger,
            family=PriorFamily(),
            features=_NoFeatures(self.data.n_train, self.data.n_test),
            fold_jobs=self.fold_jobs,
        )
        self.on_record(rec)
        return rec

    def run(self) -> None:
        started_total = self.time_left()
        from medalist.solve.features import recipes_for
        from medalist.solve.models import available_models

        modalities, kind = tuple(self.data.spec.modalities), self.data.transform.kind
        models = [m for m in available_models(modalities, kind) if m not in self.skip_models]
        recipes = recipes_for(self.data)
        idle = 0  # proposals in a row that added nothing to the ledger
        while self.time_left() > 2:
            state = self._state(models, recipes, started_total)
            proposals = self.policy.propose(state)
            if not proposals:
                self.on_event("solve_done", {"reason": "the policy has nothing more to try"})
                return
            rows = len(self.ledger.records(status=None))
            for p in proposals:
                if self.time_left() <= 2:
                    break
                self._run(p)
                before, rows = rows, len(self.ledger.records(status=None))
                idle = 0 if rows > before else idle + 1
            if idle >= 3:
                self.on_event("solve_done", {"reason": "the policy's proposals added nothing to the ledger"})
                return
        self.on_event("solve_done", {"reason": "time budget reached"})

    # ------------------------------------------------------------------ one proposal
    def _run(self, p: Proposal) -> None:
        self.on_event("proposal", {"kind": p.kind, "model": p.model, "features": p.features, "why": p.why})
        if p.kind == "tune":
            self._tune(p)
            return
        if p.kind == "script":
            from medalist.solve.contract import run_script

            rec = run_script(
                self.ws,
                self.data,
                self.folds,
                p.code,
                self.ledger,
                name=p.name,
                timeout=max(10.0, self.time_left()),
                memory_mb=8192,
                origin=p.origin,
            )
            self.on_record(rec)
            return
        spec = ExperimentSpec(
            p.model, dict(p.params), p.features, p.seed, parent=p.parent, note=p.why, origin=p.origin
        )
        self._run_spec(spec, p.max_seconds)

    def _run_spec(self, spec: ExperimentSpec, max_seconds: float = 0.0) -> ExperimentRecord:
        from medalist.solve.models import get_model

        family = get_model(spec.model)
        key = (spec.features, tuple(family.modalities))
        if key not in self._features:
            from medalist.solve.features import prepare_features

            self._features[key] = prepare_features(self.data, spec.features, tuple(family.modalities))
        self.on_event("experiment_start", {"name": spec.name, "model": spec.model, "features": spec.features})
        rec = run_experiment(
            self.ws,
            self.data,
            self.folds,
            spec,
            self.ledger,
            family=family,
            features=self._features[key],
            time_limit=max(1.0, self.time_left()),
            bounds={"max_seconds": self._fold_seconds(max_seconds)},
            fold_jobs=self.fold_jobs,
        )
        self.on_record(rec)
        return rec

    def _fold_seconds(self, experiment_seconds: float = 0.0) -> float:
        """A per-fold training bound for families that take one: the time left (or the proposal's own
        bound, when smaller) shared by the waves of parallel folds."""
        from medalist.solve.runner import fold_jobs

        n_folds = max(1, len(np.unique(self.folds[self.folds >= 0])))
        waves = -(-n_folds // fold_jobs(self.fold_jobs))
        seconds = 0.8 * self.time_left()
        if experiment_seconds > 0:
            seconds = min(seconds, experiment_seconds)
        return max(5.0, seconds / waves)

    def _tune(self, p: Proposal) -> None:
        from medalist.solve.models import get_model
        from medalist.solve.runner import model_task
        from medalist.solve.tuning import tune

        family = get_model(p.model)
        space = family.search_space(model_task(self.data))
        if not space:
            return
        budget = min(p.tune_seconds, max(0.0, self.time_left()))
        round_end = time.monotonic() + budget
        expected = self._trial_seconds(p)
        engine = resolve_engine(self.tune_engine, expected)
        order = Direction(self.data.spec.lower_is_better)

        def objective(params: dict[str, Any]) -> float:
            spec = ExperimentSpec(
                p.model, params, p.features, p.seed, parent=p.parent, note=f"hpo {engine}", origin="trial"
            )
            bound = max(1.0, round_end - time.monotonic())
            if expected:
                bound = min(bound, TRIAL_SLACK * expected)
            rec = self._run_spec(spec, bound)
            return rec.cv_score if rec.status == "done" and rec.cv_score is not None else order.worst

        result = tune(
            objective,
            space,
            engine=engine,
            order=order,
            time_budget=budget,
            seed=p.seed,
            warm_start=p.warm_start,
        )
        self.on_event(
            "tuned",
            {
                "model": p.model,
                "engine": engine,
                "best_score": result.best_score,
                "trials": len(result.history),
            },
        )

    def _trial_seconds(self, p: Proposal) -> float | None:
        """What one trial of this tuning round should take: its parent's seconds, else the median of the
        family's finished experiments (None when the family has none)."""
        parent = self.ledger.get(p.parent) if p.parent else None
        if parent is not None and parent.status == "done" and parent.seconds > 0:
            return parent.seconds
        own = [r.seconds for r in self.ledger.records() if r.model == p.model and r.seconds > 0]
        return float(np.median(own)) if own else None

    def _state(self, models: list[str], recipes: list[str], total: float) -> SolveState:
        spec = self.data.spec
        return SolveState(
            task_kind=self.data.transform.kind,
            metric=spec.metric,
            lower_is_better=spec.lower_is_better,
            n_train=self.data.n_train,
            n_test=self.data.n_test,
            modalities=list(spec.modalities),
            n_columns={m: self.data.train[m].shape[1] for m in spec.modalities},
            models=models,
            recipes=recipes,
            done=self.ledger.members(),
            failed=self.ledger.records("failed"),
            time_left=self.time_left(),
            time_total=total,
            n_outputs=self.data.transform.n_outputs,
        )
