"""LLM settings from flags and environment, and the price table."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from medalist.errors import InputError
from medalist.workspace import user_cache_dir

# USD per 1M tokens (prompt, completion), as the providers published them when this table was written.
# Prices change: override or extend with MEDALIST_LLM_PRICES (JSON text or a path to a JSON file),
# e.g. {"my-model": [0.5, 1.5]}. Lookup is exact first, then the longest matching prefix.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "local/": (0.0, 0.0),  # the embedded llama.cpp models are named local/<name>
}

# Completion caps (tokens) per call type: small models at ~10-20 tokens/s make every token count. An answer
# cut off at its cap is continued with a larger cap (see LLMClient.chat), up to `completion_limit`.
DEFAULT_COMPLETION_CAPS: dict[str, int] = {
    "summary": 200,
    "json": 160,
    "plan": 320,
    "code": 450,
    "thought": 70,
    "credit": 6,
    "propose": 220,
    "script": 1400,
}

_ENV = "MEDALIST_LLM_"


@dataclass(frozen=True)
class LLMConfig:
    """Everything the LLM client needs. `prices`: model -> (USD per 1M prompt, per 1M completion tokens)."""

    base_url: str | None = None
    model: str = ""
    api_key: str | None = None
    temperature: float = 0.0
    max_tokens: int = 1024
    timeout: float = 120.0
    max_retries: int = 4
    backoff: float = 1.0  # seconds before the first retry; doubles each time (capped at 30 s)
    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    max_llm_tokens: int | None = None
    max_cost: float | None = None
    cache: bool = True
    cache_dir: Path | None = None  # default: <user cache>/medalist/llm
    threads: int = 1  # local server only
    ctx: int = 4096  # local server only
    reasoning: bool | None = None  # max_completion_tokens and no temperature; None: detect from a 400
    seed: int | None = None  # sent with every request and part of the cache key
    completion_caps: Mapping[str, int] = field(default_factory=dict)  # over DEFAULT_COMPLETION_CAPS
    completion_limit: int = 8192  # the largest cap a cut-off answer's continuation may ask for
    continuations: int = 2  # continuations of an answer cut off at its cap (call types that allow it)
    breaker_failures: int = 1  # consecutive failed calls that take the endpoint out...
    breaker_cooldown: float = 120.0  # ...for this many seconds, then one trial call

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, base: LLMConfig | None = None, **overrides: Any
    ) -> LLMConfig:
        """`base` (e.g. from a settings file; else the defaults), then MEDALIST_LLM_* (and OPENAI_API_KEY /
        OPENAI_BASE_URL), then `overrides`.

        Overrides that are None are ignored, so CLI flags can be passed through unchanged.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {f.name: getattr(base, f.name) for f in fields(cls)} if base else {}
        base_url = env.get(_ENV + "BASE_URL") or env.get("OPENAI_BASE_URL")
        if base_url:
            values["base_url"] = base_url
        if env.get(_ENV + "MODEL"):
            values["model"] = env[_ENV + "MODEL"]
        api_key = env.get(_ENV + "API_KEY") or env.get("OPENAI_API_KEY")
        if api_key:
            values["api_key"] = api_key
        numeric = {
            "temperature": (_ENV + "TEMPERATURE", float),
            "max_tokens": (_ENV + "MAX_TOKENS", int),
            "timeout": (_ENV + "TIMEOUT", float),
            "max_retries": (_ENV + "MAX_RETRIES", int),
            "threads": (_ENV + "THREADS", int),
            "ctx": (_ENV + "CTX", int),
            "seed": (_ENV + "SEED", int),
            "max_llm_tokens": ("MEDALIST_MAX_LLM_TOKENS", int),
            "max_cost": ("MEDALIST_MAX_COST", float),
        }
        for name, (var, kind) in numeric.items():
            if env.get(var):
                values[name] = _parse(var, env[var], kind)
        if env.get(_ENV + "CACHE_DIR"):
            values["cache_dir"] = Path(env[_ENV + "CACHE_DIR"]).expanduser()
        if env.get(_ENV + "CACHE"):
            values["cache"] = env[_ENV + "CACHE"].strip().lower() not in ("0", "false", "no", "off")
        if env.get(_ENV + "REASONING"):
            values["reasoning"] = _parse_flag(_ENV + "REASONING", env[_ENV + "REASONING"])
        caps = dict(base.completion_caps) if base else {}
        if env.get(_ENV + "CAPS"):
            caps.update(_parse_caps(env[_ENV + "CAPS"]))
        values["completion_caps"] = caps
        prices = dict(base.prices if base else DEFAULT_PRICES)
        if env.get(_ENV + "PRICES"):
            prices.update(parse_prices(env[_ENV + "PRICES"]))
        values["prices"] = prices
        for name, value in overrides.items():
            if name not in _FIELD_NAMES:
                raise TypeError(f"LLMConfig has no field {name!r}")
            if value is not None:
                values[name] = value
        if "prices" in overrides and overrides["prices"] is not None:
            values["prices"] = {**prices, **overrides["prices"]}
        if overrides.get("completion_caps") is not None:
            values["completion_caps"] = {**caps, **overrides["completion_caps"]}
        return cls(**values).validated()

    def validated(self) -> LLMConfig:
        """Self, after checking the values a user can get wrong."""
        if self.max_tokens < 1:
            raise InputError(f"LLM max tokens must be at least 1, got {self.max_tokens}")
        if self.timeout <= 0:
            raise InputError(f"LLM timeout must be positive, got {self.timeout}")
        if self.max_retries < 0:
            raise InputError(f"LLM max retries must be >= 0, got {self.max_retries}")
        if self.max_llm_tokens is not None and self.max_llm_tokens < 0:
            raise InputError(f"--max-llm-tokens must be >= 0, got {self.max_llm_tokens}")
        if self.max_cost is not None and self.max_cost < 0:
            raise InputError(f"--max-cost must be >= 0, got {self.max_cost}")
        if self.threads < 1:
            raise InputError(f"LLM threads must be >= 1, got {self.threads}")
        if any(cap < 1 for cap in self.completion_caps.values()) or self.completion_limit < 1:
            raise InputError(f"LLM completion caps must be at least 1, got {dict(self.completion_caps)}")
        if self.continuations < 0 or self.breaker_failures < 1 or self.breaker_cooldown < 0:
            raise InputError(
                "LLM continuations and breaker cool-down must be >= 0 and breaker failures >= 1, got "
                f"{self.continuations}, {self.breaker_cooldown}, {self.breaker_failures}"
            )
        return self

    def cap(self, call_type: str) -> int:
        """The completion cap of a call type: configured, else the default, else `max_tokens`."""
        return int(
            self.completion_caps.get(call_type, DEFAULT_COMPLETION_CAPS.get(call_type, self.max_tokens))
        )

    def with_(self, **changes: Any) -> LLMConfig:
        return replace(self, **changes).validated()

    def price(self, model: str | None = None) -> tuple[float, float] | None:
        """(USD per 1M prompt tokens, per 1M completion tokens) for `model`, or None when unknown."""
        return lookup_price(self.prices, model or self.model)

    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or user_cache_dir() / "llm"


_FIELD_NAMES = {f.name for f in fields(LLMConfig)}


def lookup_price(prices: Mapping[str, tuple[float, float]], model: str) -> tuple[float, float] | None:
    """Exact match first, then the longest table key that `model` starts with (case-insensitive)."""
    if model in prices:
        return tuple(prices[model])  # type: ignore[return-value]
    low = model.lower()
    best = max((key for key in prices if low.startswith(key.lower())), key=len, default=None)
    return tuple(prices[best]) if best is not None else None  # type: ignore[return-value]


def cost_of(price: tuple[float, float] | None, prompt_tokens: int, completion_tokens: int) -> float:
    if price is None:
        return 0.0
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000


def parse_prices(text: str) -> dict[str, tuple[float, float]]:
    """A price table from JSON text or a JSON file: {"model": [prompt_usd_per_1M, completion_usd_per_1M]}."""
    source = text
    path = Path(text).expanduser()
    if not text.lstrip().startswith("{") and path.is_file():
        source = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(source)
        table = {str(k): (float(v[0]), float(v[1])) for k, v in raw.items()}
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise InputError(
            'MEDALIST_LLM_PRICES must be JSON like {"model": [0.15, 0.6]} (USD per 1M prompt, completion '
            f"tokens) or a path to such a file: {exc}"
        ) from exc
    return table


def _parse_flag(var: str, text: str) -> bool | None:
    """true/false (1/0, yes/no, on/off) or auto (None)."""
    low = text.strip().lower()
    if low in ("auto", ""):
        return None
    if low in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return low in ("1", "true", "yes", "on")
    raise InputError(f"{var}={text!r} must be true, false or auto")


def _parse_caps(text: str) -> dict[str, int]:
    """Completion caps from JSON: {"code": 900, "script": 3000}."""
    try:
        return {str(k): int(v) for k, v in json.loads(text).items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(f'MEDALIST_LLM_CAPS must be JSON like {{"code": 900}}: {exc}') from exc


def _parse(var: str, text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError as exc:
        raise InputError(f"{var}={text!r} is not a valid {kind.__name__}") from exc
