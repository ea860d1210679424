"""CreditAssigner: after a meta-check rollback, which covered stage's artifact caused the failure.

The model first writes one thought on why the check failed (cached per failure), then answers KEEP or
REDO for each covered stage. From the rollback after ``expert_after_rollbacks`` on, the covered stages are
surrendered to the expert at once, so a model that keeps breaking a cross-stage check cannot exhaust the
machine's rollbacks.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from medalist.policy import llm_stages as st
from medalist.policy.llm_facts import cut, fenced, prompt
from medalist.policy.llm_session import MAX_TOKENS, ChatSession
from medalist.setup import rules
from medalist.setup.policy import StageContext
from medalist.setup.stages import covered_stages


class CreditAssigner:
    """KEEP/REDO verdicts asked through ``session``, and the stages surrendered to the expert."""

    def __init__(self, session: ChatSession, *, expert_after_rollbacks: int = 1) -> None:
        self.session = session
        self.expert_after_rollbacks = expert_after_rollbacks
        self.new_competition()

    def new_competition(self) -> None:
        """Forget the previous competition's rollbacks and surrendered stages."""
        self._asked: dict[str, set[str]] = {}  # meta failure -> stages asked in the current rollback
        self._rollbacks: Counter[str] = Counter()
        self.surrendered: dict[str, str] = {}  # stage -> why the expert takes it

    def keep_artifact(self, ctx: StageContext) -> bool:
        session = self.session
        failure = ctx.meta_failure or ""
        meta = failure.split(":", 1)[0]
        asked = self._asked.get(failure)
        if asked is None or ctx.stage in asked:  # the first stage of a new rollback
            self._rollbacks[meta] += 1
            self._asked[failure] = asked = set()
        asked.add(ctx.stage)
        if sum(self._rollbacks.values()) > self.expert_after_rollbacks:
            self.surrendered[ctx.stage] = (
                f"a cross-stage check failed again ({meta}) after the model's rewrite"
            )
            session.carry = True
            return False
        stages = covered_stages(meta, ctx.artifacts)
        if failure not in session.thoughts:
            text = session.ask(
                ctx.stage,
                prompt(
                    "meta_thought",
                    first=ctx.stage,
                    slug=ctx.competition.slug,
                    stages=", ".join(stages),
                    failure=cut(failure, 700),
                ),
                MAX_TOKENS["thought"],
            )
            session.thoughts[failure] = cut(" ".join(text.split()), 300) or "(no thought)"
        user = prompt(
            "credit",
            stage=ctx.stage,
            failure=cut(failure, 500),
            thought=session.thoughts[failure],
            artifact=self._artifact_facts(ctx),
        )
        verdict = session.ask(ctx.stage, user, MAX_TOKENS["credit"]).upper()
        keep = "KEEP" in verdict and "REDO" not in verdict
        session.note(ctx.stage, credit=("KEEP" if keep else "REDO"), thought=session.thoughts[failure])
        if not keep:
            session.carry = True
        return keep

    def _artifact_facts(self, ctx: StageContext) -> str:
        text = st.describe_artifact(ctx.previous)
        if isinstance(ctx.previous, pd.DataFrame) and ctx.stage.startswith("train"):
            plan = ctx.artifacts["plan"]
            train = rules.train_table(ctx.competition, ctx.artifacts["modalities"]["files"])
            labelled = int(train[plan["label_columns"]].notna().all(axis=1).sum())
            text += f" (the training table has {len(train)} rows, {labelled} labelled)"
        code = self.session.answers.get(ctx.stage)
        if code:
            text += "\nIts code:\n" + fenced(cut(code, 900))
        return text


__all__ = ["CreditAssigner"]
