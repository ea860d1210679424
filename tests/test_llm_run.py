"""`medalist run --llm URL` end to end against a SCRIPTED chat server on loopback (not a model): it
answers every setup question with "I do not know." (so the expert takes each stage, and says so) and
every experiment proposal with one fixed, valid experiment. Plumbing only; what a real model achieves is
measured with the embedded model in the issue notes."""

from __future__ import annotations

import json

from medalist.bench.grade import grade_submission
from medalist.pipeline import run_competition
from medalist.solve.ledger import Ledger
from tests.scripted_server import Reply, ScriptedChatServer

PROPOSAL = {"model": "lgbm", "features": "count", "params": {"num_leaves": 15}, "why": "count encodings"}


def _answer(body: dict) -> Reply:
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    if "Stage: propose experiment" in text:
        return Reply(json.dumps(PROPOSAL), prompt_tokens=300, completion_tokens=30)
    return Reply("I do not know.", prompt_tokens=200, completion_tokens=5)


def test_run_with_an_llm_endpoint_records_fallbacks_and_model_proposals(competitions, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDALIST_LLM_CACHE", "0")
    with ScriptedChatServer(_answer) as server:
        result = run_competition(
            competitions / "titanic" / "public",
            tmp_path,
            time_budget=90,
            llm=server.base_url,
            raise_errors=True,
        )
        requests = server.request_count
    assert result.error is None and result.submission is not None
    # setup: the model failed every stage, the expert took each one and the records say so
    stages = [
        r for r in result.stage_records if not r["stage"].startswith("meta:") and r["stage"] != "final_check"
    ]
    assert {r["policy"] for r in stages} == {"llm", "expert"}
    taken = [r for r in stages if r["policy"] == "expert"]
    assert taken and all(r["ok"] and r["fallback"] for r in taken)
    # solve: the model's proposal ran and is in the ledger with its reason
    ledger = Ledger(result.workspace / "experiments" / "ledger.sqlite")
    proposed = [r for r in ledger.records(status=None) if r.note.startswith("llm")]
    assert proposed and proposed[0].model == "lgbm" and proposed[0].features == "count"
    assert proposed[0].params["num_leaves"] == 15
    # accounting: every request is in the log and the run's totals
    calls = [
        json.loads(line) for line in (result.workspace / "logs" / "llm_calls.jsonl").read_text().splitlines()
    ]
    assert len(calls) == requests and result.prompt_tokens == sum(c["prompt_tokens"] for c in calls)
    assert grade_submission(result.submission, competitions / "titanic").valid_submission


def test_token_budget_stops_the_model_cleanly_and_the_run_still_submits(competitions, tmp_path, monkeypatch):
    """`medalist run --max-llm-tokens`: once the budget is spent no request is sent; the expert finishes."""
    from typer.testing import CliRunner

    from medalist.cli import app

    monkeypatch.setenv("MEDALIST_LLM_CACHE", "0")
    budget = 500  # two scripted setup answers (205 tokens each) fit, the third would not be sent
    with ScriptedChatServer(_answer) as server:
        res = CliRunner().invoke(
            app,
            [
                "run",
                str(competitions / "titanic" / "public"),
                "--workdir",
                str(tmp_path),
                "--time-budget",
                "60",
                "--llm",
                server.base_url,
                "--llm-model",
                "scripted",
                "--max-llm-tokens",
                str(budget),
            ],
        )
        requests = server.request_count
    assert res.exit_code == 0, res.output
    ws = tmp_path / "titanic"
    calls = [json.loads(line) for line in (ws / "logs" / "llm_calls.jsonl").read_text().splitlines()]
    spent_before_last = sum(c["prompt_tokens"] + c["completion_tokens"] for c in calls[:-1])
    assert len(calls) == requests == 3 and spent_before_last < budget
    stages = [json.loads(line) for line in (ws / "logs" / "stages.jsonl").read_text().splitlines()]
    assert any("budget" in (r.get("fallback") or "") + (r.get("error") or "") for r in stages)
    assert grade_submission(ws / "submission.csv", competitions / "titanic").valid_submission
