"""LLMPolicy against a SCRIPTED chat server on loopback (tests/scripted_server.py): it is not a model. Each
request is answered from a script keyed by the prompt's "Stage: ..." line, so what is tested is the
policy's loop on a real competition (titanic/public): prompts, sandboxed code, check errors fed back,
rollback with credit assignment, expert fallback, and token accounting."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from medalist.errors import CheckError, InputError
from medalist.llm import LLMConfig
from medalist.metrics import Direction
from medalist.policy.expert import ExpertPolicy
from medalist.policy.expert_solve import ExpertSolver
from medalist.policy.llm import LLMPolicy, make_llm_policy
from medalist.policy.llm_solve import LLMSolver
from medalist.setup import run_setup
from medalist.solve.ledger import summarize
from medalist.solve.policy import SolveState
from medalist.solve.types import ExperimentRecord
from medalist.workspace import read_jsonl
from tests.scripted_server import Reply, ScriptedChatServer

TRAIN_BAD = """Plan: take the planned columns.
```python
def build():
    df = read_table(TRAIN)
    out = df[COLUMNS + ["Lifeboat"]].copy()
    out.insert(0, "id", make_keys(df[ID].tolist()))
    return out
```"""
TRAIN_OK = """Plan: keep labelled rows, take the planned columns.
```python
def build():
    df = read_table(TRAIN)
    df = df[df[LABELS].notna().all(axis=1)]
    out = df[COLUMNS].copy()
    out.insert(0, "id", make_keys(df[ID].tolist()))
    return out.reset_index(drop=True)
```"""
TARGET_OK = """```python
def build():
    df = read_table(TRAIN)
    df = df[df[LABELS].notna().all(axis=1)]
    out = df[LABELS].copy()
    out.columns = TARGETS
    out.insert(0, "id", make_keys(df[ID].tolist()))
    return out.reset_index(drop=True)
```"""
TARGET_DROPS_ROWS = TARGET_OK.replace("df = df[df[LABELS].notna().all(axis=1)]", "df = df.head(800)")
TITANIC_ANSWERS = {
    "summary": "Predict whether each Titanic passenger survived (0 or 1) from tabular data such as class, sex "
    "and age; submissions are scored by accuracy.",
    "modalities": '```json\n{"train": "train.csv", "test": "test.csv", "sample_submission": '
    '"gender_submission.csv", "train_labels": null, "id_column": "PassengerId", "inputs": ["tabular"], '
    '"image_column": null}\n```',
    "plan": '{"id_column": "PassengerId", "target_columns": ["Survived"], "task_type": "binary", '
    '"text_columns": [], "exclude": []}',
    "train_tab_input": TRAIN_OK,
    "train_tab_target": TARGET_OK,
    "target_transform": '{"output": "label", "positive_class": 1, "log": false}',
    "test_tab_input": """```python
def build():
    sample = read_table(SAMPLE)
    test = read_table(TEST).set_index(ID).loc[sample[ID]].reset_index()
    out = test[COLUMNS].copy()
    out.insert(0, "id", make_keys(sample[ID].tolist()))
    return out
```""",
    "metric": '{"metric": "accuracy"}',
    "formatter": '{"method": "fill_sample", "alternative": "merge_on_id"}',
}


def stage_of(body: dict) -> str:
    """The prompt's first line names the stage: 'Stage: plan' or 'Stage: train_tab_input (rollback)'."""
    first = body["messages"][-1]["content"].split("\n", 1)[0]
    return first.removeprefix("Stage: ")


class Script:
    """Answers per stage (a list is consumed answer by answer); counts the tokens the server reports."""

    def __init__(self, answers: dict[str, str | list[str]]) -> None:
        self.answers = {k: list(v) if isinstance(v, list) else v for k, v in answers.items()}
        self.tokens = Counter()
        self.calls: list[tuple[str, str]] = []  # (stage line, user prompt)

    def __call__(self, body: dict) -> Reply:
        line = stage_of(body)
        self.calls.append((line, body["messages"][-1]["content"]))
        stage = line.split(" (")[0]
        kind = line[len(stage) :].strip(" ()")
        answer = self.answers.get(f"{stage}:{kind}" if kind else stage, "I do not know.")
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        n = len(self.calls)
        reply = Reply(answer, prompt_tokens=100 + n, completion_tokens=5 + n % 7)
        self.tokens["prompt"] += reply.prompt_tokens
        self.tokens["completion"] += reply.completion_tokens
        return reply

    def prompts(self, line: str) -> list[str]:
        return [p for stage, p in self.calls if stage == line]


def _policy(server: ScriptedChatServer, workdir: Path) -> LLMPolicy:
    config = LLMConfig(base_url=server.base_url, model="scripted", cache=False, max_retries=0, timeout=30)
    return LLMPolicy(config, workdir=workdir, sandbox_timeout=120)


def _setup(competitions: Path, tmp_path: Path, script: Script):
    with ScriptedChatServer(script) as server, _policy(server, tmp_path) as policy:
        spec, ws, records = run_setup(
            competitions / "titanic" / "public", tmp_path, policy=policy, fallback=ExpertPolicy()
        )
    return spec, ws, records, policy


def _assert_titanic_spec(spec, competitions: Path) -> None:
    grading = json.loads((competitions / "titanic" / "grading.json").read_text())
    assert spec.id_column == grading["id_column"]
    assert spec.target_columns == grading["target_columns"]
    assert spec.metric == grading["metric"] and spec.lower_is_better == grading["lower_is_better"]
    assert spec.task_type == "binary" and spec.transform.classes == [0, 1]


def _assert_tokens_match(records, ws, script: Script) -> None:
    """Every token the server reported is in the stage records, and in logs/llm_calls.jsonl."""
    assert sum(r.prompt_tokens for r in records) == script.tokens["prompt"]
    assert sum(r.completion_tokens for r in records) == script.tokens["completion"]
    calls = read_jsonl(ws.logs / "llm_calls.jsonl")
    assert len(calls) == len(script.calls)
    assert sum(c["prompt_tokens"] for c in calls) == script.tokens["prompt"]
    assert sum(c["completion_tokens"] for c in calls) == script.tokens["completion"]


def test_code_stage_fails_its_check_then_passes_with_the_error_in_context(competitions, tmp_path):
    script = Script({**TITANIC_ANSWERS, "train_tab_input": [TRAIN_BAD, TRAIN_OK]})
    spec, ws, records, policy = _setup(competitions, tmp_path, script)
    _assert_titanic_spec(spec, competitions)
    tries = [r for r in records if r.stage == "train_tab_input"]
    assert [(r.attempt, r.ok, r.policy) for r in tries] == [(1, False, "llm"), (2, True, "llm")]
    assert "KeyError" in tries[0].error and "Lifeboat" in tries[0].error
    first, second = script.prompts("train_tab_input")
    assert "It failed this check" not in first
    # the retry shows the previous code and the check's message
    assert 'COLUMNS + ["Lifeboat"]' in second and "It failed this check" in second and "KeyError" in second
    # the passing code is kept for the reader and reruns the same map
    kept = (ws.code / "train_tab_input.py").read_text()
    assert "df[df[LABELS].notna().all(axis=1)]" in kept and "open_competition(" in kept
    assert all(r.policy in ("llm", "check") for r in records)  # no fallback was needed
    assert policy.notes["train_tab_input"]["plan"].startswith("keep labelled rows")
    assert "derived" in json.loads((ws.code / "decisions.json").read_text())["plan"]["llm"]
    _assert_tokens_match(records, ws, script)


def test_meta_check_failure_rolls_back_with_thought_and_credit_assignment(competitions, tmp_path):
    script = Script(
        {
            **TITANIC_ANSWERS,
            "train_tab_target": [TARGET_DROPS_ROWS, TARGET_OK],
            "train_tab_input:rollback": "The target map dropped rows, so its ids disagree with the input map.",
            "train_tab_input:credit assignment": "KEEP",
            "train_tab_target:credit assignment": "REDO",
        }
    )
    spec, ws, records, policy = _setup(competitions, tmp_path, script)
    _assert_titanic_spec(spec, competitions)
    metas = [(r.ok, r.error) for r in records if r.stage == "meta:train_ids_agree"]
    assert [ok for ok, _ in metas] == [False, True]
    assert "91 only in the input map" in metas[0][1]
    # one thought about the failure, then a KEEP/REDO question per covered stage, in order
    order = [line for line, _ in script.calls]
    i = order.index("train_tab_input (rollback)")
    assert order[i + 1 : i + 4] == [
        "train_tab_input (credit assignment)",
        "train_tab_target (credit assignment)",
        "train_tab_target",
    ]
    thought = script.prompts("train_tab_input (rollback)")[0]
    assert "train_ids_agree" in thought and "train_tab_input, train_tab_target" in thought
    credit = script.prompts("train_tab_target (credit assignment)")[0]
    assert "a table of 800 rows" in credit and "891 labelled" in credit and "df.head(800)" in credit
    assert "The target map dropped rows" in credit  # the cached thought is in every credit prompt
    redo = script.prompts("train_tab_target")[1]
    assert "train_ids_agree" in redo and "Thought: The target map dropped rows" in redo
    kept = [r for r in records if r.stage == "train_tab_input" and r.kept]
    assert len(kept) == 1 and kept[0].rollback_from == "train_ids_agree" and kept[0].policy == "llm"
    redone = [r for r in records if r.stage == "train_tab_target"]
    assert [(r.attempt, r.ok, r.kept) for r in redone] == [(1, True, False), (1, True, False)]
    assert policy.notes["train_tab_target"]["credit"] == "REDO"
    assert policy.notes["train_tab_input"]["credit"] == "KEEP"
    _assert_tokens_match(records, ws, script)  # REDO verdicts' tokens land in the stage's next record


def test_a_second_rollback_hands_the_covered_stages_to_the_expert(competitions, tmp_path):
    script = Script(
        {
            **TITANIC_ANSWERS,
            "train_tab_target": TARGET_DROPS_ROWS,  # the model never fixes it
            "train_tab_input:rollback": "The target map dropped rows.",
            "train_tab_input:credit assignment": "KEEP",
            "train_tab_target:credit assignment": "REDO",
        }
    )
    spec, ws, records, _ = _setup(competitions, tmp_path, script)
    _assert_titanic_spec(spec, competitions)
    metas = [r.ok for r in records if r.stage == "meta:train_ids_agree"]
    assert metas == [False, False, True]
    handed = [r for r in records if r.fallback and r.fallback.startswith("expert took")]
    assert {r.stage for r in handed} == {"train_tab_input", "train_tab_target"}
    assert all(r.ok for r in handed)
    _assert_tokens_match(records, ws, script)


def test_a_useless_model_falls_back_to_the_expert_on_every_stage(competitions, tmp_path):
    script = Script({})  # every answer is "I do not know."
    spec, ws, records, _ = _setup(competitions, tmp_path, script)
    _assert_titanic_spec(spec, competitions)
    stages = [r for r in records if not r.stage.startswith("meta:") and r.stage != "final_check"]
    by_stage: dict[str, list] = {}
    for r in stages:
        by_stage.setdefault(r.stage, []).append(r)
    assert set(by_stage) == {
        "summary",
        "modalities",
        "plan",
        "train_tab_input",
        "train_tab_target",
        "target_transform",
        "test_tab_input",
        "metric",
        "formatter",
    }
    for stage, recs in by_stage.items():
        assert [(r.policy, r.ok) for r in recs] == [("llm", False)] * 3 + [("expert", True)], stage
        assert recs[-1].fallback.startswith(f"llm failed {stage}: ")
    assert "no JSON object" in by_stage["plan"][0].error
    assert "no ```python block" in by_stage["train_tab_input"][0].error
    _assert_tokens_match(records, ws, script)


def test_make_llm_policy_for_a_url_and_for_none(tmp_path):
    with ScriptedChatServer(lambda body: Reply("ok")) as server:
        policy = make_llm_policy(server.base_url, workdir=tmp_path, model="scripted", cache=False)
        with policy:
            assert policy.name == "llm" and policy.config.base_url == server.base_url
    with pytest.raises(InputError):
        make_llm_policy("none")


# ---------------------------------------------------------------------------------------------- solve
MODELS = ["lgbm", "linear", "et"]
RECIPES = {"base": "numerics as float", "count": "base + counts"}


def test_propose_experiment_feeds_validation_errors_back(tmp_path):
    answers = [
        '{"model": "deep_forest", "features": "base", "params": {}}',
        '```json\n{"model": "LightGBM", "features": "count", "params": {"num_leaves": 999, "colour": "red",'
        ' "learning_rate": 0.05}, "why": "counts help trees"}\n```',
    ]
    with ScriptedChatServer([Reply(a, prompt_tokens=50, completion_tokens=9) for a in answers]) as server:
        policy = _policy(server, tmp_path)
        summary = summarize(
            [
                ExperimentRecord(
                    "lgbm_1", "lgbm", "1", cv_score=0.81, status="done", features="base", seconds=3.0
                )
            ],
            Direction(False),
        )
        out = policy.propose_experiment(
            summary, 600, MODELS, RECIPES, metric="accuracy", order=Direction(False), allow_script=False
        )
        first, second = (r["messages"][-1]["content"] for r in server.requests)
    assert "lgbm features=base: cv 0.81" in first and "Time left: 10 min" in first
    assert "'deep_forest' is not one of the available models: lgbm, linear, et" in second
    assert out["kind"] == "spec" and out["model"] == "lgbm" and out["features"] == "count"
    assert out["params"] == {"num_leaves": 255, "learning_rate": 0.05}  # clipped into the search space
    assert out["dropped_params"] == ["colour"]
    assert out["usage"] == {"prompt_tokens": 100, "completion_tokens": 18, "attempts": 2}


def test_propose_experiment_accepts_a_contract_script_and_rejects_a_broken_one(tmp_path):
    good = (
        "Plan: ridge on numerics.\n```python\nimport os\nimport numpy as np\n"
        "np.save(os.environ['MEDALIST_OUT_OOF'], np.zeros((3, 1)))\n"
        "np.save(os.environ['MEDALIST_OUT_TEST'], np.zeros((2, 1)))\n```"
    )
    with ScriptedChatServer(
        ["```python\nimport os\nprint(os.environ['MEDALIST_OUT_OOF'])\n```", good]
    ) as server:
        out = _policy(server, tmp_path).propose_experiment("", 120, MODELS, list(RECIPES))
        retry = server.requests[1]["messages"][-1]["content"]
    assert "never writes MEDALIST_OUT_TEST" in retry and "Experiment script contract" in retry
    assert (
        out["kind"] == "script" and "MEDALIST_OUT_TEST" in out["code"] and out["why"] == "ridge on numerics."
    )
    with ScriptedChatServer(["no idea", "still no idea"]) as server, pytest.raises(CheckError):
        _policy(server, tmp_path).propose_experiment("", 120, MODELS, list(RECIPES))


def _state(done, failed, time_left=500.0) -> SolveState:
    return SolveState(
        "binary",
        "accuracy",
        False,
        891,
        418,
        ["tabular"],
        {"tabular": 10},
        MODELS,
        list(RECIPES),
        done,
        failed,
        time_left,
        600.0,
    )


def test_llm_solver_proposes_and_sends_a_failure_back_for_a_fix(tmp_path):
    from medalist.solve.types import ExperimentSpec

    answers = [
        '{"model": "lgbm", "features": "base", "params": {}}',  # already in the ledger
        '{"model": "et", "features": "base", "params": {"max_depth": 5, "n_jobs": 8}}',
        '{"model": "et", "features": "count", "params": {}, "why": "fix"}',
    ]
    with ScriptedChatServer(answers) as server:
        solver = LLMSolver(_policy(server, tmp_path), ExpertSolver(), llm_share=1.0, fix_budget=1)
        assert solver.propose(_state([], []))[0].why == "baseline of a model family"  # nothing scored yet
        base = ExperimentRecord(
            ExperimentSpec("lgbm").name, "lgbm", "a", cv_score=0.8, status="done", features="base"
        )
        p = solver.propose(_state([base], []))[0]
        repeat_prompt = server.requests[1]["messages"][-1]["content"]
        assert "already run (cv 0.8)" in repeat_prompt
        assert p.kind == "spec" and p.model == "et" and p.why.startswith("llm:")
        assert p.params == {"max_depth": 8}  # snapped to the search space; resource params are medalist's
        failed = ExperimentRecord(
            ExperimentSpec(p.model, p.params, p.features).name,
            "et",
            "x",
            status="failed",
            error="ValueError: max_depth must be >= 1",
        )
        fix = solver.propose(_state([base], [failed]))[0]
        fix_prompt = server.requests[2]["messages"][-1]["content"]
    assert "It failed: ValueError: max_depth must be >= 1" in fix_prompt and '"max_depth"' in fix_prompt
    assert fix.model == "et" and fix.features == "count" and fix.why == "llm: fix"
    assert [e["event"] for e in solver.events] == ["proposal", "fix"]


# ---------------------------------------------------------------------------------------------- normalising answers
def test_plan_answers_are_normalised_and_impossible_ones_explained(competitions):
    from medalist.intake import open_competition
    from medalist.policy.llm_stages import derive_plan, derive_transform

    expert = ExpertPolicy()
    spooky = open_competition(competitions / "spooky-author-identification" / "public")
    mods = expert.detect_modalities(_ctx(spooky))
    train = spooky.read_table("train.csv")
    # the model names the label; its classes are the sample's columns, so those are the targets
    answer = {
        "id_column": "ID",
        "target_columns": ["author"],
        "task_type": "multi-class",
        "text_columns": "text",
    }
    plan, derived = derive_plan(spooky, mods, answer, train)
    assert plan["target_columns"] == ["EAP", "HPL", "MWS"] and plan["label_columns"] == ["author"]
    assert plan["task_type"] == "multiclass" and plan["input_columns"] == {"text": ["text"]}
    assert "input_columns" in derived
    with pytest.raises(CheckError, match=r"text_columns.*free text: text"):
        derive_plan(spooky, mods, {**answer, "text_columns": []}, train)
    with pytest.raises(CheckError, match=r"one column per class of 'author'.*regression"):
        derive_plan(spooky, mods, {**answer, "task_type": "regression"}, train)
    one_hot = expert.target_map(_ctx(spooky, modalities=mods, plan=plan))
    with pytest.raises(CheckError, match='output "proba"'):
        derive_transform(plan, one_hot, {"output": "labels"})

    titanic = open_competition(competitions / "titanic" / "public")
    mods = expert.detect_modalities(_ctx(titanic))
    train = titanic.read_table("train.csv")
    answer = {
        "id_column": "PassengerId",
        "target_columns": "ALL_OTHER",
        "task_type": "regression",
        "text_columns": ["Name", "Fare"],
        "exclude": ["Ticket"],
    }
    with pytest.raises(CheckError, match=r"only 2 distinct values.*binary classification"):
        derive_plan(titanic, mods, answer, train)
    plan, _ = derive_plan(titanic, mods, {**answer, "task_type": "classification"}, train)
    assert plan["task_type"] == "binary" and plan["target_columns"] == ["Survived"]
    assert plan["input_columns"]["text"] == ["Name"] and "Fare" in plan["input_columns"]["tabular"]
    assert plan["excluded_columns"]["Ticket"] == "excluded by the model's plan"
    target = expert.target_map(_ctx(titanic, modalities=mods, plan=plan))
    transform, _ = derive_transform(plan, target, {"output": "class", "positive_class": "0"})
    assert transform["classes"] == [1, 0] and transform["output"] == "label"  # the model's positive class


def _ctx(comp, **artifacts):
    from medalist.setup.policy import StageContext

    return StageContext(comp, "test", artifacts=artifacts)
