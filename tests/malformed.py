"""Malformed competition folders: each a small plausible Kaggle folder broken in exactly one way.

``make_malformed(root)`` writes them under ``root`` and returns ``{case: (path, regex)}``; the regex
describes the problem loosely and must match the one-line error medalist reports for that folder.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd

N_TRAIN = 80
N_TEST = 40

DESCRIPTION = """# Loan Default Prediction

Predict whether a customer defaults on a loan (`target`, 1 = default) from a few facts about them.

## Evaluation

Submissions are evaluated on area under the ROC curve between the predicted probability and the
observed target.

## Files

- train.csv - the training set, with the target
- test.csv - the test set; predict `target` for each `id`
- sample_submission.csv - a sample submission in the correct format

## Submission File

For each id in the test set, predict a probability for the target:

    id,target
    80,0.5
"""

# case -> regex the one-line error message must match (loosely: it names the problem, not exact words)
CASES: dict[str, str] = {
    "no_train": r"(?i)(\bno\b|missing|cannot find|could not find|not found).*train|train.*(missing|not found)",
    "no_test": r"(?i)(\bno\b|missing|cannot find|could not find|not found).*test|test.*(missing|not found)",
    "no_data": r"(?i)no data|\bno\b.*\b(files?|tables?)\b",
    "empty_train": r"(?i)empty|0 bytes",
    "header_only_train": r"(?i)no (data )?rows|header[- ]only|empty|0 rows",
    "test_ids_differ_from_sample": (
        r"(?i)\bids?\b.*(differ|match|missing|not (in|found|among|present)|unknown)"
        r"|(differ|mismatch|match).*\bids?\b"
    ),
    "binary_train": r"(?i)binary|decod|encoding|not text|utf",
    "target_all_nan": (
        r"(?i)(target|label)s?\b.*(nan|missing|empty|null|\bno\b)|(nan|missing|empty|null).*(target|label)"
    ),
    "duplicated_test_ids": r"(?i)duplicat|not unique|repeated",
    "corrupt_zip": r"(?i)zip|archive|corrupt",
    "sample_columns_unmatched": (
        r"(?i)(column|\bids?\b|target).*(sample|submission)|(sample|submission).*(column|\bids?\b|target)"
    ),
    "path_is_file": r"(?i)not a (folder|directory)|is a file",
    "missing_path": r"(?i)does not exist|not found|no such",
    "no_shared_columns": (
        r"(?i)(shar|common|overlap|same).*(column|input|feature)|(column|input|feature).*(shar|common|overlap)"
        r"|no input"
    ),
    "sample_rows_differ_no_id": r"(?i)\brows?\b|length|\bids?\b",
    "no_sample_submission": r"(?i)sample|submission",
}


def _frames(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A clean train / test / sample submission triple (binary target, numeric and categorical inputs)."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_TEST
    full = pd.DataFrame(
        {
            "id": np.arange(n),
            "age": rng.integers(18, 80, n),
            "income": rng.normal(50_000, 15_000, n).round(2),
            "city": rng.choice(["Paris", "Lyon", "Nice", "Lille"], n),
            "n_loans": rng.integers(0, 5, n),
        }
    )
    score = (full["age"] < 30).astype(int) + (full["income"] < 40_000).astype(int) + rng.integers(0, 2, n)
    train = full.iloc[:N_TRAIN].assign(target=(score >= 2).astype(int)[:N_TRAIN]).reset_index(drop=True)
    test = full.iloc[N_TRAIN:].reset_index(drop=True)
    sample = pd.DataFrame({"id": test["id"], "target": 0.5})
    return train, test, sample


def _write(
    folder: Path, train: pd.DataFrame | None, test: pd.DataFrame | None, sample: pd.DataFrame | None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "description.md").write_text(DESCRIPTION, encoding="utf-8")
    for name, frame in (("train.csv", train), ("test.csv", test), ("sample_submission.csv", sample)):
        if frame is not None:
            frame.to_csv(folder / name, index=False)
    return folder


def make_malformed(root: Path) -> dict[str, tuple[Path, str]]:
    """Create every malformed case under `root`; returns {case: (path given to medalist, error regex)}."""
    root = Path(root)
    train, test, sample = _frames()
    out: dict[str, Path] = {}

    out["no_train"] = _write(root / "no_train", None, test, sample)
    out["no_test"] = _write(root / "no_test", train, None, sample)

    folder = root / "no_data"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "description.md").write_text(DESCRIPTION, encoding="utf-8")
    (folder / "README.md").write_text("Data files will be released later.\n", encoding="utf-8")
    out["no_data"] = folder

    folder = _write(root / "empty_train", None, test, sample)
    (folder / "train.csv").write_bytes(b"")
    out["empty_train"] = folder

    folder = _write(root / "header_only_train", None, test, sample)
    (folder / "train.csv").write_text(",".join(train.columns) + "\n", encoding="utf-8")
    out["header_only_train"] = folder

    other = sample.assign(id=sample["id"] + 10_000)
    out["test_ids_differ_from_sample"] = _write(root / "test_ids_differ_from_sample", train, test, other)

    folder = _write(root / "binary_train", None, test, sample)
    junk = random.Random(0).randbytes(4096)
    (folder / "train.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + junk)
    out["binary_train"] = folder

    out["target_all_nan"] = _write(root / "target_all_nan", train.assign(target=np.nan), test, sample)

    dup_test = test.copy()
    dup_test.loc[N_TEST - 5 :, "id"] = dup_test["id"].iloc[:5].to_numpy()
    dup_sample = pd.DataFrame({"id": dup_test["id"].drop_duplicates(), "target": 0.5})
    out["duplicated_test_ids"] = _write(root / "duplicated_test_ids", train, dup_test, dup_sample)

    folder = _write(root / "corrupt_zip", None, test, sample)
    (folder / "train.csv.zip").write_bytes(b"PK\x03\x04" + random.Random(1).randbytes(2048))
    out["corrupt_zip"] = folder

    odd = pd.DataFrame({"row_key": [f"r{i}" for i in range(N_TEST)], "prediction_value": 0.5})
    out["sample_columns_unmatched"] = _write(root / "sample_columns_unmatched", train, test, odd)

    path = root / "path_is_file.csv"
    root.mkdir(parents=True, exist_ok=True)
    train.to_csv(path, index=False)
    out["path_is_file"] = path

    out["missing_path"] = root / "missing_path" / "public"

    renamed = test.rename(columns={c: f"feature_{i}" for i, c in enumerate(test.columns) if c != "id"})
    out["no_shared_columns"] = _write(root / "no_shared_columns", train, renamed, sample)

    short = pd.DataFrame({"target": [0.5] * (N_TEST - 10)})
    out["sample_rows_differ_no_id"] = _write(root / "sample_rows_differ_no_id", train, test, short)

    out["no_sample_submission"] = _write(root / "no_sample_submission", train, test, None)

    assert set(out) == set(CASES), set(out) ^ set(CASES)
    return {case: (out[case], CASES[case]) for case in CASES}
