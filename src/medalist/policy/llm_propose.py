"""ExperimentProposer: the model proposes the solve loop's next experiment (or fixes a failed one).

From a compact ledger summary the model answers with a spec for the model zoo (a JSON object) or an
experiment script under the contract. Nothing it names is trusted: the model, recipe and hyper-parameter
names are checked against what the runner accepts (numbers clipped into the family's search space), and a
script must parse and write its predictions where the contract says.
"""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from medalist.errors import CheckError
from medalist.llm import extract_code, extract_json
from medalist.policy.llm_facts import cut, fenced, prompt, stated_plan
from medalist.policy.llm_session import ChatSession

if TYPE_CHECKING:
    from medalist.metrics import ScoreOrder
    from medalist.solve.types import ModelTask


class ExperimentProposer:
    """Experiment proposals asked through ``session``, checked and sent back with the reason when wrong."""

    def __init__(self, session: ChatSession) -> None:
        self.session = session

    def propose(
        self,
        summary: str,
        time_left: float,
        models: Sequence[str],
        recipes: Sequence[str] | Mapping[str, str],
        *,
        task_summary: str = "",
        metric: str = "",
        order: ScoreOrder | None = None,
        task: ModelTask | None = None,
        allow_script: bool = True,
        max_attempts: int = 2,
        previous: dict[str, Any] | None = None,
        error: str | None = None,
        reject: Callable[[dict[str, Any]], str | None] | None = None,
        memory: str = "",
        facts: str = "",
    ) -> dict[str, Any]:
        """The model's next experiment: {"kind": "spec", "model", "features", "params", "why"} or
        {"kind": "script", "name", "code", "why"}, plus "usage" (tokens, attempts).

        ``summary`` is the compact ledger summary (see :meth:`Ledger.summary`); ``models`` / ``recipes``
        the names the runner accepts. An answer that names an unknown model, recipe or parameter, or a
        script that breaks the contract, goes back to the model with the reason, up to ``max_attempts``
        calls; then CheckError. ``previous`` + ``error`` ask for a fix of a failed experiment;
        ``reject(proposal)`` may refuse a valid proposal with a reason (e.g. "already run") that goes back too.
        ``memory``: what won on similar past tasks (long-term memory), already within its token budget;
        ``facts``: the data profile's summary (columns, kinds, target, signals, drift).
        """
        session = self.session
        session.reset_usage()
        deadline = time.monotonic() + time_left  # no call outlives the solve loop's time
        recipe_text = (
            "\n".join(f"- {k}: {v}" for k, v in recipes.items())
            if isinstance(recipes, Mapping)
            else ", ".join(recipes)
        )
        recipe_names = list(recipes)
        script_option = ""
        if allow_script:
            from medalist.solve.contract import SCRIPT_CONTRACT

            script_option = prompt("script_option", contract=SCRIPT_CONTRACT.strip())
        last_answer, last_error = (_proposal_text(previous) if previous else None), error
        direction = order.word if order is not None else "?"
        for attempt in range(1, max_attempts + 1):
            feedback = ""
            if last_error:
                feedback = prompt(
                    "fix_experiment",
                    previous=fenced(cut(last_answer or "(none)", 1500)),
                    error=cut(last_error, 800),
                )
            user = prompt(
                "propose",
                summary=cut(task_summary, 400),
                metric=metric or "?",
                direction=direction,
                time_left=_duration(time_left),
                ledger=summary.strip() or "(none yet)",
                models=", ".join(models),
                recipes=recipe_text,
                memory=memory,
                facts=facts,
                script_option=script_option,
                feedback=feedback,
            )
            text = session.ask(
                "solve:propose", user, "script" if allow_script else "propose", attempt, deadline
            )
            try:
                proposal = _parse_proposal(text, list(models), recipe_names, task, allow_script)
                refused = reject(proposal) if reject is not None else None
                if refused:
                    raise CheckError(refused)
            except CheckError as exc:
                last_answer, last_error = cut(text.strip(), 1500), str(exc)
                continue
            proposal["usage"] = {
                "prompt_tokens": session.prompt_tokens,
                "completion_tokens": session.completion_tokens,
                "attempts": attempt,
            }
            session.reset_usage()
            return proposal
        session.reset_usage()
        raise CheckError(f"the model proposed no valid experiment in {max_attempts} answers: {last_error}")


def _parse_proposal(
    text: str, models: list[str], recipes: list[str], task: ModelTask | None, allow_script: bool
) -> dict[str, Any]:
    code = extract_code(text) if "```" in text else None
    if code and "MEDALIST_OUT" in code:
        if not allow_script:
            raise CheckError("reply with the JSON spec only; scripts are not accepted here")
        return _check_script(code, text)
    ans = extract_json(text)
    if ans is None:
        raise CheckError(
            'reply with one JSON object {"model": ..., "features": ..., "params": {...}}'
            + (" or a complete experiment script" if allow_script else "")
        )
    from medalist.solve.models.registry import family_named

    name = str(ans.get("model") or "").strip()
    found = family_named(name, models)
    if found is None:
        raise CheckError(f'"model" {name!r} is not one of the available models: {", ".join(models)}')
    features = str(ans.get("features") or "base").strip()
    if features not in recipes:
        matched = next((r for r in recipes if r.lower() == features.lower()), None)
        if matched is None:
            raise CheckError(f'"features" {features!r} is not one of the recipes: {", ".join(recipes)}')
        features = matched
    params, dropped = _check_params(found, ans.get("params"), task)
    out: dict[str, Any] = {
        "kind": "spec",
        "model": found,
        "features": features,
        "params": params,
        "why": cut(str(ans.get("why") or ""), 200),
    }
    if dropped:
        out["dropped_params"] = dropped
    return out


def _check_script(code: str, text: str) -> dict[str, Any]:
    try:
        ast.parse(code)
    except SyntaxError as exc:
        raise CheckError(f"the script does not parse: line {exc.lineno}: {exc.msg}") from exc
    missing = [v for v in ("MEDALIST_OUT_OOF", "MEDALIST_OUT_TEST") if v not in code]
    if missing:
        raise CheckError(f"the script never writes {', '.join(missing)}: np.save the predictions there")
    if "np.save" not in code and "numpy.save" not in code:
        raise CheckError("the script must write its arrays with np.save")
    return {"kind": "script", "name": "llm_script", "code": code, "why": stated_plan(text) or ""}


def _check_params(model: str, params: Any, task: ModelTask | None) -> tuple[dict[str, Any], list[str]]:
    """Known hyper-parameters of ``model`` only; numbers clipped into the family's search space."""
    if params in (None, "", []):
        return {}, []
    if not isinstance(params, dict):
        raise CheckError('"params" must be a JSON object of hyper-parameters (or {})')
    from medalist.solve.models import FAMILIES
    from medalist.solve.types import ModelTask

    family = FAMILIES[model].factory()
    task = task or ModelTask("binary", 1, "", False, 2)
    space = family.search_space(task)
    defaults = family.default_params(task, 1000)
    known = family.hyper_params(task)
    out: dict[str, Any] = {}
    dropped = []
    for name, value in params.items():
        if name not in known:
            dropped.append(name)
            continue
        spec = space.get(name)
        if spec is not None and spec[0] in ("int", "float", "logfloat"):
            try:
                num = float(value)
            except (TypeError, ValueError):
                dropped.append(name)
                continue
            num = min(max(num, float(spec[1])), float(spec[2]))
            out[name] = round(num) if spec[0] == "int" else num
        elif spec is not None and spec[0] == "cat":
            choice = _nearest_choice(value, list(spec[1]))
            if choice is _MISSING:
                dropped.append(name)
            else:
                out[name] = choice
        elif isinstance(value, (int, float, str, bool)) or value is None:
            default = defaults.get(name)
            out[name] = (
                type(default)(value)
                if isinstance(default, (int, float))
                and isinstance(value, (int, float))
                and not isinstance(default, bool)
                else value
            )
        else:
            dropped.append(name)
    if dropped and not out and len(dropped) == len(params):
        # every name was wrong: tell the model which exist rather than silently running defaults
        raise CheckError(
            f"none of the params {dropped[:5]} is a hyper-parameter of {model}; known: "
            f"{', '.join(sorted(known)[:16])}"
        )
    return out, dropped


_MISSING = object()


def _nearest_choice(value: Any, choices: list[Any]) -> Any:
    """``value`` when it is a choice; a number snaps to the nearest numeric choice; else _MISSING."""
    if value in choices:
        return value
    if isinstance(value, str) and value.lower() in ("none", "null") and None in choices:
        return None
    numeric = [c for c in choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and numeric:
        return min(numeric, key=lambda c: abs(float(c) - float(value)))
    return _MISSING


def _proposal_text(p: dict[str, Any]) -> str:
    if p.get("kind") == "script":
        return str(p.get("code", ""))
    return json.dumps({k: p.get(k) for k in ("model", "features", "params")}, default=str)


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


__all__ = ["ExperimentProposer"]
