"""`medalist setup` on every shared competition (public/ only) agrees with its grading.json."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from medalist.policy.expert import ExpertPolicy
from medalist.setup import run_setup
from medalist.setup.data import load_task_data
from medalist.setup.spec import TaskSpec
from tests.conftest import all_slugs


@pytest.mark.parametrize("slug", all_slugs() or ["<no shared competitions>"])
def test_setup_matches_grading(slug, competitions, tmp_path):
    comp = competitions / slug
    grading = json.loads((comp / "grading.json").read_text())
    spec, ws, records = run_setup(comp / "public", tmp_path, ExpertPolicy())
    assert spec.slug == slug
    assert spec.id_column == grading["id_column"]
    assert spec.target_columns == grading["target_columns"]
    assert spec.metric == grading["metric"]
    assert spec.lower_is_better == grading["lower_is_better"]
    # every stage's last attempt passed, and every meta check ran and passed last
    last = {}
    for r in records:
        last[r.stage] = r.ok
    assert all(last.values()), {k: v for k, v in last.items() if not v}
    assert {
        "meta:train_ids_agree",
        "meta:target_roundtrip",
        "meta:loader_aligned",
        "meta:formatter_matches_sample",
        "final_check",
    } <= set(last)
    # the maps load, ids align, and the model-space target has one row per labelled train row
    data = load_task_data(ws)
    assert data.n_test == grading["rows"]["test"]
    assert data.n_train == grading["rows"]["train"]
    assert np.isfinite(data.y).all()
    on_disk = TaskSpec.load(ws.task_json)
    assert on_disk.to_dict() == spec.to_dict()
    logged = [json.loads(line) for line in (ws.logs / "stages.jsonl").read_text().splitlines()]
    assert len(logged) == len(records)
    assert set(logged[0]) >= {
        "stage",
        "attempt",
        "ok",
        "error",
        "seconds",
        "policy",
        "prompt_tokens",
        "completion_tokens",
    }
    # the formatter turns decoded training-prior predictions into the sample's exact structure
    sample = pd.read_csv(comp / "public" / grading["sample_submission"])
    assert spec.submission["columns"] == list(sample.columns)
    assert spec.submission["n_rows"] == len(sample)


def test_setup_cli_prints_summary(competitions, tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "medalist.cli",
            "setup",
            str(competitions / "titanic" / "public"),
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "Survived" in res.stdout and "accuracy" in res.stdout
    task = json.loads((tmp_path / "titanic" / "task.json").read_text())
    for key in (
        "slug",
        "id_column",
        "target_columns",
        "task_type",
        "metric",
        "lower_is_better",
        "modalities",
        "input_columns",
        "submission",
    ):
        assert key in task
    assert "Name" in task["input_columns"]["tabular"]
