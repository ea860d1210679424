"""The built-in experiment runner: k-fold training on the task's folds -> OOF and test arrays + a ledger row.

Arrays (model space, float64): ``train_oof_<MODEL>_<VERSION>.npy`` of shape (n_train, n_outputs), rows in
the target map's order, and ``test_preds_<MODEL>_<VERSION>.npy`` of shape (n_test, n_outputs), the mean of
the fold models' test predictions. Scores are recomputed from the saved OOF array with medalist's metric.

Rows whose fold is -1 (the first block of time-ordered folds) are never validated: every fold model
predicts them and their OOF value is the mean of those predictions. They were in every model's training
rows, so those values are in-sample: scores leave them out, and so must anything fitted on OOF arrays
(ensembles use ``folds >= 0``).

``time_limit`` is checked between folds: the experiment stops before a fold that, at the pace of the
folds so far, would end past the limit (a fold in progress is not interrupted; scripts run in a
subprocess for hard limits, see :mod:`medalist.solve.contract`).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from medalist.errors import BudgetExceeded, CheckError, MedalistError
from medalist.setup.data import TaskData
from medalist.solve.folds import fold_splits
from medalist.solve.ledger import ExperimentBusyError, Ledger
from medalist.solve.scoring import cv_scores, score_predictions
from medalist.solve.types import ExperimentRecord, ExperimentSpec, FoldFeatures, ModelFamily, ModelTask
from medalist.workspace import Workspace, write_npy_atomic

Progress = Callable[[str], None]


class TimeLimitError(BudgetExceeded):
    """An experiment ran past its time limit; it was stopped between folds."""


def model_task(data: TaskData) -> ModelTask:
    """The ModelTask of a task (output shape, objective, metric direction)."""
    return ModelTask.from_transform(data.transform, data.spec.metric, data.spec.lower_is_better)


def run_experiment(
    ws: Workspace,
    data: TaskData,
    folds: np.ndarray,
    spec: ExperimentSpec,
    ledger: Ledger,
    *,
    family: ModelFamily | None = None,
    features: FoldFeatures | None = None,
    time_limit: float | None = None,
    progress: Progress | None = None,
    bounds: dict | None = None,
    fold_jobs: int | None = None,
) -> ExperimentRecord:
    """Run one declarative experiment (or return its ledger row when already done); never raises for a
    failing experiment: the returned record then has status "failed" and a one-line error.

    ``bounds`` are run-time limits merged into the params the family sees (e.g. ``max_seconds`` per fold)
    without being part of the experiment's identity (its name and version). ``fold_jobs``: folds fitted
    side by side (Settings.fold_jobs; None: the default)."""
    version = spec.version()
    rec = ExperimentRecord(
        name=spec.name,
        model=spec.model,
        version=version,
        kind="model",
        params=dict(spec.params),
        features=spec.features,
        seed=spec.seed,
        parent=spec.parent,
        note=spec.note,
        origin=spec.origin,
        oof_path=str(ws.oof_path(spec.model, version)),
        test_path=str(ws.test_path(spec.model, version)),
        created_at=time.time(),
    )
    started, claimed = begin_or_existing(ledger, rec)
    if not claimed:
        return started
    t0 = time.monotonic()
    try:
        if family is None:
            from medalist.solve.models import get_model

            family = get_model(spec.model)
        reason = family.available()
        if reason:
            raise MedalistError(f"model {spec.model} is unavailable here: {reason}")
        if features is None:
            from medalist.solve.features import prepare_features

            features = prepare_features(data, spec.features, tuple(family.modalities), seed=spec.seed)
        task = model_task(data)
        defaults = family.default_params(task, data.n_train)
        params = {**defaults, **spec.params}
        for key, value in (bounds or {}).items():
            if key in defaults and key not in spec.params:
                params[key] = min(value, defaults[key]) if defaults[key] else value
        started.params = params
        oof, test = _fit_folds(
            data,
            folds,
            family,
            features,
            task,
            params,
            spec.seed,
            t0,
            time_limit,
            progress,
            spec.name,
            fold_jobs,
        )
        started = save_and_score(ws, data, folds, started, oof, test, time.monotonic() - t0)
    except KeyboardInterrupt:
        ledger.fail(replace(started, seconds=time.monotonic() - t0), "interrupted")
        raise
    except Exception as exc:
        failed = ledger.fail(replace(started, seconds=time.monotonic() - t0), one_line(exc))
        if progress:
            progress(f"{spec.name} failed: {failed.error}")
        return failed
    done = ledger.finish(started)
    if progress:
        progress(f"{spec.name} done: cv={done.cv_score:.6g} ({done.seconds:.1f}s)")
    return done


def fold_jobs(configured: int | None = None) -> int:
    """Folds fitted side by side (worker processes, one thread each): ``configured`` (Settings.fold_jobs),
    else the cores up to 2. One-thread fits side by side beat two-thread fits one after another on small
    data."""
    if configured:
        return max(1, configured)
    return max(1, min(2, os.cpu_count() or 1))


def _fit_one_fold(family: ModelFamily, X_tr, y_tr, X_va, X_te, params: dict, task: ModelTask, seed: int):
    """One fold's fit in a worker process, held to one thread."""
    os.environ["MEDALIST_THREADS"] = "1"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # BLAS / OpenMP pools already loaded in this worker
        return family.fit_predict(X_tr, y_tr, X_va, X_te, params, task, seed)


def _fit_folds(
    data: TaskData,
    folds: np.ndarray,
    family: ModelFamily,
    features: FoldFeatures,
    task: ModelTask,
    params: dict,
    seed: int,
    t0: float,
    time_limit: float | None,
    progress: Progress | None,
    name: str,
    configured_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    folds = check_folds(folds, data)
    k = task.n_outputs
    y = np.asarray(data.y, dtype=float)
    if y.ndim == 1:
        y = y[:, None]
    oof = np.zeros((data.n_train, k))
    test = np.zeros((data.n_test, k))
    unvalidated = np.flatnonzero(folds < 0)
    splits = fold_splits(folds)
    warm = getattr(family, "warm", None)
    if callable(warm):  # once, before the folds: e.g. sentence embeddings of every text, cached on disk
        X_all, _, X_te = features.split(np.arange(data.n_train), np.array([], dtype=int))
        deadline = None if time_limit is None else t0 + time_limit
        try:
            warm(pd.concat([X_all, X_te], ignore_index=True), params, deadline=deadline)
        except BudgetExceeded as exc:  # a warm-up that cannot end in time (e.g. encoding every text)
            raise TimeLimitError(str(exc)) from exc
    t_folds = time.monotonic()  # the pace of the folds is measured from here, without the one-off warm-up
    jobs = min(fold_jobs(configured_jobs), len(splits))
    if jobs > 1:
        params = {**params, "n_threads": 1} if "n_threads" in params else params
    done = 0
    for start in range(0, len(splits), jobs):
        elapsed = time.monotonic() - t0
        per_fold = (time.monotonic() - t_folds) / done if done else 0.0
        # Stop before a wave of folds that would, at the pace so far, end past the limit.
        if time_limit is not None and done > 0 and elapsed + per_fold * jobs > time_limit:
            raise TimeLimitError(
                f"time limit: stopped after fold {done}/{len(splits)} ({elapsed:.1f}s so far, "
                f"{time_limit:g}s allowed, about {per_fold:.1f}s per fold)"
            )
        wave = splits[start : start + jobs]
        inputs = []
        for f, train_idx, valid_idx in wave:
            rows = np.concatenate([valid_idx, unvalidated])
            X_tr, X_va, X_te = features.split(train_idx, rows)
            inputs.append(
                (f, train_idx, valid_idx, rows, (X_tr, y[train_idx], X_va, X_te, params, task, seed + f))
            )
        if len(wave) > 1:
            from joblib import Parallel, delayed

            # a hard bound: workers still fitting when the time is up are stopped
            timeout = None if time_limit is None else max(1.0, time_limit - (time.monotonic() - t0))
            try:
                outputs = Parallel(n_jobs=len(wave), backend="loky", timeout=timeout)(
                    delayed(_fit_one_fold)(family, *args) for *_, args in inputs
                )
            except (TimeoutError, multiprocessing.TimeoutError) as exc:
                raise TimeLimitError(
                    f"time limit: folds {done + 1}-{done + len(wave)}/{len(splits)} were still fitting when "
                    f"the {time_limit:g}s allowed ran out"
                ) from exc
        else:
            outputs = [family.fit_predict(*inputs[0][4])]
        for (f, _, valid_idx, rows, _), (pv, pt) in zip(inputs, outputs):
            pv = as_predictions(pv, (len(rows), k), f"{family.name} fold {f} validation predictions")
            pt = as_predictions(pt, (data.n_test, k), f"{family.name} fold {f} test predictions")
            oof[valid_idx] = pv[: len(valid_idx)]
            oof[unvalidated] += pv[len(valid_idx) :] / len(splits)
            test += pt / len(splits)
            done += 1
            if progress:
                score = score_predictions(data, oof[valid_idx], valid_idx)
                progress(f"{name} fold {done}/{len(splits)}: {score:.6g} ({time.monotonic() - t0:.1f}s)")
    return oof, test


def as_predictions(pred: object, shape: tuple[int, int], what: str) -> np.ndarray:
    """``pred`` as a finite float64 array of ``shape`` (a 1-D array is taken as one column)."""
    try:
        arr = np.asarray(pred)
    except Exception as exc:  # ragged lists and the like
        raise CheckError(f"{what} are not an array: {one_line(exc)}") from exc
    if arr.dtype == bool:
        arr = arr.astype(float)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise CheckError(f"{what} have dtype {arr.dtype}; they must be real numbers (float)")
    if arr.ndim == 1 and shape[1] == 1:
        arr = arr[:, None]
    if arr.shape != shape:
        raise CheckError(f"{what} have shape {arr.shape}; expected {shape} (rows, outputs)")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise CheckError(
            f"{what} hold {int(bad.sum())} NaN/inf values (e.g. row {int(np.argwhere(bad)[0][0])})"
        )
    return arr


def check_folds(folds: np.ndarray, data: TaskData) -> np.ndarray:
    folds = np.asarray(folds)
    if folds.shape != (data.n_train,) or not np.issubdtype(folds.dtype, np.integer):
        raise CheckError(f"folds have shape {folds.shape} {folds.dtype}; expected ({data.n_train},) integers")
    if not (folds >= 0).any():
        raise CheckError("folds validate no row (every fold index is negative)")
    return folds


def save_and_score(
    ws: Workspace,
    data: TaskData,
    folds: np.ndarray,
    rec: ExperimentRecord,
    oof: np.ndarray,
    test: np.ndarray,
    seconds: float,
) -> ExperimentRecord:
    """Save both arrays atomically, then score the saved OOF array; returns the record with results."""
    oof_path, test_path = ws.oof_path(rec.model, rec.version), ws.test_path(rec.model, rec.version)
    write_npy_atomic(test_path, np.asarray(test, dtype=np.float64))
    write_npy_atomic(oof_path, np.asarray(oof, dtype=np.float64))
    try:
        saved = np.load(oof_path, allow_pickle=False)
        cv, per_fold = cv_scores(data, saved, folds)
        if not np.isfinite(cv):
            raise CheckError(f"the CV score of {rec.name} is {cv}; predictions cannot be scored")
    except BaseException:
        oof_path.unlink(missing_ok=True)  # no arrays without a done ledger row
        test_path.unlink(missing_ok=True)
        raise
    return replace(
        rec,
        cv_score=float(cv),
        fold_scores=[float(s) for s in per_fold],
        seconds=float(seconds),
        oof_path=str(oof_path),
        test_path=str(test_path),
    )


def begin_or_existing(ledger: Ledger, rec: ExperimentRecord) -> tuple[ExperimentRecord, bool]:
    """Start ``rec`` in the ledger -> (record, True when this call claimed it and must run it).

    A done row is returned as is, unless its arrays are gone from disk: it is then marked failed and the
    experiment starts again. A row another live process runs is returned as is ("running")."""
    try:
        started = ledger.begin(rec)
    except ExperimentBusyError:
        return (ledger.get(rec.name) or rec), False
    if started.status == "done" and not all(Path(p).exists() for p in (started.oof_path, started.test_path)):
        ledger.fail(started, "arrays missing on disk: rerun")
        return begin_or_existing(ledger, rec)
    return started, started.status == "running"


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line."""
    msg = " ".join(str(exc).split())
    if isinstance(exc, TimeLimitError):
        return msg
    name = type(exc).__name__
    return f"{name}: {msg}" if msg else name
