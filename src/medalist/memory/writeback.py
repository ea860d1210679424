"""Write a workspace into the memory: its task card, setup stages, experiments and chosen submission.

Idempotent (every entry has a stable key) and safe under kill -9 (the card is one transaction, all the
entries of a workspace one more). A rerun of the same workspace after more experiments adds only the new
ones; ranks and gains of the stored ones are brought up to date.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medalist.memory.card import TaskCard
from medalist.memory.store import Entry, MemoryStore
from medalist.metrics import Direction
from medalist.solve.ledger import Ledger
from medalist.solve.types import ExperimentRecord
from medalist.workspace import Workspace, read_jsonl

MAX_CONTENT_CHARS = 6000
SOLVE_STAGE = "solve"
ENSEMBLE_STAGE = "ensemble"
PRIOR_FAMILY = "prior"
SINGLE_KINDS = ("model", "script", "distill")


def remember_workspace(store: MemoryStore, ws_path: str | Path) -> int:
    """Store what the workspace at ``ws_path`` holds (finished or not); returns the number of new entries."""
    ws = Workspace(Path(ws_path).resolve())
    card = TaskCard.from_workspace(ws.root)
    store.put_task(card.task_key, card.to_dict(), card.text())
    run_id = hashlib.sha1(str(ws.root).encode()).hexdigest()[:10]
    entries = stage_entries(ws, card)
    records = _ledger_records(ws)
    entries += experiment_entries(records, card, run_id)
    ensemble = ensemble_entry(ws, records, card, run_id)
    if ensemble is not None:
        entries.append(ensemble)
    return store.put_entries(entries)


def stage_text(card: TaskCard, stage: str, extra: str = "") -> str:
    """The text embedded for a stage entry (and the query for it): stage first, then the task."""
    return f"stage {stage}. {extra + ' ' if extra else ''}{card.text()}"


def _card_entry(
    card: TaskCard, kind: str, stage: str, key_tail: str, extra: str = "", **fields: Any
) -> Entry:
    """An entry of ``card``'s task keyed ``kind:task:key_tail``, embedded as ``stage_text(card, stage,
    extra)``; ``fields`` are the entry's other fields."""
    return Entry(
        key=f"{kind}:{card.task_key}:{key_tail}",
        kind=kind,
        task_key=card.task_key,
        stage=stage,
        text=stage_text(card, stage, extra),
        **fields,
    )


# ---------------------------------------------------------------------- setup stages
def stage_entries(ws: Workspace, card: TaskCard) -> list[Entry]:
    """One ``stage_pass`` per stage that passed (its code from code/, else its artifact) and one
    ``stage_fail`` per distinct error, with the artifact that passed after it as its fix."""
    records = read_jsonl(ws.logs / "stages.jsonl")
    decisions_path = ws.code / "decisions.json"
    decisions = json.loads(decisions_path.read_text(encoding="utf-8")) if decisions_path.is_file() else {}
    out: list[Entry] = []
    for i, rec in enumerate(records):
        stage = str(rec.get("stage", ""))
        if rec.get("ok"):
            if any(r.get("stage") == stage and r.get("ok") for r in records[i + 1 :]):
                continue  # a later pass of the same stage (after a rollback) is the one whose artifact is kept
            content = _artifact(ws, decisions, stage) or f"stage {stage} passed (no artifact kept)"
            out.append(
                _card_entry(
                    card,
                    "stage_pass",
                    stage,
                    f"{stage}:{_digest(content)}",
                    content=content,
                    data=_stage_data(rec),
                )
            )
        elif rec.get("error"):
            message = str(rec["error"])
            later = next((r for r in records[i + 1 :] if r.get("stage") == stage and r.get("ok")), None)
            fix = (_artifact(ws, decisions, stage) or "") if later is not None else ""
            out.append(
                _card_entry(
                    card,
                    "stage_fail",
                    stage,
                    f"{stage}:{_digest(message)}",
                    f"error: {message[:300]}",
                    message=message,
                    fix=fix,
                    data=_stage_data(rec),
                )
            )
    return _unique(out)


def _artifact(ws: Workspace, decisions: dict[str, Any], stage: str) -> str:
    code = ws.code / f"{stage}.py"
    if code.is_file():
        return code.read_text(encoding="utf-8")[:MAX_CONTENT_CHARS]
    if stage in decisions:
        return json.dumps(decisions[stage], indent=1, sort_keys=True, default=str)[:MAX_CONTENT_CHARS]
    return ""


def _stage_data(rec: dict[str, Any]) -> dict[str, Any]:
    keep = ("attempt", "policy", "seconds", "prompt_tokens", "completion_tokens", "fallback", "rollback_from")
    return {k: rec.get(k) for k in keep if rec.get(k) is not None}


# ---------------------------------------------------------------------- experiments
def _ledger_records(ws: Workspace) -> list[ExperimentRecord]:
    if not ws.ledger.is_file():
        return []
    return [r for r in Ledger(ws.ledger).records(status="done") if r.cv_score is not None]


def experiment_entries(records: list[ExperimentRecord], card: TaskCard, run_id: str) -> list[Entry]:
    """One ``experiment`` entry per done single model (not the training prior) with its rank among the run's
    single models (1 = best), its normalised gain over the run's first baseline and, for a feature recipe,
    its gain over the same family's best 'base' experiment.

    Normalised gain: ``s * (cv - cv_base) / scale`` with s = -1 when lower is better, scale = |cv_base -
    cv_prior| when the run has a training prior that differs from the baseline, else max(|cv_base|, 1e-12).
    """
    singles = [r for r in records if r.kind in SINGLE_KINDS]
    prior = next((r for r in singles if r.model == PRIOR_FAMILY), None)
    scored = [r for r in singles if r.model != PRIOR_FAMILY]
    if not scored:
        return []
    order = Direction(card.lower_is_better)
    base = min(scored, key=lambda r: r.id or 0)
    assert base.cv_score is not None
    spread = abs(base.cv_score - prior.cv_score) if prior is not None and prior.cv_score is not None else 0.0
    scale = spread if spread > 0 else max(abs(base.cv_score), 1e-12)
    ranked = sorted(scored, key=lambda r: order.sort_key(r.cv_score or 0.0))
    out = []
    for rec in scored:
        assert rec.cv_score is not None
        same_base = [r.cv_score for r in scored if r.model == rec.model and r.features == "base"]
        best_base = order.best_of(same_base, key=float) if same_base else None
        recipe_gain = (
            -order.sort_key(rec.cv_score - best_base) / scale
            if rec.features not in ("", "base") and best_base is not None
            else None
        )
        data = {
            "family": rec.model,
            "params": rec.params,
            "features": rec.features,
            "seed": rec.seed,
            "cv": rec.cv_score,
            "rank": ranked.index(rec) + 1,
            "n_ranked": len(ranked),
            "gain": -order.sort_key(rec.cv_score - base.cv_score) / scale,
            "recipe_gain": recipe_gain,
            "seconds": round(rec.seconds, 3),
            "rows": card.n_train,
            "origin": rec.note or rec.kind,
            "kind": rec.kind,
            "run": run_id,
        }
        out.append(
            _card_entry(
                card,
                "experiment",
                SOLVE_STAGE,
                f"{run_id}:{rec.name}",
                f"model {rec.model} features {rec.features}",
                content=json.dumps(
                    {"family": rec.model, "features": rec.features, "params": rec.params}, default=str
                )[:MAX_CONTENT_CHARS],
                data=data,
            )
        )
    return out


def ensemble_entry(
    ws: Workspace, records: list[ExperimentRecord], card: TaskCard, run_id: str
) -> Entry | None:
    """Which candidate was chosen (chosen.json) against the run's ensembles and best single model."""
    chosen_path = ws.root / "chosen.json"
    chosen = json.loads(chosen_path.read_text(encoding="utf-8")) if chosen_path.is_file() else {}
    ensembles = [r for r in records if r.kind == "ensemble"]
    if not chosen and not ensembles:
        return None
    singles = [r for r in records if r.kind in SINGLE_KINDS and r.model != PRIOR_FAMILY]
    best_single = (
        Direction(card.lower_is_better).best_of(singles, key=lambda r: r.cv_score or 0.0) if singles else None
    )
    data = {
        "chosen": chosen.get("name"),
        "chosen_kind": chosen.get("kind"),
        "chosen_cv": chosen.get("cv_score"),
        "ensembles": {r.model: r.cv_score for r in ensembles},
        "best_single": best_single.name if best_single else None,
        "best_single_cv": best_single.cv_score if best_single else None,
        "ensemble_won": chosen.get("kind") == "ensemble",
        "run": run_id,
    }
    return _card_entry(
        card,
        "ensemble",
        ENSEMBLE_STAGE,
        run_id,
        f"chosen {chosen.get('name', '')}",
        content=json.dumps(data, default=str),
        data=data,
    )


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _unique(entries: list[Entry]) -> list[Entry]:
    seen: dict[str, Entry] = {}
    for e in entries:
        seen.setdefault(e.key, e)
    return list(seen.values())
