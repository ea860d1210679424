"""Column profiles: what a column looks like (text, datetime, categorical, image path, numeric)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_DATE_HINT = re.compile(
    r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?\s*$"
)
_COMPACT_STAMP = re.compile(r"^\s*\d{14}Z?\s*$")  # 20120618222256Z


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: str  # numeric | boolean | categorical | text | datetime | image_path | constant | empty
    n_unique: int
    missing_share: float
    mean_length: float = 0.0

    @property
    def is_input_kind(self) -> bool:
        return self.kind not in ("constant", "empty")


def _is_bool(series: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(series):
        return True
    vals = {str(v).strip().lower() for v in series.dropna().unique()[:5]}
    return bool(vals) and vals <= {"true", "false"}


def looks_datetime(series: pd.Series) -> bool:
    """Strings that mostly parse as dates/times (ISO-like or compact 14-digit stamps)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series):
        return False
    sample = series.dropna().astype(str).head(200)
    if sample.empty:
        return False
    hits = sample.map(lambda s: bool(_DATE_HINT.match(s) or _COMPACT_STAMP.match(s))).mean()
    return bool(hits >= 0.9)


def parse_datetime(series: pd.Series) -> pd.Series:
    """Parse a datetime-looking column (NaT where unparsable)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    s = series.astype("string")
    compact = s.str.fullmatch(r"\s*\d{14}Z?\s*").fillna(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pd.to_datetime(s.where(~compact), errors="coerce", format="mixed", utc=True)
        if compact.any():
            out = out.where(
                ~compact,
                pd.to_datetime(
                    s.where(compact).str.strip().str[:14], format="%Y%m%d%H%M%S", errors="coerce", utc=True
                ),
            )
    return out.dt.tz_localize(None)


def profile_column(series: pd.Series) -> ColumnProfile:
    n = len(series)
    non_null = series.dropna()
    missing = 1.0 - (len(non_null) / n if n else 0.0)
    if non_null.empty:
        return ColumnProfile(str(series.name), "empty", 0, missing)
    n_unique = int(non_null.nunique())
    if n_unique <= 1:
        return ColumnProfile(str(series.name), "constant", n_unique, missing)
    if _is_bool(series):
        return ColumnProfile(str(series.name), "boolean", n_unique, missing)
    if pd.api.types.is_numeric_dtype(series):
        return ColumnProfile(str(series.name), "numeric", n_unique, missing)
    strings = non_null.astype(str)
    mean_len = float(strings.str.len().mean())
    if strings.str.lower().str.endswith(IMAGE_EXTENSIONS).mean() > 0.9:
        return ColumnProfile(str(series.name), "image_path", n_unique, missing, mean_len)
    if looks_datetime(series):
        return ColumnProfile(str(series.name), "datetime", n_unique, missing, mean_len)
    numeric = pd.to_numeric(strings, errors="coerce")
    if numeric.notna().mean() > 0.98:
        return ColumnProfile(str(series.name), "numeric", n_unique, missing, mean_len)
    words = float(strings.str.count(r"\s+").mean()) + 1
    unique_share = n_unique / max(len(non_null), 1)
    if mean_len >= 30 and words >= 4 and unique_share > 0.5:
        return ColumnProfile(str(series.name), "text", n_unique, missing, mean_len)
    return ColumnProfile(str(series.name), "categorical", n_unique, missing, mean_len)


def uniqueness(series: pd.Series) -> float:
    """Share of distinct non-null values among all rows."""
    return float(series.nunique(dropna=True)) / max(len(series), 1)


def is_integer_valued(values: np.ndarray) -> bool:
    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
    return len(v) > 0 and bool(np.all(np.isfinite(v)) and np.allclose(v, np.round(v)))


def is_structured_id(series: pd.Series) -> bool:
    """Ids that encode a group ("0013_01": group 0013, member 01): delimited text whose first part repeats."""
    if pd.api.types.is_numeric_dtype(series):
        return False
    vals = series.dropna().astype(str)
    if vals.empty:
        return False
    for d in ("_", "-", "/", ":"):
        has = vals.str.contains(d, regex=False)
        if has.mean() >= 0.9:
            first = vals.str.split(d, n=1, regex=False).str[0]
            return bool(first.nunique() < 0.9 * len(vals))
    return False


def plain_value(v: Any) -> Any:
    """A numpy scalar as the Python value it holds (JSON-friendly); anything else unchanged."""
    return v.item() if isinstance(v, np.generic) else v


def sorted_classes(values: pd.Series) -> list[Any]:
    """The distinct non-missing labels of a target column: numbers in order first, then the rest as text."""

    def key(v: Any) -> tuple[int, Any]:
        if isinstance(v, (bool, np.bool_)):
            return (0, int(v))
        if isinstance(v, (int, float, np.integer, np.floating)):
            return (0, float(v))
        return (1, str(v))

    return sorted(pd.unique(values.dropna()).tolist(), key=key)


def label_dtype(values: pd.Series) -> str | None:
    """'bool' or 'int' when the labels must be written back in that type, else None."""
    if pd.api.types.is_bool_dtype(values):
        return "bool"
    if pd.api.types.is_integer_dtype(values):
        return "int"
    if pd.api.types.is_float_dtype(values) and is_integer_valued(values.dropna().to_numpy()):
        return "int"
    return None
