"""Ensembles built from the ledger only: done base experiments in, ensemble experiments out.

Each ensemble is an experiment like any other: arrays ``train_oof_<MODEL>_<VERSION>.npy`` /
``test_preds_<MODEL>_<VERSION>.npy`` in the workspace and a ledger row of kind ``ensemble`` (or
``distill``) whose ``cv_score`` is the nested-CV score (after post-processing when that was kept) and
whose ``params`` hold the members, the weights, the method, the post-processing and, under
``transform``, the TargetTransform to decode this ensemble's predictions with. The version is a hash of
the member names and the method, so a second run over the same members retrains nothing.

A distilled student (kind ``distill``) is recorded with ``cv_score`` None: its OOF score cannot be
estimated honestly from the ledger (its soft targets come from base models that saw every other fold),
so it is kept in ``params["oof_score_optimistic"]`` and the student never wins a CV-based choice.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from medalist.ensemble.core import EnsembleResult, Scorer, as_2d, ensemble_splits, validated_rows
from medalist.ensemble.distill import distill_ensemble
from medalist.ensemble.hill import hill_climb_ensemble
from medalist.ensemble.postprocess import fit_postprocess
from medalist.ensemble.stack import lgbm_stack, multilevel_stack, ridge_stack
from medalist.setup.data import TaskData
from medalist.solve.ledger import Ledger
from medalist.solve.types import ExperimentRecord
from medalist.workspace import Workspace, write_npy_atomic

ALGO_VERSION = 1  # bump when a method changes, so old ensemble rows are not reused
ENSEMBLE_METHODS = ("ens_hill", "ens_ridge", "ens_lgbm", "ens_multi")
DISTILL_METHOD = "distill_lgbm"
DUPLICATE_CORR = 0.99999
MANY_OUTPUTS = 20  # above this many model outputs (classes), boosted stackers are too slow to pay off


@dataclass
class Member:
    """A base experiment usable in an ensemble (arrays already checked and scored)."""

    name: str
    oof: np.ndarray
    test: np.ndarray
    score: float
    seconds: float = 0.0


def select_members(
    records: Sequence[ExperimentRecord],
    data: TaskData,
    folds: np.ndarray,
    scorer: Scorer,
    top_k: int = 30,
) -> tuple[list[Member], dict[str, str]]:
    """Members for an ensemble: arrays with the task's shapes, finite, scored again by medalist, near
    duplicates dropped (the better one is kept), the ``top_k`` best. Returns (members, {dropped: why})."""
    folds = np.asarray(folds)
    rows = validated_rows(folds)
    k = scorer.n_outputs
    dropped: dict[str, str] = {}
    candidates: list[Member] = []
    for rec in records:
        try:
            oof = as_2d(np.load(rec.oof_path, allow_pickle=False))
            test = as_2d(np.load(rec.test_path, allow_pickle=False))
        except (OSError, ValueError) as e:
            dropped[rec.name] = f"arrays unreadable: {e}"
            continue
        if oof.shape != (data.n_train, k) or test.shape != (data.n_test, k):
            dropped[rec.name] = (
                f"shapes {oof.shape} / {test.shape}; need ({data.n_train}, {k}) / ({data.n_test}, {k})"
            )
            continue
        if not (np.isfinite(oof[rows]).all() and np.isfinite(test).all()):
            dropped[rec.name] = "non-finite predictions"
            continue
        try:
            score = scorer.cv(oof, folds)[0]
        except Exception as e:  # a prediction the metric cannot score is not a member
            dropped[rec.name] = f"unscorable: {e}"
            continue
        if not math.isfinite(score):
            dropped[rec.name] = "non-finite CV score"
            continue
        candidates.append(Member(rec.name, oof, test, float(score), float(rec.seconds or 0.0)))
    candidates.sort(key=lambda m: (scorer.metric.sort_key(m.score), m.name))
    kept: list[Member] = []
    for m in candidates:
        twin = next((o for o in kept if _near_identical(m.oof[rows], o.oof[rows])), None)
        if twin is not None:
            dropped[m.name] = f"near-identical to {twin.name}"
        elif len(kept) >= top_k:
            dropped[m.name] = f"not in the top {top_k}"
        else:
            kept.append(m)
    return kept, dropped


def _near_identical(a: np.ndarray, b: np.ndarray) -> bool:
    if np.allclose(a, b, rtol=1e-6, atol=1e-9):
        return True
    x, y = a.ravel(), b.ravel()
    if x.std() == 0 or y.std() == 0:
        return False
    return float(np.corrcoef(x, y)[0, 1]) >= DUPLICATE_CORR


def ensemble_version(members: Sequence[str], method: str, metric: str, seed: int = 0) -> str:
    blob = json.dumps(
        {"members": sorted(members), "method": method, "metric": metric, "seed": seed, "algo": ALGO_VERSION},
        sort_keys=True,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def build_ensembles(
    ws: Workspace,
    data: TaskData,
    folds: np.ndarray,
    ledger: Ledger,
    *,
    time_budget: float,
    min_models: int = 2,
    top_k: int = 30,
    seed: int = 0,
    distill: bool = True,
) -> list[ExperimentRecord]:
    """Hill climbing, ridge/logistic, LightGBM and multi-level stacks over the ledger's done base
    experiments, each post-processed and recorded; then a distilled student of the best one when time
    allows. Returns the done ensemble / distill records of these members (earlier runs' included)."""
    deadline = time.monotonic() + max(0.0, time_budget)
    folds = np.asarray(folds)
    scorer = Scorer(data)
    records = ledger.members()
    members, dropped = select_members(records, data, folds, scorer, top_k)
    ws.log_event(
        "ensemble",
        {
            "event": "members",
            "members": [m.name for m in members],
            "dropped": dropped,
            "n_records": len(records),
        },
    )
    if len(members) < min_models:
        ws.log_event("ensemble", {"event": "skip", "why": f"{len(members)} usable members < {min_models}"})
        return []
    names = [m.name for m in members]
    oofs = [m.oof for m in members]
    tests = [m.test for m in members]
    n_folds = len(ensemble_splits(folds))
    metric = scorer.metric.name

    runners: dict[str, Callable[[], EnsembleResult]] = {
        "ens_hill": lambda: hill_climb_ensemble(oofs, tests, folds, scorer),
        "ens_ridge": lambda: ridge_stack(oofs, tests, folds, scorer),
        "ens_lgbm": lambda: lgbm_stack(oofs, tests, folds, scorer, seed=seed),
        "ens_multi": lambda: multilevel_stack(oofs, tests, folds, scorer, seed=seed),
    }
    seconds: dict[str, float] = {}
    out: list[ExperimentRecord] = []
    for model in ENSEMBLE_METHODS:
        version = ensemble_version(names, model, metric, seed)
        name = f"{model}_{version}"
        if ledger.is_done(name):
            rec = ledger.get(name)
            assert rec is not None
            out.append(rec)
            seconds[model] = rec.seconds
            continue
        if model in ("ens_lgbm", "ens_multi") and scorer.n_outputs > MANY_OUTPUTS:
            ws.log_event(
                "ensemble",
                {
                    "event": "skip",
                    "name": name,
                    "why": f"{scorer.n_outputs} outputs: a tree per output and round",
                },
            )
            continue
        if model == "ens_multi":
            if n_folds < 3:
                continue
            estimate = n_folds * sum(seconds.get(m, 0.0) for m in ("ens_hill", "ens_ridge", "ens_lgbm"))
        elif model == "ens_lgbm":
            estimate = 3.0 * seconds.get("ens_ridge", 0.0)  # a boosted stacker costs a few linear ones
        else:
            estimate = 0.0
        if time.monotonic() + estimate > deadline:
            ws.log_event(
                "ensemble", {"event": "skip", "name": name, "why": "time budget", "estimate": estimate}
            )
            continue
        rec = ExperimentRecord(
            name=name,
            model=model,
            version=version,
            kind="ensemble",
            params={"members": names, "method": model},
            seed=seed,
            oof_path=str(ws.oof_path(model, version)),
            test_path=str(ws.test_path(model, version)),
            note=f"{model} over {len(names)} members",
            origin="ensemble",
        )
        done = _run_and_record(ws, ledger, rec, runners[model], folds, scorer, names, members)
        if done is not None:
            out.append(done)
            seconds[model] = done.seconds

    if distill and out:
        student = _distill_best(ws, data, folds, ledger, scorer, out, names, members, deadline, seed)
        if student is not None:
            out.append(student)
    return out


def _run_and_record(
    ws: Workspace,
    ledger: Ledger,
    rec: ExperimentRecord,
    run: Callable[[], EnsembleResult],
    folds: np.ndarray,
    scorer: Scorer,
    names: list[str],
    members: list[Member],
    teacher_transform: dict[str, Any] | None = None,
) -> ExperimentRecord | None:
    """Run one ensemble and record it. With ``teacher_transform`` (a distilled student) nothing is
    post-processed, the student decodes like its teacher and the record carries no cv_score: its OOF
    score is optimistic (see :mod:`medalist.ensemble.distill`) and is kept in params only."""
    rec = ledger.begin(rec)
    if rec.status == "done":
        return rec
    start = time.monotonic()
    try:
        res = run()
        write_npy_atomic(ws.oof_path(rec.model, rec.version), res.oof)
        write_npy_atomic(ws.test_path(rec.model, rec.version), res.test)
        params: dict[str, Any] = {
            **rec.params,
            "method": res.method,
            "members": names,
            "member_scores": {m.name: m.score for m in members},
            "weights": res.weights,
            "insample_score": res.insample_score,
            **res.info,
        }
        if teacher_transform is None:
            pp = fit_postprocess(res.oof, folds, scorer)
            params.update(
                raw_cv_score=res.cv_score, postprocess=pp.to_dict(), transform=pp.transform.to_dict()
            )
            cv_score: float | None = pp.score
            fold_scores = [float(s) for s in pp.fold_scores]
        else:
            params.update(
                oof_score_optimistic=res.cv_score,
                oof_fold_scores_optimistic=res.fold_scores,
                transform=teacher_transform,
                postprocess={"kind": "teacher", "kept": False},
            )
            cv_score, fold_scores = None, []
        done = replace(
            rec, params=params, cv_score=cv_score, fold_scores=fold_scores, seconds=time.monotonic() - start
        )
        done = ledger.finish(done)
        ws.log_event("ensemble", {"event": "done", "name": rec.name, "cv_score": done.cv_score})
        return done
    except Exception as e:  # one ensemble failing must not stop the others; the ledger keeps the error
        ledger.fail(replace(rec, seconds=time.monotonic() - start), f"{type(e).__name__}: {e}")
        ws.log_event("ensemble", {"event": "failed", "name": rec.name, "error": str(e)})
        return None


def _distill_best(
    ws: Workspace,
    data: TaskData,
    folds: np.ndarray,
    ledger: Ledger,
    scorer: Scorer,
    ensembles: list[ExperimentRecord],
    names: list[str],
    members: list[Member],
    deadline: float,
    seed: int,
) -> ExperimentRecord | None:
    scored = [r for r in ensembles if r.cv_score is not None and math.isfinite(r.cv_score)]
    if not scored or "tabular" not in data.train:
        return None
    order = scorer.metric
    teacher = min(scored, key=lambda r: (order.sort_key(float(r.cv_score or 0.0)), r.name))
    version = ensemble_version([teacher.name], DISTILL_METHOD, scorer.metric.name, seed)
    name = f"{DISTILL_METHOD}_{version}"
    if ledger.is_done(name):
        return ledger.get(name)
    if scorer.n_outputs > MANY_OUTPUTS:
        why = f"{scorer.n_outputs} outputs: a student regressor per output and fold"
        ws.log_event("ensemble", {"event": "skip", "name": name, "why": why})
        return None
    member_seconds = sorted(m.seconds for m in members if m.seconds > 0)
    estimate = member_seconds[len(member_seconds) // 2] if member_seconds else 0.0
    if time.monotonic() + estimate > deadline:
        ws.log_event("ensemble", {"event": "skip", "name": name, "why": "time budget", "estimate": estimate})
        return None
    try:
        t_oof = as_2d(np.load(teacher.oof_path, allow_pickle=False))
        t_test = as_2d(np.load(teacher.test_path, allow_pickle=False))
    except (OSError, ValueError) as e:
        ws.log_event("ensemble", {"event": "skip", "name": name, "why": f"teacher arrays unreadable: {e}"})
        return None
    rec = ExperimentRecord(
        name=name,
        model=DISTILL_METHOD,
        version=version,
        kind="distill",
        params={"teacher": teacher.name, "method": DISTILL_METHOD, "members": names},
        features="base",
        seed=seed,
        parent=teacher.name,
        oof_path=str(ws.oof_path(DISTILL_METHOD, version)),
        test_path=str(ws.test_path(DISTILL_METHOD, version)),
        note=f"LightGBM student of {teacher.name}",
        origin="distilled",
    )
    return _run_and_record(
        ws,
        ledger,
        rec,
        lambda: distill_ensemble(data, folds, scorer, t_oof, t_test, seed=seed, deadline=deadline),
        folds,
        scorer,
        names,
        members,
        teacher_transform=teacher.params.get("transform") or scorer.transform.to_dict(),
    )
