"""The `medalist` command line."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import Abort, Exit, TyperException

from medalist.errors import MedalistError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a prediction competition into a strong, valid submission.",
)
console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 140)

WorkdirOpt = Annotated[
    Path, typer.Option("--workdir", "-w", help="Where workspaces live (<workdir>/<slug>/).")
]
LlmOpt = Annotated[
    str | None, typer.Option("--llm", help="none | local | an OpenAI-compatible base URL (default: none).")
]
LlmModelOpt = Annotated[
    str | None,
    typer.Option(help="--llm local: a GGUF file or packaged model; --llm URL: the model name."),
]
MaxTokensOpt = Annotated[
    int | None, typer.Option("--max-llm-tokens", help="Stop asking the LLM after this many tokens.")
]
MaxCostOpt = Annotated[
    float | None, typer.Option("--max-cost", help="Stop asking the LLM after this many dollars.")
]
TuneEngineOpt = Annotated[
    str | None,
    typer.Option(
        help="auto (Optuna TPE for trials under 3 s, else HEBO where it runs) | optuna | hebo (default: auto)"
    ),
]


KaggleFlag = Annotated[bool, typer.Option(help="Upload submission.csv to Kaggle; wait for its public score.")]
KaggleMessageOpt = Annotated[str | None, typer.Option("--message", "-m", help="Kaggle submission message.")]
KaggleWaitOpt = Annotated[float, typer.Option("--wait", help="Seconds to wait for Kaggle's public score.")]
MemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--memory",
        help="Long-term memory file, or 'off' (default: $MEDALIST_MEMORY, else the user data dir's).",
    ),
]


def _settings(**flags: object):
    """Settings for a command: defaults < medalist.toml / $MEDALIST_CONFIG < environment < the flags given."""
    from medalist.config import load_settings

    return load_settings(flags)


@app.command()
def setup(
    competition: Annotated[str, typer.Argument(help="Competition folder (description + data files).")],
    workdir: WorkdirOpt = Path("runs"),
    llm: LlmOpt = None,
    llm_model: LlmModelOpt = None,
    max_llm_tokens: MaxTokensOpt = None,
    max_cost: MaxCostOpt = None,
    memory: MemoryOpt = None,
) -> None:
    """Phase I: set the competition up (task.json + maps) through the checked stage machine."""
    from medalist.intake import open_competition
    from medalist.metrics import get_metric
    from medalist.pipeline import build_policies
    from medalist.setup import run_setup

    settings = _settings(
        llm=llm, llm_model=llm_model, max_llm_tokens=max_llm_tokens, max_cost=max_cost, memory=memory
    )
    comp = open_competition(competition)
    with build_policies(settings, workdir) as policies, console.status("setting up…"):
        spec, ws, records = run_setup(
            comp, workdir, policy=policies.setup, fallback=policies.fallback, recall=policies.recall
        )
        policies.remember(ws)
    fallback = policies.fallback
    table = Table(title=f"{spec.slug}: setup passed every check", show_header=False)
    table.add_row("task", f"{spec.task_type}  ({spec.transform.output} output)")
    table.add_row("metric", f"{spec.metric} ({get_metric(spec.metric).word} is better)")
    table.add_row("id column", spec.id_column)
    table.add_row(
        "targets", ", ".join(spec.target_columns[:6]) + (" …" if len(spec.target_columns) > 6 else "")
    )
    for m, cols in spec.input_columns.items():
        table.add_row(f"{m} inputs", f"{len(cols)}: " + ", ".join(cols[:6]) + (" …" if len(cols) > 6 else ""))
    if spec.excluded_columns:
        table.add_row(
            "excluded",
            ", ".join(f"{c} ({why.split(' (')[0]})" for c, why in list(spec.excluded_columns.items())[:4]),
        )
    attempts = sum(1 for r in records if not r.stage.startswith("meta:"))
    table.add_row("stages", f"{attempts} attempts, {sum(1 for r in records if not r.ok)} failed checks")
    if fallback is not None:
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in records)
        took = sorted({r.stage for r in records if r.ok and r.policy == fallback.name and r.fallback})
        table.add_row("llm", f"{tokens} tokens; the expert took: {', '.join(took) or 'no stage'}")
    table.add_row("workspace", str(ws.root))
    out.print(table)


@app.command()
def run(
    competition: Annotated[str, typer.Argument(help="Competition folder (description + data files).")],
    workdir: WorkdirOpt = Path("runs"),
    time_budget: Annotated[
        float | None,
        typer.Option("--time-budget", "-t", help="Seconds for the whole run (default: 300)."),
    ] = None,
    llm: LlmOpt = None,
    llm_model: LlmModelOpt = None,
    seed: Annotated[int | None, typer.Option(help="Seed for folds and models (default: 0).")] = None,
    tune_engine: TuneEngineOpt = None,
    skip_models: Annotated[
        str | None, typer.Option(help="Model families not to use, comma separated.")
    ] = None,
    max_llm_tokens: MaxTokensOpt = None,
    max_cost: MaxCostOpt = None,
    memory: MemoryOpt = None,
    submit: KaggleFlag = False,
    message: KaggleMessageOpt = None,
    wait: KaggleWaitOpt = 300.0,
) -> None:
    """Setup + solve + ensemble + submit within a time budget; writes <workdir>/<slug>/submission.csv."""
    from medalist.intake import open_competition
    from medalist.pipeline import run_competition
    from medalist.submit.cli import kaggle_api_or_exit, upload_and_report

    settings = _settings(
        time_budget=time_budget,
        llm=llm,
        llm_model=llm_model,
        seed=seed,
        tune_engine=tune_engine,
        skip_models=skip_models,
        max_llm_tokens=max_llm_tokens,
        max_cost=max_cost,
        memory=memory,
    )
    open_competition(competition)  # bad input fails here, in one line, before any progress is drawn
    api = kaggle_api_or_exit() if submit else None  # missing credentials fail before the run, not after it
    with _RunDisplay(settings.time_budget) as display:
        result = run_competition(competition, workdir, settings, on_event=display.event, raise_errors=True)
    _print_closing_table(result)
    if submit:
        upload_and_report(Path(result.workspace), message, wait, api)


class _RunDisplay:
    """Rich progress for a run: time used against the budget, what runs now, the best CV so far."""

    def __init__(self, budget: float) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.budget = budget
        self.progress = Progress(
            TextColumn("[bold]{task.fields[stage]:<9}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("run", total=budget, stage="start", info="")
        self.best = ""
        self.t0 = 0.0

    def __enter__(self) -> _RunDisplay:
        import time

        self.t0 = time.monotonic()
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def event(self, kind: str, info: dict) -> None:
        import time

        self.progress.update(self.task, completed=min(self.budget, time.monotonic() - self.t0))
        if kind == "stage":
            self.progress.update(self.task, stage=info["name"])
        elif kind == "experiment_start":
            self.progress.update(self.task, info=f"{info['model']} [{info['features']}]  {self.best}")
        elif kind == "submission":
            self.best = f"best {info['name']} cv={info['cv']:.5g}"
            self.progress.update(self.task, info=self.best)
        elif kind == "experiment_failed":
            console.print(f"  [yellow]{info['name']} failed:[/] {info['error'][:120]}", highlight=False)


def _print_closing_table(result) -> None:
    from medalist.workspace import Workspace

    _print_ledger(Workspace(result.workspace), result.best_name)
    out.print(f"{result.n_experiments} experiments in {result.seconds:.0f}s")


WorkspaceArg = Annotated[Path, typer.Argument(help="A run's workspace: <workdir>/<slug>.")]


def _open_workspace(path: Path):
    from medalist.setup import setup_is_done
    from medalist.setup.data import load_task_data
    from medalist.solve.folds import load_or_make_folds
    from medalist.solve.ledger import Ledger
    from medalist.workspace import Workspace

    ws = Workspace(path.expanduser().resolve())
    if not setup_is_done(ws):
        raise MedalistError(
            f"{path} is not a finished setup (no task.json and maps): run `medalist setup` first"
        )
    data = load_task_data(ws)
    return ws, data, load_or_make_folds(ws, data), Ledger(ws.ledger)


@app.command()
def solve(
    workspace: WorkspaceArg,
    time_budget: Annotated[
        float | None,
        typer.Option("--time-budget", "-t", help="Seconds for more experiments (default: 300)."),
    ] = None,
    tune_engine: TuneEngineOpt = None,
    llm: LlmOpt = None,
    llm_model: LlmModelOpt = None,
    skip_models: Annotated[
        str | None, typer.Option(help="Model families not to use, comma separated.")
    ] = None,
    max_llm_tokens: MaxTokensOpt = None,
    max_cost: MaxCostOpt = None,
    memory: MemoryOpt = None,
) -> None:
    """Run more experiments on an existing workspace (finished ones are never repeated)."""
    import time

    from medalist.pipeline import build_policies, promote_record
    from medalist.solve.loop import SolveLoop

    settings = _settings(
        time_budget=time_budget,
        tune_engine=tune_engine,
        llm=llm,
        llm_model=llm_model,
        skip_models=skip_models,
        max_llm_tokens=max_llm_tokens,
        max_cost=max_cost,
        memory=memory,
    )
    ws, data, folds, ledger = _open_workspace(workspace)
    ledger.mark_stale_running()

    def on_record(rec) -> None:
        promote_record(ws, data, rec)

    with build_policies(settings, ws.root.parent) as policies, _RunDisplay(settings.time_budget) as display:
        display.event("stage", {"name": "solve"})
        SolveLoop(
            ws,
            data,
            folds,
            ledger,
            policies.solver(ws, data.spec.summary),
            deadline=time.monotonic() + settings.time_budget,
            on_event=display.event,
            on_record=on_record,
            tune_engine=settings.tune_engine,
            skip_models=settings.skip_models,
            fold_jobs=settings.fold_jobs,
        ).run()
        policies.remember(ws)
    _print_ledger(ws, None)


@app.command()
def ensemble(
    workspace: WorkspaceArg,
    time_budget: Annotated[
        float, typer.Option("--time-budget", "-t", help="Seconds for ensembling.")
    ] = 120.0,
) -> None:
    """Ensemble the ledger's experiments (hill climbing, stackers, distillation); trains no base model."""
    from medalist.pipeline import ensemble_and_choose, promote_record

    ws, data, folds, ledger = _open_workspace(workspace)

    def on_record(rec) -> None:
        promote_record(ws, data, rec)

    with console.status("ensembling…"):
        ensemble_and_choose(ws, data, folds, ledger, time_budget, on_record)
    _print_ledger(ws, None)


@app.command()
def submit(
    workspace: WorkspaceArg,
    experiment: Annotated[
        str | None,
        typer.Option(
            help="Ledger name to submit (default: best by CV; an ensemble within fold noise of it wins)."
        ),
    ] = None,
    kaggle: KaggleFlag = False,
    message: KaggleMessageOpt = None,
    wait: KaggleWaitOpt = 300.0,
) -> None:
    """Write submission.csv from the best experiment or ensemble (or a named one), validated."""
    from medalist.metrics import get_metric
    from medalist.pipeline import candidate_of
    from medalist.submit import choose, promote
    from medalist.submit.cli import kaggle_api_or_exit, upload_and_report

    api = kaggle_api_or_exit() if kaggle else None
    if kaggle and not experiment and (workspace / "submission.csv").is_file():
        return upload_and_report(workspace, message, wait, api)  # the run's choice, as it stands
    ws, data, _, ledger = _open_workspace(workspace)
    if experiment:
        rec = ledger.get(experiment)
        if rec is None or rec.status != "done":
            raise MedalistError(f"no finished experiment named {experiment!r} in {ws.ledger}")
        cand = candidate_of(rec)
    else:
        cand = choose(get_metric(data.spec.metric), [candidate_of(r) for r in ledger.records("done")])
        if cand is None:
            raise MedalistError("the ledger holds no finished experiment; run `medalist solve` first")
    promote(ws, data, cand, force=True)
    out.print(f"wrote {ws.submission_csv} from {cand.name} (cv {cand.cv_score})")
    if kaggle:
        upload_and_report(ws.root, message, wait, api)


def _print_ledger(ws, best_name: str | None) -> None:
    from medalist.metrics import Direction
    from medalist.setup.spec import TaskSpec
    from medalist.solve.ledger import Ledger
    from medalist.submit import chosen

    spec = TaskSpec.load(ws.task_json)
    current = chosen(ws) or {}
    best_name = best_name or current.get("name")
    records = [r for r in Ledger(ws.ledger).records("done") if r.cv_score is not None]
    order = Direction(spec.lower_is_better)
    records.sort(key=lambda r: order.sort_key(r.cv_score))
    table = Table(
        title=f"{spec.slug}: best experiments and ensembles ({spec.metric}, {order.word} is better)"
    )
    for col in ("experiment", "kind", "features", "cv", "seconds"):
        table.add_column(col, justify="right" if col in ("cv", "seconds") else "left")
    for r in records[:12]:
        mark = " *" if r.name == best_name else ""
        table.add_row(r.name + mark, r.kind, r.features or "", f"{r.cv_score:.5f}", f"{r.seconds:.1f}")
    out.print(table)
    if current:
        out.print(f"submission: {ws.submission_csv} ({current['name']}, cv {current['cv_score']:.5f})")


@app.command()
def report(
    workspace: WorkspaceArg,
    competition: Annotated[
        Path | None, typer.Option(help="The competition folder with answers: grade the submission too.")
    ] = None,
) -> None:
    """Write <workspace>/report.html: one self-contained page with the run's plots (no network needed)."""
    from medalist.report import write_report

    out.print(f"wrote {write_report(workspace, competition)}")


@app.command()
def campaign(
    pool: Annotated[
        Path, typer.Argument(help="A folder of competitions (<slug>/public, or one folder each).")
    ],
    workdir: WorkdirOpt = Path("runs"),
    time_budget: Annotated[
        float | None, typer.Option("--time-budget", "-t", help="Seconds per competition (default: 300).")
    ] = None,
    order: Annotated[str, typer.Option(help="curriculum (Agent K Eq. 7) | random | given")] = "curriculum",
    setup_only: Annotated[
        bool, typer.Option("--setup-only", help="Only Phase I for each competition.")
    ] = False,
    llm: LlmOpt = None,
    llm_model: LlmModelOpt = None,
    seed: Annotated[int | None, typer.Option(help="Seed for folds, models and the random order.")] = None,
    max_llm_tokens: MaxTokensOpt = None,
    max_cost: MaxCostOpt = None,
    memory: MemoryOpt = None,
) -> None:
    """Run every competition of a pool, choosing the next by the curriculum and writing memory as it goes;
    a killed campaign resumes (progress in <workdir>/campaign.jsonl)."""
    from medalist.campaign import campaign_table, run_pool

    settings = _settings(
        time_budget=time_budget,
        llm=llm,
        llm_model=llm_model,
        seed=seed,
        max_llm_tokens=max_llm_tokens,
        max_cost=max_cost,
        memory=memory,
    )
    warn = lambda line: console.print(f"[yellow]{line}[/]")  # noqa: E731
    rows = run_pool(pool, workdir, settings, order=order, setup_only=setup_only, warn=warn)
    out.print(campaign_table(rows, order))


@app.command()
def example(
    directory: Annotated[Path, typer.Argument(help="Where to write the example competition folder.")] = Path(
        "examples"
    ),
    name: Annotated[str, typer.Option(help="breast-cancer | wine | diabetes")] = "breast-cancer",
) -> None:
    """Write an embedded example competition (from scikit-learn's bundled datasets; no network)."""
    from medalist.example import make_example

    path = make_example(directory, name)
    out.print(f"wrote {path}")


def _mount() -> None:
    from medalist.bench import cli as bench_cli
    from medalist.llm import cli as llm_cli
    from medalist.memory.cli import memory_app

    app.command()(bench_cli.grade)
    app.command()(bench_cli.bench)
    app.add_typer(llm_cli.app, name="llm")
    app.add_typer(memory_app, name="memory")


_mount()


def main() -> None:
    """Entry point: one clear line and exit code 2 for bad input; never a traceback unless MEDALIST_DEBUG."""
    try:
        code = app(standalone_mode=False)
    except Exit as e:
        code = e.exit_code
    except MedalistError as e:
        console.print(f"error: {_one_line(str(e))}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except Abort:
        console.print("error: aborted", markup=False)
        sys.exit(130)
    except TyperException as e:
        console.print(
            f"error: {_one_line(e.format_message())}", markup=False, highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("error: interrupted; finished work is kept in the workspace", markup=False)
        sys.exit(130)
    except Exception as e:  # a bug: say so in one line, keep the traceback for MEDALIST_DEBUG
        from medalist.config import debug_enabled

        if debug_enabled():
            traceback.print_exc()
        console.print(
            f"error: internal error ({type(e).__name__}: {_one_line(str(e))}); "
            "rerun with MEDALIST_DEBUG=1 for details",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    main()
