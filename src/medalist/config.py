"""Settings: one typed object from defaults < a TOML file < environment < command-line flags.

The TOML file is ``$MEDALIST_CONFIG`` when set, else ``medalist.toml`` in the working directory when it
exists. Top-level keys are ``Settings`` fields; the ``[llm_config]`` table holds the endpoint settings
(``LLMConfig`` fields: base_url, model, api_key, temperature, max_tokens, timeout, max_retries, threads,
ctx, cache, cache_dir, prices, max_llm_tokens, max_cost)::

    time_budget = 600
    tune_engine = "optuna"
    skip_models = ["knn"]
    llm = "http://127.0.0.1:8080/v1"
    [llm_config]
    max_cost = 0.5
    max_retries = 2

Environment variables read here (the commands read the environment nowhere else; see ``ENV``):
MEDALIST_TIME_BUDGET, MEDALIST_SEED,
MEDALIST_TUNE_ENGINE, MEDALIST_SKIP_MODELS, MEDALIST_LLM (none | local | URL), MEDALIST_LLM_LOCAL_MODEL,
MEDALIST_CACHE_DIR, MEDALIST_MODEL_DIR, MEDALIST_FOLD_JOBS, MEDALIST_MEMORY (a file, or off),
MEDALIST_DEBUG, and the
endpoint's MEDALIST_LLM_* / MEDALIST_MAX_LLM_TOKENS / MEDALIST_MAX_COST (and OPENAI_API_KEY /
OPENAI_BASE_URL), parsed by ``LLMConfig.from_env``.

Environment variables that stay a protocol with a child process, not settings (set by medalist for the
process it starts, or read by it in a worker or sandboxed script):

- MEDALIST_WORKSPACE, MEDALIST_FOLDS, MEDALIST_OUT_OOF, MEDALIST_OUT_TEST (solve/contract.py: where an
  experiment script reads its task and writes its predictions), MEDALIST_OUT (setup scripts);
- MEDALIST_SANDBOX_ID (sandbox/runner.py: the marker that finds a sandboxed run's escaped processes);
- MEDALIST_THREADS (threads per model fit, read where a model is fitted; solve/runner.py sets it to 1 in
  each fold worker);
- MEDALIST_CACHE_DIR is also read by ``workspace.user_cache_dir`` (the embeddings cache, read in fold
  workers, and the Kaggle download cache); ``Settings.cache_dir`` places the LLM response cache and the
  local models.
- MEDALIST_TEXT_MODEL, MEDALIST_IMAGE_WEIGHTS, MEDALIST_IMAGE_BACKBONE, MEDALIST_IMAGE_SIZE (where the
  model zoo's pretrained weights are, read where the weights load, in fold workers too).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from medalist.errors import InputError
from medalist.llm.config import DEFAULT_PRICES, LLMConfig, parse_prices

CONFIG_FILE = "medalist.toml"
CONFIG_ENV = "MEDALIST_CONFIG"
TUNE_ENGINES = ("auto", "optuna", "hebo")


@dataclass(frozen=True)
class Settings:
    """Every knob of a medalist command; build it with ``load_settings``."""

    time_budget: float = 300.0  # seconds for a run / a solve
    seed: int = 0
    tune_engine: str = "auto"  # auto | optuna | hebo
    skip_models: tuple[str, ...] = ()
    llm: str | None = None  # none | local | an OpenAI-compatible base URL; None: not chosen (none)
    llm_model: str | None = None  # --llm local: a GGUF file or packaged model; --llm URL: the model name
    llm_config: LLMConfig = field(default_factory=LLMConfig)  # endpoint, retries, token and cost caps
    cache_dir: Path | None = None  # default: $XDG_CACHE_HOME/medalist or ~/.cache/medalist
    model_dir: Path | None = None  # local GGUF models; default: <cache_dir>/models
    fold_jobs: int | None = None  # folds fitted side by side; None: the cores, up to 2
    memory: str | None = None  # long-term memory file; None: the user data dir's; "off": no memory

    def validated(self) -> Settings:
        """Self, after checking the values a user can get wrong (InputError in one line otherwise)."""
        if self.time_budget <= 0:
            raise InputError(f"--time-budget must be positive (seconds), got {self.time_budget}")
        if self.tune_engine not in TUNE_ENGINES:
            raise InputError(
                f"--tune-engine must be one of {', '.join(TUNE_ENGINES)}, got {self.tune_engine!r}"
            )
        llm = (self.llm or "none").strip()
        if llm.lower() not in ("none", "local") and not llm.startswith(("http://", "https://")):
            raise InputError(f"--llm must be none, local or an http(s) URL, not {llm!r}")
        if self.fold_jobs is not None and self.fold_jobs < 1:
            raise InputError(f"fold_jobs must be at least 1, got {self.fold_jobs}")
        return self

    @property
    def local_model_dir(self) -> Path | None:
        """Where packaged local models are assembled: model_dir, else <cache_dir>/models, else the default."""
        return self.model_dir or (self.cache_dir / "models" if self.cache_dir else None)

    @property
    def llm_choice(self) -> str:
        """``none``, ``local`` or the endpoint URL."""
        return (self.llm or "none").strip()

    @property
    def memory_path(self) -> Path | None:
        """The long-term memory file, or None when memory is off."""
        choice = (self.memory or "").strip()
        if choice.lower() in ("off", "none", "no", "0", "false"):
            return None
        if choice:
            return Path(choice).expanduser()
        import platformdirs

        return Path(platformdirs.user_data_dir("medalist", appauthor=False)) / "memory.sqlite"

    @property
    def uses_llm(self) -> bool:
        return self.llm_choice.lower() != "none"


# setting -> environment variable
ENV: dict[str, str] = {
    "time_budget": "MEDALIST_TIME_BUDGET",
    "seed": "MEDALIST_SEED",
    "tune_engine": "MEDALIST_TUNE_ENGINE",
    "skip_models": "MEDALIST_SKIP_MODELS",
    "llm": "MEDALIST_LLM",
    "llm_model": "MEDALIST_LLM_LOCAL_MODEL",
    "cache_dir": "MEDALIST_CACHE_DIR",
    "model_dir": "MEDALIST_MODEL_DIR",
    "fold_jobs": "MEDALIST_FOLD_JOBS",
    "memory": "MEDALIST_MEMORY",
}
# read by the CLI's entry point before any setting: tracebacks for internal errors
DEBUG_ENV = "MEDALIST_DEBUG"
_SETTING_NAMES = {f.name for f in fields(Settings)} - {"llm_config"}
_LLM_NAMES = {f.name for f in fields(LLMConfig)}


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Defaults < TOML file < environment < ``flags`` (a flag that is None was not given).

    ``flags`` keys are Settings fields or LLMConfig fields (e.g. max_llm_tokens, max_cost). ``config_file``
    None means $MEDALIST_CONFIG, else ./medalist.toml when it exists. Bad values raise InputError.
    """
    env = os.environ if env is None else env
    path = config_file or _config_path(env)
    top, llm_table = _read_toml(path) if path is not None else ({}, {})
    values = {name: _coerce(name, value, f"{path}: {name}") for name, value in top.items()}
    for name, var in ENV.items():
        text = env.get(var, "").strip()
        if text:
            values[name] = _coerce(name, text, f"{var}={text!r}")
    flag_values = {k: v for k, v in (flags or {}).items() if v is not None}
    llm_flags = {k: v for k, v in flag_values.items() if k in _LLM_NAMES and k not in _SETTING_NAMES}
    for name, value in flag_values.items():
        if name in _SETTING_NAMES:
            values[name] = _coerce(name, value, f"--{name.replace('_', '-')}")
        elif name not in llm_flags:
            raise TypeError(f"Settings has no field {name!r}")
    if "prices" in llm_table:
        llm_table["prices"] = {**DEFAULT_PRICES, **llm_table["prices"]}
    base = LLMConfig(**llm_table).validated() if llm_table else None
    llm_config = LLMConfig.from_env(env, base=base, **llm_flags)
    if llm_config.cache_dir is None and "cache_dir" in values:
        llm_config = llm_config.with_(cache_dir=values["cache_dir"] / "llm")
    return Settings(**values, llm_config=llm_config).validated()


def debug_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether MEDALIST_DEBUG asks for tracebacks (read before any other setting, by the CLI's entry point)."""
    return _flag((os.environ if env is None else env).get(DEBUG_ENV, ""))


def _config_path(env: Mapping[str, str]) -> Path | None:
    named = env.get(CONFIG_ENV, "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise InputError(f"{CONFIG_ENV}={named!r} is not a file")
        return path
    local = Path.cwd() / CONFIG_FILE
    return local if local.is_file() else None


def _read_toml(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(top-level settings, the [llm_config] table) of a TOML file, with unknown keys refused."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read settings file {path}: {exc}") from exc
    llm_table = data.pop("llm_config", {})
    if not isinstance(llm_table, dict):
        raise InputError(f"{path}: 'llm_config' must be a table ([llm_config]), got {llm_table!r}")
    unknown = sorted(set(data) - _SETTING_NAMES) + [
        f"llm_config.{k}" for k in sorted(set(llm_table) - _LLM_NAMES)
    ]
    if unknown:
        raise InputError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    return data, {
        name: _coerce_llm(name, value, f"{path}: llm_config.{name}") for name, value in llm_table.items()
    }


def _coerce(name: str, value: Any, where: str) -> Any:
    """``value`` (from TOML, the environment or a flag) as the type of Settings field ``name``."""
    try:
        if name in ("time_budget",):
            return _number(value, float)
        if name in ("seed", "fold_jobs"):
            return _number(value, int)
        if name in ("cache_dir", "model_dir"):
            return Path(_text(value)).expanduser()
        if name == "skip_models":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(_text(m).strip() for m in items if _text(m).strip())
        return _text(value).strip()
    except (TypeError, ValueError) as exc:
        raise InputError(f"{where}: {exc}") from exc


def _coerce_llm(name: str, value: Any, where: str) -> Any:
    """A TOML [llm_config] value as the type of LLMConfig field ``name``."""
    try:
        if name in ("temperature", "timeout", "max_cost"):
            return _number(value, float)
        if name in ("max_tokens", "max_retries", "threads", "ctx", "max_llm_tokens"):
            return _number(value, int)
        if name == "cache":
            if not isinstance(value, bool):
                raise TypeError(f"expected true or false, got {value!r}")
            return value
        if name == "cache_dir":
            return Path(_text(value)).expanduser()
        if name == "prices":
            if isinstance(value, str):
                return parse_prices(value)
            return {str(k): (float(v[0]), float(v[1])) for k, v in dict(value).items()}
        return _text(value)
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise InputError(f"{where}: {exc}") from exc


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        return kind(value) if kind is float or not isinstance(value, str) else int(value.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


def _text(value: Any) -> str:
    if not isinstance(value, str | Path):
        raise TypeError(f"expected text, got {value!r}")
    return str(value)


def _flag(text: str) -> bool:
    return text.strip().lower() not in ("", "0", "false", "no", "off")
