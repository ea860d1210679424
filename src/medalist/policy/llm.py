"""LLMPolicy: any OpenAI-compatible model takes the setup decisions and writes the setup code.

Agent K's structured reasoning, sized for small models:

- decision stages (summary, modalities, plan, target transform, metric, formatter) ask for a short JSON
  answer with the facts the decision needs in the prompt; the answer is normalised to the exact artifact
  the expert would return, and what follows deterministically from it is derived (and noted);
- code stages (input maps, the target map) show a code template with a hole (``def build()``), ask for a
  one-line plan and the function, run the script in the sandbox and return what it built;
- a retry carries the previous answer and the check's message; after a meta-check rollback the policy
  first writes one thought on why the check failed (cached per rollback), then asks for each covered
  stage whether its artifact caused it (KEEP or REDO) before keeping or redoing it.

Nothing the model writes is trusted: code runs in the sandbox, artifacts go through the stage checks, and
the stage machine hands a stage to the fallback policy when the retry budget is spent. From the second
rollback on, the covered stages are taken by the expert rules at once (the record says so), so a model
that keeps breaking a cross-stage check cannot exhaust the machine's rollbacks.

``propose_experiment`` serves the solve loop: from a compact ledger summary the model proposes the next
experiment (or fixes a failed one), as a spec for the model zoo or as an experiment script under the
contract.

The jobs live in their own modules, composed here around one :class:`ChatSession` (llm_session): the
decision stages (llm_decide), the code stages (llm_code, templates in llm_template), credit assignment
(llm_credit) and experiment proposals (llm_propose).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd

from medalist.errors import InputError
from medalist.llm import LLMConfig, llm_endpoint
from medalist.policy.expert import ExpertPolicy
from medalist.policy.llm_code import CodeStages
from medalist.policy.llm_credit import CreditAssigner
from medalist.policy.llm_decide import DecisionStages
from medalist.policy.llm_propose import ExperimentProposer
from medalist.policy.llm_session import MAX_TOKENS, ChatSession
from medalist.setup.policy import StageContext, Usage
from medalist.workspace import Workspace


class LLMPolicy:
    """The Policy protocol answered by a chat model (see the module docstring).

    ``workdir``: where run_setup puts workspaces; the model's calls are then logged to
    ``<workdir>/<slug>/logs/llm_calls.jsonl`` (``bind(ws)`` sets a workspace explicitly). Use as a
    context manager, or call ``close()``, to stop a local model server the policy owns.
    """

    name = "llm"

    def __init__(
        self,
        config: LLMConfig,
        *,
        workdir: str | Path | None = None,
        sandbox_timeout: float = 180.0,
        sandbox_memory_mb: int = 4096,
        expert_after_rollbacks: int = 1,
        resources: ExitStack | None = None,
    ) -> None:
        self.workdir = Path(workdir) if workdir is not None else None
        self._resources = resources
        self._expert = ExpertPolicy()
        self._session = ChatSession(config)
        self._decide = DecisionStages(self._session)
        self._code = CodeStages(self._session, timeout=sandbox_timeout, memory_mb=sandbox_memory_mb)
        self._credit = CreditAssigner(self._session, expert_after_rollbacks=expert_after_rollbacks)
        self._proposer = ExperimentProposer(self._session)
        self._comp_root: Path | None = None

    @property
    def config(self) -> LLMConfig:
        return self._session.config

    @property
    def notes(self) -> dict[str, dict[str, Any]]:
        """What the model decided per stage of the current competition: {"plan", "derived", "credit", ...}."""
        return self._session.notes

    @property
    def sandbox_timeout(self) -> float:
        return self._code.timeout

    @property
    def sandbox_memory_mb(self) -> int:
        return self._code.memory_mb

    @property
    def expert_after_rollbacks(self) -> int:
        return self._credit.expert_after_rollbacks

    # ------------------------------------------------------------------ lifetime
    def __enter__(self) -> LLMPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop what the policy owns (a local model server); safe to call twice."""
        if self._resources is not None:
            resources, self._resources = self._resources, None
            resources.close()

    def set_deadline(self, deadline: float | None) -> None:
        """No model call runs past ``deadline`` (a time.monotonic() value; None: no bound)."""
        self._session.deadline = deadline

    def bind(self, ws: Workspace) -> None:
        """Log the model's calls to ``ws``'s logs/llm_calls.jsonl from now on."""
        self._session.bind(ws)

    def usage(self) -> Usage:
        """Tokens and code of the last decision; reset on read (see :meth:`ChatSession.usage`)."""
        return self._session.usage()

    def _begin(self, ctx: StageContext) -> None:
        comp = ctx.competition
        if self._comp_root != comp.root:
            self._comp_root = comp.root
            self._session.new_competition()
            self._credit.new_competition()
            if self.workdir is not None:
                self.bind(Workspace.create(self.workdir, comp.slug))
        self._session.code = None

    def _surrendered_to_expert(self, ctx: StageContext, method: str) -> Any:
        """The expert's artifact for a stage the policy handed over; the Usage says so."""
        why = self._credit.surrendered.get(ctx.stage)
        if why is None:
            return None
        self._session.fallback = f"expert took {ctx.stage}: {why}"
        return getattr(self._expert, method)(ctx)

    # ------------------------------------------------------------------ decision stages
    def summarize(self, ctx: StageContext) -> str:
        self._begin(ctx)
        return self._decide.summarize(ctx)

    def detect_modalities(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        return self._decide.detect_modalities(ctx)

    def plan(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        return self._decide.plan(ctx)

    def target_transform(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "target_transform")) is not None:
            return art
        return self._decide.target_transform(ctx)

    def metric(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "metric")) is not None:
            return art
        return self._decide.metric(ctx)

    def formatter(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "formatter")) is not None:
            return art
        return self._decide.formatter(ctx)

    # ------------------------------------------------------------------ code stages
    def input_map(self, ctx: StageContext) -> pd.DataFrame:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "input_map")) is not None:
            return art
        return self._code.input_map(ctx)

    def target_map(self, ctx: StageContext) -> pd.DataFrame:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "target_map")) is not None:
            return art
        return self._code.target_map(ctx)

    # ------------------------------------------------------------------ credit assignment
    def keep_artifact(self, ctx: StageContext) -> bool:
        self._begin(ctx)
        return self._credit.keep_artifact(ctx)

    # ------------------------------------------------------------------ experiments (solve loop)
    def propose_experiment(
        self,
        summary: str,
        time_left: float,
        models: Sequence[str],
        recipes: Sequence[str] | Mapping[str, str],
        *,
        ws: Workspace | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """The model's next experiment; ``options`` are those of :meth:`ExperimentProposer.propose`
        (task_summary, metric, order, task, allow_script, max_attempts, previous, error, reject).
        ``ws`` logs the calls there from now on."""
        if ws is not None:
            self.bind(ws)
        return self._proposer.propose(summary, time_left, models, recipes, **options)


# ---------------------------------------------------------------------------------------------- factory
def make_llm_policy(
    llm: str,
    llm_model: str | Path | None = None,
    *,
    workdir: str | Path | None = None,
    model: str | None = None,
    api_key: str | None = None,
    threads: int | None = None,
    server_log: Path | None = None,
    **overrides: Any,
) -> LLMPolicy:
    """An LLMPolicy for ``--llm local|URL`` (``--llm-model`` picks the local GGUF / packaged model).

    For ``local`` the llama.cpp server starts now and runs until ``close()`` (or the end of a ``with``
    block). ``overrides`` are LLMConfig fields (max_llm_tokens, max_cost, temperature, cache, ...).
    """
    if model is None and llm_model is not None and str(llm).startswith(("http://", "https://")):
        model = str(llm_model)  # for an endpoint, --llm-model names the served model
    stack = ExitStack()
    try:
        config = stack.enter_context(
            llm_endpoint(
                llm,
                llm_model=llm_model,
                model=model,
                api_key=api_key,
                threads=threads,
                server_log=server_log,
                **overrides,
            )
        )
    except BaseException:
        stack.close()
        raise
    if config is None:
        stack.close()
        raise InputError("--llm none has no LLM policy: pass --llm local or an OpenAI-compatible URL")
    return LLMPolicy(config, workdir=workdir, resources=stack)


__all__ = ["MAX_TOKENS", "LLMPolicy", "make_llm_policy"]
