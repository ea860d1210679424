"""ChatSession: the LLM policy's conversation with the model.

One client per workspace (every call and answer logged there), the endpoint's health (after one failed
call the session stays offline), the tokens and code of the current decision, and what the model said in
the current competition: its last answer per stage (shown again on a retry), its thoughts about meta
failures and the notes kept for the record.
"""

from __future__ import annotations

from typing import Any

from medalist.errors import BudgetExceeded, CheckError
from medalist.llm import LLMClient, LLMConfig, LLMError, extract_json
from medalist.policy import llm_stages as st
from medalist.policy.llm_facts import cut, fenced, prompt
from medalist.setup.policy import StageContext, Usage
from medalist.workspace import Workspace

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


class ChatSession:
    """Chat calls, usage accounting and the current competition's dialogue state (see module doc)."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.ws: Workspace | None = None
        self._client: LLMClient | None = None
        self._offline: str | None = None
        self.cut_off = False  # the last answer hit its token limit
        self.new_competition()
        self.reset_usage()

    # ------------------------------------------------------------------ state
    def bind(self, ws: Workspace) -> None:
        """Log the model's calls to ``ws``'s logs/llm_calls.jsonl from now on."""
        if self.ws is None or self.ws.root != ws.root:
            self.ws = ws
            self._client = LLMClient.for_workspace(self.config, ws)

    def new_competition(self) -> None:
        """Forget the previous competition's answers, thoughts and notes."""
        self.answers: dict[str, str] = {}  # stage -> the model's last answer (JSON text or code)
        self.thoughts: dict[str, str] = {}  # meta failure -> the model's thought about it
        self.notes: dict[str, dict[str, Any]] = {}  # stage -> {"plan": ..., "derived": [...]}

    def reset_usage(self) -> None:
        """Start counting a new decision: no tokens, code or fallback yet."""
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.code: str | None = None  # the script the decision ran
        self.fallback: str | None = None  # why another policy took the decision
        self.carry = False  # the tokens go to the stage's next decision (a REDO verdict)

    def usage(self) -> Usage:
        """Tokens and code of the last decision; reset on read. Tokens of a REDO verdict (which the
        machine does not record) are carried into the stage's next decision."""
        if self.carry:
            self.carry = False
            return Usage()
        used = Usage(self.prompt_tokens, self.completion_tokens, code=self.code, fallback=self.fallback)
        self.reset_usage()
        return used

    def note(self, stage: str, **values: Any) -> None:
        self.notes.setdefault(stage, {}).update(values)

    # ------------------------------------------------------------------ talking to the model
    def _client_(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient(self.config, None)
        return self._client

    def ask(self, stage: str, user: str, max_tokens: int, attempt: int = 1) -> str:
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
        self.prompt_tokens += res.prompt_tokens
        self.completion_tokens += res.completion_tokens
        self.cut_off = res.finish_reason == "length"
        if self.ws is not None:  # every answer is kept for the reader: logs/llm_answers.jsonl
            self.ws.log_event(
                "llm_answers",
                {
                    "stage": stage,
                    "attempt": attempt,
                    "finish_reason": res.finish_reason,
                    "answer": res.text or "",
                },
            )
        return res.text or ""

    def ask_json(self, ctx: StageContext, user: str, max_tokens: int | None = None) -> dict[str, Any]:
        """The stage's JSON answer (kept for a retry); CheckError when there is none."""
        text = self.ask(ctx.stage, user, max_tokens or MAX_TOKENS["json"], ctx.attempt)
        self.answers[ctx.stage] = cut(text.strip(), 800)
        answer = extract_json(text)
        if answer is None and self.cut_off:
            raise CheckError(
                "the answer was cut off before its JSON object ended: answer much shorter (no lists of many "
                'columns; "ALL_OTHER" names every sample column but the id)'
            )
        return st.need_json(answer)

    def feedback(self, ctx: StageContext) -> str:
        """What the prompt says about the stage's previous try: the check's error, or the meta failure."""
        previous = self.answers.get(ctx.stage)
        shown = fenced(previous) if previous else "(no usable answer)"
        if ctx.error:
            return prompt("retry", previous=shown, error=cut(ctx.error, 1500))
        if ctx.meta_failure:
            if previous is None and ctx.previous is not None:
                shown = st.describe_artifact(ctx.previous)
            return prompt(
                "redo",
                failure=cut(ctx.meta_failure, 600),
                thought=self.thoughts.get(ctx.meta_failure, ""),
                previous=shown,
            )
        return ""


__all__ = ["MAX_TOKENS", "RETRY_WARMTH", "ChatSession"]
