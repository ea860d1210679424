"""The chat client: retries with backoff bounded by the run's deadline, per-call accounting, a response
cache (seeded requests have their own entries), token and cost budgets, a circuit breaker per endpoint,
the reasoning parameter set when the endpoint asks for it, and continuation of cut-off answers."""

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
from medalist.llm.breaker import CircuitBreaker, EndpointState
from medalist.llm.cache import CachedResponse, ResponseCache, request_key
from medalist.llm.config import LLMConfig, cost_of
from medalist.llm.request import CONTINUE_PROMPT, ChatRequest, rejects_sampling_parameters, request_kwargs
from medalist.workspace import Workspace, append_jsonl, read_jsonl

LLM_LOG = "llm_calls"  # <workspace>/logs/llm_calls.jsonl
_RETRY_STATUS = {408, 409, 429}
_REQUEST_STATUS = {400, 413, 422}  # refusals of the request itself, which say nothing about the endpoint
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
    nothing, costs nothing and is allowed even when the budget is spent. `endpoint` is what the run
    knows about the endpoint (its circuit breaker, whether it is a reasoning model): pass the same one to
    every client of a run; by default the client has its own.
    """

    def __init__(
        self,
        config: LLMConfig,
        log_path: Path | None = None,
        stage_getter: Callable[[], str] | None = None,
        *,
        include_previous: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        endpoint: EndpointState | None = None,
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
        self.endpoint = endpoint or endpoint_state(config)

    @classmethod
    def for_workspace(
        cls,
        config: LLMConfig,
        workspace: Workspace,
        stage_getter: Callable[[], str] | None = None,
        endpoint: EndpointState | None = None,
    ) -> LLMClient:
        """A client logging to <workspace>/logs/llm_calls.jsonl."""
        return cls(config, workspace.logs / f"{LLM_LOG}.jsonl", stage_getter, endpoint=endpoint)

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
        seed: int | None = None,
        deadline: float | None = None,
        continuations: int = 0,
    ) -> ChatResult:
        """Send `messages` and return the answer; raises BudgetExceeded (before sending) or LLMError.

        `seed` (default: the config's) goes to the model and into the cache key. `deadline`
        (time.monotonic()) bounds the call: each attempt's timeout is at most the time left and no retry
        starts past it. An answer cut off at its cap (finish_reason "length") is continued up to
        `continuations` times, each with twice the cap (at most ``config.completion_limit``), and the
        parts are joined; a cut-off answer with no text (a reasoning model spent its cap thinking) is
        asked again with the larger cap. A failed continuation leaves the answer cut off.
        """
        seed = self.config.seed if seed is None else seed
        cap = self.config.max_tokens if max_tokens is None else max_tokens
        conversation = [dict(m) for m in messages]
        part = result = self._chat_once(conversation, stage, temperature, cap, stop, seed, deadline)
        for _ in range(continuations):
            if result.finish_reason != "length" or cap >= self.config.completion_limit or _past(deadline):
                break
            cap = min(self.config.completion_limit, 2 * cap)
            if part.text:
                conversation += [
                    {"role": "assistant", "content": part.text},
                    {"role": "user", "content": CONTINUE_PROMPT},
                ]
            try:
                part = self._chat_once(conversation, stage, temperature, cap, stop, seed, deadline)
            except (LLMError, BudgetExceeded):
                break
            result = _joined(result, part)
        return result

    # -- internals -----------------------------------------------------------------------------------

    def _chat_once(
        self,
        messages: list[dict[str, Any]],
        stage: str,
        temperature: float | None,
        max_tokens: int,
        stop: Sequence[str] | None,
        seed: int | None,
        deadline: float | None,
    ) -> ChatResult:
        stage = stage or (self._stage_getter() if self._stage_getter else "")
        temperature = self.config.temperature if temperature is None else temperature
        start = time.monotonic()
        with self._lock:
            base = request_key(self.config.model, messages, temperature, max_tokens, stop, seed=seed)
            occurrence = self._seen[base]
            self._seen[base] += 1
        key = request_key(self.config.model, messages, temperature, max_tokens, stop, occurrence, seed)
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
                finish_reason=hit.finish_reason,
            )
            self._record(result, key)
            return result
        self._check_budget()
        if _past(deadline):
            raise LLMError(f"LLM call to {self.config.base_url} not sent: the run's deadline passed")
        refusal = self.endpoint.breaker.refusal()
        if refusal is not None:
            raise LLMError(f"LLM endpoint {self.config.base_url} {refusal}")
        call = ChatRequest(messages, temperature, max_tokens, stop, seed, stage, start, key, deadline)
        try:
            response, attempts = self._send(call)
        except BaseException:
            self.endpoint.breaker.release()  # a no-op after a counted failure
            raise
        self.endpoint.breaker.success()
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
            self._cache.put(
                key, CachedResponse(text, prompt_tokens, completion_tokens, self.config.model, finish)
            )
        self._record(result, key, estimated=estimated)
        return result

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

    def _send(self, call: ChatRequest) -> tuple[Any, int]:
        """The response and the attempts it took. A 400 naming max_tokens or temperature as unsupported
        switches the endpoint to the reasoning parameter set (once, remembered) unless the config says
        which set it takes."""
        attempts = 0
        switched = False
        error = ""
        while True:
            timeout = self.config.timeout
            if call.deadline is not None:
                timeout = min(timeout, call.deadline - time.monotonic())
                if timeout <= 0:  # after a failed attempt or a switch of parameter sets
                    raise self._failure(
                        call, attempts, f"{error}; the run's deadline passed", fault=bool(attempts)
                    )
            attempts += 1
            kwargs = request_kwargs(self.config.model, call, reasoning=bool(self.endpoint.reasoning))
            try:
                return self._client().chat.completions.create(**kwargs, timeout=timeout), attempts
            except openai.APIStatusError as exc:
                error = f"HTTP {exc.status_code}: {_short(exc)}"
                if (
                    not switched
                    and self.config.reasoning is None
                    and not self.endpoint.reasoning
                    and rejects_sampling_parameters(exc)
                ):
                    self.endpoint.reasoning = switched = True
                    continue
                if not (exc.status_code >= 500 or exc.status_code in _RETRY_STATUS):
                    hint = (
                        " (check --api-key / MEDALIST_LLM_API_KEY)" if exc.status_code in (401, 403) else ""
                    )
                    raise self._failure(
                        call,
                        attempts,
                        error,
                        fault=exc.status_code not in _REQUEST_STATUS,
                        message=f"LLM endpoint {self.config.base_url} refused the request, {error}{hint}",
                    ) from exc
                wait = _retry_after(exc)
            except openai.APIConnectionError as exc:  # includes timeouts
                error = f"{type(exc).__name__}: {_short(exc)}"
                wait = None
            if attempts > self.config.max_retries:
                raise self._failure(call, attempts, error)
            pause = max(min(_MAX_BACKOFF, self.config.backoff * 2 ** (attempts - 1)), wait or 0.0)
            if call.deadline is not None and time.monotonic() + pause >= call.deadline:
                raise self._failure(call, attempts, f"{error}; no time left for a retry before the deadline")
            self._sleep(pause)

    def _failure(
        self, call: ChatRequest, attempts: int, error: str, *, fault: bool = True, message: str = ""
    ) -> LLMError:
        """The error to raise for a failed call, logged when something was sent; `fault`: it counts
        against the endpoint (its breaker)."""
        if attempts:
            self._record_failure(call.stage, call.start, attempts, error, call.key)
        if fault:
            self.endpoint.breaker.failure(error)
        return LLMError(
            message
            or f"LLM endpoint {self.config.base_url} failed {attempts} times, last: {error}; "
            "check that it is up (medalist llm check)"
        )

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


def endpoint_state(config: LLMConfig) -> EndpointState:
    """A fresh EndpointState from the config: a closed breaker, the configured parameter set."""
    return EndpointState(CircuitBreaker(config.breaker_failures, config.breaker_cooldown), config.reasoning)


def _joined(first: ChatResult, rest: ChatResult) -> ChatResult:
    """An answer and its continuation as one answer (what both calls spent)."""
    return ChatResult(
        text=first.text + rest.text,
        prompt_tokens=first.prompt_tokens + rest.prompt_tokens,
        completion_tokens=first.completion_tokens + rest.completion_tokens,
        seconds=first.seconds + rest.seconds,
        cost=first.cost + rest.cost,
        cached=first.cached and rest.cached,
        model=rest.model,
        stage=rest.stage,
        attempts=first.attempts + rest.attempts,
        finish_reason=rest.finish_reason,
    )


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


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
