"""How a memory prior changes the expert's schedule and the tuning's first trials, and that an empty one
changes nothing; end to end, a run with a remembered task logs what memory retrieved and changed."""

from __future__ import annotations

import json

import pytest

from medalist.metrics import Direction
from medalist.policy.expert_solve import ExpertSolver
from medalist.solve.policy import EMPTY_PRIOR, Prior
from medalist.solve.tuning import fit_to_space, hebo_unavailable, tune
from tests.test_expert_solve import _rec, _state

SPACE = {
    "x": ("float", -2.0, 2.0),
    "n": ("int", 1, 9),
    "lr": ("logfloat", 1e-4, 1.0),
    "k": ("cat", ["a", "b"]),
}
PRIOR = Prior(
    families=("catboost", "linear"),
    never_helped=("lgbm",),
    recipes=("target_enc",),
    params=(("catboost", ({"depth": 4, "learning_rate": 0.05, "n_threads": 2},)),),
    sources=(("other-task", 0.8),),
)


def _schedule(solver: ExpertSolver, steps: int = 8) -> list[tuple[str, str, str]]:
    """The first ``steps`` proposals, each answered by a finished experiment."""
    done, out = [], []
    for i in range(steps):
        p = solver.propose(_state(done))[0]
        out.append((p.kind, p.model, p.features))
        done.append(
            _rec(
                p.model,
                0.7 + 0.01 * i,
                features=p.features,
                origin="trial" if p.kind == "tune" else "baseline",
            )
        )
    return out


def test_empty_prior_leaves_the_schedule_as_it_was():
    assert _schedule(ExpertSolver(prior=EMPTY_PRIOR)) == _schedule(ExpertSolver())


def test_prior_orders_baselines_recipes_and_seeds_the_first_tuning_round():
    plain, remembered = ExpertSolver(), ExpertSolver(prior=PRIOR)
    assert plain.propose(_state([]))[0].model == "lgbm"
    order = []
    done = []
    for _ in range(8):
        p = remembered.propose(_state(done))[0]
        if p.kind != "spec" or p.features != "base":
            break
        order.append(p.model)
        done.append(_rec(p.model, 0.8 if p.model == "catboost" else 0.7))
    assert order[:2] == ["catboost", "linear"] and order[-1] == "lgbm"  # helpful first, never-helped last
    recipes = remembered._recipes(_state(done))
    assert recipes[0].features == "target_enc"
    tune_round = remembered._tune(_state(done, time_left=250.0))[0]
    assert tune_round.model == "catboost" and tune_round.warm_start == PRIOR.params_for("catboost")
    again = remembered._tune(_state([*done, _rec("catboost", 0.81, origin="trial")], time_left=250.0))[0]
    assert again.warm_start == ()  # only a family's first round starts from memory


def test_fit_to_space_drops_clips_and_fills():
    point = fit_to_space({"x": 7.0, "n": 3.6, "k": "z", "n_threads": 4}, SPACE)
    assert point == {"x": 2.0, "n": 4, "lr": pytest.approx(1e-2), "k": "a"}


@pytest.mark.parametrize("engine", ["optuna", "hebo"])
def test_warm_start_points_are_the_first_trials(engine):
    if engine == "hebo" and hebo_unavailable():
        pytest.skip(f"HEBO unavailable: {hebo_unavailable()}")
    seen = []

    def objective(p):
        seen.append(dict(p))
        return (p["x"] - 1.0) ** 2 + (p["k"] == "b")

    warm = [{"x": 1.0, "n": 2, "lr": 0.1, "k": "a"}, {"x": -1.5, "k": "b"}]
    result = tune(
        objective,
        SPACE,
        engine=engine,
        order=Direction(True),
        n_trials=4,
        time_budget=60,
        seed=0,
        warm_start=warm,
    )
    assert seen[0] == warm[0] and seen[1] == fit_to_space(warm[1], SPACE)
    assert result.best_score == 0.0 and result.best_params["x"] == 1.0


@pytest.mark.slow
def test_a_run_with_a_remembered_task_logs_what_memory_changed(tmp_path, monkeypatch):
    """Two real runs on embedded examples into one memory: the second (breast-cancer) retrieves the first
    (wine) and logs what it changed; the store holds both tasks."""
    from medalist.example import make_example
    from medalist.memory.store import MemoryStore
    from medalist.pipeline import run_competition

    store_path = tmp_path / "mem.sqlite"
    monkeypatch.setenv("MEDALIST_MEMORY", str(store_path))
    first = make_example(tmp_path / "a", "wine")
    r1 = run_competition(first, tmp_path / "runs", time_budget=40, raise_errors=True)
    second = make_example(tmp_path / "b", "breast-cancer")
    r2 = run_competition(second, tmp_path / "runs", time_budget=40, raise_errors=True)
    assert r1.submission and r2.submission
    events = [json.loads(line) for line in (r2.workspace / "logs" / "run.jsonl").read_text().splitlines()]
    memory = next(e for e in events if e.get("event") == "memory")
    assert memory["nearest"][0][0] == "wine"
    if memory["nearest"][0][1] >= memory["min_similarity"]:  # alike enough: the prior acted
        assert memory["tasks"] == 1 and memory["retrieved"] > 0 and memory["families_first"]
    else:  # a multiclass wine table is not a binary tumour table: nothing changed
        assert memory["tasks"] == 0 and memory["families_first"] == [] and memory["warm_starts"] == {}
    store = MemoryStore(store_path)
    assert {t.task_key for t in store.tasks()} == {"wine", "breast-cancer"}
    written = [e for e in events if e.get("event") == "memory_written"]
    assert written and written[-1]["new_entries"] >= 0


@pytest.mark.slow
def test_llm_prompts_carry_memory_from_an_earlier_competition(competitions, tmp_path, monkeypatch):
    """A SCRIPTED chat server (not a model; plumbing only) sets up and solves spaceship-titanic after an
    expert run on titanic wrote the memory: setup prompts carry RAG+ entries of titanic's stages, the stage
    records count them, and the proposal prompt carries the prior and the data profile (eda.json)."""
    from medalist.pipeline import run_competition
    from tests.scripted_server import Reply, ScriptedChatServer

    monkeypatch.setenv("MEDALIST_LLM_CACHE", "0")
    first = run_competition(competitions / "titanic" / "public", tmp_path / "runs", time_budget=40)
    assert first.submission is not None

    def answer(body: dict) -> Reply:
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        if "Stage: propose experiment" in text:
            return Reply(json.dumps({"model": "lgbm", "features": "base", "params": {}, "why": "x"}))
        return Reply("I do not know.")

    with ScriptedChatServer(answer) as server:
        second = run_competition(
            competitions / "spaceship-titanic" / "public",
            tmp_path / "runs",
            time_budget=90,
            llm=server.base_url,
            raise_errors=True,
        )
        prompts = [" ".join(str(m.get("content", "")) for m in r["messages"]) for r in server.requests]
    assert second.submission is not None
    setup_prompts = [p for p in prompts if "Stage: propose experiment" not in p]
    assert any("From earlier competitions (long-term memory)" in p and "titanic" in p for p in setup_prompts)
    assert any(r["memory"] > 0 and r["policy"] == "llm" for r in second.stage_records)
    proposals = [p for p in prompts if "Stage: propose experiment" in p]
    assert proposals and all("Memory: on the most similar past tasks (titanic" in p for p in proposals)
    assert all("Data: " in p and "Train/test drift: AUC" in p for p in proposals), proposals[0][:3000]


def test_a_corrupt_memory_file_gives_one_warning_line_and_the_run_goes_on(tmp_path):
    """`medalist run --memory <a file that is not a memory>`: one warning line on stderr, a valid submission,
    and the file left as it was."""
    import subprocess
    import sys

    from medalist.example import make_example

    comp = make_example(tmp_path / "c", "breast-cancer")
    bad = tmp_path / "memory.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    before = bad.read_bytes()
    cmd = [sys.executable, "-m", "medalist.cli", "run", str(comp), "--workdir", str(tmp_path / "w")]
    proc = subprocess.run(
        [*cmd, "-t", "25", "--memory", str(bad)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "memory unavailable" in line]
    assert len(warnings) == 1 and "running without memory" in warnings[0]
    assert (tmp_path / "w" / "breast-cancer" / "submission.csv").is_file()
    assert bad.read_bytes() == before
