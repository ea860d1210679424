"""The chat client: retries with backoff, per-call accounting, a response cache, token and cost budgets."""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai

from medalist.errors import BudgetExceeded, InputError, MedalistError
from medalist.llm.cache import CachedResponse, ResponseCache, request_key
from medalist.llm.config import LLMConfig, cost_of
from medalist.workspace import Workspace, append_jsonl, read_jsonl

LLM_LOG = "llm_calls"  # <workspace>/logs/llm_calls.jsonl
_RETRY_STATUS = {408, 409, 429}
_MAX_BACKOFF = 30.0


class LLMError(MedalistError):
    """The endpoint failed (after retries) or refused the request."""


@dataclass(frozen=True)
class ChatResult:
    """One answer. Tokens, seconds and cost are what this call spent: a cache hit spends nothing."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cost: float
    cached: bool
    model: str = ""
    stage: str = ""
    attempts: int = 0
    finish_reason: str | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Totals:
    calls: int = 0
    cached_calls: int = 0
    failed_calls: int = 0
    unpriced_calls: int = 0  # calls whose model had no price in the table (counted as 0 USD)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cost: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, record: dict[str, Any]) -> None:
        self.calls += 1
        self.cached_calls += bool(record.get("cached"))
        self.failed_calls += bool(record.get("error"))
        self.prompt_tokens += int(record.get("prompt_tokens") or 0)
        self.completion_tokens += int(record.get("completion_tokens") or 0)
        self.seconds += float(record.get("seconds") or 0.0)
        if record.get("cost") is None and not record.get("cached") and not record.get("error"):
            self.unpriced_calls += 1
        self.cost += float(record.get("cost") or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens": self.tokens}


@dataclass
class Usage:
    """Totals over a run, overall and per stage."""

    total: Totals = field(default_factory=Totals)
    stages: dict[str, Totals] = field(default_factory=dict)

    def add(self, record: dict[str, Any]) -> None:
        self.total.add(record)
        self.stages.setdefault(str(record.get("stage") or ""), Totals()).add(record)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total.to_dict(), "stages": {k: v.to_dict() for k, v in self.stages.items()}}


def summarize_calls(records: Iterable[dict[str, Any]]) -> Usage:
    usage = Usage()
    for record in records:
        usage.add(record)
    return usage


def read_usage(log_path: Path) -> Usage:
    """Usage summed from an llm_calls.jsonl log."""
    return summarize_calls(read_jsonl(log_path))


class LLMClient:
    """Chat with an OpenAI-compatible endpoint, accounting for every call.

    Each call appends one line to `log_path` (fsynced). With `include_previous`, calls already in the log
    count toward usage and budgets, so a resumed run keeps its budget. Identical requests are answered
    from the disk cache (the n-th repeat within a run replays the n-th stored answer); a cache hit sends
    nothing, costs nothing and is allowed even when the budget is spent.
    """

    def __init__(
        self,
        config: LLMConfig,
        log_path: Path | None = None,
        stage_getter: Callable[[], str] | None = None,
        *,
        include_previous: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not config.base_url:
            raise InputError("no LLM endpoint: pass --llm URL or --llm local, or set MEDALIST_LLM_BASE_URL")
        if not config.model:
            raise InputError("no LLM model name: pass --model NAME or set MEDALIST_LLM_MODEL")
        self.config = config
        self.log_path = log_path
        self._stage_getter = stage_getter
        self._sleep = sleep
        self._price = config.price()
        if config.max_cost is not None and self._price is None:
            raise InputError(
                f"--max-cost needs a price for model {config.model!r}: add it to MEDALIST_LLM_PRICES, "
                'e.g. {"' + config.model + '": [0.5, 1.5]} (USD per 1M prompt, completion tokens)'
            )
        self._lock = threading.Lock()
        self._usage = summarize_calls(read_jsonl(log_path)) if (include_previous and log_path) else Usage()
        self._seen: Counter[str] = Counter()
        self._cache = (
            ResponseCache(config.resolved_cache_dir() / "responses.sqlite") if config.cache else None
        )
        self._openai: openai.OpenAI | None = None

    @classmethod
    def for_workspace(
        cls, config: LLMConfig, workspace: Workspace, stage_getter: Callable[[], str] | None = None
    ) -> LLMClient:
        """A client logging to <workspace>/logs/llm_calls.jsonl."""
        return cls(config, workspace.logs / f"{LLM_LOG}.jsonl", stage_getter)

    def usage(self) -> Usage:
        """Totals so far (a copy), overall and per stage."""
        with self._lock:
            return copy.deepcopy(self._usage)

    def remaining_tokens(self) -> int | None:
        if self.config.max_llm_tokens is None:
            return None
        with self._lock:
            return max(0, self.config.max_llm_tokens - self._usage.total.tokens)

    def chat(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        stage: str = "",
        temperature: float | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
    ) -> ChatResult:
        """Send `messages` and return the answer; raises BudgetExceeded (before sending) or LLMError."""
        stage = stage or (self._stage_getter() if self._stage_getter else "")
        temperature = self.config.temperature if temperature is None else temperature
        max_tokens = self.config.max_tokens if max_tokens is None else max_tokens
        messages = [dict(m) for m in messages]
        start = time.monotonic()
        with self._lock:
            base = request_key(self.config.model, messages, temperature, max_tokens, stop)
            occurrence = self._seen[base]
            self._seen[base] += 1
        key = request_key(self.config.model, messages, temperature, max_tokens, stop, occurrence)
        hit = self._cache.get(key) if self._cache else None
        if hit is not None:
            result = ChatResult(
                text=hit.text,
                prompt_tokens=0,
                completion_tokens=0,
                seconds=time.monotonic() - start,
                cost=0.0,
                cached=True,
                model=self.config.model,
                stage=stage,
            )
            self._record(result, key)
            return result
        self._check_budget()
        response, attempts = self._send(messages, temperature, max_tokens, stop, stage, start, key)
        text, finish, prompt_tokens, completion_tokens, estimated = _parse_response(response, messages)
        cost = cost_of(self._price, prompt_tokens, completion_tokens)
        result = ChatResult(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            seconds=time.monotonic() - start,
            cost=cost,
            cached=False,
            model=self.config.model,
            stage=stage,
            attempts=attempts,
            finish_reason=finish,
        )
        if self._cache is not None:
            self._cache.put(key, CachedResponse(text, prompt_tokens, completion_tokens, self.config.model))
        self._record(result, key, estimated=estimated)
        return result

    # -- internals -----------------------------------------------------------------------------------

    def _check_budget(self) -> None:
        with self._lock:
            spent = self._usage.total
        limit_tokens = self.config.max_llm_tokens
        if limit_tokens is not None and spent.tokens >= limit_tokens:
            raise BudgetExceeded(
                f"LLM token budget spent: {spent.tokens} of {limit_tokens} tokens (--max-llm-tokens); "
                "work so far is kept, raise the budget to go on"
            )
        if self.config.max_cost is not None and spent.cost >= self.config.max_cost:
            raise BudgetExceeded(
                f"LLM cost budget spent: ${spent.cost:.4f} of ${self.config.max_cost:.4f} (--max-cost); "
                "work so far is kept, raise the budget to go on"
            )

    def _client(self) -> openai.OpenAI:
        if self._openai is None:
            self._openai = openai.OpenAI(
                base_url=self.config.base_url,
                api_key=self.config.api_key or "not-needed",
                timeout=self.config.timeout,
                max_retries=0,  # retries are ours, so they are counted and logged
            )
        return self._openai

    def _send(
        self,
        messages: list[dict[str, Any]],
        temperature: float,
        max_tokens: int,
        stop: Sequence[str] | None,
        stage: str,
        start: float,
        key: str,
    ) -> tuple[Any, int]:
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }
        if stop:
            kwargs["stop"] = list(stop)
        attempts = 0
        while True:
            attempts += 1
            try:
                return self._client().chat.completions.create(**kwargs), attempts
            except openai.APIStatusError as exc:
                retry = exc.status_code >= 500 or exc.status_code in _RETRY_STATUS
                error = f"HTTP {exc.status_code}: {_short(exc)}"
                if not retry:
                    self._record_failure(stage, start, attempts, error, key)
                    hint = (
                        " (check --api-key / MEDALIST_LLM_API_KEY)" if exc.status_code in (401, 403) else ""
                    )
                    raise LLMError(
                        f"LLM endpoint {self.config.base_url} refused the request, {error}{hint}"
                    ) from exc
                wait = _retry_after(exc)
            except openai.APIConnectionError as exc:  # includes timeouts
                error = f"{type(exc).__name__}: {_short(exc)}"
                wait = None
            if attempts > self.config.max_retries:
                self._record_failure(stage, start, attempts, error, key)
                raise LLMError(
                    f"LLM endpoint {self.config.base_url} failed {attempts} times, last: {error}; "
                    "check that it is up (medalist llm check)"
                )
            backoff = min(_MAX_BACKOFF, self.config.backoff * 2 ** (attempts - 1))
            self._sleep(max(backoff, wait or 0.0))

    def _record(self, result: ChatResult, key: str, *, estimated: bool = False) -> None:
        record: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "stage": result.stage,
            "model": result.model,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "seconds": round(result.seconds, 4),
            "cost": None if (self._price is None and not result.cached) else result.cost,
            "cached": result.cached,
            "attempts": result.attempts,
            "finish_reason": result.finish_reason,
            "key": key[:16],
        }
        if estimated:
            record["estimated_tokens"] = True
        self._append(record)

    def _record_failure(self, stage: str, start: float, attempts: int, error: str, key: str) -> None:
        self._append(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "stage": stage,
                "model": self.config.model,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "seconds": round(time.monotonic() - start, 4),
                "cost": 0.0,
                "cached": False,
                "attempts": attempts,
                "error": error,
                "key": key[:16],
            }
        )

    def _append(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self.log_path is not None:
                append_jsonl(self.log_path, record)
            self._usage.add(record)


def _parse_response(response: Any, messages: list[dict[str, Any]]) -> tuple[str, str | None, int, int, bool]:
    choices = getattr(response, "choices", None) or []
    message = choices[0].message if choices else None
    text = (getattr(message, "content", None) or "") if message is not None else ""
    finish = getattr(choices[0], "finish_reason", None) if choices else None
    usage = getattr(response, "usage", None)
    if usage is not None and usage.prompt_tokens is not None:
        return text, finish, int(usage.prompt_tokens), int(usage.completion_tokens or 0), False
    # No usage from the server: estimate (about 4 characters a token) so budgets still hold.
    prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
    return text, finish, math.ceil(prompt_chars / 4), math.ceil(len(text) / 4), True


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return min(60.0, float(value)) if value else None
    except (AttributeError, ValueError):
        return None


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."
