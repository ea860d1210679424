"""Choosing an endpoint from the `--llm none|local|URL` flag, and measuring it (`medalist llm check`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai

from medalist.errors import InputError, MedalistError
from medalist.llm.config import LLMConfig
from medalist.llm.local import LocalServer, resolve_local_model
from medalist.llm.request import rejects_sampling_parameters

_CHECK_PROMPT = "Write a Python function `mean(xs)` that returns the mean of a list. Reply with code only."


@contextmanager
def llm_endpoint(
    llm: str | None,
    *,
    llm_model: str | Path | None = None,
    base: LLMConfig | None = None,
    model_dir: Path | None = None,
    model: str | None = None,
    api_key: str | None = None,
    server_log: Path | None = None,
    **overrides: Any,
) -> Iterator[LLMConfig | None]:
    """The LLMConfig for `--llm` (None for "none"); for "local", a llama.cpp server runs inside the block.

    `llm` None means: `base`'s base_url if it has one, else none. `base` is the endpoint settings
    (``Settings.llm_config``; None: ``LLMConfig.from_env()``); `model_dir` is where packaged local models
    are assembled. Other keyword arguments override LLMConfig fields (threads, max_llm_tokens, ...).
    """
    changes = {k: v for k, v in {"model": model, "api_key": api_key, **overrides}.items() if v is not None}
    base = LLMConfig.from_env(**changes) if base is None else base.with_(**changes)
    choice = (llm or "").strip()
    if not choice:
        choice = base.base_url or "none"
    if choice.lower() == "none":
        yield None
        return
    if choice.lower() == "local":
        path, name = resolve_local_model(llm_model, model_dir)
        alias = f"local/{name}"
        with LocalServer(
            path, threads=base.threads, ctx=base.ctx, alias=alias, log_path=server_log
        ) as server:
            # The cache key includes the model name; the local file's name identifies the weights.
            yield base.with_(base_url=server.base_url, model=model or alias, api_key=None)
        return
    if not choice.startswith(("http://", "https://")):
        raise InputError(f"--llm must be none, local or an http(s) URL, not {choice!r}")
    config = base.with_(base_url=choice)
    if not config.model:
        config = config.with_(model=served_model(config))
    yield config


def served_model(config: LLMConfig) -> str:
    """The model an endpoint serves when it serves exactly one (llama.cpp, vLLM, ...): GET /models."""
    try:
        client = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "not-needed",
            timeout=min(config.timeout, 20.0),
            max_retries=1,
        )
        ids = [m.id for m in client.models.list().data]
    except Exception as exc:
        raise InputError(
            f"no model name for {config.base_url} and its /models did not answer ({type(exc).__name__}); "
            "pass --llm-model NAME or set MEDALIST_LLM_MODEL"
        ) from exc
    if len(ids) != 1:
        raise InputError(
            f"{config.base_url} serves {len(ids)} models ({', '.join(ids[:5])}); pick one with --llm-model NAME "
            "or MEDALIST_LLM_MODEL"
        )
    return ids[0]


def check_endpoint(config: LLMConfig, max_tokens: int = 48) -> dict[str, Any]:
    """Latency and speed of an endpoint: a 1-token ping, then a short code answer.

    Speeds come from the server's own timings when it reports them (llama.cpp does); otherwise the
    completion speed is measured from wall-clock time beyond the ping latency.
    """
    if not config.base_url:
        raise InputError("no LLM endpoint: pass --llm URL or --llm local, or set MEDALIST_LLM_BASE_URL")
    client = openai.OpenAI(
        base_url=config.base_url,
        api_key=config.api_key or "not-needed",
        timeout=config.timeout,
        max_retries=1,
    )
    model = config.model or "default"
    messages = [{"role": "user", "content": _CHECK_PROMPT}]
    reasoning = bool(config.reasoning)
    try:
        try:
            latency = _timed_chat(client, model, [{"role": "user", "content": "Say OK."}], 1, reasoning)[1]
        except openai.APIStatusError as exc:
            if config.reasoning is not None or not rejects_sampling_parameters(exc):
                raise
            reasoning = True  # a reasoning model: max_completion_tokens, no temperature
            latency = _timed_chat(client, model, [{"role": "user", "content": "Say OK."}], 1, reasoning)[1]
        resp, seconds = _timed_chat(client, model, messages, max_tokens, reasoning)
    except openai.APIStatusError as exc:
        raise MedalistError(
            f"LLM endpoint {config.base_url} answered HTTP {exc.status_code}: {' '.join(str(exc).split())[:200]}"
        ) from exc
    except openai.APIConnectionError as exc:
        raise MedalistError(
            f"cannot reach LLM endpoint {config.base_url} ({type(exc).__name__}); is the server up and "
            "the --llm URL right?"
        ) from exc
    usage = resp.usage
    prompt_tokens = int(usage.prompt_tokens) if usage else None
    completion_tokens = int(usage.completion_tokens) if usage else None
    timings = (resp.model_extra or {}).get("timings") or {}
    prompt_tps = timings.get("prompt_per_second")
    completion_tps = timings.get("predicted_per_second")
    source = "server timings" if completion_tps else "wall clock"
    if completion_tps is None and completion_tokens:
        completion_tps = completion_tokens / max(seconds - latency, 1e-3)
    text = resp.choices[0].message.content if resp.choices else ""
    return {
        "endpoint": config.base_url,
        "model": resp.model or model,
        "latency_seconds": round(latency, 3),
        "seconds": round(seconds, 3),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_per_second": round(prompt_tps, 1) if prompt_tps else None,
        "completion_tokens_per_second": round(completion_tps, 1) if completion_tps else None,
        "speed_source": source,
        "reasoning": reasoning,
        "reply": (text or "")[:300],
    }


def _timed_chat(
    client: openai.OpenAI, model: str, messages: list[dict[str, str]], max_tokens: int, reasoning: bool
) -> tuple[Any, float]:
    """One chat call at temperature 0 (none for a reasoning model) and the seconds it took."""
    sampling: dict[str, Any] = (
        {"max_completion_tokens": max_tokens} if reasoning else {"max_tokens": max_tokens, "temperature": 0}
    )
    start = time.monotonic()
    resp = client.chat.completions.create(model=model, messages=messages, **sampling)
    return resp, time.monotonic() - start
