"""Endpoints as they are, against a SCRIPTED chat server on loopback (not a model): reasoning models that
refuse max_tokens/temperature, slow endpoints under the run's deadline, answers cut off at their cap, the
circuit breaker, and seeds that reach the model and the cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from medalist.errors import InputError
from medalist.llm import LLMClient, LLMConfig, LLMError, check_endpoint
from medalist.llm.breaker import CircuitBreaker, EndpointState
from medalist.llm.cache import ResponseCache, request_key
from medalist.llm.request import CONTINUE_PROMPT
from medalist.policy.llm_session import ChatSession
from medalist.workspace import read_jsonl
from tests.scripted_server import Reply, ScriptedChatServer

REFUSAL = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
    "instead."
)


def _config(server: ScriptedChatServer, tmp_path: Path, **changes: Any) -> LLMConfig:
    base = LLMConfig(
        base_url=server.base_url,
        model="scripted-model",
        api_key="sk-test",
        cache_dir=tmp_path / "cache",
        backoff=0.01,
        max_retries=3,
        timeout=10,
    )
    return base.with_(**changes)


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You write Python."}, {"role": "user", "content": text}]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- reasoning models ------------------------------------------------------------------------------------


def _reasoning_endpoint(body: dict[str, Any]) -> Reply:
    """A scripted o-series-like endpoint: max_tokens or temperature in the request is a 400."""
    if "max_tokens" in body or "temperature" in body:
        return Reply(status=400, text=REFUSAL)
    return Reply(f"answer to {body['messages'][-1]['content']}")


def test_a_reasoning_endpoint_is_detected_from_its_400_and_remembered(tmp_path: Path) -> None:
    """Scripted server: the first call switches to max_completion_tokens and succeeds; later calls, also
    from another client of the same run, go straight to the reasoning parameters."""
    with ScriptedChatServer(_reasoning_endpoint) as server:
        config = _config(server, tmp_path, max_retries=0)
        log = tmp_path / "llm_calls.jsonl"
        client = LLMClient(config, log, sleep=lambda s: None)
        first = client.chat(_msgs("one"), max_tokens=300)
        assert first.text == "answer to one" and first.attempts == 2
        assert server.request_count == 2
        refused, accepted = server.requests
        assert refused["max_tokens"] == 300 and "temperature" in refused
        assert accepted["max_completion_tokens"] == 300
        assert "max_tokens" not in accepted and "temperature" not in accepted
        assert client.chat(_msgs("two")).text == "answer to two"
        assert server.request_count == 3  # no second refusal
        other = LLMClient(config, None, endpoint=client.endpoint)
        assert other.chat(_msgs("three")).text == "answer to three" and server.request_count == 4
    assert client.endpoint.breaker.state == "closed"
    assert [row["attempts"] for row in read_jsonl(log)] == [2, 1]


def test_configured_parameter_sets_are_not_second_guessed(tmp_path: Path) -> None:
    """Scripted server: reasoning=True sends the reasoning set at once; reasoning=False never switches."""
    with ScriptedChatServer(_reasoning_endpoint) as server:
        client = LLMClient(_config(server, tmp_path, reasoning=True), None)
        assert client.chat(_msgs("x")).text == "answer to x" and server.request_count == 1
        fixed = LLMClient(_config(server, tmp_path, reasoning=False, cache=False), None)
        with pytest.raises(LLMError, match="400"):
            fixed.chat(_msgs("y"))
        assert server.request_count == 2
    assert fixed.endpoint.breaker.state == "closed"  # a refused request says nothing about the endpoint


def test_the_endpoint_check_detects_a_reasoning_model(tmp_path: Path) -> None:
    """Scripted server: `medalist llm check` measures a reasoning endpoint with its parameter set."""
    with ScriptedChatServer(_reasoning_endpoint) as server:
        report = check_endpoint(_config(server, tmp_path))
        assert [("max_tokens" in r, "max_completion_tokens" in r) for r in server.requests] == [
            (True, False),
            (False, True),
            (False, True),
        ]
    assert report["reasoning"] is True and report["reply"].startswith("answer to Write")


# -- the run's deadline ----------------------------------------------------------------------------------


def test_a_slow_endpoint_cannot_hold_a_call_past_the_deadline(tmp_path: Path) -> None:
    """Scripted server that answers after 3 s; the client's timeout is 10 s with 3 retries (40 s), the
    deadline is 0.8 s away: the call ends at the deadline."""
    with ScriptedChatServer(lambda body: Reply("late", delay=3.0)) as server:
        log = tmp_path / "llm_calls.jsonl"
        client = LLMClient(_config(server, tmp_path), log)
        start = time.monotonic()
        with pytest.raises(LLMError, match="deadline"):
            client.chat(_msgs("x"), deadline=start + 0.8)
        elapsed = time.monotonic() - start
        assert 0.7 < elapsed < 2.0, elapsed
        assert server.request_count == 1
        with pytest.raises(LLMError, match="not sent"):
            client.chat(_msgs("y"), deadline=time.monotonic() - 1)
    rows = read_jsonl(log)
    assert len(rows) == 1 and "Timeout" in rows[0]["error"]


def test_no_retry_starts_past_the_deadline(tmp_path: Path) -> None:
    """Scripted server failing with 503: a 5 s backoff does not fit in the 2 s left, so no sleep, no retry."""
    waits: list[float] = []
    with ScriptedChatServer([Reply(status=503)] * 5) as server:
        client = LLMClient(_config(server, tmp_path, backoff=5.0), None, sleep=waits.append)
        with pytest.raises(LLMError, match="no time left for a retry"):
            client.chat(_msgs("x"), deadline=time.monotonic() + 2.0)
        assert server.request_count == 1 and waits == []


def test_the_session_passes_its_deadline(tmp_path: Path) -> None:
    """Scripted server: a session whose run deadline has passed sends nothing, nor does a call whose own
    deadline (the solve loop's time left) has passed; the earlier of the two counts."""
    with ScriptedChatServer(["in time"]) as server:
        session = ChatSession(_config(server, tmp_path))
        with pytest.raises(LLMError, match="deadline"):
            session.ask("solve:propose", "Propose.", "propose", deadline=time.monotonic() - 1)
        session.deadline = time.monotonic() - 1
        with pytest.raises(LLMError, match="deadline"):
            session.ask("summary", "Summarize.", "summary", deadline=time.monotonic() + 60)
        assert server.request_count == 0
        session.deadline = time.monotonic() + 60
        assert session.ask("summary", "Summarize.", "summary") == "in time"


# -- answers cut off at their cap -------------------------------------------------------------------------


def test_a_cut_off_answer_is_continued_and_joined(tmp_path: Path) -> None:
    """Scripted server: the first answer stops at its cap (finish_reason "length"), the second is the rest."""
    script = [
        Reply("```python\ndef build():\n    return ", finish_reason="length", completion_tokens=100),
        Reply("42\n```", completion_tokens=3),
    ]
    with ScriptedChatServer(script) as server:
        client = LLMClient(_config(server, tmp_path), None)
        result = client.chat(_msgs("code"), max_tokens=100, continuations=2)
        assert server.request_count == 2
        continuation = server.requests[1]
    assert result.text == "```python\ndef build():\n    return 42\n```"
    assert result.finish_reason == "stop" and result.completion_tokens == 103
    assert continuation["max_tokens"] == 200
    assert continuation["messages"][-2] == {"role": "assistant", "content": script[0].text}
    assert continuation["messages"][-1] == {"role": "user", "content": CONTINUE_PROMPT}
    # a rerun replays both parts from the cache (the cut-off part remembers why it stopped)
    with ScriptedChatServer([]) as server:
        again = LLMClient(_config(server, tmp_path), None).chat(
            _msgs("code"), max_tokens=100, continuations=2
        )
        assert server.request_count == 0
    assert again.text == result.text and again.cached


def test_continuations_are_bounded_and_an_empty_cut_off_answer_is_asked_again(tmp_path: Path) -> None:
    """Scripted server: a reasoning-style empty answer at its cap is asked again with a larger cap; the
    caps stop at completion_limit."""
    script = [Reply("", finish_reason="length"), Reply("part", finish_reason="length")] + [
        Reply("more", finish_reason="length")
    ] * 5
    with ScriptedChatServer(script) as server:
        client = LLMClient(_config(server, tmp_path, completion_limit=500), None)
        result = client.chat(_msgs("code"), max_tokens=150, continuations=5)
        caps = [r["max_tokens"] for r in server.requests]
        assert server.requests[1]["messages"] == _msgs("code")  # nothing to continue: asked again
    assert caps == [150, 300, 500]
    assert result.text == "partmore" and result.finish_reason == "length"


def test_the_session_continues_code_with_its_configured_cap(tmp_path: Path) -> None:
    """Scripted server: the session's "code" cap comes from the config and its cut-off answer is continued."""
    script = [Reply("print(", finish_reason="length"), Reply("1)")]
    with ScriptedChatServer(script) as server:
        session = ChatSession(_config(server, tmp_path, completion_caps={"code": 700}))
        assert session.ask("train_tab_input", "Write code.", "code") == "print(1)"
        assert [r["max_tokens"] for r in server.requests] == [700, 1400]
    assert not session.cut_off and session.config.cap("json") == 160


# -- the circuit breaker ----------------------------------------------------------------------------------


def test_the_breaker_opens_after_failures_and_closes_after_a_good_trial_call(tmp_path: Path) -> None:
    """Scripted server down for three requests, then up: two failed calls open the breaker, calls during
    the cool-down are skipped without a request, the trial call after it fails and reopens it, the next
    trial succeeds and closes it."""
    clock = FakeClock()
    script = [Reply(status=503)] * 3 + [Reply("back"), Reply("again")]
    with ScriptedChatServer(script) as server:
        endpoint = EndpointState(CircuitBreaker(failures=2, cooldown=60.0, clock=clock))
        client = LLMClient(_config(server, tmp_path, max_retries=0), None, endpoint=endpoint)
        for text in ("a", "b"):
            with pytest.raises(LLMError, match="failed 1 times"):
                client.chat(_msgs(text))
        assert endpoint.breaker.state == "open"
        with pytest.raises(LLMError, match="skipped after 2 failed calls"):
            client.chat(_msgs("c"))
        assert server.request_count == 2
        clock.now += 61
        assert endpoint.breaker.state == "half-open"
        with pytest.raises(LLMError, match="failed 1 times"):
            client.chat(_msgs("d"))  # the trial fails: open again at once
        assert endpoint.breaker.state == "open" and server.request_count == 3
        clock.now += 61
        assert client.chat(_msgs("e")).text == "back"
        assert endpoint.breaker.state == "closed"
        assert client.chat(_msgs("f")).text == "again" and server.request_count == 5


def test_a_session_survives_a_failure_spell(tmp_path: Path) -> None:
    """Scripted server: the session's endpoint fails once, is skipped during the cool-down, and answers
    again after it (the session is no longer offline for the rest of the run)."""
    clock = FakeClock()
    with ScriptedChatServer([Reply(status=503), Reply("summary")]) as server:
        session = ChatSession(_config(server, tmp_path, max_retries=0, breaker_cooldown=30.0))
        session.endpoint.breaker = CircuitBreaker(1, 30.0, clock=clock)
        with pytest.raises(LLMError, match="503"):
            session.ask("summary", "Summarize.", "summary")
        with pytest.raises(LLMError, match="skipped"):
            session.ask("summary", "Summarize.", "summary")
        clock.now += 31
        assert session.ask("summary", "Summarize.", "summary") == "summary"
        assert server.request_count == 2


def test_one_trial_call_at_a_time_when_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failures=1, cooldown=10.0, clock=clock)
    breaker.failure("HTTP 503")
    assert breaker.refusal() is not None
    clock.now += 10
    assert breaker.refusal() is None  # the trial call
    assert "trial call" in (breaker.refusal() or "")
    breaker.release()  # the trial said nothing about the endpoint: the next call may try
    assert breaker.refusal() is None
    breaker.success()
    assert breaker.state == "closed" and breaker.refusal() is None


# -- seeds -----------------------------------------------------------------------------------------------


def test_two_seeds_are_two_samples_with_two_cache_entries(tmp_path: Path) -> None:
    """Scripted server answering with the seed it got: seeds reach the model and the cache key."""
    with ScriptedChatServer(lambda body: Reply(f"sample {body.get('seed')}")) as server:
        answers = [
            LLMClient(_config(server, tmp_path, seed=seed), None).chat(_msgs("plan")).text for seed in (0, 1)
        ]
        assert answers == ["sample 0", "sample 1"] and server.request_count == 2
        replay = LLMClient(_config(server, tmp_path, seed=1), None).chat(_msgs("plan"))
        assert replay.cached and replay.text == "sample 1" and server.request_count == 2
        unseeded = LLMClient(_config(server, tmp_path), None).chat(_msgs("plan"))
        assert unseeded.text == "sample None" and "seed" not in server.requests[-1]
    assert len(ResponseCache(tmp_path / "cache" / "responses.sqlite")) == 3
    # requests without a seed keep the keys they always had
    assert request_key("m", _msgs("x"), 0.0, 10, None) == request_key("m", _msgs("x"), 0.0, 10, None, 0, None)
    assert request_key("m", _msgs("x"), 0.0, 10, None, seed=0) != request_key("m", _msgs("x"), 0.0, 10, None)


def test_endpoint_settings_from_the_environment() -> None:
    env = {"MEDALIST_LLM_REASONING": "true", "MEDALIST_LLM_SEED": "7", "MEDALIST_LLM_CAPS": '{"code": 900}'}
    config = LLMConfig.from_env(env)
    assert (config.reasoning, config.seed, config.cap("code"), config.cap("script")) == (True, 7, 900, 1400)
    assert LLMConfig.from_env({"MEDALIST_LLM_REASONING": "auto"}).reasoning is None
    assert LLMConfig.from_env({}, completion_caps={"script": 3000}).cap("code") == 450
    with pytest.raises(InputError, match="MEDALIST_LLM_REASONING"):
        LLMConfig.from_env({"MEDALIST_LLM_REASONING": "maybe"})
    with pytest.raises(InputError, match="completion caps"):
        LLMConfig.from_env({"MEDALIST_LLM_CAPS": '{"code": 0}'})
