"""``medalist memory``: list, show, forget, export, import and remember (a workspace) in the long-term memory.

The main CLI mounts it with ``app.add_typer(memory_app, name="memory")``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from medalist.memory.store import Entry, MemoryStore, default_memory_path, open_store
from medalist.memory.writeback import remember_workspace

memory_app = typer.Typer(help="The long-term memory shared by all runs.", no_args_is_help=True)

PathOpt = Annotated[
    Path | None,
    typer.Option("--memory", "-m", help="Memory file (default: $MEDALIST_MEMORY, else the user data dir)."),
]
SUMMARY_CHARS = 90


def _open(path: Path | None) -> MemoryStore:
    store = open_store(path, warn=lambda line: typer.echo(line, err=True))
    if store is None:
        raise typer.Exit(1)
    return store


@memory_app.command("list")
def list_cmd(
    task: Annotated[str | None, typer.Argument(help="A task key: list its entries.")] = None,
    memory: PathOpt = None,
) -> None:
    """The remembered tasks (one line each), or the entries of one task."""
    store = _open(memory)
    if task is None:
        typer.echo(f"memory: {store.path}")
        for row in store.tasks():
            counts = {}
            for e in store.entries(task_key=row.task_key):
                counts[e.kind] = counts.get(e.kind, 0) + 1
            card = row.card
            kinds = " ".join(f"{k}={n}" for k, n in sorted(counts.items()))
            typer.echo(f"{row.task_key}  {card.get('task_type', '')}  {card.get('metric', '')}  {kinds}")
        return
    for e in store.entries(task_key=task):
        typer.echo(f"{e.id}  {e.kind}  {e.stage}  {_summary(e)}")


@memory_app.command("show")
def show_cmd(
    ident: Annotated[str, typer.Argument(help="An entry id or a task key.")],
    memory: PathOpt = None,
) -> None:
    """One entry (by id) or one task card (by key), in full."""
    store = _open(memory)
    if ident.isdigit():
        found = store.entries(entry_id=int(ident))
        if not found:
            typer.echo(f"no memory entry {ident}", err=True)
            raise typer.Exit(1)
        typer.echo(json.dumps(found[0].to_json(), indent=2, default=str))
        return
    row = store.task(ident)
    if row is None:
        typer.echo(f"no remembered task {ident!r}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(row.to_json(), indent=2, default=str))


@memory_app.command("forget")
def forget_cmd(
    ident: Annotated[str, typer.Argument(help="An entry id, or a task key (the task and all its entries).")],
    memory: PathOpt = None,
) -> None:
    """Delete an entry, or a task with all its entries."""
    n = _open(memory).forget(ident)
    if not n:
        typer.echo(f"nothing to forget for {ident!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"forgot {n} row(s) for {ident}")


@memory_app.command("export")
def export_cmd(
    file: Annotated[Path, typer.Argument(help="JSON-lines file to write (tasks and entries, no vectors).")],
    memory: PathOpt = None,
) -> None:
    """Write the whole memory to a portable JSON-lines file."""
    n = _open(memory).export_jsonl(file)
    typer.echo(f"exported {n} line(s) to {file}")


@memory_app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="A file written by 'medalist memory export'.")],
    memory: PathOpt = None,
) -> None:
    """Merge an export into the memory (what is already there is not added twice)."""
    if not file.is_file():
        typer.echo(f"no such file: {file}", err=True)
        raise typer.Exit(1)
    n = _open(memory).import_jsonl(file)
    typer.echo(f"imported {n} new entr{'y' if n == 1 else 'ies'} from {file}")


@memory_app.command("remember")
def remember_cmd(
    workspace: Annotated[Path, typer.Argument(help="A run's workspace: <workdir>/<slug>.")],
    memory: PathOpt = None,
) -> None:
    """Write a workspace (finished or not) into the memory; running it again adds only what is new."""
    if not (workspace / "task.json").is_file():
        typer.echo(f"{workspace} holds no task.json: run 'medalist setup' first", err=True)
        raise typer.Exit(1)
    n = remember_workspace(_open(memory), workspace)
    typer.echo(f"remembered {n} new entr{'y' if n == 1 else 'ies'} from {workspace}")


@memory_app.command("where")
def where_cmd() -> None:
    """The default memory file."""
    typer.echo(str(default_memory_path()))


def _summary(e: Entry) -> str:
    if e.kind == "stage_fail":
        text = e.message
    elif e.kind == "experiment":
        d = e.data
        text = (
            f"{d.get('family')} {d.get('features')} cv={d.get('cv')} rank {d.get('rank')}/{d.get('n_ranked')}"
        )
    elif e.kind == "ensemble":
        text = f"chosen {e.data.get('chosen')} cv={e.data.get('chosen_cv')}"
    else:
        text = e.content
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 3] + "..."
