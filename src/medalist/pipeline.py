"""One competition end to end: setup -> solve -> ensemble -> submit (used by `medalist run` and the bench)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medalist.errors import MedalistError
from medalist.workspace import Workspace

if TYPE_CHECKING:
    from medalist.config import Settings
    from medalist.memory.session import RunMemory
    from medalist.policy.llm import LLMPolicy
    from medalist.setup.policy import Policy, StageContext
    from medalist.solve.policy import SolvePolicy

Event = Callable[[str, dict[str, Any]], None]


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
    first_submission_seconds: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    error: str | None = None
    stage_records: list[dict] = field(default_factory=list)


def ensemble_reserve(time_budget: float) -> float:
    """Seconds kept for ensembling at the end of a run."""
    return float(min(120.0, max(8.0, 0.12 * time_budget)))


def promote_record(ws: Workspace, data, rec) -> bool:
    """Make a finished experiment the submission when its CV beats the current one (the first one always)."""
    from medalist.submit import chosen, promote

    if rec.status != "done" or rec.cv_score is None or not np.isfinite(rec.cv_score):
        return False
    return promote(ws, data, candidate_of(rec), force=chosen(ws) is None)


def candidate_of(rec) -> Any:
    from medalist.submit import Candidate

    transform = rec.params.get("transform") if isinstance(rec.params, dict) else None
    return Candidate(
        rec.name,
        rec.cv_score,
        Path(rec.test_path),
        transform if isinstance(transform, dict) else None,
        kind=rec.kind,
        fold_scores=[float(s) for s in rec.fold_scores or []],
    )


@dataclass(frozen=True)
class Policies:
    """The policies of one command, built from Settings by ``build_policies``."""

    setup: Policy  # the setup policy: the LLM's, else the expert's
    fallback: Policy | None  # the expert, where the LLM's setup policy may fail its retry budget
    llm: LLMPolicy | None  # None with --llm none
    llm_share: float = 0.5  # share of the experiments the LLM proposes
    memory: RunMemory | None = None  # long-term memory; None when off or unreadable

    def solver(self, ws: Workspace, task_summary: str) -> SolvePolicy:
        """The solve policy for ``ws``: the expert's (with memory's prior for the task), or the LLM's
        proposing ``llm_share`` of experiments over it (its calls logged to ``ws``'s logs). What memory
        retrieved and changed is logged as the run log's ``memory`` event."""
        from medalist.policy.expert_solve import ExpertSolver
        from medalist.solve.policy import EMPTY_PRIOR

        prior, info = self.memory.prior(ws.root) if self.memory else (EMPTY_PRIOR, {"off": True})
        ws.log_event("run", {"event": "memory", "policy": "expert", **info})
        expert = ExpertSolver(prior=prior)
        if self.llm is None:
            return expert
        from medalist.policy.llm_solve import LLMSolver

        self.llm.bind(ws)
        from medalist.setup.eda import eda_facts, read_eda

        memory = self.memory.solve_text(prior) if self.memory is not None else ""
        profile = read_eda(ws.root)
        facts = eda_facts(profile) if profile else ""
        return LLMSolver(
            self.llm,
            expert,
            task_summary=task_summary,
            llm_share=self.llm_share,
            memory=memory,
            facts=facts,
        )

    @property
    def recall(self) -> Callable[[StageContext], list[str]] | None:
        """RAG+ / RAG- texts for the LLM's setup prompts (None for the expert, which reads no prompt)."""
        return self.memory.recall if self.memory is not None and self.llm is not None else None

    def remember(self, ws: Workspace) -> None:
        """Write the workspace back to long-term memory (idempotent); logs how many entries were new."""
        if self.memory is not None:
            added = self.memory.remember(ws.root)
            ws.log_event("run", {"event": "memory_written", "new_entries": added})


@contextmanager
def build_policies(settings: Settings, workdir: Path) -> Iterator[Policies]:
    """The setup policy, its fallback and the solve policy for ``settings`` (every command builds them
    here); a local model's server runs while the block does."""
    from medalist.memory.session import RunMemory
    from medalist.policy.expert import ExpertPolicy

    memory = RunMemory.open(settings.memory_path, warn=_warn)
    if memory is not None:
        memory.warm_up()
    if not settings.uses_llm:
        yield Policies(ExpertPolicy(), None, None, memory=memory)
        return
    from medalist.policy.llm import make_llm_policy

    with make_llm_policy(
        settings.llm_choice,
        llm_model=settings.llm_model,
        workdir=workdir,
        # the run's seed reaches the model (and the response cache key) unless the endpoint settings name one
        base=settings.llm_config
        if settings.llm_config.seed is not None
        else settings.llm_config.with_(seed=settings.seed),
        model_dir=settings.local_model_dir,
    ) as policy:
        # a local model's calls are slow on a CPU: it proposes a quarter of the experiments, an endpoint half
        share = 0.25 if settings.llm_choice.lower() == "local" else 0.5
        yield Policies(policy, ExpertPolicy(), policy, share, memory=memory)


def _warn(line: str) -> None:
    """A one-line warning on stderr (memory unavailable and the like): the run goes on."""
    print(f"warning: {line}", file=sys.stderr)


def run_competition(
    competition_dir: str | Path,
    workdir: str | Path,
    settings: Settings | None = None,
    *,
    setup_only: bool = False,
    on_event: Event | None = None,
    raise_errors: bool = False,
    **flags: Any,
) -> RunResult:
    """Run medalist on one competition folder. Errors end up in ``RunResult.error`` unless ``raise_errors``.

    ``settings`` None: ``load_settings(flags)`` (the settings file, the environment, then ``flags`` such as
    time_budget=, llm=, seed=, max_cost=).
    """
    from medalist.config import load_settings
    from medalist.intake import open_competition

    if settings is None:
        settings = load_settings(flags)
    elif flags:
        raise TypeError(f"pass settings or flags, not both: {', '.join(flags)}")
    t0 = time.monotonic()
    emit = on_event or (lambda kind, info: None)
    comp = open_competition(competition_dir) if raise_errors else None
    try:
        comp = comp or open_competition(competition_dir)
        ws = Workspace.create(workdir, comp.slug)
        result = RunResult(comp.slug, ws.root)
        _run(comp, ws, result, t0, settings, setup_only, emit)
    except MedalistError as e:
        if raise_errors:
            raise
        slug = comp.slug if comp is not None else Path(competition_dir).name
        result = RunResult(slug, Path(workdir) / slug, error=str(e))
    result.seconds = time.monotonic() - t0
    return result


def _run(
    comp, ws: Workspace, result: RunResult, t0: float, settings: Settings, setup_only: bool, emit: Event
) -> None:
    from medalist.setup import run_setup, setup_is_done
    from medalist.workspace import read_jsonl

    deadline = t0 + settings.time_budget
    with ExitStack() as stack:
        if settings.uses_llm:
            emit("stage", {"name": "llm"})
        policies = stack.enter_context(build_policies(settings, ws.root.parent))
        if policies.llm is not None:
            policies.llm.set_deadline(deadline)  # no model call outlives the run
        if not setup_is_done(ws):
            emit("stage", {"name": "setup"})
            run_setup(
                comp,
                ws.root.parent,
                policy=policies.setup,
                fallback=policies.fallback,
                on_record=lambda r: emit("setup_record", vars(r)),
                recall=policies.recall,
            )
            _write_eda(ws)
            policies.remember(ws)
        result.stage_records = read_jsonl(ws.logs / "stages.jsonl")
        if not setup_only:
            _solve(ws, result, t0, deadline, settings, emit, policies)
    _llm_usage(ws, result)
    _write_report(ws)


def _write_eda(ws: Workspace) -> None:
    """The data profile of a finished setup (eda.json); a failure only warns."""
    try:
        from medalist.setup.data import load_task_data
        from medalist.setup.eda import write_eda

        write_eda(ws, load_task_data(ws))
    except Exception as e:  # the profile is for people: it never stops a run
        _warn(f"no data profile (eda.json): {type(e).__name__}: {e}")


def _write_report(ws: Workspace) -> None:
    """report.html for the workspace as it stands; a failure only warns."""
    try:
        from medalist.report import write_report

        write_report(ws.root)
    except Exception as e:  # the report is for people: it never stops a run
        _warn(f"no report.html: {type(e).__name__}: {e}")


def _llm_usage(ws: Workspace, result: RunResult) -> None:
    """Tokens and cost of the run's model calls, from logs/llm_calls.jsonl."""
    path = ws.logs / "llm_calls.jsonl"
    if path.exists():
        from medalist.llm import read_usage

        total = read_usage(path).total
        result.prompt_tokens = total.prompt_tokens
        result.completion_tokens = total.completion_tokens
        result.cost = total.cost


def _solve(
    ws: Workspace,
    result: RunResult,
    t0: float,
    deadline: float,
    settings: Settings,
    emit: Event,
    policies: Policies,
) -> None:
    """Folds, the prior as the first submission, the solve loop, then ensembles in the reserved time."""
    from medalist.setup.data import load_task_data
    from medalist.solve.folds import load_or_make_folds
    from medalist.solve.ledger import Ledger
    from medalist.solve.loop import SolveLoop

    data = load_task_data(ws)
    folds = load_or_make_folds(ws, data, seed=settings.seed)
    ledger = Ledger(ws.ledger)
    stale = ledger.mark_stale_running()
    if stale:
        emit("resumed", {"interrupted": stale})
    ws.log_event(
        "run", {"event": "start", "time_budget": settings.time_budget, "done": len(ledger.records("done"))}
    )

    def on_record(rec) -> None:
        if rec.status == "done" and rec.cv_score is not None and np.isfinite(rec.cv_score):
            emit(
                "experiment_done",
                {"name": rec.name, "cv": rec.cv_score, "seconds": rec.seconds, "kind": rec.kind},
            )
            if promote_record(ws, data, rec):
                if result.first_submission_seconds is None:
                    result.first_submission_seconds = time.monotonic() - t0
                    ws.log_event(
                        "run", {"event": "first_submission", "seconds": result.first_submission_seconds}
                    )
                emit("submission", {"name": rec.name, "cv": rec.cv_score})
        elif rec.status == "failed":
            emit("experiment_failed", {"name": rec.name, "error": rec.error})

    reserve = ensemble_reserve(settings.time_budget)
    loop = SolveLoop(
        ws,
        data,
        folds,
        ledger,
        policies.solver(ws, data.spec.summary),
        deadline=deadline - reserve,
        on_event=emit,
        on_record=on_record,
        tune_engine=settings.tune_engine,
        skip_models=settings.skip_models,
        fold_jobs=settings.fold_jobs,
    )
    on_record(loop.run_prior())
    emit("stage", {"name": "solve"})
    loop.run()
    emit("stage", {"name": "ensemble"})
    ensemble_and_choose(ws, data, folds, ledger, max(1.0, deadline - time.monotonic() - 2.0), on_record)
    _summarize(ws, ledger, data, result)
    policies.remember(ws)


def ensemble_and_choose(ws: Workspace, data, folds, ledger, seconds: float, on_record) -> None:
    """Build ensembles from the ledger within ``seconds`` and promote whichever is best by CV."""
    from medalist.ensemble import build_ensembles

    try:
        records = build_ensembles(ws, data, folds, ledger, time_budget=seconds)
    except MedalistError as e:
        ws.log_event("run", {"event": "ensemble_failed", "error": str(e)})
        records = []
    for rec in records:
        on_record(rec)


def _summarize(ws: Workspace, ledger, data, result: RunResult) -> None:
    from medalist.solve.ledger import ENSEMBLE_MEMBER_KINDS, SUBMISSION_KINDS
    from medalist.submit import chosen

    done = [r for r in ledger.records("done") if r.kind in SUBMISSION_KINDS]
    result.n_experiments = len([r for r in ledger.records(status=None) if r.kind in ENSEMBLE_MEMBER_KINDS])
    current = chosen(ws)
    if current:
        result.best_name, result.best_cv = current["name"], current["cv_score"]
        result.submission = ws.submission_csv
    elif not done:
        raise MedalistError("no experiment finished; no submission was written")
    ws.log_event(
        "run",
        {"event": "end", "best": result.best_name, "cv": result.best_cv, "experiments": result.n_experiments},
    )
