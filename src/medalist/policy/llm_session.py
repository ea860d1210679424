"""ChatSession: the LLM policy's conversation with the model.

One client per workspace (every call and answer logged there), all sharing what the run knows about the
endpoint (its circuit breaker: after failed calls it is skipped for a cool-down, then tried again; and
whether it is a reasoning model), the run's deadline (no call waits past it), the tokens and code of the current decision, and what the model said in
the current competition: its last answer per stage (shown again on a retry), its thoughts about meta
failures and the notes kept for the record.
"""

from __future__ import annotations

from typing import Any

from medalist.errors import CheckError
from medalist.llm import LLMClient, LLMConfig, extract_json
from medalist.llm.client import endpoint_state
from medalist.llm.config import DEFAULT_COMPLETION_CAPS
from medalist.policy import llm_stages as st
from medalist.policy.llm_facts import cut, fenced, prompt
from medalist.setup.policy import StageContext, Usage
from medalist.workspace import Workspace

# The default completion caps per call type; a session uses its config's (LLMConfig.completion_caps).
MAX_TOKENS = DEFAULT_COMPLETION_CAPS
CONTINUED = frozenset({"code", "script"})  # call types whose cut-off answers are continued
RETRY_WARMTH = 0.35  # temperature added per retry of a stage


class ChatSession:
    """Chat calls, usage accounting and the current competition's dialogue state (see module doc)."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.ws: Workspace | None = None
        self._client: LLMClient | None = None
        self.endpoint = endpoint_state(config)  # shared by the clients of every workspace
        self.deadline: float | None = None  # the run's deadline (time.monotonic()); no call waits past it
        self.cut_off = False  # the last answer hit its token limit
        self.new_competition()
        self.reset_usage()

    # ------------------------------------------------------------------ state
    def bind(self, ws: Workspace) -> None:
        """Log the model's calls to ``ws``'s logs/llm_calls.jsonl from now on."""
        if self.ws is None or self.ws.root != ws.root:
            self.ws = ws
            self._client = LLMClient.for_workspace(self.config, ws, endpoint=self.endpoint)

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
            self._client = LLMClient(self.config, None, endpoint=self.endpoint)
        return self._client

    def ask(
        self, stage: str, user: str, max_tokens: int | str, attempt: int = 1, deadline: float | None = None
    ) -> str:
        """One chat call; `max_tokens` is a cap or a call type (its cap from the config, and the answer
        continued when it is cut off for the types in CONTINUED). It ends by the session's deadline or
        `deadline` (time.monotonic()), whichever comes first. Retries of a stage sample warmer: at
        temperature 0 a small model repeats its bug. Raises LLMError (also while the endpoint's breaker
        is open) or BudgetExceeded."""
        cap = self.config.cap(max_tokens) if isinstance(max_tokens, str) else max_tokens
        continuations = self.config.continuations if max_tokens in CONTINUED else 0
        messages = [
            {"role": "system", "content": prompt("system").strip()},
            {"role": "user", "content": user},
        ]
        temperature = (
            None if attempt <= 1 else min(1.0, self.config.temperature + RETRY_WARMTH * (attempt - 1))
        )
        res = self._client_().chat(
            messages,
            stage=stage,
            max_tokens=cap,
            temperature=temperature,
            deadline=min((d for d in (self.deadline, deadline) if d is not None), default=None),
            continuations=continuations,
        )
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
        text = self.ask(ctx.stage, user, max_tokens or "json", ctx.attempt)
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


__all__ = ["CONTINUED", "MAX_TOKENS", "RETRY_WARMTH", "ChatSession"]
