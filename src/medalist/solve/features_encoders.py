"""Fold-independent column encoders: each turns one raw column (train + test together) into model-ready
columns without looking at the target — canonical strings, floats, datetime parts, text statistics, the
parts hidden in high-cardinality strings, count encodings — plus the column-name sanitiser."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from medalist.setup.profile import parse_datetime
from medalist.setup.spec import label_key


def canon_strings(values: pd.Series) -> pd.Series:
    """Values as canonical strings (1, 1.0 and '1' agree), NaN kept."""
    present = values.notna()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.astype("float64")
        out = pd.Series(np.nan, index=values.index, dtype=object)
        kept = v[present]
        if np.all(np.mod(kept.to_numpy(), 1) == 0):
            out[present] = kept.astype(np.int64).astype(str).to_numpy()
        else:
            out[present] = [label_key(x) for x in kept]
        return out
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        return values.astype(object).where(present, np.nan)

    def one(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            return np.nan
        return label_key(v)

    return pd.Series([one(v) for v in values.astype(object).tolist()], index=values.index, dtype=object)


def to_float(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("float32")
    if pd.api.types.is_numeric_dtype(s):
        return pd.to_numeric(s, errors="coerce").astype("float32")
    low = s.astype("string").str.strip().str.lower()
    mapped = low.map({"true": 1.0, "false": 0.0})
    num = pd.to_numeric(low, errors="coerce")
    return num.fillna(mapped).astype("float32")


def datetime_parts(name: str, s: pd.Series, n_train: int) -> dict[str, pd.Series]:
    """Calendar parts and days elapsed of train + test values (train rows first). A calendar part whose
    test values never occur in train is left out: no model can learn what its values mean (bike-sharing's
    test rows are days 20 to 31 of each month, its training rows days 1 to 19)."""
    dt = parse_datetime(s)
    base = dt.min()
    elapsed = (dt - base).dt.total_seconds() / 86400.0
    calendar = {
        f"{name}__year": dt.dt.year,
        f"{name}__month": dt.dt.month,
        f"{name}__day": dt.dt.day,
        f"{name}__dayofweek": dt.dt.day_of_week,
        f"{name}__hour": dt.dt.hour,
        f"{name}__dayofyear": dt.dt.day_of_year,
    }
    parts = {k: v for k, v in calendar.items() if not _unseen_in_train(v, n_train)}
    parts[f"{name}__elapsed"] = elapsed
    return {k: v.astype("float32") for k, v in parts.items()}


def _unseen_in_train(values: pd.Series, n_train: int) -> bool:
    """Whether the test rows (after the first ``n_train``) hold values and none of them occurs in train."""
    seen = set(values.iloc[:n_train].dropna().unique())
    new = set(values.iloc[n_train:].dropna().unique())
    return bool(new) and not (new & seen)


def text_stats(name: str, s: pd.Series) -> dict[str, pd.Series]:
    t = s.astype("string").fillna("")
    n_chars = t.str.len().astype("float32")
    denom = n_chars.where(n_chars > 0, 1.0)
    n_words = t.str.count(r"\S+").astype("float32")
    return {
        f"{name}__n_chars": n_chars,
        f"{name}__n_words": n_words,
        f"{name}__mean_word_len": (n_chars / n_words.where(n_words > 0, 1.0)).astype("float32"),
        f"{name}__upper_share": (t.str.count(r"[A-Z]") / denom).astype("float32"),
        f"{name}__digit_share": (t.str.count(r"\d") / denom).astype("float32"),
        f"{name}__punct_share": (t.str.count(r"[^\w\s]") / denom).astype("float32"),
    }


_DELIMITERS = ("/", "_", "-", "|", ":", ";", ",", " ")
MAX_TOKENS = 12  # frequent-token indicators per high-cardinality string column


def string_parts(name: str, s: pd.Series) -> dict[str, pd.Series]:
    """What a high-cardinality string hides: delimited parts ("B/0/P" -> deck, number, side; "0013_01" ->
    group, member), its leading letters, the number inside it, and indicators of frequent tokens
    ("Braund, Mr. Owen" -> mr). Never looks at the target."""
    t = s.astype("string")
    present = t.notna()
    if present.sum() == 0:
        return {}
    vals = t[present]
    out: dict[str, pd.Series] = {}
    for d in _DELIMITERS:
        counts = vals.str.count(re.escape(d))
        if (counts > 0).mean() < 0.9:
            continue
        mode = int(counts.mode().iloc[0])
        if mode < 1 or mode > 4 or (counts == mode).mean() < 0.9:
            continue
        parts = t.str.split(d, n=mode, regex=False)
        for i in range(mode + 1):
            part = parts.str.get(i)
            num = pd.to_numeric(part, errors="coerce")
            if num.notna().sum() >= 0.9 * part.notna().sum():
                out[f"{name}__p{i}"] = num.astype("float32")
                out[f"{name}__p{i}_count"] = count_encode(part)
            else:
                nunique = part.nunique(dropna=True)
                if nunique <= 50:
                    codes = pd.Categorical(part)
                    out[f"{name}__p{i}"] = pd.Series(codes, index=s.index)
                out[f"{name}__p{i}_count"] = count_encode(part)
        break
    prefix = t.str.extract(r"^\s*([A-Za-z]+)", expand=False)
    if prefix.notna().mean() > 0.05 and 1 < prefix.nunique(dropna=True) <= 50:
        out[f"{name}__prefix"] = pd.Series(pd.Categorical(prefix), index=s.index)
    number = pd.to_numeric(t.str.extract(r"(\d+(?:\.\d+)?)\s*$", expand=False), errors="coerce")
    if number.notna().mean() > 0.5 and number.nunique() > 2:
        out[f"{name}__number"] = number.astype("float32")
    words = vals.str.lower().str.findall(r"[a-z]{2,}")
    if float(words.str.len().mean()) >= 1.5:
        docs = words.map(lambda w: sorted(set(w)))
        freq = docs.explode().value_counts()
        n = len(vals)
        useful = [w for w, c in freq.items() if 0.01 * n <= c <= 0.6 * n][:MAX_TOKENS]
        lowered = t.str.lower()
        for w in useful:
            out[f"{name}__has_{w}"] = lowered.str.contains(rf"\b{re.escape(w)}\b", regex=True).astype(
                "float32"
            )
    return {k: v for k, v in out.items() if v.nunique(dropna=True) > 1}


def count_encode(values: pd.Series) -> pd.Series:
    """How often each value occurs in the column (NaN where the value is missing)."""
    freq = values.map(values.value_counts(dropna=True))
    return freq.astype("float32")


def sanitize_names(names: list[str]) -> list[str]:
    """Column names every library accepts (no JSON specials, no brackets), unique."""
    out: list[str] = []
    seen: set[str] = set()
    for n in names:
        clean = re.sub(r"[^0-9A-Za-z_]+", "_", str(n)).strip("_") or "col"
        cand, k = clean, 1
        while cand in seen:
            k += 1
            cand = f"{clean}_{k}"
        seen.add(cand)
        out.append(cand)
    return out
