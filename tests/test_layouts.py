"""Layouts Kaggle ships read end to end: nested JSON records, a string id column named `id`, ids with
leading zeros or float-looking text. Each folder goes through `medalist setup` (expert) and its final
check, then a prior-prediction submission must be valid with ids equal to the sample's strings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medalist.errors import CheckError
from medalist.intake.columns import flatten_nested, looks_like_id_name
from medalist.intake.tables import Source, load_table
from medalist.policy.expert import ExpertPolicy
from medalist.setup import run_setup
from medalist.setup.data import load_task_data
from medalist.setup.formatter import format_submission, validate_submission
from medalist.submit import build_submission, read_sample


def _description(folder: Path, metric: str) -> None:
    (folder / "description.md").write_text(f"Predict the target.\n\n## Evaluation\n\nScored by {metric}.\n")


def _setup_and_submit(folder: Path, workdir: Path) -> tuple[pd.DataFrame, list[str]]:
    """Setup (expert) + a prior-prediction submission; returns it and the sample's id strings."""
    spec, ws, records = run_setup(folder, workdir, ExpertPolicy())
    last = {r.stage: r.ok for r in records}
    assert last["final_check"] and all(last.values()), {k: v for k, v in last.items() if not v}
    data = load_task_data(ws)
    prior = np.repeat(data.y.mean(axis=0)[None, :], data.n_test, axis=0)
    frame = build_submission(ws, data, prior)
    sample = read_sample(ws, spec)
    validate_submission(frame, sample, spec.id_column, spec.target_columns, data.transform)
    raw = pd.read_csv(next(folder.glob("sample_submission*")), dtype=str)
    return frame, raw[spec.id_column].tolist()


def test_nested_json_records_become_columns_counts_and_text(tmp_path):
    folder = tmp_path / "nested-json"
    folder.mkdir()
    _description(folder, "area under the ROC curve (AUC)")
    rng = np.random.default_rng(0)

    def record(i: int) -> dict:
        return {
            "id": i,
            "tags": [f"t{j}" for j in range(int(rng.integers(0, 4)))],
            "info": {"age": float(rng.normal()), "city": str(rng.choice(["a", "b"]))},
            "text": "hello world",
        }

    train = [{**record(i), "label": int(i % 2)} for i in range(120)]
    (folder / "train.json").write_text(json.dumps(train))
    (folder / "test.jsonl").write_text("\n".join(json.dumps(record(i)) for i in range(120, 160)))
    pd.DataFrame({"id": range(120, 160), "label": 0.5}).to_csv(folder / "sample_submission.csv", index=False)

    frame, sample_ids = _setup_and_submit(folder, tmp_path / "runs")
    assert frame["id"].astype(str).tolist() == sample_ids
    spec = json.loads((tmp_path / "runs" / "nested-json" / "task.json").read_text())
    inputs = spec["input_columns"]["tabular"]
    assert {"tags", "tags_count", "info_age", "info_city"} <= set(inputs)


def test_string_id_column_named_id_is_not_also_an_input(tmp_path):
    folder = tmp_path / "string-id"
    folder.mkdir()
    _description(folder, "accuracy")
    rng = np.random.default_rng(1)
    ids = [f"{i // 2:04d}_{i % 2:02d}" for i in range(200)]  # group_member ids, as spaceship-titanic's
    pd.DataFrame({"id": ids[:150], "x": rng.normal(size=150), "y": rng.integers(0, 2, 150)}).to_csv(
        folder / "train.csv", index=False
    )
    pd.DataFrame({"id": ids[150:], "x": rng.normal(size=50)}).to_csv(folder / "test.csv", index=False)
    pd.DataFrame({"id": ids[150:], "y": 0}).to_csv(folder / "sample_submission.csv", index=False)

    frame, sample_ids = _setup_and_submit(folder, tmp_path / "runs")
    assert frame["id"].tolist() == sample_ids


@pytest.mark.parametrize(
    "name, fmt", [("leading-zeros", lambda i: f"{i:03d}"), ("float-looking", lambda i: f"{1 + i / 100:.2f}")]
)
def test_ids_written_as_text_reach_the_submission_unchanged(tmp_path, name, fmt):
    folder = tmp_path / name
    folder.mkdir()
    _description(folder, "root mean squared error")
    rng = np.random.default_rng(2)
    ids = [fmt(i) for i in range(200)][::-1]  # the test rows hold '049' ... '000' / '1.49' ... '1.00'
    (folder / "train.csv").write_text(
        "Id,x,y\n" + "".join(f"{ids[i]},{rng.normal():.4f},{rng.normal():.4f}\n" for i in range(150))
    )
    (folder / "test.csv").write_text(
        "Id,x\n" + "".join(f"{ids[i]},{rng.normal():.4f}\n" for i in range(150, 200))
    )
    (folder / "sample_submission.csv").write_text(
        "Id,y\n" + "".join(f"{ids[i]},0\n" for i in range(150, 200))
    )

    frame, sample_ids = _setup_and_submit(folder, tmp_path / "runs")
    assert frame["Id"].tolist() == sample_ids
    assert sample_ids[-1] in ("000", "1.00")


def test_leading_zero_codes_stay_text_and_plain_numbers_stay_numbers(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("zip,price,store_id\n02134,1.50,7\n10001,2.25,8\n00501,3.00,9\n")
    frame = load_table(Source("t.csv", path, None, ".csv", None))
    assert frame["zip"].tolist() == ["02134", "10001", "00501"]
    assert frame["price"].dtype == float  # '1.50' in a feature column is a number, not an id
    assert frame["store_id"].dtype.kind == "i"  # integer ids that read back as written stay numbers


def test_flatten_nested_dicts_lists_and_missing():
    frame = pd.DataFrame(
        {
            "a": [1, 2, 3],
            "meta": [{"k": 1, "deep": {"z": "x"}}, None, {"k": 3}],
            "items": [["x", "y"], [], None],
        }
    )
    out = flatten_nested(frame)
    assert list(out.columns) == ["a", "meta_k", "meta_deep_z", "items", "items_count"]
    assert out["items"].tolist()[:2] == ["x y", ""]
    assert out["items_count"].tolist()[:2] == [2, 0] and pd.isna(out["items_count"].iloc[2])
    assert out["meta_deep_z"].tolist()[0] == "x"
    plain = frame[["a"]]
    assert flatten_nested(plain) is plain


@pytest.mark.parametrize(
    "name, expected",
    [("id", True), ("Id", True), ("PassengerId", True), ("user_id", True), ("ID", True), ("humid", False),
     ("valid", False), ("VALID", False), ("price", False)],
)  # fmt: skip
def test_id_names(name, expected):
    assert looks_like_id_name(name) is expected


def test_formatter_matches_ids_read_as_numbers_and_writes_the_sample_text():
    sample = pd.DataFrame({"key": ["007", "1.50", "x"], "y": [0, 0, 0]})
    decoded = pd.DataFrame({"y": [1, 2, 3]})
    for method in ("fill_sample", "merge_on_id"):
        out = format_submission(decoded, np.array(["7", "1.5", "x"]), sample, "key", {"method": method})
        assert out["key"].tolist() == ["007", "1.50", "x"] and out["y"].tolist() == [1, 2, 3]
    merged = format_submission(decoded, np.array(["x", "1.5", "7"]), sample, "key", {"method": "merge_on_id"})
    assert merged["y"].tolist() == [3, 2, 1]
    with pytest.raises(CheckError, match="fill_sample needs"):
        format_submission(decoded, np.array(["8", "1.5", "x"]), sample, "key", {"method": "fill_sample"})
