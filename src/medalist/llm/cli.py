"""`medalist llm ...` commands."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medalist.errors import MedalistError
from medalist.llm.endpoint import check_endpoint, llm_endpoint

app = typer.Typer(help="The LLM endpoint: check it.", no_args_is_help=True, add_completion=False)


@app.callback()
def _main() -> None:
    """The LLM endpoint."""


@app.command()
def check(
    llm: Annotated[
        str | None, typer.Option("--llm", help="none, local, or an OpenAI-compatible base URL")
    ] = None,
    llm_model: Annotated[
        str | None,
        typer.Option("--llm-model", help="for --llm local: a GGUF path or a packaged model name"),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="model name sent to the endpoint")] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="API key (else MEDALIST_LLM_API_KEY)")
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="llama.cpp threads for --llm local")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Print the endpoint, model, latency and tokens/s."""
    from medalist.config import load_settings

    console = Console()
    try:
        settings = load_settings({"llm": llm, "llm_model": llm_model, "api_key": api_key, "threads": threads})
        with llm_endpoint(
            settings.llm,
            llm_model=settings.llm_model,
            base=settings.llm_config,
            model_dir=settings.local_model_dir,
            model=model,
        ) as config:
            if config is None:
                console.print("LLM disabled (--llm none): medalist uses its built-in expert policy.")
                return
            report = check_endpoint(config)
    except MedalistError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    for key in (
        "endpoint",
        "model",
        "latency_seconds",
        "prompt_tokens_per_second",
        "completion_tokens_per_second",
    ):
        table.add_row(key.replace("_", " "), str(report[key]))
    table.add_row("tokens", f"{report['prompt_tokens']} prompt, {report['completion_tokens']} completion")
    table.add_row("speed from", report["speed_source"])
    if report["reasoning"]:
        table.add_row("parameters", "reasoning model (max_completion_tokens, no temperature)")
    console.print(table)
