"""Long-term memory as one run uses it: the expert's prior before the solve loop, RAG+ / RAG- text for each
setup stage of an LLM policy, and the write-back after setup and after the run.

Every call degrades to "no memory" instead of failing the run: a store that cannot be read gives one warning
line (see :func:`medalist.memory.store.open_store`), and an error while reading or writing it later gives one
more and turns memory off for the rest of the run.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medalist.memory.card import TaskCard
from medalist.memory.embed import Embedder, default_embedder
from medalist.memory.prior import MIN_SIMILARITY, expert_prior
from medalist.memory.retrieve import CHARS_PER_TOKEN, format_for_prompt, rag, similar_tasks
from medalist.memory.store import MemoryStore, open_store
from medalist.memory.writeback import remember_workspace
from medalist.solve.models.base import RESOURCE_PARAMS
from medalist.solve.policy import EMPTY_PRIOR, Prior

if TYPE_CHECKING:
    from medalist.setup.policy import StageContext

PRIOR_TASKS = 3  # the prior comes from this many most similar past tasks
STAGE_EXAMPLES = 2  # RAG+ entries per setup prompt
STAGE_WARNINGS = 2  # RAG- entries per setup prompt
PROMPT_TOKENS = 600  # memory's share of a setup prompt
# settings of a run, not of a model: left out of the winning params shown to the LLM
NOT_TUNED = RESOURCE_PARAMS | {"max_seconds", "fixed_rounds", "early_stopping_rounds", "max_train_rows"}


class RunMemory:
    """The memory store of one run, with one embedder made on first use."""

    def __init__(self, store: MemoryStore, warn: Callable[[str], None], embedder: Embedder | None = None):
        self.store = store
        self.warn = warn
        self._embedder = embedder
        self._lock = threading.Lock()
        self._off = False

    @classmethod
    def open(cls, path: Path | None, warn: Callable[[str], None]) -> RunMemory | None:
        """The memory at ``path``; None when memory is off (``path`` None) or the file cannot be read."""
        if path is None:
            return None
        store = open_store(path, warn=warn)
        return cls(store, warn) if store is not None else None

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = default_embedder()
            return self._embedder

    def warm_up(self) -> None:
        """Load the embedder in a background thread (a sentence model takes seconds to load), so that the
        prior is ready when the solve starts; nothing to do while memory holds no task."""

        def load() -> None:
            with contextlib.suppress(Exception):  # a failed warm-up only means the load happens later
                self.embedder.embed(["warm up"])

        if not self._off and self._guard("read", lambda: bool(self.store.tasks()), False):
            threading.Thread(target=load, name="memory-warm-up", daemon=True).start()

    def _guard(self, what: str, fn: Callable[[], Any], default: Any) -> Any:
        """``fn()``, or ``default`` with one warning line (and memory off for the run) when it fails."""
        if self._off:
            return default
        try:
            return fn()
        except Exception as exc:  # memory is an aid: nothing in it may stop a run
            self._off = True
            self.warn(f"memory {what} failed ({type(exc).__name__}: {exc}); going on without memory")
            return default

    def prior(self, ws_root: Path) -> tuple[Prior, dict[str, Any]]:
        """The expert's prior for the workspace's task, and what to log about it (entries retrieved)."""

        def build() -> tuple[Prior, dict[str, Any]]:
            if not (ws_root / "task.json").is_file():
                return EMPTY_PRIOR, {"tasks": 0, "retrieved": 0}  # no task set up yet
            card = TaskCard.from_workspace(ws_root)
            if not any(t.task_key != card.task_key for t in self.store.tasks()):
                return EMPTY_PRIOR, {"tasks": 0, "retrieved": 0}
            # the task's own past runs are left out: its ledger already says what was tried on it
            nearest = similar_tasks(
                self.store, card, PRIOR_TASKS, embedder=self.embedder, exclude=card.task_key
            )
            prior = expert_prior(self.store, card, nearest=nearest)
            retrieved = sum(
                len(self.store.entries(kinds=("experiment",), task_key=key)) for key, _ in prior.sources
            )
            info = {
                "tasks": len(prior.sources),
                "retrieved": retrieved,
                "nearest": [[c.task_key, round(sim, 4)] for c, sim in nearest],
                "min_similarity": MIN_SIMILARITY,
            }
            return prior, {**info, **prior.summary()}

        return self._guard("retrieval", build, (EMPTY_PRIOR, {"tasks": 0, "retrieved": 0}))

    @staticmethod
    def solve_text(prior: Prior, max_tokens: int = PROMPT_TOKENS) -> str:
        """The prior as a few lines for the LLM's proposal prompt (empty for the empty prior)."""
        if prior.is_empty:
            return ""
        tasks = ", ".join(f"{key} ({sim:.2f})" for key, sim in prior.sources)
        lines = [f"Memory: on the most similar past tasks ({tasks}):"]
        if prior.families:
            lines.append(f"- families that ranked best: {', '.join(prior.families)}")
        if prior.never_helped:
            lines.append(f"- families that never helped: {', '.join(prior.never_helped)}")
        if prior.recipes:
            lines.append(f"- feature recipes that helped: {', '.join(prior.recipes)}")
        for family, sets in prior.params:
            tuned = {k: v for k, v in sets[0].items() if k not in NOT_TUNED}
            lines.append(f"- winning {family} params: {json.dumps(tuned, default=str, sort_keys=True)}")
        return format_text("\n".join(lines), max_tokens)

    def recall(self, ctx: StageContext) -> list[str]:
        """RAG+ examples and RAG- warnings for a setup stage, one prompt text per entry (empty when none)."""

        def build() -> list[str]:
            counts = self.store.count()
            if not counts["stage_pass"] + counts["stage_fail"]:
                return []
            summary = ctx.artifacts.get("summary")
            card = TaskCard(task_key=ctx.competition.slug, description=str(summary or ""))
            passed = rag(self.store, card, ctx.stage, STAGE_EXAMPLES, True, self.embedder)
            failed = rag(self.store, card, ctx.stage, STAGE_WARNINGS, False, self.embedder)
            share = PROMPT_TOKENS // max(1, len(passed) + len(failed))
            lines = [f"passed on a similar task: {format_for_prompt([e], share)}" for e in passed]
            lines += [f"failed on a similar task (avoid): {format_for_prompt([e], share)}" for e in failed]
            return lines

        return self._guard("retrieval", build, [])

    def remember(self, ws_root: Path) -> int:
        """Write the workspace back (idempotent): the number of new entries."""
        return self._guard("write-back", lambda: remember_workspace(self.store, ws_root), 0)


def format_text(text: str, max_tokens: int) -> str:
    """``text`` cut to about ``max_tokens`` tokens, at a line break where one is near."""
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > limit // 2 else limit]
