"""LLMSolver: the solve loop's SolvePolicy with a chat model proposing experiments.

From a compact ledger summary (what was tried, CV scores, time left) the model proposes the next
experiment, as a spec for the model zoo or as an experiment script under the contract. The loop runs and
re-scores it; when it fails, the next ``propose`` sends the error back to the model for a fix, up to
``fix_budget`` times. The expert schedule proposes the rest: before anything has scored, when it is not
the model's turn (``llm_share``), and whenever the model gives no valid answer.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from medalist.errors import MedalistError
from medalist.policy.llm import LLMPolicy
from medalist.solve.policy import Proposal, SolvePolicy, SolveState
from medalist.solve.types import ExperimentSpec, ModelTask


@dataclass
class _Pending:
    name: str  # the ledger name the proposal will run under
    proposal: dict[str, Any]
    fixes: int


class LLMSolver:
    """SolvePolicy: the model proposes a share of the experiments, the expert the rest (see module doc)."""

    name = "llm"

    def __init__(
        self,
        policy: LLMPolicy,
        fallback: SolvePolicy,
        *,
        task_summary: str = "",
        llm_share: float = 0.5,
        fix_budget: int = 2,
        allow_script: bool = True,
        min_seconds: float = 30.0,
        memory: str = "",
        facts: str = "",
    ) -> None:
        self.policy = policy
        self.facts = facts  # the data profile's summary, for every proposal prompt
        self.memory = memory  # what won on similar past tasks, for every proposal prompt
        self.fallback = fallback
        self.task_summary = task_summary
        self.llm_share = llm_share
        self.fix_budget = fix_budget
        self.allow_script = allow_script
        self.min_seconds = min_seconds
        self.asked = 0  # proposals asked of the model
        self.total = 0  # proposals made
        self.events: list[dict[str, Any]] = []  # what the model proposed or why it was skipped
        self._pending: _Pending | None = None
        self._slowest_call = 0.0  # seconds of the slowest model call so far

    def propose(self, state: SolveState) -> list[Proposal]:
        fix = self._fix(state)
        if fix is not None:
            return [fix]
        if self._model_turn(state):
            p = self._ask(state, None, None)
            if p is not None:
                self.total += 1
                return [p]
        out = self.fallback.propose(state)
        self.total += len(out)
        return out

    # ------------------------------------------------------------------ internals
    def _model_turn(self, state: SolveState) -> bool:
        if not state.done or state.time_left < self._time_needed():
            return False
        return self.asked <= self.llm_share * self.total

    def _time_needed(self) -> float:
        """A model call must leave time to run what it proposes: 3x the slowest call so far, at least
        ``min_seconds`` (a local model on a busy CPU can take a minute to answer)."""
        return max(self.min_seconds, 3.0 * self._slowest_call)

    def _fix(self, state: SolveState) -> Proposal | None:
        pending = self._pending
        if pending is None:
            return None
        failed = next((r for r in reversed(state.failed) if r.name == pending.name), None)
        done = any(r.name == pending.name for r in state.done)
        if done or failed is None:
            if done:
                self._pending = None
            return None
        self._pending = None
        if pending.fixes >= self.fix_budget or state.time_left < self._time_needed():
            self.events.append({"event": "gave_up", "name": pending.name, "error": failed.error})
            return None
        return self._ask(state, pending.proposal, failed.error or "failed", pending.fixes + 1)

    def _ask(
        self, state: SolveState, previous: dict[str, Any] | None, error: str | None, fixes: int = 0
    ) -> Proposal | None:
        self.asked += 1
        summary = state.summary()
        task = ModelTask(state.task_kind, 1, state.metric, state.lower_is_better)
        tried = {r.name: r for r in state.done}
        if previous is None:
            tried.update({r.name: r for r in state.failed if r.name not in tried})

        def reject(answer: dict[str, Any]) -> str | None:
            rec = tried.get(_ledger_name(_to_proposal(answer)))
            if rec is None:
                return None
            what = f"cv {rec.cv_score:.5g}" if rec.cv_score is not None else f"failed: {rec.error[:120]}"
            return (
                f"this exact experiment was already run ({what}); propose a different model, recipe or params"
            )

        t0 = time.monotonic()
        try:
            answer = self.policy.propose_experiment(
                summary,
                state.time_left,
                state.models,
                _recipe_help(state.recipes),
                task_summary=self.task_summary,
                metric=state.metric,
                order=state.order,
                task=task,
                allow_script=self.allow_script,
                previous=previous,
                error=error,
                reject=reject,
                memory=self.memory,
                facts=self.facts,
            )
        except MedalistError as exc:  # no valid answer, endpoint down, budget spent
            self.events.append({"event": "no_proposal", "error": str(exc)[:300]})
            return None
        finally:
            self._slowest_call = max(self._slowest_call, time.monotonic() - t0)
        p = _to_proposal(answer)
        name = _ledger_name(p)
        self._pending = _Pending(name, answer, fixes)
        self.events.append(
            {"event": "fix" if previous else "proposal", "name": name, "usage": answer.get("usage")}
        )
        return p


def _to_proposal(answer: dict[str, Any]) -> Proposal:
    why = "llm: " + (answer.get("why") or "model-proposed experiment")
    if answer["kind"] == "script":
        name = answer.get("name") or "llm_script"
        return Proposal("script", code=answer["code"], name=name, why=why, origin="llm")
    return Proposal(
        "spec",
        model=answer["model"],
        params=dict(answer["params"]),
        features=answer["features"],
        why=why,
        origin="llm",
    )


def _ledger_name(p: Proposal) -> str:
    if p.kind == "script":
        return f"{p.name}_{hashlib.sha256(p.code.encode('utf-8')).hexdigest()[:8]}"
    return ExperimentSpec(p.model, dict(p.params), p.features, p.seed).name


def _recipe_help(recipes: list[str]) -> dict[str, str]:
    from medalist.solve.features import RECIPES

    return {r: RECIPES.get(r, "") for r in recipes}


__all__ = ["LLMSolver"]
