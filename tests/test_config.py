"""Settings: defaults < TOML file < environment < flags, one-line errors for bad values, and every command
(setup, run, solve, bench) building its policies with ``pipeline.build_policies``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medalist import pipeline
from medalist.bench import cli as bench_cli
from medalist.cli import app
from medalist.config import Settings, load_settings
from medalist.errors import InputError, MedalistError
from medalist.llm.config import DEFAULT_PRICES
from medalist.policy.expert import ExpertPolicy
from medalist.policy.expert_solve import ExpertSolver
from medalist.policy.llm import LLMPolicy
from medalist.policy.llm_solve import LLMSolver
from medalist.solve.ledger import Ledger
from medalist.workspace import Workspace
from tests.scripted_server import Reply, ScriptedChatServer
from tests.solve_helpers import TITANIC, competition_workspace

TOML = """
time_budget = 120
tune_engine = "optuna"
skip_models = ["knn", "rf"]
fold_jobs = 1
llm = "local"
[llm_config]
max_cost = 1.5
max_retries = 2
prices = {"house-model" = [1, 2]}
"""


def _toml(tmp_path: Path, text: str = TOML) -> Path:
    path = tmp_path / "medalist.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_environment_or_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no medalist.toml here
    settings = load_settings(env={})
    assert settings == Settings(llm_config=settings.llm_config)
    assert (settings.time_budget, settings.tune_engine, settings.skip_models) == (300.0, "auto", ())
    assert (
        not settings.uses_llm
        and settings.llm_config.max_cost is None
        and settings.llm_config.max_retries == 4
    )


def test_precedence_defaults_toml_environment_flags(tmp_path: Path) -> None:
    path = _toml(tmp_path)
    from_file = load_settings(env={}, config_file=path)
    assert from_file.time_budget == 120.0 and from_file.tune_engine == "optuna"
    assert from_file.skip_models == ("knn", "rf") and from_file.fold_jobs == 1 and from_file.llm == "local"
    assert from_file.llm_config.max_cost == 1.5 and from_file.llm_config.max_retries == 2
    assert from_file.llm_config.price("house-model") == (1.0, 2.0)
    assert from_file.llm_config.price("gpt-4o-mini") == DEFAULT_PRICES["gpt-4o-mini"]  # the table is extended

    env = {
        "MEDALIST_TIME_BUDGET": "90",
        "MEDALIST_SKIP_MODELS": "mlp",
        "MEDALIST_MAX_COST": "0.75",
        "MEDALIST_LLM": "http://127.0.0.1:9/v1",
    }
    from_env = load_settings(env=env, config_file=path)
    assert from_env.time_budget == 90.0 and from_env.skip_models == ("mlp",)
    assert from_env.llm_choice == "http://127.0.0.1:9/v1" and from_env.llm_config.max_cost == 0.75
    assert from_env.tune_engine == "optuna" and from_env.llm_config.max_retries == 2  # still the file's

    flags = {"time_budget": 30.0, "max_cost": 0.25, "llm": "none", "tune_engine": None}
    from_flags = load_settings(flags, env=env, config_file=path)
    assert from_flags.time_budget == 30.0 and from_flags.llm_config.max_cost == 0.25
    assert not from_flags.uses_llm
    assert from_flags.tune_engine == "optuna"  # a flag that is None was not given


def test_settings_file_is_found_by_environment_or_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _toml(tmp_path, "time_budget = 42\ncache_dir = 'cache'\n")
    local = load_settings(env={})
    assert local.time_budget == 42.0
    assert local.llm_config.resolved_cache_dir() == Path("cache") / "llm"  # the LLM cache follows cache_dir
    assert local.local_model_dir == Path("cache") / "models"
    named = tmp_path / "other.toml"
    named.write_text("time_budget = 7\n")
    assert load_settings(env={"MEDALIST_CONFIG": str(named)}).time_budget == 7.0
    with pytest.raises(InputError, match="MEDALIST_CONFIG"):
        load_settings(env={"MEDALIST_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    ("text", "env", "flags", "message"),
    [
        ("time_budget = 'soon'\n", {}, {}, "time_budget: expected a number"),
        ("time_budget = -1\n", {}, {}, "--time-budget must be positive"),
        ("time_budget = 10\n", {"MEDALIST_FOLD_JOBS": "two"}, {}, "MEDALIST_FOLD_JOBS='two'"),
        ("tune_engine = 'grid'\n", {}, {}, "--tune-engine must be one of"),
        ("timebudget = 10\n", {}, {}, "unknown setting"),
        ("[llm_config]\nmax_retries = 'many'\n", {}, {}, "llm_config.max_retries: expected a number"),
        ("[llm_config]\ntemperatur = 0.1\n", {}, {}, "unknown setting.*llm_config.temperatur"),
        ("time_budget = \n", {}, {}, "cannot read settings file"),
        ("", {}, {"llm": "gpt"}, "--llm must be none, local or an http"),
        ("", {}, {"max_cost": -1.0}, "--max-cost must be >= 0"),
    ],
)
def test_bad_values_raise_one_line_input_errors(
    tmp_path: Path, text: str, env: dict, flags: dict, message: str
) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_settings(flags, env=env, config_file=_toml(tmp_path, text))
    assert "\n" not in str(info.value)


def test_cli_bad_settings_file_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = _toml(tmp_path, "[llm_config]\nmax_cost = 'cheap'\n")
    res = subprocess.run(
        [sys.executable, "-m", "medalist.cli", "run", str(tmp_path), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MEDALIST_CONFIG": str(bad)},
    )
    assert res.returncode == 2 and res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "llm_config.max_cost" in res.stderr and "Traceback" not in res.stderr


class _Stop(MedalistError):
    """Raised by the spy once the command has asked for its policies."""


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Settings, Path]]:
    """Replaces pipeline.build_policies: records what each command asked for, then stops the command."""
    calls: list[tuple[Settings, Path]] = []

    def build_policies(settings: Settings, workdir: Path):
        calls.append((settings, Path(workdir)))
        raise _Stop("stopped by the test once the policies were asked for")

    monkeypatch.setattr(pipeline, "build_policies", build_policies)
    for var in ("MEDALIST_LLM", "MEDALIST_TIME_BUDGET", "MEDALIST_CONFIG", "MEDALIST_MAX_COST"):
        monkeypatch.delenv(var, raising=False)
    return calls


def test_setup_run_solve_and_bench_all_build_their_policies_in_one_place(
    spy, competitions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    titanic = str(competitions / "titanic" / "public")
    url = "http://127.0.0.1:9/v1"
    runner = CliRunner()
    runner.invoke(app, ["setup", titanic, "-w", str(tmp_path / "s"), "--llm", url, "--max-cost", "0.5"])
    runner.invoke(app, ["run", titanic, "-w", str(tmp_path / "r"), "-t", "33", "--max-llm-tokens", "900"])
    ws, _ = competition_workspace(tmp_path / "v", competitions, TITANIC)
    runner.invoke(app, ["solve", str(ws.root), "-t", "44", "--llm", "local", "--tune-engine", "optuna"])
    bench = ["bench", str(competitions), "-w", str(tmp_path / "b"), "-t", "55", "--only", "titanic"]
    res = runner.invoke(bench_cli.app, [*bench, "--llm", url, "--max-cost", "0.1"])
    assert res.exit_code == 0, res.output
    assert len(spy) == 4, spy
    (setup, _), (run, _), (solve, solve_dir), (bench_run, _) = spy
    assert setup.llm_choice == url and setup.llm_config.max_cost == 0.5
    assert run.time_budget == 33.0 and run.llm_config.max_llm_tokens == 900 and not run.uses_llm
    assert solve.time_budget == 44.0 and solve.llm_choice == "local" and solve.tune_engine == "optuna"
    assert solve_dir == ws.root.parent
    assert (
        bench_run.time_budget == 55.0 and bench_run.llm_choice == url and bench_run.llm_config.max_cost == 0.1
    )


def test_cli_flags_override_environment_and_settings_file(
    spy, competitions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _toml(tmp_path, "time_budget = 77\ntune_engine = 'optuna'\n")
    args = ["run", str(competitions / "titanic" / "public"), "-w", str(tmp_path / "r")]
    CliRunner().invoke(app, args)
    monkeypatch.setenv("MEDALIST_TIME_BUDGET", "88")
    CliRunner().invoke(app, args)
    CliRunner().invoke(app, [*args, "-t", "99"])
    assert [(s.time_budget, s.tune_engine) for s, _ in spy] == [
        (77.0, "optuna"),
        (88.0, "optuna"),
        (99.0, "optuna"),
    ]


def test_build_policies_without_an_llm_is_the_expert(tmp_path: Path) -> None:
    with pipeline.build_policies(
        load_settings(env={}, config_file=_toml(tmp_path, "")), tmp_path
    ) as policies:
        assert isinstance(policies.setup, ExpertPolicy) and policies.fallback is None and policies.llm is None
        assert isinstance(policies.solver(Workspace.create(tmp_path, "t"), "a task"), ExpertSolver)


PROPOSAL = {"model": "lgbm", "features": "count", "params": {"num_leaves": 7}, "why": "count encodings"}


def _answer(body: dict) -> Reply:
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    if "Stage: propose experiment" in text:
        return Reply(json.dumps(PROPOSAL), prompt_tokens=300, completion_tokens=30)
    return Reply("I do not know.", prompt_tokens=200, completion_tokens=5)


def test_build_policies_with_an_endpoint_gives_the_llm_solve_policy(tmp_path: Path) -> None:
    """Against a SCRIPTED chat server (not a model): the endpoint settings reach the policy."""
    with ScriptedChatServer(_answer) as server:
        settings = load_settings(
            {"llm": server.base_url, "llm_model": "scripted", "max_cost": 0.5, "cache": False},
            env={"MEDALIST_LLM_MAX_RETRIES": "1"},
            config_file=_toml(tmp_path, "[llm_config]\nprices = {scripted = [0.5, 1]}\n"),
        )
        with pipeline.build_policies(settings, tmp_path) as policies:
            assert isinstance(policies.setup, LLMPolicy) and isinstance(policies.fallback, ExpertPolicy)
            config = policies.llm.config
            assert (config.base_url, config.model, config.max_cost) == (server.base_url, "scripted", 0.5)
            assert config.max_retries == 1 and not config.cache
            ws = Workspace.create(tmp_path, "titanic")
            solver = policies.solver(ws, "titanic survival")
            assert isinstance(solver, LLMSolver) and solver.llm_share == 0.5
            assert solver.task_summary == "titanic survival"


def test_solve_with_llm_runs_the_models_proposals(
    competitions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`medalist solve --llm URL` against a SCRIPTED chat server (not a model) that proposes one fixed
    experiment: the proposal runs and is in the ledger."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MEDALIST_LLM_CACHE", "0")
    setup = CliRunner().invoke(app, ["setup", str(competitions / "titanic" / "public"), "-w", "runs"])
    assert setup.exit_code == 0, setup.output
    ws = Workspace(tmp_path / "runs" / "titanic")
    with ScriptedChatServer(_answer) as server:
        res = CliRunner().invoke(
            app,
            ["solve", str(ws.root), "-t", "50", "--llm", server.base_url, "--llm-model", "scripted"],
        )
        requests = server.request_count
    assert res.exit_code == 0, res.output
    assert requests >= 1
    proposed = [r for r in Ledger(ws.ledger).records(status=None) if r.note.startswith("llm")]
    assert proposed and proposed[0].model == "lgbm" and proposed[0].params["num_leaves"] == 7
    calls = (ws.logs / "llm_calls.jsonl").read_text().splitlines()
    assert len(calls) == requests
