"""One competition end to end: setup -> solve -> ensemble -> submit (used by `medalist run` and the bench)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medalist.errors import MedalistError
from medalist.workspace import Workspace

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
class RunOptions:
    """How to run one competition."""

    time_budget: float = 300.0
    llm: str = "none"
    llm_model: str | None = None
    seed: int = 0
    setup_only: bool = False
    tune_engine: str = "auto"
    skip_models: tuple[str, ...] = ()
    max_llm_tokens: int | None = None
    max_cost: float | None = None


def run_competition(
    competition_dir: str | Path,
    workdir: str | Path,
    time_budget: float = 300.0,
    llm: str = "none",
    seed: int = 0,
    setup_only: bool = False,
    on_event: Event | None = None,
    raise_errors: bool = False,
    tune_engine: str = "auto",
    llm_model: str | None = None,
    skip_models: tuple[str, ...] = (),
    max_llm_tokens: int | None = None,
    max_cost: float | None = None,
) -> RunResult:
    """Run medalist on one competition folder. Errors end up in ``RunResult.error`` unless ``raise_errors``."""
    from medalist.intake import open_competition

    opts = RunOptions(
        time_budget,
        llm,
        llm_model,
        seed,
        setup_only,
        tune_engine,
        tuple(skip_models),
        max_llm_tokens,
        max_cost,
    )
    t0 = time.monotonic()
    emit = on_event or (lambda kind, info: None)
    comp = open_competition(competition_dir) if raise_errors else None
    try:
        comp = comp or open_competition(competition_dir)
        ws = Workspace.create(workdir, comp.slug)
        result = RunResult(comp.slug, ws.root)
        _run(comp, ws, result, t0, opts, emit)
    except MedalistError as e:
        if raise_errors:
            raise
        slug = comp.slug if comp is not None else Path(competition_dir).name
        result = RunResult(slug, Path(workdir) / slug, error=str(e))
    result.seconds = time.monotonic() - t0
    return result


def _run(comp, ws: Workspace, result: RunResult, t0: float, opts: RunOptions, emit: Event) -> None:
    from medalist.policy.expert import ExpertPolicy
    from medalist.setup import run_setup, setup_is_done
    from medalist.workspace import read_jsonl

    deadline = t0 + opts.time_budget
    with ExitStack() as stack:
        llm_policy = None
        if opts.llm not in ("", "none"):
            from medalist.policy.llm import make_llm_policy

            emit("stage", {"name": "llm"})
            llm_policy = stack.enter_context(
                make_llm_policy(
                    opts.llm,
                    llm_model=opts.llm_model,
                    workdir=ws.root.parent,
                    max_llm_tokens=opts.max_llm_tokens,
                    max_cost=opts.max_cost,
                )
            )
        if not setup_is_done(ws):
            emit("stage", {"name": "setup"})
            run_setup(
                comp,
                ws.root.parent,
                policy=llm_policy or ExpertPolicy(),
                fallback=ExpertPolicy() if llm_policy else None,
                on_record=lambda r: emit("setup_record", vars(r)),
            )
        result.stage_records = read_jsonl(ws.logs / "stages.jsonl")
        if not opts.setup_only:
            _solve(ws, result, t0, deadline, opts, emit, llm_policy)
    _llm_usage(ws, result)


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
    ws: Workspace, result: RunResult, t0: float, deadline: float, opts: RunOptions, emit: Event, llm_policy
) -> None:
    """Folds, the prior as the first submission, the solve loop, then ensembles in the reserved time."""
    from medalist.policy.expert_solve import ExpertSolver
    from medalist.setup.data import load_task_data
    from medalist.solve.folds import load_or_make_folds
    from medalist.solve.ledger import Ledger
    from medalist.solve.loop import SolveLoop

    data = load_task_data(ws)
    folds = load_or_make_folds(ws, data, seed=opts.seed)
    ledger = Ledger(ws.ledger)
    stale = ledger.mark_stale_running()
    if stale:
        emit("resumed", {"interrupted": stale})
    ws.log_event(
        "run", {"event": "start", "time_budget": opts.time_budget, "done": len(ledger.records("done"))}
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

    reserve = ensemble_reserve(opts.time_budget)
    solver = ExpertSolver()
    if llm_policy is not None:
        from medalist.policy.llm_solve import LLMSolver

        # a local model's calls are slow on a CPU: it proposes a quarter of the experiments, an endpoint half
        share = 0.25 if opts.llm == "local" else 0.5
        solver = LLMSolver(llm_policy, solver, task_summary=data.spec.summary, llm_share=share)
    loop = SolveLoop(
        ws,
        data,
        folds,
        ledger,
        solver,
        deadline=deadline - reserve,
        on_event=emit,
        on_record=on_record,
        tune_engine=opts.tune_engine,
        skip_models=opts.skip_models,
    )
    on_record(loop.run_prior())
    emit("stage", {"name": "solve"})
    loop.run()
    emit("stage", {"name": "ensemble"})
    ensemble_and_choose(ws, data, folds, ledger, max(1.0, deadline - time.monotonic() - 2.0), on_record)
    _summarize(ws, ledger, data, result)


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
    from medalist.solve.ledger import SUBMISSION_KINDS
    from medalist.submit import chosen

    done = [r for r in ledger.records("done") if r.kind in SUBMISSION_KINDS]
    result.n_experiments = len([r for r in ledger.records(status=None) if r.kind in ("model", "script")])
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
