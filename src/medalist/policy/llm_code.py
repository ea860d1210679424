"""CodeStages: the setup stages the model answers with code (the input maps and the target map).

The prompt shows a code template with a hole (``def build()``, see llm_template); the model answers with
a one-line plan and the function; the script runs in the sandbox and what ``build()`` returned is the
stage's artifact, after a check of its columns.
"""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from medalist.errors import CheckError
from medalist.llm import extract_code
from medalist.policy.llm_facts import compact_names, cut, memory_examples, prompt, stated_plan
from medalist.policy.llm_session import ChatSession
from medalist.policy.llm_template import code_template
from medalist.sandbox import run_code
from medalist.setup.policy import StageContext

_FOOTER = """

if __name__ == "__main__":
    _out = build()
    if not isinstance(_out, pd.DataFrame):
        raise SystemExit(f"build() must return a pandas DataFrame, not {type(_out).__name__}")
    _out.to_pickle(OUTPUT)
"""


class CodeStages:
    """Input maps and the target map, written by the model through ``session`` and run in the sandbox."""

    def __init__(self, session: ChatSession, *, timeout: float, memory_mb: int) -> None:
        self.session = session
        self.timeout = timeout
        self.memory_mb = memory_mb

    def input_map(self, ctx: StageContext) -> pd.DataFrame:
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
        goal = (
            'return the train target map: a DataFrame with column "id" first, then exactly the columns '
            "TARGETS (submission space); one row per labelled training row, in table order."
        )
        return self._code_stage(ctx, goal, list(ctx.artifacts["plan"]["target_columns"]))

    def _code_stage(self, ctx: StageContext, goal: str, columns: list[str]) -> pd.DataFrame:
        comp = ctx.competition
        plan = ctx.artifacts["plan"]
        header_run, header_shown, facts = code_template(ctx, columns)
        user = prompt(
            "code_stage",
            stage=ctx.stage,
            slug=comp.slug,
            task=f"{plan['task_type']}; id column {plan['id_column']!r}; targets {compact_names(plan['target_columns'], 6)}",
            goal=goal,
            facts="\n".join(f"- {f}" for f in facts),
            header=header_shown.strip(),
            memory=memory_examples(ctx.memory),
            feedback=self.session.feedback(ctx),
        )
        text = self.session.ask(ctx.stage, user, "code", ctx.attempt)
        code = extract_code(text)
        plan_line = stated_plan(text)
        if plan_line is not None:
            self.session.note(ctx.stage, plan=plan_line)
        if not code or "def build" not in code:
            self.session.answers[ctx.stage] = cut(text.strip(), 800) or "(empty)"
            raise CheckError(
                "the answer holds no ```python block defining build(); reply with the whole function"
            )
        self.session.answers[ctx.stage] = code
        script = f"{header_run.rstrip()}\n\n\n{_without_header(code, header_run).rstrip()}\n{_FOOTER}"
        self.session.code = script
        frame = self._run(ctx.stage, script)
        _check_frame(ctx, frame, ["id", *columns])
        return frame

    def _run(self, stage: str, script: str) -> pd.DataFrame:
        base = self.session.ws.root if self.session.ws is not None else None
        with tempfile.TemporaryDirectory(prefix=f".run-{stage}-", dir=base) as tmp:
            res = run_code(script, Path(tmp), timeout=self.timeout, memory_mb=self.memory_mb)
            out = Path(tmp) / "out.pkl"
            if not res.ok:
                raise CheckError("the code failed: " + _short_failure(res))
            if not out.exists():
                raise CheckError("the code ran but saved no result: build() must return the DataFrame")
            frame = pd.read_pickle(out)
        if "id" in frame.columns:
            frame = frame.reset_index(drop=True)
        return frame


def _check_frame(ctx: StageContext, frame: pd.DataFrame, expected: list[str]) -> None:
    """CheckError unless ``frame`` has exactly the ``expected`` columns (and, for images, every path)."""
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


__all__ = ["CodeStages"]
