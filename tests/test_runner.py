"""The experiment runner and the script contract on real competitions (slices), with a tiny linear family."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medalist.metrics import get_metric
from medalist.solve.contract import SCRIPT_CONTRACT, run_script
from medalist.solve.folds import load_or_make_folds
from medalist.solve.ledger import Ledger
from medalist.solve.runner import run_experiment
from medalist.solve.scoring import score_predictions
from medalist.solve.types import ExperimentSpec
from tests.solve_helpers import BIKES, S3E9, TITANIC, LinearFamily, NumericFeatures, competition_workspace

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def titanic(tmp_path, competitions):
    ws, data = competition_workspace(tmp_path, competitions, TITANIC)
    folds = load_or_make_folds(ws, data, 5, seed=0)
    return ws, data, folds, Ledger(ws.ledger)


def _fold_jobs(monkeypatch, n: int) -> None:
    """Folds fitted side by side by default (what Settings.fold_jobs sets for a run)."""
    from medalist.solve import runner

    monkeypatch.setattr(runner, "fold_jobs", lambda configured=None: configured or n)


@pytest.fixture
def sequential(monkeypatch):
    """Folds one after another in this process (these tests count calls on the family object)."""
    _fold_jobs(monkeypatch, 1)


def test_runner_writes_arrays_scores_and_skips_on_rerun(titanic, sequential):
    ws, data, folds, led = titanic
    spec = ExperimentSpec("linear", {"C": 0.5}, features="numeric")
    family = LinearFamily()
    messages: list[str] = []
    rec = run_experiment(
        ws, data, folds, spec, led, family=family, features=NumericFeatures(data), progress=messages.append
    )
    assert rec.status == "done", rec.error
    oof_path, test_path = (
        ws.experiments / f"train_oof_linear_{spec.version()}.npy",
        ws.test_path("linear", spec.version()),
    )
    assert rec.oof_path == str(oof_path) and test_path.name == f"test_preds_linear_{spec.version()}.npy"
    oof, test = np.load(oof_path), np.load(test_path)
    assert oof.shape == (891, 1) and test.shape == (418, 1) and oof.dtype == np.float64
    assert ((oof >= 0) & (oof <= 1)).all() and np.isfinite(test).all()
    # the score is recomputed from the saved array with the competition's metric
    truth = data.target["Survived"].to_numpy()
    accuracy = get_metric("accuracy")(truth, (oof[:, 0] >= 0.5).astype(int))
    assert rec.cv_score == pytest.approx(accuracy) and 0.6 < rec.cv_score < 0.8
    assert len(rec.fold_scores) == 5
    assert rec.fold_scores[2] == pytest.approx(
        score_predictions(data, oof[folds == 2], np.flatnonzero(folds == 2))
    )
    assert rec.params == {"C": 0.5} and rec.features == "numeric" and rec.kind == "model" and rec.seconds > 0
    assert family.calls == 5 and len(messages) == 6 and "fold 5/5" in messages[4]
    assert led.get(spec.name).status == "done"
    # rerun: skipped, nothing refitted or rewritten
    mtime = oof_path.stat().st_mtime_ns
    again = run_experiment(ws, data, folds, spec, led, family=family, features=NumericFeatures(data))
    assert again.id == rec.id and again.cv_score == rec.cv_score and family.calls == 5
    assert oof_path.stat().st_mtime_ns == mtime and len(led.records(None)) == 1


def test_runner_regression_slice(tmp_path, competitions):
    ws, data = competition_workspace(tmp_path, competitions, S3E9, n_rows=1500)
    folds = load_or_make_folds(ws, data)
    led = Ledger(ws.ledger)
    rec = run_experiment(
        ws,
        data,
        folds,
        ExperimentSpec("linear", {"alpha": 3.0}),
        led,
        family=LinearFamily(),
        features=NumericFeatures(data),
    )
    assert rec.status == "done", rec.error
    oof, test = np.load(rec.oof_path), np.load(rec.test_path)
    assert oof.shape == (1500, 1) and test.shape == (data.n_test, 1)
    y = data.target["Strength"].to_numpy()
    assert rec.cv_score == pytest.approx(np.sqrt(np.mean((y - oof[:, 0]) ** 2)))
    assert rec.cv_score < y.std()  # better than predicting the mean


def test_time_folds_leave_first_block_unscored(tmp_path, competitions):
    ws, data = competition_workspace(tmp_path, competitions, BIKES, n_rows=2000)
    folds = load_or_make_folds(ws, data, 4)
    assert (folds == -1).sum() == 400
    rec = run_experiment(
        ws,
        data,
        folds,
        ExperimentSpec("linear"),
        Ledger(ws.ledger),
        family=LinearFamily(),
        features=NumericFeatures(data),
    )
    assert rec.status == "done", rec.error
    oof = np.load(rec.oof_path)
    assert np.isfinite(oof).all() and (oof[folds == -1] != 0).all()  # filled with the fold models' mean
    scored = folds >= 0
    expected = score_predictions(data, oof[scored], np.flatnonzero(scored))
    assert rec.cv_score == pytest.approx(expected) and len(rec.fold_scores) == 4
    assert rec.cv_score != pytest.approx(score_predictions(data, oof))


def test_failures_are_recorded_and_retried(titanic, sequential):
    ws, data, folds, led = titanic
    spec = ExperimentSpec("linear", {"C": 2.0})
    feats = NumericFeatures(data)
    bad = run_experiment(ws, data, folds, spec, led, family=LinearFamily(fail_on_fold=2), features=feats)
    assert bad.status == "failed" and bad.error == "ValueError: boom second line"
    assert not Path(bad.oof_path).exists() and led.get(spec.name).status == "failed"
    shape = run_experiment(
        ws,
        data,
        folds,
        ExperimentSpec("linear", {"C": 3.0}),
        led,
        family=LinearFamily(bad_shape=True),
        features=feats,
    )
    assert shape.status == "failed" and "shape (179, 2); expected (179, 1)" in shape.error
    slow = run_experiment(
        ws,
        data,
        folds,
        ExperimentSpec("linear", {"C": 4.0}),
        led,
        family=LinearFamily(sleep=0.3),
        features=feats,
        time_limit=0.5,
    )
    assert slow.status == "failed" and slow.error.startswith("time limit") and "after fold 1/5" in slow.error
    unknown = run_experiment(ws, data, folds, ExperimentSpec("no_such_model"), led, features=feats)
    assert unknown.status == "failed" and "no_such_model" in unknown.error
    good = run_experiment(ws, data, folds, spec, led, family=LinearFamily(), features=feats)
    assert good.status == "done" and good.id != bad.id
    assert [r.status for r in led.records(None) if r.name == spec.name] == ["failed", "done"]


def test_default_zoo_and_features(titanic):
    """No injection: the family comes from the model zoo and the features from the recipe."""
    ws, data, folds, led = titanic
    spec = ExperimentSpec("lgbm", {"n_estimators": 60, "fixed_rounds": 60}, features="base")
    rec = run_experiment(ws, data, folds, spec, led)
    assert rec.status == "done", rec.error
    assert rec.cv_score > 0.75 and rec.params["n_estimators"] == 60 and "learning_rate" in rec.params


# ---------------------------------------------------------------------------------------------- scripts
GOOD_SCRIPT = """
import os
from pathlib import Path
import numpy as np
from sklearn.linear_model import LogisticRegression
from medalist.setup.data import load_task_data
from medalist.solve.folds import fold_splits
from medalist.workspace import Workspace

data = load_task_data(Workspace(Path(os.environ["MEDALIST_WORKSPACE"])))
folds = np.load(os.environ["MEDALIST_FOLDS"])
cols = ["Pclass", "SibSp", "Parch", "Fare"]
X = data.train["tabular"][cols].fillna(0).to_numpy()
Xt = data.test["tabular"][cols].fillna(0).to_numpy()
y = data.y[:, 0].astype(int)
oof, test = np.zeros((len(X), 1)), np.zeros((len(Xt), 1))
splits = fold_splits(folds)
for f, tr, va in splits:
    m = LogisticRegression(max_iter=1000).fit(X[tr], y[tr])
    oof[va, 0] = m.predict_proba(X[va])[:, 1]
    test[:, 0] += m.predict_proba(Xt)[:, 1] / len(splits)
np.save(os.environ["MEDALIST_OUT_OOF"], oof)
np.save(os.environ["MEDALIST_OUT_TEST"], test)
print("CV accuracy: 0.99999  (trust me)")
"""


def test_script_is_rescored_and_kept(titanic):
    ws, data, folds, led = titanic
    rec = run_script(ws, data, folds, GOOD_SCRIPT, led, name="llm_logreg", timeout=120, memory_mb=8192)
    assert rec.status == "done", (rec.error, rec.note)
    assert rec.kind == "script" and rec.name == f"llm_logreg_{rec.code_hash[:8]}" and len(rec.code_hash) == 64
    oof = np.load(rec.oof_path)
    assert rec.cv_score == pytest.approx(score_predictions(data, oof)) and rec.cv_score < 0.9  # not 0.99999
    assert (ws.scripts / f"{rec.name}.py").read_text() == GOOD_SCRIPT
    assert Path(rec.test_path).name == f"test_preds_llm_logreg_{rec.version}.npy"
    assert not list(ws.experiments.glob(".run_*"))
    path = ws.root / "mine.py"
    path.write_text(GOOD_SCRIPT)  # the same code from a file is the same experiment: skipped
    again = run_script(ws, data, folds, path, led, name="llm_logreg", timeout=120, memory_mb=8192)
    assert again.id == rec.id and len(led.records(None)) == 1
    assert "MEDALIST_OUT_OOF" in SCRIPT_CONTRACT


BAD_SCRIPTS = {
    "wrong_shape": (
        "import os, numpy as np\n"
        "np.save(os.environ['MEDALIST_OUT_OOF'], np.zeros((891, 2)))\n"
        "np.save(os.environ['MEDALIST_OUT_TEST'], np.zeros((418, 1)))\n"
        "print('score 1.0')\n",
        "OOF predictions (n_train, n_outputs) have shape (891, 2); expected (891, 1)",
    ),
    "few_rows": (
        "import os, numpy as np\n"
        "np.save(os.environ['MEDALIST_OUT_OOF'], np.zeros(891))\n"
        "np.save(os.environ['MEDALIST_OUT_TEST'], np.zeros((400, 1)))\n",
        "test predictions (n_test, n_outputs) have shape (400, 1); expected (418, 1)",
    ),
    "no_test": (
        "import os, numpy as np\nnp.save(os.environ['MEDALIST_OUT_OOF'], np.zeros((891, 1)))\n",
        "wrote no file at $MEDALIST_OUT_TEST",
    ),
    "nan": (
        "import os, numpy as np\na = np.zeros((891, 1)); a[5] = np.nan\n"
        "np.save(os.environ['MEDALIST_OUT_OOF'], a)\nnp.save(os.environ['MEDALIST_OUT_TEST'], np.zeros((418, 1)))\n",
        "1 NaN/inf values (e.g. row 5)",
    ),
    "strings": (
        "import os, numpy as np\n"
        "np.save(os.environ['MEDALIST_OUT_OOF'], np.array([['a']] * 891))\n"
        "np.save(os.environ['MEDALIST_OUT_TEST'], np.zeros((418, 1)))\n",
        "dtype <U1; they must be real numbers",
    ),
    "crash": ("print('working...')\nx = 1 / 0\n", "exited with code 1: ZeroDivisionError: division by zero"),
    "slow": ("import time\ntime.sleep(60)\n", "time limit: the script ran over 3s"),
}


@pytest.mark.parametrize("case", sorted(BAD_SCRIPTS))
def test_bad_scripts_are_rejected_with_a_clear_error(titanic, case):
    ws, data, folds, led = titanic
    code, expected = BAD_SCRIPTS[case]
    rec = run_script(
        ws, data, folds, code, led, name=case, timeout=3 if case == "slow" else 60, memory_mb=4096
    )
    assert rec.status == "failed" and expected in rec.error, rec.error
    assert not Path(rec.oof_path).exists() and not Path(rec.test_path).exists()
    assert led.get(rec.name).status == "failed"
    if case == "crash":
        assert "working..." in rec.note and "Traceback" in rec.note


# ------------------------------------------------------------------------------------------ kill -9 resume
LOOP = """
import sys
from pathlib import Path
from medalist.setup.data import load_task_data
from medalist.solve.folds import load_or_make_folds
from medalist.solve.ledger import Ledger
from medalist.solve.runner import run_experiment
from medalist.solve.types import ExperimentSpec
from medalist.workspace import Workspace
from tests.solve_helpers import LinearFamily, NumericFeatures

ws = Workspace(Path(sys.argv[1]))
data = load_task_data(ws)
folds = load_or_make_folds(ws, data)
ledger = Ledger(ws.ledger)
print("stale", ledger.mark_stale_running(), flush=True)
features = NumericFeatures(data)
for c in (0.01, 0.1, 1.0, 10.0, 100.0):
    spec = ExperimentSpec("linear", {"C": c})
    rec = run_experiment(ws, data, folds, spec, ledger, family=LinearFamily(sleep=float(sys.argv[2])), features=features)
    print(rec.name, rec.status, flush=True)
"""


def _loop(ws_root: Path, sleep: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", LOOP, str(ws_root), str(sleep)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kill9_mid_run_resumes_without_repeating_or_losing_work(titanic):
    ws, _data, _folds, led = titanic
    proc = _loop(ws.root, 0.25)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            done = led.records("done")
            running = [r for r in led.records("running") if r.name not in {d.name for d in done}]
            if len(done) >= 2 and running:
                time.sleep(0.4)  # inside the third experiment's folds
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        else:
            pytest.fail("the loop never reached its third experiment")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done_before = {r.name: r for r in led.records("done")}
    interrupted = [r for r in led.records("running") if r.name not in done_before]
    assert len(done_before) >= 2 and len(interrupted) == 1
    mtimes = {
        n: (Path(r.oof_path).stat().st_mtime_ns, Path(r.test_path).stat().st_mtime_ns)
        for n, r in done_before.items()
    }

    second = _loop(ws.root, 0.0)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out.splitlines()[0] == "stale 1"
    done_after = {r.name: r for r in led.records("done")}
    assert len(done_after) == 5 and len(led.records("done")) == 5  # none lost, none doubled
    for name, r in done_before.items():  # finished work untouched
        assert done_after[name] == r
        assert (Path(r.oof_path).stat().st_mtime_ns, Path(r.test_path).stat().st_mtime_ns) == mtimes[name]
    redone = interrupted[0].name
    history = [r for r in led.records(None) if r.name == redone]
    assert [(r.status, r.error) for r in history] == [("failed", "interrupted"), ("done", "")]
    assert np.isfinite(np.load(done_after[redone].oof_path)).all()
    assert not led.records("running")


def test_parallel_folds_match_sequential_folds(titanic, monkeypatch):
    """Folds fitted side by side in worker processes give exactly the arrays of folds fitted in turn."""
    ws, data, folds, _ = titanic
    arrays = {}
    for jobs in ("1", "2"):
        _fold_jobs(monkeypatch, int(jobs))
        led = Ledger(ws.experiments / f"ledger{jobs}.sqlite")
        rec = run_experiment(
            ws, data, folds, ExperimentSpec("lgbm", {"n_estimators": 60}, seed=jobs == "2"), led
        )
        assert rec.status == "done", rec.error
        arrays[jobs] = (np.load(rec.oof_path), np.load(rec.test_path), rec.params["n_threads"])
    # same model, seeds differ only to keep the arrays' names apart: compare against a same-seed rerun
    _fold_jobs(monkeypatch, 1)
    again = run_experiment(
        ws,
        data,
        folds,
        ExperimentSpec("lgbm", {"n_estimators": 60}, seed=1),
        Ledger(ws.experiments / "ledger_again.sqlite"),
    )
    np.testing.assert_allclose(np.load(again.oof_path), arrays["2"][0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.load(again.test_path), arrays["2"][1], rtol=1e-9, atol=1e-12)
    assert arrays["2"][2] == 1  # one thread per worker


def test_a_fold_that_runs_past_the_limit_is_stopped(titanic, monkeypatch):
    """Folds fitted side by side have a hard bound: workers still fitting when the time is up are stopped."""
    import time as _time

    _fold_jobs(monkeypatch, 2)
    ws, data, folds, led = titanic
    t0 = _time.monotonic()
    rec = run_experiment(
        ws,
        data,
        folds,
        ExperimentSpec("linear", {"C": 3.0}),
        led,
        family=LinearFamily(sleep=60.0),
        features=NumericFeatures(data),
        time_limit=4.0,
    )
    assert rec.status == "failed" and rec.error.startswith("time limit") and "still fitting" in rec.error
    assert _time.monotonic() - t0 < 30
