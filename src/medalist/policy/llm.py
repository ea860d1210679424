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
"""

from __future__ import annotations

import ast
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from medalist.errors import BudgetExceeded, CheckError, InputError
from medalist.llm import LLMClient, LLMConfig, LLMError, extract_code, extract_json, llm_endpoint
from medalist.metrics import METRICS
from medalist.policy import llm_stages as st
from medalist.policy.expert import ExpertPolicy
from medalist.policy.llm_facts import (
    column_lines,
    compact_names,
    cut,
    description_excerpt,
    evaluation_excerpt,
    frame_head,
    image_lines,
    prompt,
    table_lines,
    value_counts_text,
)
from medalist.sandbox import run_code
from medalist.setup import rules
from medalist.setup.policy import StageContext, Usage
from medalist.setup.stages import covered_stages
from medalist.workspace import Workspace

if TYPE_CHECKING:
    from medalist.intake import Competition
    from medalist.metrics import ScoreOrder
    from medalist.solve.types import ModelTask

# Completion budgets (tokens): small models at ~10-20 tokens/s make every token count.
MAX_TOKENS = {
    "summary": 200,
    "json": 160,
    "plan": 320,
    "code": 450,
    "thought": 70,
    "credit": 6,
    "propose": 220,
    "script": 1400,
}
RETRY_WARMTH = 0.35  # temperature added per retry of a stage
_FOOTER = """

if __name__ == "__main__":
    _out = build()
    if not isinstance(_out, pd.DataFrame):
        raise SystemExit(f"build() must return a pandas DataFrame, not {type(_out).__name__}")
    _out.to_pickle(OUTPUT)
"""
_PLAN_LINE = re.compile(r"(?im)^\W*plan\W*:?\s*(.+)$")


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
        self.config = config
        self.workdir = Path(workdir) if workdir is not None else None
        self.sandbox_timeout = sandbox_timeout
        self.sandbox_memory_mb = sandbox_memory_mb
        self.expert_after_rollbacks = expert_after_rollbacks
        self._resources = resources
        self._expert = ExpertPolicy()
        self._client: LLMClient | None = None
        self._ws: Workspace | None = None
        self._offline: str | None = None
        self._cut_off = False  # the last answer hit its token limit
        self._comp_root: Path | None = None
        self._reset_competition()
        self._reset_usage()

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

    def bind(self, ws: Workspace) -> None:
        """Log the model's calls to ``ws``'s logs/llm_calls.jsonl from now on."""
        if self._ws is None or self._ws.root != ws.root:
            self._ws = ws
            self._client = LLMClient.for_workspace(self.config, ws)

    def _begin(self, ctx: StageContext) -> None:
        comp = ctx.competition
        if self._comp_root != comp.root:
            self._comp_root = comp.root
            self._reset_competition()
            if self.workdir is not None:
                self.bind(Workspace.create(self.workdir, comp.slug))
        self._code = None

    def _reset_competition(self) -> None:
        self._answers: dict[str, str] = {}  # stage -> the model's last answer (JSON text or code)
        self._thoughts: dict[str, str] = {}  # meta failure -> the model's thought about it
        self._asked: dict[str, set[str]] = {}  # meta failure -> stages asked in the current rollback
        self._rollbacks: Counter[str] = Counter()
        self._surrendered: dict[str, str] = {}  # stage -> why the expert takes it
        self.notes: dict[str, dict[str, Any]] = {}  # stage -> {"plan": ..., "derived": [...]}

    def _reset_usage(self) -> None:
        self._prompt_tokens = 0
        self._completion_tokens = 0
        self._code: str | None = None
        self._fallback: str | None = None
        self._carry = False

    def usage(self) -> Usage:
        """Tokens and code of the last decision; reset on read. Tokens of a REDO verdict (which the
        machine does not record) are carried into the stage's next decision."""
        if self._carry:
            self._carry = False
            return Usage()
        used = Usage(self._prompt_tokens, self._completion_tokens, code=self._code, fallback=self._fallback)
        self._reset_usage()
        return used

    # ------------------------------------------------------------------ talking to the model
    def _client_(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient(self.config, None)
        return self._client

    def _ask(self, stage: str, user: str, max_tokens: int, attempt: int = 1) -> str:
        """One chat call. Retries of a stage sample warmer: at temperature 0 a small model repeats its bug."""
        if self._offline:
            raise LLMError(f"the LLM endpoint is unavailable ({self._offline})")
        messages = [
            {"role": "system", "content": prompt("system").strip()},
            {"role": "user", "content": user},
        ]
        try:
            temperature = (
                None if attempt <= 1 else min(1.0, self.config.temperature + RETRY_WARMTH * (attempt - 1))
            )
            res = self._client_().chat(messages, stage=stage, max_tokens=max_tokens, temperature=temperature)
        except (LLMError, BudgetExceeded) as exc:
            self._offline = " ".join(str(exc).split())[:200]
            raise
        self._prompt_tokens += res.prompt_tokens
        self._completion_tokens += res.completion_tokens
        self._cut_off = res.finish_reason == "length"
        if self._ws is not None:  # every answer is kept for the reader: logs/llm_answers.jsonl
            self._ws.log_event(
                "llm_answers",
                {
                    "stage": stage,
                    "attempt": attempt,
                    "finish_reason": res.finish_reason,
                    "answer": res.text or "",
                },
            )
        return res.text or ""

    def _ask_json(self, ctx: StageContext, user: str, max_tokens: int | None = None) -> dict[str, Any]:
        text = self._ask(ctx.stage, user, max_tokens or MAX_TOKENS["json"], ctx.attempt)
        self._answers[ctx.stage] = cut(text.strip(), 800)
        answer = extract_json(text)
        if answer is None and self._cut_off:
            raise CheckError(
                "the answer was cut off before its JSON object ended: answer much shorter (no lists of many "
                'columns; "ALL_OTHER" names every sample column but the id)'
            )
        return st.need_json(answer)

    def _feedback(self, ctx: StageContext) -> str:
        previous = self._answers.get(ctx.stage)
        shown = _fenced(previous) if previous else "(no usable answer)"
        if ctx.error:
            return prompt("retry", previous=shown, error=cut(ctx.error, 1500))
        if ctx.meta_failure:
            if previous is None and ctx.previous is not None:
                shown = st.describe_artifact(ctx.previous)
            return prompt(
                "redo",
                failure=cut(ctx.meta_failure, 600),
                thought=self._thoughts.get(ctx.meta_failure, ""),
                previous=shown,
            )
        return ""

    @staticmethod
    def _memory(ctx: StageContext) -> str:
        if not ctx.memory:
            return ""
        items = "\n".join(f"- {cut(m, 300)}" for m in ctx.memory[:3])
        return f"Examples from earlier competitions:\n{items}"

    def _note(self, stage: str, **values: Any) -> None:
        self.notes.setdefault(stage, {}).update(values)

    def _surrendered_to_expert(self, ctx: StageContext, method: str) -> Any:
        """The expert's artifact for a stage the policy handed over; the Usage says so."""
        why = self._surrendered.get(ctx.stage)
        if why is None:
            return None
        self._fallback = f"expert took {ctx.stage}: {why}"
        return getattr(self._expert, method)(ctx)

    # ------------------------------------------------------------------ decision stages
    def summarize(self, ctx: StageContext) -> str:
        self._begin(ctx)
        comp = ctx.competition
        user = prompt(
            "summary",
            slug=comp.slug,
            description=description_excerpt(comp.description, 1400) or "(no description)",
            tree=comp.tree(25),
            memory=self._memory(ctx),
            feedback=self._feedback(ctx),
        )
        text = self._ask(ctx.stage, user, MAX_TOKENS["summary"], ctx.attempt)
        self._answers[ctx.stage] = cut(text.strip(), 800)
        wrapped = extract_json(text) if "{" in text else None  # some models answer {"summary": "..."}
        if wrapped and isinstance(next(iter(wrapped.values()), None), str):
            text = str(wrapped.get("summary") or next(iter(wrapped.values())))
        summary = " ".join(re.sub(r"```\w*", " ", text).replace("**", "").split()).strip(" \"'")
        if len(summary) < 20:
            raise CheckError("the summary is empty or too short: write 2 to 4 sentences about the task")
        return cut(summary, 1500)

    def detect_modalities(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        comp = ctx.competition
        user = prompt(
            "modalities",
            slug=comp.slug,
            summary=cut(str(ctx.artifacts.get("summary", "")), 500),
            tables=table_lines(comp),
            images=image_lines(comp),
            memory=self._memory(ctx),
            feedback=self._feedback(ctx),
        )
        art, derived = st.normalise_modalities(comp, self._ask_json(ctx, user))
        art["llm"] = {"derived": derived}
        self._note(ctx.stage, derived=derived)
        return art

    def plan(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
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
            memory=self._memory(ctx),
            feedback=self._feedback(ctx),
        )
        answer = self._ask_json(ctx, user, MAX_TOKENS["plan"])
        plan, derived = st.derive_plan(comp, mods, answer, train)
        plan["llm"] = {
            "decided": ["id_column", "target_columns", "task_type", "text_columns"],
            "derived": derived,
        }
        self._note(ctx.stage, derived=derived)
        return plan

    def target_transform(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "target_transform")) is not None:
            return art
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
            memory=self._memory(ctx),
            feedback=self._feedback(ctx),
        )
        art, derived = st.derive_transform(plan, target, self._ask_json(ctx, user))
        self._note(ctx.stage, derived=derived)
        return art

    def metric(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "metric")) is not None:
            return art
        comp = ctx.competition
        transform = ctx.artifacts["target_transform"]
        user = prompt(
            "metric",
            slug=comp.slug,
            output=transform.get("output", "value"),
            task=ctx.artifacts["plan"]["task_type"],
            evaluation=evaluation_excerpt(comp.description, 600) or "(not described)",
            names=", ".join(sorted(METRICS)),
            memory=self._memory(ctx),
            feedback=self._feedback(ctx),
        )
        art = st.normalise_metric(self._ask_json(ctx, user))
        self._note(ctx.stage, derived=["lower_is_better"])
        return art

    def formatter(self, ctx: StageContext) -> dict[str, Any]:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "formatter")) is not None:
            return art
        comp = ctx.competition
        files = ctx.artifacts["modalities"]["files"]
        sample = comp.read_table(files["sample_submission"])
        user = prompt(
            "formatter",
            sample_file=files["sample_submission"],
            sample_rows=len(sample),
            sample_head=frame_head(sample, 3),
            id_column=ctx.artifacts["plan"]["id_column"],
            feedback=self._feedback(ctx),
        )
        return st.normalise_formatter(self._ask_json(ctx, user))

    # ------------------------------------------------------------------ code stages
    def input_map(self, ctx: StageContext) -> pd.DataFrame:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "input_map")) is not None:
            return art
        plan = ctx.artifacts["plan"]
        columns = ["path"] if ctx.modality == "image" else list(plan["input_columns"][ctx.modality])
        what = (
            'one column "path": the absolute path of the row\'s image file'
            if ctx.modality == "image"
            else f"the planned {ctx.modality} columns COLUMNS ({compact_names(columns, 8)})"
        )
        rows = (
            "labelled training row, in table order"
            if ctx.split == "train"
            else ("sample submission row, in the sample submission's order")
        )
        goal = f'return the {ctx.split} {ctx.modality} input map: a DataFrame with column "id" first, then {what}; one row per {rows}.'
        return self._code_stage(ctx, goal, columns)

    def target_map(self, ctx: StageContext) -> pd.DataFrame:
        self._begin(ctx)
        if (art := self._surrendered_to_expert(ctx, "target_map")) is not None:
            return art
        goal = (
            'return the train target map: a DataFrame with column "id" first, then exactly the columns '
            "TARGETS (submission space); one row per labelled training row, in table order."
        )
        return self._code_stage(ctx, goal, list(ctx.artifacts["plan"]["target_columns"]))

    def _code_stage(self, ctx: StageContext, goal: str, columns: list[str]) -> pd.DataFrame:
        comp = ctx.competition
        plan = ctx.artifacts["plan"]
        header_run, header_shown, facts = self._template(ctx, columns)
        user = prompt(
            "code_stage",
            stage=ctx.stage,
            slug=comp.slug,
            task=f"{plan['task_type']}; id column {plan['id_column']!r}; targets {compact_names(plan['target_columns'], 6)}",
            goal=goal,
            facts="\n".join(f"- {f}" for f in facts),
            header=header_shown.strip(),
            memory=self._memory(ctx),
            feedback=self._feedback(ctx),
        )
        text = self._ask(ctx.stage, user, MAX_TOKENS["code"], ctx.attempt)
        code = extract_code(text)
        plan_line = _PLAN_LINE.search(text)
        if plan_line:
            self._note(ctx.stage, plan=cut(plan_line.group(1), 200))
        if not code or "def build" not in code:
            self._answers[ctx.stage] = cut(text.strip(), 800) or "(empty)"
            raise CheckError(
                "the answer holds no ```python block defining build(); reply with the whole function"
            )
        self._answers[ctx.stage] = code
        script = f"{header_run.rstrip()}\n\n\n{_without_header(code, header_run).rstrip()}\n{_FOOTER}"
        self._code = script
        frame = self._run(ctx.stage, script)
        expected = ["id", *columns]
        got = [str(c) for c in frame.columns]
        if got != expected:
            extra = [c for c in got if c not in expected]
            missing = [c for c in expected if c not in got]
            raise CheckError(
                f"build() returned {len(got)} columns {compact_names(got, 8)}; it must return exactly "
                f"{compact_names(expected, 8)}"
                + (f" (drop {compact_names(extra, 6)})" if extra else "")
                + (f" (missing {compact_names(missing, 6)})" if missing else "")
                + ("" if extra or missing else ' in that order ("id" first: out.insert(0, "id", keys))')
            )
        if ctx.modality == "image" and ctx.stage != "train_tab_target":
            bad = frame["path"].map(lambda p: not isinstance(p, str) or not p)
            if bad.any():
                raise CheckError(
                    f"{int(bad.sum())} of {len(frame)} rows have no image path (e.g. row {int(bad.to_numpy().argmax())}: "
                    f"{frame['path'][bad].iloc[0]!r}); find_images returns {{str value: path}}, so look paths up "
                    "with str values: df[IMAGE_COLUMN].astype(str)"
                )
        return frame

    def _template(self, ctx: StageContext, columns: list[str]) -> tuple[str, str, list[str]]:
        """(header that runs, header shown in the prompt, facts) for a code stage."""
        comp = ctx.competition
        plan = ctx.artifacts["plan"]
        mods = ctx.artifacts["modalities"]
        files = mods["files"]
        idc = plan["id_column"]
        train = rules.train_table(comp, files)
        train_has_id = idc in train.columns
        labels = list(plan["label_columns"])
        unlabelled = int((~train[labels].notna().all(axis=1)).sum())
        consts: list[tuple[str, Any, str]] = [("TRAIN", files["train"], "the training table")]
        facts: list[str] = []
        if files.get("train_labels"):
            consts.append(("TRAIN_LABELS", files["train_labels"], "a separate table of training labels"))
            facts.append(
                f"the labels are in TRAIN_LABELS: merge them into the training table on {_shared_key(comp, files)!r}"
            )
        if ctx.split == "test" or ctx.stage.startswith("test"):
            consts.append(("TEST", files.get("test"), "the test table"))
        consts.append(("SAMPLE", files["sample_submission"], "the sample submission"))
        consts.append(("ID", idc, "the id column"))
        consts.append(("LABELS", labels, "label column(s) of the training table"))
        if ctx.split == "train" or ctx.stage == "train_tab_target":
            facts.append(
                f"read_table(TRAIN) has {len(train)} rows; "
                + (
                    "every row is labelled."
                    if not unlabelled
                    else f"{unlabelled} rows have a missing label in LABELS: drop them (keep the labelled rows, in order)."
                )
            )
            facts.append(
                "id: make_keys(df[ID].tolist()) (text keys, unique)."
                if train_has_id
                else 'the training table has no ID column: the ids are "row0", "row1", … in row order (after '
                "dropping unlabelled rows)."
            )
        else:
            sample_rows = comp.n_rows(files["sample_submission"])
            if files.get("test"):
                facts.append(
                    f"read_table(TEST) has {comp.n_rows(files['test'])} rows; the map must follow the sample "
                    f"submission ({sample_rows} rows) row by row: sample = read_table(SAMPLE), then take the test "
                    "row whose ID equals each sample ID, in the sample's order."
                )
            else:
                facts.append("there is no test table: the test rows are the sample submission's rows.")
            facts.append("id: make_keys(sample[ID].tolist()).")
        if ctx.stage == "train_tab_target":
            one_hot = plan.get("one_hot")
            consts.append(
                ("TARGETS", list(plan["target_columns"]), "the submission's target columns, in order")
            )
            if one_hot:
                consts.append(("LABEL", one_hot["column"], "the class label column"))
                consts.append(("PREFIX", one_hot.get("prefix", ""), "target column = PREFIX + class label"))
                facts.append(
                    "the targets are one 0/1 column per class: a row whose LABEL value is v gets 1 in "
                    "column PREFIX + str(v) and 0 in every other TARGETS column (integers)."
                )
                facts.append(
                    "pandas idiom: pd.get_dummies(df[LABEL].astype(str)).add_prefix(PREFIX)"
                    ".reindex(columns=TARGETS, fill_value=0).astype(int)."
                )
            else:
                facts.append(
                    "the targets are the LABELS columns of the training table with their values unchanged, "
                    "renamed to TARGETS (in order)."
                )
                facts.append(
                    'pandas idiom: out = df[LABELS].copy(); out.columns = TARGETS; out.insert(0, "id", keys).'
                )
        elif ctx.modality == "image":
            image = mods.get("image") or {}
            consts.append(
                ("IMAGE_COLUMN", image.get("column", idc), "the column whose values name the image files")
            )
            dirs = ", ".join(
                f"{d.rel}/ ({d.n_files} files, e.g. {', '.join(d.example_files[:2])})"
                for d in comp.image_dirs[:3]
            )
            facts.append(f"image folders: {dirs}.")
            facts.append(
                "find_images(values) takes a list of str values of IMAGE_COLUMN and returns a dict "
                "{value: absolute image path}."
            )
        else:
            consts.append(("COLUMNS", columns, "the planned input columns, in this order"))
            facts.append(
                f"the output columns must be exactly ['id'] + COLUMNS ({len(columns)} input columns)."
            )
            facts.append('pandas idiom: out = df[COLUMNS].copy(); out.insert(0, "id", keys).')
        consts.append(("OUTPUT", "out.pkl", "where the result is saved (done for you)"))

        def header(abbreviate: bool) -> str:
            lines = [
                "import numpy as np",
                "import pandas as pd",
                "from medalist.intake import open_competition",
                "from medalist.setup.data import make_keys  # make_keys(values) -> unique text ids",
                "",
                f"_comp = open_competition({str(comp.root)!r})  # the competition folder",
                "read_table = _comp.read_table  # read_table(name) -> pandas DataFrame of a competition table",
            ]
            if ctx.modality == "image" and ctx.stage != "train_tab_target":
                lines.append(
                    "find_images = _comp.find_images  # find_images(list of str) -> {value: image path}"
                )
            for name, value, comment in consts:
                literal = st.py_list(value, abbreviate) if isinstance(value, list) else repr(value)
                sep = "" if literal.lstrip("[").startswith("...") else f"  # {comment}"
                lines.append(f"{name} = {literal}{sep}")
            return "\n".join(lines) + "\n"

        return header(False), header(True), facts

    def _run(self, stage: str, script: str) -> pd.DataFrame:
        base = self._ws.root if self._ws is not None else None
        with tempfile.TemporaryDirectory(prefix=f".run-{stage}-", dir=base) as tmp:
            res = run_code(script, Path(tmp), timeout=self.sandbox_timeout, memory_mb=self.sandbox_memory_mb)
            out = Path(tmp) / "out.pkl"
            if not res.ok:
                raise CheckError("the code failed: " + _short_failure(res))
            if not out.exists():
                raise CheckError("the code ran but saved no result: build() must return the DataFrame")
            frame = pd.read_pickle(out)
        if "id" in frame.columns:
            frame = frame.reset_index(drop=True)
        return frame

    # ------------------------------------------------------------------ credit assignment
    def keep_artifact(self, ctx: StageContext) -> bool:
        self._begin(ctx)
        failure = ctx.meta_failure or ""
        meta = failure.split(":", 1)[0]
        asked = self._asked.get(failure)
        if asked is None or ctx.stage in asked:  # the first stage of a new rollback
            self._rollbacks[meta] += 1
            self._asked[failure] = asked = set()
        asked.add(ctx.stage)
        if sum(self._rollbacks.values()) > self.expert_after_rollbacks:
            self._surrendered[ctx.stage] = (
                f"a cross-stage check failed again ({meta}) after the model's rewrite"
            )
            self._carry = True
            return False
        stages = covered_stages(meta, ctx.artifacts)
        if failure not in self._thoughts:
            text = self._ask(
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
            self._thoughts[failure] = cut(" ".join(text.split()), 300) or "(no thought)"
        user = prompt(
            "credit",
            stage=ctx.stage,
            failure=cut(failure, 500),
            thought=self._thoughts[failure],
            artifact=self._artifact_facts(ctx),
        )
        verdict = self._ask(ctx.stage, user, MAX_TOKENS["credit"]).upper()
        keep = "KEEP" in verdict and "REDO" not in verdict
        self._note(ctx.stage, credit=("KEEP" if keep else "REDO"), thought=self._thoughts[failure])
        if not keep:
            self._carry = True
        return keep

    def _artifact_facts(self, ctx: StageContext) -> str:
        text = st.describe_artifact(ctx.previous)
        if isinstance(ctx.previous, pd.DataFrame) and ctx.stage.startswith("train"):
            plan = ctx.artifacts["plan"]
            train = rules.train_table(ctx.competition, ctx.artifacts["modalities"]["files"])
            labelled = int(train[plan["label_columns"]].notna().all(axis=1).sum())
            text += f" (the training table has {len(train)} rows, {labelled} labelled)"
        code = self._answers.get(ctx.stage)
        if code:
            text += "\nIts code:\n" + _fenced(cut(code, 900))
        return text

    # ------------------------------------------------------------------ experiments (solve loop)
    def propose_experiment(
        self,
        summary: str,
        time_left: float,
        models: Sequence[str],
        recipes: Sequence[str] | Mapping[str, str],
        *,
        task_summary: str = "",
        metric: str = "",
        order: ScoreOrder | None = None,
        task: ModelTask | None = None,
        allow_script: bool = True,
        ws: Workspace | None = None,
        max_attempts: int = 2,
        previous: dict[str, Any] | None = None,
        error: str | None = None,
        reject: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> dict[str, Any]:
        """The model's next experiment: {"kind": "spec", "model", "features", "params", "why"} or
        {"kind": "script", "name", "code", "why"}, plus "usage" (tokens, attempts).

        ``summary`` is the compact ledger summary (see :meth:`Ledger.summary`); ``models`` / ``recipes``
        the names the runner accepts. An answer that names an unknown model, recipe or parameter, or a
        script that breaks the contract, goes back to the model with the reason, up to ``max_attempts``
        calls; then CheckError. ``previous`` + ``error`` ask for a fix of a failed experiment;
        ``reject(proposal)`` may refuse a valid proposal with a reason (e.g. "already run") that goes back too.
        """
        if ws is not None:
            self.bind(ws)
        self._reset_usage()
        recipe_text = (
            "\n".join(f"- {k}: {v}" for k, v in recipes.items())
            if isinstance(recipes, Mapping)
            else ", ".join(recipes)
        )
        recipe_names = list(recipes)
        script_option = ""
        if allow_script:
            from medalist.solve.contract import SCRIPT_CONTRACT

            script_option = prompt("script_option", contract=SCRIPT_CONTRACT.strip())
        last_answer, last_error = (_proposal_text(previous) if previous else None), error
        direction = order.word if order is not None else "?"
        for attempt in range(1, max_attempts + 1):
            feedback = ""
            if last_error:
                feedback = prompt(
                    "fix_experiment",
                    previous=_fenced(cut(last_answer or "(none)", 1500)),
                    error=cut(last_error, 800),
                )
            user = prompt(
                "propose",
                summary=cut(task_summary, 400),
                metric=metric or "?",
                direction=direction,
                time_left=_duration(time_left),
                ledger=summary.strip() or "(none yet)",
                models=", ".join(models),
                recipes=recipe_text,
                memory="",
                script_option=script_option,
                feedback=feedback,
            )
            text = self._ask(
                "solve:propose", user, MAX_TOKENS["script" if allow_script else "propose"], attempt
            )
            try:
                proposal = _parse_proposal(text, list(models), recipe_names, task, allow_script)
                refused = reject(proposal) if reject is not None else None
                if refused:
                    raise CheckError(refused)
            except CheckError as exc:
                last_answer, last_error = cut(text.strip(), 1500), str(exc)
                continue
            proposal["usage"] = {
                "prompt_tokens": self._prompt_tokens,
                "completion_tokens": self._completion_tokens,
                "attempts": attempt,
            }
            self._reset_usage()
            return proposal
        self._reset_usage()
        raise CheckError(f"the model proposed no valid experiment in {max_attempts} answers: {last_error}")


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


# ---------------------------------------------------------------------------------------------- helpers
def _parse_proposal(
    text: str, models: list[str], recipes: list[str], task: ModelTask | None, allow_script: bool
) -> dict[str, Any]:
    code = extract_code(text) if "```" in text else None
    if code and "MEDALIST_OUT" in code:
        if not allow_script:
            raise CheckError("reply with the JSON spec only; scripts are not accepted here")
        return _check_script(code, text)
    ans = extract_json(text)
    if ans is None:
        raise CheckError(
            'reply with one JSON object {"model": ..., "features": ..., "params": {...}}'
            + (" or a complete experiment script" if allow_script else "")
        )
    from medalist.solve.models.registry import family_named

    name = str(ans.get("model") or "").strip()
    found = family_named(name, models)
    if found is None:
        raise CheckError(f'"model" {name!r} is not one of the available models: {", ".join(models)}')
    features = str(ans.get("features") or "base").strip()
    if features not in recipes:
        matched = next((r for r in recipes if r.lower() == features.lower()), None)
        if matched is None:
            raise CheckError(f'"features" {features!r} is not one of the recipes: {", ".join(recipes)}')
        features = matched
    params, dropped = _check_params(found, ans.get("params"), task)
    out: dict[str, Any] = {
        "kind": "spec",
        "model": found,
        "features": features,
        "params": params,
        "why": cut(str(ans.get("why") or ""), 200),
    }
    if dropped:
        out["dropped_params"] = dropped
    return out


def _check_script(code: str, text: str) -> dict[str, Any]:
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise CheckError(f"the script does not parse: line {exc.lineno}: {exc.msg}") from exc
    missing = [v for v in ("MEDALIST_OUT_OOF", "MEDALIST_OUT_TEST") if v not in code]
    if missing:
        raise CheckError(f"the script never writes {', '.join(missing)}: np.save the predictions there")
    if "np.save" not in code and "numpy.save" not in code:
        raise CheckError("the script must write its arrays with np.save")
    why = _PLAN_LINE.search(text)
    return {
        "kind": "script",
        "name": "llm_script",
        "code": code,
        "why": cut(why.group(1), 200) if why else "",
    }


def _check_params(model: str, params: Any, task: ModelTask | None) -> tuple[dict[str, Any], list[str]]:
    """Known hyper-parameters of ``model`` only; numbers clipped into the family's search space."""
    if params in (None, "", []):
        return {}, []
    if not isinstance(params, dict):
        raise CheckError('"params" must be a JSON object of hyper-parameters (or {})')
    from medalist.solve.models import FAMILIES
    from medalist.solve.types import ModelTask

    family = FAMILIES[model].factory()
    task = task or ModelTask("binary", 1, "", False, 2)
    space = family.search_space(task)
    defaults = family.default_params(task, 1000)
    known = family.hyper_params(task)
    out: dict[str, Any] = {}
    dropped = []
    for name, value in params.items():
        if name not in known:
            dropped.append(name)
            continue
        spec = space.get(name)
        if spec is not None and spec[0] in ("int", "float", "logfloat"):
            try:
                num = float(value)
            except (TypeError, ValueError):
                dropped.append(name)
                continue
            num = min(max(num, float(spec[1])), float(spec[2]))
            out[name] = round(num) if spec[0] == "int" else num
        elif spec is not None and spec[0] == "cat":
            choice = _nearest_choice(value, list(spec[1]))
            if choice is _MISSING:
                dropped.append(name)
            else:
                out[name] = choice
        elif isinstance(value, (int, float, str, bool)) or value is None:
            default = defaults.get(name)
            out[name] = (
                type(default)(value)
                if isinstance(default, (int, float))
                and isinstance(value, (int, float))
                and not isinstance(default, bool)
                else value
            )
        else:
            dropped.append(name)
    if dropped and not out and len(dropped) == len(params):
        # every name was wrong: tell the model which exist rather than silently running defaults
        raise CheckError(
            f"none of the params {dropped[:5]} is a hyper-parameter of {model}; known: "
            f"{', '.join(sorted(known)[:16])}"
        )
    return out, dropped


_MISSING = object()


def _nearest_choice(value: Any, choices: list[Any]) -> Any:
    """``value`` when it is a choice; a number snaps to the nearest numeric choice; else _MISSING."""
    if value in choices:
        return value
    if isinstance(value, str) and value.lower() in ("none", "null") and None in choices:
        return None
    numeric = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and numeric:
        return min(numeric, key=lambda c: abs(float(c) - float(value)))
    return _MISSING


def _proposal_text(p: dict[str, Any]) -> str:
    if p.get("kind") == "script":
        return str(p.get("code", ""))
    import json

    return json.dumps({k: p.get(k) for k in ("model", "features", "params")}, default=str)


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _numeric_range(series: pd.Series) -> str:
    s = pd.to_numeric(series, errors="coerce").dropna()
    if s.empty:
        return value_counts_text(series)
    return f"min {s.min():.4g}, median {s.median():.4g}, max {s.max():.4g}, {s.nunique()} distinct"


def _without_header(code: str, header: str) -> str:
    """The model's code without top-level statements that redefine or run the template's header (small
    models often copy the header, placeholders included) or that call build() themselves."""
    try:
        tree = ast.parse(code)
        names = {
            t.id
            for node in ast.parse(header).body
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
    except SyntaxError:
        return code  # the sandbox reports the syntax error with its line
    keep = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id in names for t in node.targets
        ):
            continue
        if isinstance(node, (ast.Expr, ast.If)) and "build(" in ast.unparse(node):
            continue
        keep.append(ast.get_source_segment(code, node) or ast.unparse(node))
    return "\n\n".join(keep) + "\n"


def _short_failure(res: Any) -> str:
    """Status and the part of a traceback that points into the script (frames in medalist/pandas cut)."""
    status = res.describe(0).split("\n", 1)[0]
    err = (res.stderr or "").strip()
    lines = err.splitlines()
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "') and "script.py" in line]
    if frames:
        start = frames[-1]
        tail = lines[start : start + 4] + [ln for ln in lines[-3:] if ln not in lines[start : start + 4]]
        text = "\n".join(ln.replace(str(Path(tempfile.gettempdir())), "") for ln in tail)
    else:
        text = "\n".join(lines[-8:]) or (res.stdout or "").strip()[-600:]
    return f"{status}\n{cut(text, 900)}"


def _fenced(text: str) -> str:
    return f"```\n{text.strip()}\n```"


def _shared_key(comp: Competition, files: dict[str, Any]) -> str:
    train = comp.table_columns(files["train"])
    labels = comp.table_columns(files["train_labels"])
    return next((c for c in labels if c in train), labels[0])


__all__ = ["MAX_TOKENS", "LLMPolicy", "make_llm_policy"]
