"""The experiment-script contract: code written by a person or an LLM, run as a subprocess, verified.

:data:`SCRIPT_CONTRACT` is the text given to whoever writes the script (it goes into LLM prompts as is).
:func:`run_script` runs one script, checks what it wrote, scores it with medalist's own metric (anything
the script prints about its score is ignored) and records it in the ledger with ``kind="script"``.

Row order cannot be proven, only its count: the OOF array must follow the train target map's order
(``load_task_data(ws).train_ids``, which is also the order of the folds array) and the test array the
test maps' order (``test_ids``, the sample submission's order).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from medalist.errors import CheckError, InputError, MedalistError
from medalist.setup.data import TaskData
from medalist.solve.ledger import Ledger
from medalist.solve.runner import as_predictions, begin_or_existing, check_folds, one_line, save_and_score
from medalist.solve.types import ExperimentRecord
from medalist.workspace import Workspace, write_text_atomic

SCRIPT_CONTRACT = """\
Experiment script contract (medalist):
- Run as `python script.py` with these environment variables:
  MEDALIST_WORKSPACE  the workspace root; load the task with
                      `from medalist.setup.data import load_task_data; from medalist.workspace import Workspace;
                       data = load_task_data(Workspace(Path(os.environ["MEDALIST_WORKSPACE"])))`
                      data.train / data.test: modality -> DataFrame ("tabular", "text", "image");
                      data.y: model-space target, float array (n_train, k); data.spec: task.json;
                      data.transform: how predictions decode (kind, classes, n_outputs).
  MEDALIST_FOLDS      the folds file: `folds = np.load(os.environ["MEDALIST_FOLDS"])`, one int per train row.
                      Use `from medalist.solve.folds import fold_splits` -> [(fold, train_rows, valid_rows)];
                      rows whose fold is -1 are never validated (fill their OOF rows with any finite values).
  MEDALIST_OUT_OOF    write here with np.save: out-of-fold predictions, float, shape (n_train, n_outputs),
                      row i = train row i (the order of data.train_ids), predicted by a model that never saw it.
  MEDALIST_OUT_TEST   write here with np.save: test predictions, float, shape (n_test, n_outputs), in the order
                      of data.test_ids (e.g. the mean of the fold models' predictions).
- Predictions are in model space: binary -> P(positive) (1 column); multiclass -> class probabilities in
  data.transform.classes order (n_classes columns); multilabel -> one probability per label; regression ->
  the value (in log1p space when data.transform.log is true); ordinal -> the value (1 column).
- No NaN or inf. Exit with code 0. Printed scores are ignored: medalist recomputes the CV score from the OOF
  array with its own metric on the saved folds.
"""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
TAIL_CHARS = 2000


def run_script(
    ws: Workspace,
    data: TaskData,
    folds: np.ndarray,
    script: Path | str,
    ledger: Ledger,
    *,
    name: str,
    timeout: float,
    memory_mb: int,
    parent: str | None = None,
    origin: str = "script",
) -> ExperimentRecord:
    """Run an experiment script (a Path to a file, or the code itself as a str) under the contract.

    The ledger name is ``<name>_<first 8 hex of the code's sha256>`` (so changed code is a new experiment),
    arrays are ``train_oof_<name>_<hash8>.npy`` / ``test_preds_<name>_<hash8>.npy`` and the code is kept
    as ``ws.scripts/<name>_<hash8>.py``. ``origin`` says who wrote it ("script": a person, "llm": a model).
    Never raises for a failing script: the record says why."""
    if not _NAME.match(name):
        raise MedalistError(
            f"script name {name!r} is not usable in file names; use letters, digits, '_', '.', '-' (max 80)"
        )
    if isinstance(script, Path) and not script.is_file():
        raise InputError(f"script {script} does not exist; pass a path to a .py file or the code as a str")
    code = script.read_text(encoding="utf-8") if isinstance(script, Path) else str(script)
    code_hash = hashlib.sha256(code.encode("utf-8")).hexdigest()
    version = code_hash[:8]
    rec = ExperimentRecord(
        name=f"{name}_{version}",
        model=name,
        version=version,
        kind="script",
        parent=parent,
        origin=origin,
        code_hash=code_hash,
        oof_path=str(ws.oof_path(name, version)),
        test_path=str(ws.test_path(name, version)),
        created_at=time.time(),
    )
    started, claimed = begin_or_existing(ledger, rec)
    if not claimed:
        return started
    t0 = time.monotonic()
    run_dir = ws.experiments / f".run_{rec.name}"
    tail = ""
    try:
        folds = check_folds(folds, data)
        script_path = ws.scripts / f"{rec.name}.py"
        write_text_atomic(script_path, code)
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        out_oof, out_test = run_dir / "oof.npy", run_dir / "test.npy"
        env = {
            "MEDALIST_WORKSPACE": str(ws.root),
            "MEDALIST_FOLDS": str(_folds_file(ws, run_dir, folds)),
            "MEDALIST_OUT_OOF": str(out_oof),
            "MEDALIST_OUT_TEST": str(out_test),
        }
        ok, tail, why = _execute(script_path, run_dir, env, timeout, memory_mb)
        if not ok:
            raise CheckError(why)
        k = data.transform.n_outputs
        oof = _load_output(
            out_oof, "MEDALIST_OUT_OOF", (data.n_train, k), "OOF predictions (n_train, n_outputs)"
        )
        test = _load_output(
            out_test, "MEDALIST_OUT_TEST", (data.n_test, k), "test predictions (n_test, n_outputs)"
        )
        started = save_and_score(ws, data, folds, started, oof, test, time.monotonic() - t0)
    except Exception as exc:
        return ledger.fail(replace(started, seconds=time.monotonic() - t0, note=tail), one_line(exc))
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return ledger.finish(started)


def _folds_file(ws: Workspace, run_dir: Path, folds: np.ndarray) -> Path:
    """ws.folds when it holds these folds, else a copy in the run directory."""
    if ws.folds.exists() and np.array_equal(np.load(ws.folds, allow_pickle=False), folds):
        return ws.folds
    path = run_dir / "folds.npy"
    np.save(path, folds)
    return path


def _execute(
    script: Path, workdir: Path, env: dict[str, str], timeout: float, memory_mb: int
) -> tuple[bool, str, str]:
    """Run the script -> (ok, output tail, why it failed)."""
    try:
        from medalist.sandbox import run_code
    except ImportError:
        return _execute_plain(script, workdir, env, timeout)
    res = run_code(script, workdir, timeout=timeout, memory_mb=memory_mb, env_extra=env)
    tail = _tail(res.stderr, res.stdout)
    if res.timed_out:
        return False, tail, f"time limit: the script ran over {timeout:g}s and was killed"
    if res.memory_exceeded:
        return False, tail, f"the script ran out of memory (limit {memory_mb} MB): {_last_line(res.stderr)}"
    if res.returncode != 0:
        return (
            False,
            tail,
            f"the script exited with code {res.returncode}: {_last_line(res.stderr or res.stdout)}",
        )
    return True, tail, ""


def _execute_plain(script: Path, workdir: Path, env: dict[str, str], timeout: float) -> tuple[bool, str, str]:
    """Fallback without the sandbox: a plain subprocess with a wall-clock timeout (no memory limit)."""
    try:
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=workdir,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return False, _tail(err, out), f"time limit: the script ran over {timeout:g}s and was killed"
    tail = _tail(done.stderr, done.stdout)
    if done.returncode != 0:
        return (
            False,
            tail,
            f"the script exited with code {done.returncode}: {_last_line(done.stderr or done.stdout)}",
        )
    return True, tail, ""


def _load_output(path: Path, var: str, shape: tuple[int, int], what: str) -> np.ndarray:
    if not path.exists():
        raise CheckError(f"the script wrote no file at ${var}; it must np.save its {what} there")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise CheckError(
            f"${var} is not a numeric .npy array (write it with np.save): {one_line(exc)}"
        ) from exc
    return as_predictions(arr, shape, f"the script's {what}")


def _tail(stderr: str, stdout: str) -> str:
    text = "\n".join(
        p
        for p in (
            stderr.strip() and "stderr:\n" + stderr.strip(),
            stdout.strip() and "stdout:\n" + stdout.strip(),
        )
        if p
    )
    return text[-TAIL_CHARS:]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"
