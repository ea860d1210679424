"""DecisionStages: the setup decisions the model answers in a short JSON object (or a few sentences).

Each stage puts the facts its decision needs in the prompt, asks for a short answer and normalises it to
the exact artifact the expert would return (see llm_stages); what follows deterministically from the
answer is derived and noted.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from medalist.errors import CheckError
from medalist.llm import extract_json
from medalist.metrics import METRICS
from medalist.policy import llm_stages as st
from medalist.policy.llm_facts import (
    column_lines,
    compact_names,
    cut,
    description_excerpt,
    evaluation_excerpt,
    frame_head,
    image_lines,
    memory_examples,
    prompt,
    table_lines,
    value_counts_text,
)
from medalist.policy.llm_session import MAX_TOKENS, ChatSession
from medalist.setup import rules
from medalist.setup.policy import StageContext


class DecisionStages:
    """summary, modalities, plan, target transform, metric and formatter, asked through ``session``."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session

    def summarize(self, ctx: StageContext) -> str:
        comp = ctx.competition
        user = prompt(
            "summary",
            slug=comp.slug,
            description=description_excerpt(comp.description, 1400) or "(no description)",
            tree=comp.tree(25),
            memory=memory_examples(ctx.memory),
            feedback=self.session.feedback(ctx),
        )
        text = self.session.ask(ctx.stage, user, MAX_TOKENS["summary"], ctx.attempt)
        self.session.answers[ctx.stage] = cut(text.strip(), 800)
        wrapped = extract_json(text) if "{" in text else None  # some models answer {"summary": "..."}
        if wrapped and isinstance(next(iter(wrapped.values()), None), str):
            text = str(wrapped.get("summary") or next(iter(wrapped.values())))
        summary = " ".join(re.sub(r"```\w*", " ", text).replace("**", "").split()).strip(" \"'")
        if len(summary) < 20:
            raise CheckError("the summary is empty or too short: write 2 to 4 sentences about the task")
        return cut(summary, 1500)

    def detect_modalities(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        user = prompt(
            "modalities",
            slug=comp.slug,
            summary=cut(str(ctx.artifacts.get("summary", "")), 500),
            tables=table_lines(comp),
            images=image_lines(comp),
            memory=memory_examples(ctx.memory),
            feedback=self.session.feedback(ctx),
        )
        art, derived = st.normalise_modalities(comp, self.session.ask_json(ctx, user))
        art["llm"] = {"derived": derived}
        self.session.note(ctx.stage, derived=derived)
        return art

    def plan(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        mods = ctx.artifacts["modalities"]
        files = mods["files"]
        train = rules.train_table(comp, files)
        sample = comp.read_table(files["sample_submission"])
        test_cols = set(comp.table_columns(files["test"])) if files.get("test") else set()
        train_only = [str(c) for c in train.columns if test_cols and c not in test_cols]
        user = prompt(
            "plan",
            slug=comp.slug,
            summary=cut(str(ctx.artifacts.get("summary", "")), 400),
            sample_file=files["sample_submission"],
            sample_rows=len(sample),
            sample_head=frame_head(sample, 3),
            train_file=files["train"]
            + (f" (+ labels from {files['train_labels']})" if files.get("train_labels") else ""),
            train_rows=len(train),
            train_columns=column_lines(train, max_lines=24),
            train_only=compact_names(train_only, 10) or "none",
            many=(
                f'The sample submission has {len(sample.columns) - 1} columns besides the id: answer "ALL_OTHER" '
                "rather than listing them."
                if len(sample.columns) > 12
                else ""
            ),
            memory=memory_examples(ctx.memory),
            feedback=self.session.feedback(ctx),
        )
        answer = self.session.ask_json(ctx, user, MAX_TOKENS["plan"])
        plan, derived = st.derive_plan(comp, mods, answer, train)
        plan["llm"] = {
            "decided": ["id_column", "target_columns", "task_type", "text_columns"],
            "derived": derived,
        }
        self.session.note(ctx.stage, derived=derived)
        return plan

    def target_transform(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        plan = ctx.artifacts["plan"]
        target = ctx.artifacts["train_tab_target"]
        cols = plan["target_columns"]
        if plan.get("one_hot"):
            values = f"one 0/1 column per class ({len(cols)} classes), exactly one 1 per row"
        elif len(cols) == 1:
            values = (
                value_counts_text(target[cols[0]])
                if plan["task_type"] != "regression"
                else (_numeric_range(target[cols[0]]))
            )
        else:
            values = "; ".join(f"{c}: {_numeric_range(target[c])}" for c in cols[:4])
        sample = comp.read_table(ctx.artifacts["modalities"]["files"]["sample_submission"])
        user = prompt(
            "target_transform",
            slug=comp.slug,
            task=plan["task_type"],
            targets=compact_names(cols, 8),
            values=values,
            sample_head=frame_head(sample, 3),
            evaluation=evaluation_excerpt(comp.description, 500) or "(not described)",
            memory=memory_examples(ctx.memory),
            feedback=self.session.feedback(ctx),
        )
        art, derived = st.derive_transform(plan, target, self.session.ask_json(ctx, user))
        self.session.note(ctx.stage, derived=derived)
        return art

    def metric(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        transform = ctx.artifacts["target_transform"]
        user = prompt(
            "metric",
            slug=comp.slug,
            output=transform.get("output", "value"),
            task=ctx.artifacts["plan"]["task_type"],
            evaluation=evaluation_excerpt(comp.description, 600) or "(not described)",
            names=", ".join(sorted(METRICS)),
            memory=memory_examples(ctx.memory),
            feedback=self.session.feedback(ctx),
        )
        art = st.normalise_metric(self.session.ask_json(ctx, user))
        self.session.note(ctx.stage, derived=["lower_is_better"])
        return art

    def formatter(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        files = ctx.artifacts["modalities"]["files"]
        sample = comp.read_table(files["sample_submission"])
        user = prompt(
            "formatter",
            sample_file=files["sample_submission"],
            sample_rows=len(sample),
            sample_head=frame_head(sample, 3),
            id_column=ctx.artifacts["plan"]["id_column"],
            feedback=self.session.feedback(ctx),
        )
        return st.normalise_formatter(self.session.ask_json(ctx, user))


def _numeric_range(series: pd.Series) -> str:
    s = pd.to_numeric(series, errors="coerce").dropna()
    if s.empty:
        return value_counts_text(series)
    return f"min {s.min():.4g}, median {s.median():.4g}, max {s.max():.4g}, {s.nunique()} distinct"


__all__ = ["DecisionStages"]
