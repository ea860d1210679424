"""Long-term memory across competitions (design §4): a SQLite store of task cards and of what passed, failed
and won (``store``), text embedders (``embed``), task cards (``card``), retrieval for prompts (``retrieve``),
write-back of a workspace (``writeback``), the expert's prior (``prior``), the Agent K curriculum
(``curriculum``), campaigns over a pool (``campaign``) and the ``medalist memory`` sub-app (``cli``)."""

from medalist.memory.card import TaskCard
from medalist.memory.prior import expert_prior
from medalist.memory.retrieve import format_for_prompt, rag, similar_tasks
from medalist.memory.store import Entry, MemoryStore, open_store
from medalist.memory.writeback import remember_workspace

__all__ = [
    "Entry",
    "MemoryStore",
    "TaskCard",
    "expert_prior",
    "format_for_prompt",
    "open_store",
    "rag",
    "remember_workspace",
    "similar_tasks",
]
