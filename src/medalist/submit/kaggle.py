"""Upload a workspace's chosen submission to Kaggle with the official API, wait (bounded, with backoff) for
its public score, and keep a record of it in ``submissions/kaggle.jsonl`` (independent of the ledger)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medalist.errors import MedalistError
from medalist.intake.kaggle import has_credentials
from medalist.setup.spec import TaskSpec
from medalist.submit import chosen
from medalist.workspace import Workspace, append_jsonl

KAGGLE_LOG = "kaggle.jsonl"  # in the workspace's submissions/ folder
DEFAULT_WAIT = 300.0
_FIRST_DELAY, _MAX_DELAY = 5.0, 60.0
_LIMIT_WORDS = ("daily", "allowance", "submission limit", "maximum number of submissions", "429")


class KaggleError(MedalistError):
    """Kaggle refused or rejected a submission; the message says why in one line."""


@dataclass
class KaggleSubmission:
    """One upload and what Kaggle said of it: ``status`` is complete, pending (no score yet) or error."""

    competition: str
    file: str
    message: str
    submitted_at: str
    status: str = "pending"
    public_score: float | None = None
    private_score: float | None = None
    ref: str | None = None
    error: str | None = None
    waited_seconds: float = 0.0


def official_api() -> Any:
    """The official Kaggle client, authenticated from the user's credentials."""
    if not has_credentials():
        raise KaggleError(
            "submitting to Kaggle needs an API token: put kaggle.json in ~/.kaggle/ "
            "(kaggle.com → Settings → API) or set KAGGLE_USERNAME and KAGGLE_KEY"
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise KaggleError("submitting to Kaggle needs the official client: pip install kaggle") from exc
    api = KaggleApi()
    try:
        api.authenticate()
    except Exception as exc:  # the client raises its own error types
        raise KaggleError(f"Kaggle refused the API credentials: {_one_line(exc)}") from exc
    return api


def submit_to_kaggle(
    ws_root: str | Path,
    message: str | None = None,
    wait: float = DEFAULT_WAIT,
    api: Any | None = None,
    sleep: Callable[[float], None] | None = None,
) -> KaggleSubmission:
    """Upload ``<ws_root>/submission.csv`` to the workspace's competition and wait up to ``wait`` seconds for
    its public score. The result is appended to ``submissions/kaggle.jsonl``; a submission Kaggle rejects is
    recorded, then raised as :class:`KaggleError`. A score still pending at the deadline is returned as is."""
    ws = Workspace(Path(ws_root).expanduser().resolve())
    if not ws.submission_csv.is_file():
        raise MedalistError(f"no submission at {ws.submission_csv}: run `medalist run` or `medalist submit`")
    if not ws.task_json.is_file():
        raise MedalistError(f"{ws.root} has no task.json: run `medalist setup` first")
    slug = TaskSpec.load(ws.task_json).slug
    message = message or _default_message(ws)
    api = api if api is not None else official_api()
    before = {sub_ref for sub_ref in (_ref(s) for s in _listing(api, slug)) if sub_ref}
    started = time.monotonic()
    try:
        response = api.competition_submit(str(ws.submission_csv), message, slug, quiet=True)
    except Exception as exc:  # the client raises its own HTTP error types
        raise KaggleError(_submit_error(slug, exc)) from exc
    record = KaggleSubmission(slug, str(ws.submission_csv), message, datetime.now(UTC).isoformat())
    record.ref = _ref(response)
    for delay in _delays(wait):
        (sleep or time.sleep)(delay)
        mine = _find(_listing(api, slug), record, before)
        if mine is not None:
            _update(record, mine)
            if record.status != "pending":
                break
    record.waited_seconds = round(time.monotonic() - started, 1)
    append_jsonl(ws.submissions / KAGGLE_LOG, asdict(record))
    if record.status == "error":
        raise KaggleError(f"Kaggle rejected the submission to {slug!r}: {record.error or 'no reason given'}")
    return record


def _delays(wait: float) -> Iterator[float]:
    """Sleeps between polls: 5 s doubling to 60 s, until ``wait`` seconds have been spent (at least one poll)."""
    spent, delay = 0.0, _FIRST_DELAY
    while True:
        step = max(0.0, min(delay, wait - spent))
        yield step
        spent += step
        if spent >= wait:
            return
        delay = min(_MAX_DELAY, delay * 2)


def _listing(api: Any, slug: str) -> list[Any]:
    """The user's submissions to ``slug``, newest first; [] when Kaggle cannot be asked right now."""
    try:
        return list(api.competition_submissions(slug) or [])
    except Exception:  # a failed poll is retried at the next one
        return []


def _find(listing: list[Any], record: KaggleSubmission, before: set[str]) -> Any | None:
    for sub in listing:
        ref = _ref(sub)
        if record.ref is not None and ref == record.ref:
            return sub
        if record.ref is None and ref not in before and _field(sub, "description") == record.message:
            return sub
    return None


def _update(record: KaggleSubmission, sub: Any) -> None:
    status = str(getattr(_field(sub, "status"), "name", _field(sub, "status")) or "").lower()
    record.ref = record.ref or _ref(sub)
    record.public_score = _score(_field(sub, "public_score"))
    record.private_score = _score(_field(sub, "private_score"))
    if "error" in status:
        record.status = "error"
        record.error = _one_line(_field(sub, "error_description") or "") or None
    elif "complete" in status:
        record.status = "complete"


def _field(obj: Any, name: str) -> Any:
    """An attribute under its snake_case or camelCase name (the client's versions differ)."""
    head, *rest = name.split("_")
    for key in (name, head + "".join(w.title() for w in rest)):
        if isinstance(obj, dict) and key in obj:
            return obj[key]
        if hasattr(obj, key):
            return getattr(obj, key)
    return None


def _ref(obj: Any) -> str | None:
    ref = _field(obj, "ref")
    return None if ref in (None, "", 0) else str(ref)


def _score(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _default_message(ws: Workspace) -> str:
    entry = chosen(ws) or {}
    if not entry:
        return "medalist"
    return f"medalist: {entry.get('name')} (cv {entry.get('cv_score')})"


def _submit_error(slug: str, exc: Exception) -> str:
    """One line for a refused upload; the reason may be in the HTTP response's body, not in the error."""
    body = getattr(getattr(exc, "response", None), "text", None)
    text = _one_line(f"{exc} {body}" if isinstance(body, str) and body else exc)
    if "403" in text or "forbidden" in text.lower():
        return f"Kaggle refused the submission to {slug!r}: accept the rules at https://www.kaggle.com/c/{slug}/rules"
    if any(word in text.lower() for word in _LIMIT_WORDS):
        return f"Kaggle's daily submission limit for {slug!r} is reached; submit again after midnight UTC"
    if "404" in text:
        return f"no Kaggle competition is named {slug!r} (check the slug in its URL)"
    return f"could not submit to Kaggle competition {slug!r}: {text}"


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())[:200]
