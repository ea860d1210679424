"""One chat request as the client sends it: the parameter set an endpoint takes (classic or reasoning),
and what a refusal of it says."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai

# Sent after an answer cut off at its completion cap, with the cut-off part as the assistant's turn.
CONTINUE_PROMPT = (
    "Your answer was cut off at the length limit. Continue exactly where it stopped: no repetition, "
    "no preamble."
)
_SAMPLING_PARAMETERS = ("max_tokens", "temperature")
_UNSUPPORTED = (
    "unsupported",
    "not supported",
    "does not support",
    "not support",
    "use max_completion_tokens",
)


@dataclass(frozen=True)
class ChatRequest:
    """What one call sends, and what its log line needs (stage, start time, cache key)."""

    messages: list[dict[str, Any]]
    temperature: float
    max_tokens: int
    stop: Sequence[str] | None
    seed: int | None
    stage: str
    start: float
    key: str
    deadline: float | None


def request_kwargs(model: str, request: ChatRequest, *, reasoning: bool) -> dict[str, Any]:
    """The chat.completions arguments. A reasoning model (o-series and the like) takes
    ``max_completion_tokens`` and no temperature."""
    kwargs: dict[str, Any] = {"model": model, "messages": request.messages}
    if reasoning:
        kwargs["max_completion_tokens"] = request.max_tokens
    else:
        kwargs["max_tokens"] = request.max_tokens
        kwargs["temperature"] = request.temperature
    if request.stop:
        kwargs["stop"] = list(request.stop)
    if request.seed is not None:
        kwargs["seed"] = request.seed
    return kwargs


def rejects_sampling_parameters(exc: openai.APIStatusError) -> bool:
    """A 400 saying that `max_tokens` or `temperature` is not supported (a reasoning model's answer)."""
    if exc.status_code != 400:
        return False
    text = str(exc).lower()
    return any(p in text for p in _SAMPLING_PARAMETERS) and any(u in text for u in _UNSUPPORTED)
