"""Column fixes after a table is parsed: nested values flattened, id text kept as written.

- JSON / JSONL records and Parquet nested columns: a dict becomes one column per key (``info_age``); a
  list becomes its items joined as text (``tags``) plus their count (``tags_count``), so every cell is a
  plain, hashable value.
- Ids written as text that a number parse would change (``007``, ``1.50``) stay text, so the ids of the
  test table, the sample submission and the submission agree character for character; so do integer
  codes with leading zeros in any column (zip codes, product codes), whose zeros carry meaning.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
import pandas as pd

_ID_NAME = re.compile(r"(?:^|[^A-Za-z])(?:id|Id|ID)$|[a-z0-9](?:Id|ID)$|^(?:[Kk]ey|KEY|uuid|UUID|uid|UID)$")
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_NESTED = (list, tuple, dict, np.ndarray)
LIST_COUNT_SUFFIX = "_count"


# ---------------------------------------------------------------------------------------- nested values
def _is_nested(v: Any) -> bool:
    return isinstance(v, _NESTED)


def flatten_nested(frame: pd.DataFrame) -> pd.DataFrame:
    """Dict cells become columns (``<col>_<key>``, recursively); list cells become joined text plus a
    ``<col>_count`` column. A frame with no nested cell is returned as it is."""
    nested = [c for c in frame.columns if frame[c].dtype == object and frame[c].map(_is_nested).any()]
    if not nested:
        return frame
    parts: list[pd.DataFrame] = []
    for col in frame.columns:
        series = frame[col]
        if col not in nested:
            parts.append(series.to_frame())
        elif series.map(lambda v: isinstance(v, dict) or v is None or _is_missing(v)).all():
            parts.append(_dict_columns(series))
        else:
            parts.append(_list_columns(series))
    out = pd.concat(parts, axis=1)
    out.columns = _unique_names([str(c) for c in out.columns])
    return flatten_nested(out)


def _is_missing(v: Any) -> bool:
    return not _is_nested(v) and bool(pd.isna(v))


def _dict_columns(series: pd.Series) -> pd.DataFrame:
    records = [v if isinstance(v, dict) else {} for v in series.tolist()]
    inner = pd.DataFrame.from_records(records, index=series.index)
    return inner.rename(columns=lambda k: f"{series.name}_{k}")


def _list_columns(series: pd.Series) -> pd.DataFrame:
    def items(v: Any) -> list[Any] | None:
        if isinstance(v, dict):
            return list(v.values())
        if _is_nested(v):
            return list(v)
        return None if _is_missing(v) else [v]

    def as_text(v: Any) -> str:
        return json.dumps(v, default=str) if _is_nested(v) else str(v)

    listed = series.map(items)
    text = listed.map(lambda xs: None if xs is None else " ".join(as_text(x) for x in xs))
    count = listed.map(lambda xs: np.nan if xs is None else float(len(xs)))
    if count.notna().all():
        count = count.astype(np.int64)
    return pd.DataFrame({series.name: text, f"{series.name}{LIST_COUNT_SUFFIX}": count}, index=series.index)


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


# ---------------------------------------------------------------------------------------- id text
def looks_like_id_name(name: str) -> bool:
    """'id', 'Id', 'PassengerId', 'user_id', 'ID', 'key' ...: a column named as a row key."""
    return bool(_ID_NAME.search(str(name).strip()))


def _number_text(v: Any) -> str:
    """How a parsed number reads back: 7 -> '7', 1.5 -> '1.5', 2.0 -> '2'."""
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    f = float(v)
    return str(int(f)) if f.is_integer() else repr(f)


def text_columns_to_keep(frame: pd.DataFrame, head_text: str, sep: str) -> list[str]:
    """Numeric columns whose written text a number parse may change: id-named ones, and those whose
    first rows hold integers with leading zeros ('007'). The caller re-reads them as text to decide."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c].dtype)]
    numeric = [c for c in numeric if not pd.api.types.is_bool_dtype(frame[c].dtype)]
    if not numeric:
        return []
    out = [c for c in numeric if looks_like_id_name(str(c))]
    rest = [c for c in numeric if c not in out]
    if rest and head_text:
        cut = head_text.rfind("\n")
        try:
            head = pd.read_csv(
                io.StringIO(head_text[: cut + 1] if cut > 0 else head_text),
                sep=sep,
                dtype=str,
                usecols=lambda c: c in rest,
                engine="python" if len(sep) > 1 else "c",
            )
        except (ValueError, pd.errors.ParserError):
            return out
        for col in head.columns:
            if head[col].dropna().str.strip().str.match(_LEADING_ZERO).any():
                out.append(col)
    return out


def restore_text(frame: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each column of ``raw`` (the same rows read as text) put back where the parsed numbers
    do not read back as written."""
    changed = []
    for col in raw.columns:
        written = raw[col]
        present = written.notna() & frame[col].notna()
        if not present.any():
            continue
        parsed = frame.loc[present, col].map(_number_text)
        if (parsed != written[present].str.strip()).any():
            changed.append(col)
    if not changed:
        return frame
    out = frame.copy()
    for col in changed:
        out[col] = raw[col].str.strip().where(raw[col].notna(), None)
    return out
