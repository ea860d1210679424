"""Submission formatting and validation: predictions become the sample submission's exact shape.

A formatter is a small spec: {"method": "fill_sample"} writes decoded predictions into a copy of the
sample submission row by row (test maps are in the sample's row order); {"method": "merge_on_id"} joins
them on the id keys; {"method": "script", "code": ...} runs policy-written code in the sandbox, a
function ``format_submission(sample, test_ids, predictions) -> DataFrame``. Nothing invalid is ever
written: `write_submission` validates first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.setup.data import make_keys
from medalist.setup.spec import TargetTransform, label_key
from medalist.workspace import write_csv_atomic

FORMATTERS = ("fill_sample", "merge_on_id", "script")

_SCRIPT_HARNESS = """
import pandas as pd
sample = pd.read_pickle("sample.pkl")
predictions = pd.read_pickle("predictions.pkl")
test_ids = pd.read_pickle("ids.pkl").tolist()
{code}
result = format_submission(sample, test_ids, predictions)
if not isinstance(result, pd.DataFrame):
    raise SystemExit("format_submission must return a DataFrame")
result.to_pickle("result.pkl")
"""


def format_submission(
    decoded: pd.DataFrame,
    test_ids: np.ndarray,
    sample: pd.DataFrame,
    id_column: str,
    formatter: dict[str, Any],
) -> pd.DataFrame:
    """Decoded target columns (rows in ``test_ids`` order) -> a frame shaped like ``sample``."""
    method = formatter.get("method", "fill_sample")
    if len(decoded) != len(test_ids):
        raise CheckError(f"{len(decoded)} predictions for {len(test_ids)} test ids")
    sample_keys = make_keys(sample[id_column].tolist())
    out = sample.copy()
    if method == "fill_sample":
        if not _same_ids(list(map(str, test_ids)), sample_keys):
            raise CheckError(
                "fill_sample needs test maps in the sample submission's row order; "
                "reorder the test maps by the sample's ids or use merge_on_id"
            )
        for col in decoded.columns:
            out[col] = _cast_like(decoded[col].to_numpy(), sample[col])
    elif method == "merge_on_id":
        keys, wanted = list(map(str, test_ids)), sample_keys
        if not set(wanted) <= set(keys):  # numbers written two ways ('007' / '7'): compare by value
            keys, wanted = [_number_key(k) for k in keys], [_number_key(k) for k in wanted]
        by_key = decoded.set_axis(keys, axis=0)
        missing = [k for k, w in zip(sample_keys, wanted) if w not in by_key.index]
        if missing:
            raise CheckError(f"no prediction for {len(missing)} sample ids (e.g. {missing[:3]})")
        ordered = by_key.loc[wanted]
        for col in decoded.columns:
            out[col] = _cast_like(ordered[col].to_numpy(), sample[col])
    elif method == "script":
        return _run_script_formatter(str(formatter.get("code", "")), decoded, test_ids, sample)
    else:
        raise CheckError(f"unknown formatter method {method!r}; use one of {FORMATTERS}")
    return out


def _number_key(key: str) -> str:
    """An id key with numbers in one form ('007' and '7', '1.50' and '1.5' agree), as a reader that parsed
    the id as a number and one that kept its text would write it; other keys unchanged."""
    text, sep, repeat = key.partition("#")
    try:
        value = float(text)
    except ValueError:
        return key
    return label_key(value) + sep + repeat if np.isfinite(value) else key


def _same_ids(test_keys: list[str], sample_keys: list[str]) -> bool:
    """Whether the test maps' ids are the sample's, in order (numbers compared by value)."""
    if test_keys == sample_keys:
        return True
    return len(test_keys) == len(sample_keys) and all(
        a == b or _number_key(a) == _number_key(b) for a, b in zip(test_keys, sample_keys)
    )


def _run_script_formatter(
    code: str, decoded: pd.DataFrame, test_ids: np.ndarray, sample: pd.DataFrame
) -> pd.DataFrame:
    """Run a policy-written formatter in the sandbox; its output is validated by the caller."""
    import tempfile

    from medalist.sandbox import run_code

    if "def format_submission" not in code:
        raise CheckError("a script formatter must define format_submission(sample, test_ids, predictions)")
    with tempfile.TemporaryDirectory(prefix="medalist-fmt-") as tmp:
        work = Path(tmp)
        sample.to_pickle(work / "sample.pkl")
        decoded.to_pickle(work / "predictions.pkl")
        pd.Series(list(map(str, test_ids))).to_pickle(work / "ids.pkl")
        res = run_code(_SCRIPT_HARNESS.format(code=code), work, timeout=120, memory_mb=4096)
        if not res.ok or not (work / "result.pkl").exists():
            raise CheckError(f"the formatter script failed: {res.describe()[-600:]}")
        return pd.read_pickle(work / "result.pkl")


def _cast_like(values: np.ndarray, like: pd.Series) -> Any:
    """Keep the sample column's flavour: ints stay ints, bools stay bools, else as given."""
    if pd.api.types.is_bool_dtype(like):
        return [_as_bool(v) for v in values]
    if pd.api.types.is_integer_dtype(like):
        num = pd.to_numeric(pd.Series(values), errors="coerce")
        if num.notna().all() and np.allclose(num, np.round(num)):
            return np.round(num).astype(np.int64).to_numpy()
    return values


def _as_bool(v: Any) -> Any:
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    if isinstance(v, (int, float, np.integer, np.floating, bool, np.bool_)):
        return bool(v)
    return v


def validate_submission(
    frame: pd.DataFrame,
    sample: pd.DataFrame,
    id_column: str,
    target_columns: list[str],
    transform: TargetTransform | None = None,
) -> None:
    """Raise CheckError unless ``frame`` has the sample's columns, ids, row count and sound values."""
    if list(frame.columns) != list(sample.columns):
        raise CheckError(
            f"submission columns {list(frame.columns)[:6]} differ from the sample's {list(sample.columns)[:6]}"
        )
    if len(frame) != len(sample):
        raise CheckError(f"submission has {len(frame)} rows; the sample submission has {len(sample)}")
    if make_keys(frame[id_column].tolist()) != make_keys(sample[id_column].tolist()):
        raise CheckError("submission ids differ from the sample submission's ids (or their order)")
    for col in target_columns:
        values = frame[col]
        if values.isna().any():
            raise CheckError(f"submission column {col!r} has {int(values.isna().sum())} missing values")
    if transform is None:
        return
    if transform.output in ("proba", "value"):
        block = frame[target_columns]
        num = block.apply(pd.to_numeric, errors="coerce")
        if num.isna().any().any():
            raise CheckError(f"submission columns {target_columns[:4]} must be numeric")
        arr = num.to_numpy(dtype=float)
        if not np.isfinite(arr).all():
            raise CheckError("submission holds non-finite numbers")
        if transform.output == "proba" and ((arr < 0).any() or (arr > 1).any()):
            raise CheckError("probabilities must lie in [0, 1]")
    elif transform.classes is not None and transform.kind != "multilabel":
        allowed = {label_key(c) for c in transform.classes}
        bad = {label_key(v) for v in frame[target_columns[0]].tolist()} - allowed
        if bad:
            raise CheckError(
                f"submission labels {sorted(bad)[:5]} are not among the classes {sorted(allowed)[:8]}"
            )


def write_submission(
    frame: pd.DataFrame,
    path: Path,
    sample: pd.DataFrame,
    id_column: str,
    target_columns: list[str],
    transform: TargetTransform | None = None,
) -> Path:
    """Validate, then write atomically; an invalid frame raises and nothing is written."""
    validate_submission(frame, sample, id_column, target_columns, transform)
    write_csv_atomic(path, frame)
    return path
