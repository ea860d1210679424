"""Hyper-parameter search: one interface, two engines (Optuna's TPE; HEBO, as in the Agent K paper).

Space format (the same as ``ModelFamily.search_space``)::

    {"num_leaves": ("int", 15, 255), "subsample": ("float", 0.5, 1.0),
     "learning_rate": ("logfloat", 1e-3, 0.3), "boosting": ("cat", ["gbdt", "dart"])}

The objective maps a params dict to a score (typically a CV score on the task's folds). An objective
that raises, or returns NaN/inf, counts as the worst possible score for that trial and the search goes on.
The budget is checked between trials (a trial in progress is not interrupted).

HEBO: ``pip install 'pymoo>=0.6.1' GPy gpytorch disjoint-set`` then ``pip install --no-deps HEBO==0.3.6``
(its metadata pins numpy<1.25, but 0.3.6 runs on numpy 2.x). It fits a GP per suggestion, ~1-3 s each.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medalist.errors import MedalistError
from medalist.metrics import ScoreOrder

ENGINES = ("optuna", "hebo")
KINDS = ("int", "float", "logfloat", "cat")

Objective = Callable[[dict[str, Any]], float]


@dataclass
class TuneResult:
    """Best params and score (``best_params`` is {} and ``best_score`` the worst value when every trial
    failed); history holds (seconds since start, params, score) per trial, failures with the worst score."""

    best_params: dict[str, Any]
    best_score: float
    history: list[tuple[float, dict[str, Any], float]] = field(default_factory=list)
    n_failed: int = 0
    last_error: str = ""
    engine: str = ""


def tune(
    objective: Objective,
    space: dict[str, Any],
    *,
    engine: str = "optuna",
    order: ScoreOrder,
    n_trials: int | None = None,
    time_budget: float,
    seed: int = 0,
    warm_start: Sequence[dict[str, Any]] = (),
) -> TuneResult:
    """Search ``space`` for the params with the best ``objective`` within ``n_trials`` and ``time_budget`` s.

    ``warm_start``: parameter sets tried first (e.g. what won on similar past tasks), fitted to ``space``
    (unknown keys dropped, values clipped to their range, missing ones at the range's middle)."""
    check_space(space)
    if engine not in ENGINES:
        raise MedalistError(f"unknown tuning engine {engine!r}; use one of {', '.join(ENGINES)}")
    if n_trials is not None and n_trials < 1:
        raise MedalistError(f"n_trials must be at least 1, got {n_trials}")
    trials = _Trials(objective, order, time_budget, n_trials)
    first = _unique([fit_to_space(p, space) for p in warm_start])
    if engine == "hebo":
        _run_hebo(trials, space, seed, first)
    else:
        _run_optuna(trials, space, seed, first)
    return trials.result(engine)


def hebo_unavailable() -> str | None:
    """None when HEBO imports and runs here, else why not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from hebo.design_space.design_space import DesignSpace
            from hebo.optimizers.hebo import HEBO

            HEBO(DesignSpace().parse([{"name": "x", "type": "num", "lb": 0.0, "ub": 1.0}]))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def check_space(space: dict[str, Any]) -> None:
    """Raise a MedalistError naming the first malformed entry of a search space."""
    if not space:
        raise MedalistError("the search space is empty: give at least one parameter")
    for name, spec in space.items():
        ok = isinstance(spec, (tuple, list)) and len(spec) >= 2 and spec[0] in KINDS
        if ok and spec[0] == "cat":
            ok = len(spec) == 2 and isinstance(spec[1], (list, tuple)) and len(spec[1]) > 0
        elif ok:
            ok = len(spec) == 3 and all(isinstance(v, (int, float)) for v in spec[1:]) and spec[1] <= spec[2]
            if ok and spec[0] == "logfloat":
                ok = spec[1] > 0
        if not ok:
            raise MedalistError(
                f"search space entry {name!r}: {spec!r} is malformed; use ('int'|'float'|'logfloat', low, high) "
                "with low <= high (low > 0 for logfloat) or ('cat', [choices])"
            )


class _Trials:
    """Calls the objective, keeps the history and the budget."""

    def __init__(self, objective: Objective, order: ScoreOrder, budget: float, n_trials: int | None) -> None:
        self.objective = objective
        self.order = order
        self.budget = budget
        self.n_trials = n_trials
        self.start = time.monotonic()
        self.history: list[tuple[float, dict[str, Any], float]] = []
        self.n_failed = 0
        self.last_error = ""

    def more(self) -> bool:
        if self.n_trials is not None and len(self.history) >= self.n_trials:
            return False
        return time.monotonic() - self.start < self.budget

    def evaluate(self, params: dict[str, Any]) -> float | None:
        """The objective's score, or None when the trial failed (recorded as the worst score)."""
        try:
            score = float(self.objective(params))
            if not math.isfinite(score):
                raise ValueError(f"objective returned {score}")
        except Exception as exc:
            self.n_failed += 1
            self.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self.history.append((time.monotonic() - self.start, params, self.order.worst))
            return None
        self.history.append((time.monotonic() - self.start, params, score))
        return score

    def result(self, engine: str) -> TuneResult:
        good = [h for h in self.history if math.isfinite(h[2])]
        if good:
            best = self.order.best_of(good, key=lambda h: h[2])
            params, score = dict(best[1]), best[2]
        else:
            params, score = {}, self.order.worst
        return TuneResult(params, score, self.history, self.n_failed, self.last_error, engine)


# ------------------------------------------------------------------------------------------------ optuna
def fit_to_space(params: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    """``params`` as a point of ``space``: unknown keys dropped, numbers clipped into their range, a choice
    not offered replaced by the first, a missing key at the middle of its range (geometric for logfloat)."""
    out: dict[str, Any] = {}
    for name, spec in space.items():
        kind, value = spec[0], params.get(name)
        if kind == "cat":
            choices = list(spec[1])
            out[name] = value if value in choices else choices[0]
            continue
        low, high = float(spec[1]), float(spec[2])
        try:
            x = float(value) if value is not None else math.nan
        except (TypeError, ValueError):
            x = math.nan
        if not math.isfinite(x):
            x = math.sqrt(low * high) if kind == "logfloat" else (low + high) / 2
        x = min(max(x, low), high)
        out[name] = round(x) if kind == "int" else x
    return out


def _unique(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for p in points:
        if p not in seen:
            seen.append(p)
    return seen


def _run_optuna(trials: _Trials, space: dict[str, Any], seed: int, first: list[dict[str, Any]]) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=trials.order.sense, sampler=optuna.samplers.TPESampler(seed=seed))
    for params in first:
        study.enqueue_trial(params)
    while trials.more():
        trial = study.ask()
        params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        score = trials.evaluate(params)
        # a failure is told as the worst value (+-inf): TPE then ranks it below every real trial
        study.tell(trial, trials.order.worst if score is None else score)


def _suggest(trial: Any, name: str, spec: tuple) -> Any:
    kind = spec[0]
    if kind == "int":
        return trial.suggest_int(name, int(spec[1]), int(spec[2]))
    if kind == "float":
        return trial.suggest_float(name, float(spec[1]), float(spec[2]))
    if kind == "logfloat":
        return trial.suggest_float(name, float(spec[1]), float(spec[2]), log=True)
    return trial.suggest_categorical(name, list(spec[1]))


# -------------------------------------------------------------------------------------------------- HEBO
def _run_hebo(trials: _Trials, space: dict[str, Any], seed: int, first: list[dict[str, Any]]) -> None:
    reason = hebo_unavailable()
    if reason:
        raise MedalistError(
            f"HEBO unavailable: {reason}; install it (see medalist.solve.tuning) or use engine='optuna'"
        )
    import pandas as pd
    from hebo.design_space.design_space import DesignSpace
    from hebo.optimizers.hebo import HEBO

    params_spec = []
    for name, spec in space.items():
        kind = spec[0]
        if (kind == "int" and spec[1] == spec[2]) or (kind in ("float", "logfloat") and spec[1] == spec[2]):
            params_spec.append({"name": name, "type": "cat", "categories": ["0"]})  # a constant
        elif kind == "int":
            params_spec.append({"name": name, "type": "int", "lb": int(spec[1]), "ub": int(spec[2])})
        elif kind == "float":
            params_spec.append({"name": name, "type": "num", "lb": float(spec[1]), "ub": float(spec[2])})
        elif kind == "logfloat":
            params_spec.append(
                {"name": name, "type": "pow", "lb": float(spec[1]), "ub": float(spec[2]), "base": 10}
            )
        else:
            params_spec.append(
                {"name": name, "type": "cat", "categories": [str(i) for i in range(len(spec[1]))]}
            )
    with _seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = HEBO(DesignSpace().parse(params_spec), scramble_seed=seed)
        failed: list[pd.DataFrame] = []
        queued = [pd.DataFrame([_to_hebo(p, space)]) for p in first]  # HEBO's initial design, first
        while trials.more():
            suggestion = queued.pop(0) if queued else opt.suggest(n_suggestions=1)
            params = _from_hebo(suggestion.iloc[0], space)
            score = trials.evaluate(params)
            if score is None:
                failed.append(suggestion)
            else:
                opt.observe(suggestion, np.array([[trials.order.sort_key(score)]]))  # HEBO minimises
            if failed and len(opt.y) > 0:  # failures are observed as worse than the worst seen so far
                ys = np.asarray(opt.y, dtype=float)
                penalty = float(ys.max() + max(1.0, float(ys.max() - ys.min())))
                for s in failed:
                    opt.observe(s, np.array([[penalty]]))
                failed.clear()


def _from_hebo(row: Any, space: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in space.items():
        kind, v = spec[0], row[name]
        if kind == "cat":
            out[name] = list(spec[1])[int(v)]
        elif spec[1] == spec[2]:
            out[name] = spec[1]
        elif kind == "int":
            out[name] = int(min(max(round(float(v)), spec[1]), spec[2]))
        else:
            out[name] = float(min(max(float(v), spec[1]), spec[2]))
    return out


def _to_hebo(params: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    """A point of ``space`` (see :func:`fit_to_space`) in HEBO's coding (the inverse of ``_from_hebo``)."""
    row: dict[str, Any] = {}
    for name, spec in space.items():
        kind, v = spec[0], params[name]
        if kind == "cat":
            row[name] = str(list(spec[1]).index(v))
        elif spec[1] == spec[2]:
            row[name] = "0"
        else:
            row[name] = v
    return row


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's and torch's global generators for HEBO, restoring their state afterwards."""
    import torch

    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)
