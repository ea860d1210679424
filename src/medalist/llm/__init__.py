"""OpenAI-compatible LLM client: retries, token and cost accounting, response cache, budgets, local models."""

from medalist.llm.breaker import CircuitBreaker, EndpointState
from medalist.llm.client import (
    LLM_LOG,
    ChatResult,
    LLMClient,
    LLMError,
    Totals,
    Usage,
    read_usage,
    summarize_calls,
)
from medalist.llm.config import DEFAULT_COMPLETION_CAPS, DEFAULT_PRICES, LLMConfig
from medalist.llm.endpoint import check_endpoint, llm_endpoint
from medalist.llm.extract import extract_code, extract_json
from medalist.llm.local import LOCAL_MODELS, LocalServer, ensure_local_model, resolve_local_model

__all__ = [
    "DEFAULT_COMPLETION_CAPS",
    "DEFAULT_PRICES",
    "LLM_LOG",
    "LOCAL_MODELS",
    "ChatResult",
    "CircuitBreaker",
    "EndpointState",
    "LLMClient",
    "LLMConfig",
    "LLMError",
    "LocalServer",
    "Totals",
    "Usage",
    "check_endpoint",
    "ensure_local_model",
    "extract_code",
    "extract_json",
    "llm_endpoint",
    "read_usage",
    "resolve_local_model",
    "summarize_calls",
]
