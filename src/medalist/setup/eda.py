"""A profile of a finished setup's tables, written to ``<workspace>/eda.json``.

Rows, columns by kind, missing shares, cardinalities, the target's distribution, the strongest single-feature
signals (mutual information on binned values), duplicate rows, and train/test drift measured by adversarial
validation (a small LightGBM's AUC at telling train rows from test rows, with the columns that drive it).
Every step works on a row sample, so the profile costs seconds on any table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medalist.setup.data import TaskData
from medalist.workspace import Workspace, write_json_atomic

EDA_FILE = "eda.json"
SAMPLE_ROWS = 20_000  # rows read for signals and text statistics
ADVERSARIAL_ROWS = 5_000  # rows per side for adversarial validation
MAX_COLUMNS = 200  # column profiles kept (the rest are counted)
N_BINS = 10  # quantile bins of a numeric column (and of a regression target)
N_TOP = 20  # categories kept as their own bin; the rest are "other"
N_SIGNALS = 15
N_DRIVERS = 10


def write_eda(ws: Workspace, data: TaskData, seed: int = 0) -> dict[str, Any]:
    """Profile ``data``'s tables and write the profile to ``ws.root / 'eda.json'``; returns it."""
    t0 = time.monotonic()
    rng = np.random.default_rng(seed)
    frames = _input_frames(data)
    profile: dict[str, Any] = {
        "rows": {"train": data.n_train, "test": data.n_test},
        "modalities": list(data.spec.modalities),
        "columns": _columns(frames, data.spec),
        "target": _target(data),
        "signals": _signals(frames["train"], _target_codes(data), rng),
        "duplicates": _duplicates(frames, data),
        "drift": _adversarial(frames, rng, seed),
    }
    profile["seconds"] = round(time.monotonic() - t0, 3)
    write_json_atomic(ws.root / EDA_FILE, profile)
    return profile


# ---------------------------------------------------------------- inputs
def _input_frames(data: TaskData) -> dict[str, pd.DataFrame]:
    """Train and test inputs as one frame each: tabular columns and text columns (prefixed 'text:'); image
    paths are left out."""
    out = {}
    for split, maps, n_rows in (("train", data.train, data.n_train), ("test", data.test, data.n_test)):
        parts = []
        for modality, frame in maps.items():
            if modality == "image":
                continue  # paths carry no signal of their own
            renamed = frame if modality == "tabular" else frame.add_prefix(f"{modality}:")
            parts.append(renamed.reset_index(drop=True))
        out[split] = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=range(n_rows))
    return out


def column_kind(series: pd.Series, spec_categorical: set[str], spec_datetime: set[str]) -> str:
    """numeric | boolean | categorical | datetime | text (free text: long strings, mostly unique)."""
    name = str(series.name)
    if name in spec_datetime or pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if name.startswith("text:"):
        return "text"
    if pd.api.types.is_numeric_dtype(series) and name not in spec_categorical:
        return "numeric"
    values = series.dropna().astype(str)
    if len(values) and values.str.len().mean() > 40 and values.nunique() > 0.5 * len(values):
        return "text"
    return "categorical"


def _columns(frames: dict[str, pd.DataFrame], spec) -> dict[str, Any]:
    train, test = frames["train"], frames["test"]
    categorical, datetime = set(spec.categorical_columns), set(spec.datetime_columns)
    profiles = []
    kinds: dict[str, int] = {}
    for name in train.columns:
        col = train[name]
        kind = column_kind(col, categorical, datetime)
        kinds[kind] = kinds.get(kind, 0) + 1
        if len(profiles) >= MAX_COLUMNS:
            continue
        entry: dict[str, Any] = {
            "name": str(name),
            "kind": kind,
            "dtype": str(col.dtype),
            "missing_train": _share(col.isna().mean()),
            "missing_test": _share(test[name].isna().mean()) if name in test else None,
            "unique": int(col.nunique(dropna=True)),
        }
        if kind == "numeric":
            values = pd.to_numeric(col, errors="coerce").dropna()
            if len(values):
                entry.update(
                    mean=_num(values.mean()),
                    std=_num(values.std()),
                    min=_num(values.min()),
                    max=_num(values.max()),
                )
        elif kind == "text":
            lengths = col.dropna().astype(str).str.len()
            entry["mean_chars"] = _num(lengths.mean()) if len(lengths) else None
        elif entry["unique"] < 0.5 * max(
            1, len(col)
        ):  # the commonest values, unless nearly every row differs
            top = col.astype(str).value_counts().head(5)
            entry["top"] = {str(k): int(v) for k, v in top.items()}
        profiles.append(entry)
    return {"n": int(train.shape[1]), "by_kind": kinds, "profiles": profiles}


# ---------------------------------------------------------------- target
def _target(data: TaskData) -> dict[str, Any]:
    t = data.transform
    out: dict[str, Any] = {"kind": t.kind, "columns": list(t.columns)}
    y = data.y
    if t.kind in ("binary", "multiclass"):
        idx = y[:, 0].astype(int)
        counts = np.bincount(idx, minlength=len(t.classes or []))
        labels = [str(c) for c in (t.classes or range(len(counts)))]
        order = np.argsort(-counts)[:50]
        out["classes"] = {labels[i]: int(counts[i]) for i in order}
        out["n_classes"] = len(counts)
        out["majority_share"] = _share(counts.max() / max(1, counts.sum()))
    elif t.kind == "multilabel":
        out["positive_share"] = {c: _share(v) for c, v in zip(t.columns, np.nanmean(y, axis=0))}
    else:
        raw = data.target[t.columns[0]]
        values = pd.to_numeric(raw, errors="coerce").dropna()
        counts, edges = np.histogram(values, bins=30) if len(values) else (np.zeros(0), np.zeros(0))
        out.update(
            mean=_num(values.mean()),
            std=_num(values.std()),
            min=_num(values.min()),
            max=_num(values.max()),
            skew=_num(values.skew()),
            quantiles={str(q): _num(values.quantile(q)) for q in (0.01, 0.25, 0.5, 0.75, 0.99)},
            histogram={"counts": counts.astype(int).tolist(), "edges": [_num(e) for e in edges]},
            log_fitted=bool(t.log),
        )
    return out


def _target_codes(data: TaskData) -> np.ndarray:
    """One integer code per train row: the class, the first label, or the regression target's bin."""
    y = data.y
    kind = data.transform.kind
    if kind in ("binary", "multiclass"):
        return y[:, 0].astype(int)
    if kind == "multilabel":
        return np.nan_to_num(y[:, 0]).astype(int)
    return _bin_numeric(pd.Series(y[:, 0]))


# ---------------------------------------------------------------- signals
def _bin_numeric(values: pd.Series) -> np.ndarray:
    """Quantile bins 1..N_BINS, 0 for missing."""
    numeric = pd.to_numeric(values, errors="coerce")
    ranks = numeric.rank(method="average", pct=True)
    codes = np.ceil(ranks.fillna(0).to_numpy() * N_BINS).astype(int)
    return np.clip(codes, 0, N_BINS)


def _bin_categories(values: pd.Series) -> np.ndarray:
    """The N_TOP most frequent values as their own bins, the rest as one, missing as another."""
    text = values.astype("string")
    top = text.value_counts().index[:N_TOP]
    codes = pd.Categorical(text.where(text.isin(top)), categories=top).codes.astype(int) + 2
    codes[text.isna().to_numpy()] = 0
    codes[(~text.isin(top)).to_numpy() & text.notna().to_numpy()] = 1
    return codes


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) between two integer codings of the same rows."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(table, (ai, bi), 1)
    p = table / table.sum()
    pa, pb = p.sum(axis=1, keepdims=True), p.sum(axis=0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (pa @ pb)[nz])).sum())


def _signals(train: pd.DataFrame, target: np.ndarray, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Columns ranked by mutual information with the target (text columns by their length)."""
    rows = _sample(len(train), SAMPLE_ROWS, rng)
    frame, y = train.iloc[rows], target[rows]
    h_target = mutual_information(y, y)
    scores = []
    for name in frame.columns:
        col = frame[name]
        kind = column_kind(col, set(), set())
        if kind == "text":
            codes, label = _bin_numeric(col.astype("string").str.len()), f"len({name})"
        elif kind == "numeric":
            codes, label = _bin_numeric(col), str(name)
        else:
            codes, label = _bin_categories(col), str(name)
        mi = mutual_information(codes, y)
        scores.append(
            {
                "column": label,
                "mutual_info": round(mi, 5),
                "share_of_target_entropy": _share(mi / h_target) if h_target > 0 else None,
            }
        )
    scores.sort(key=lambda s: -s["mutual_info"])
    return scores[:N_SIGNALS]


# ---------------------------------------------------------------- duplicates
def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame, index=False).to_numpy()


def _duplicates(frames: dict[str, pd.DataFrame], data: TaskData) -> dict[str, Any]:
    train, test = frames["train"], frames["test"]
    if train.shape[1] == 0:
        return {}
    h_train = _row_hashes(train)
    h_test = _row_hashes(test[train.columns]) if set(train.columns) <= set(test.columns) else np.zeros(0)
    dup = pd.Series(h_train).duplicated(keep=False).to_numpy()
    target_hash = _row_hashes(data.target)
    groups = pd.DataFrame({"x": h_train[dup], "y": target_hash[dup]})
    conflicting = int((groups.groupby("x")["y"].nunique() > 1).sum()) if len(groups) else 0
    return {
        "train_duplicate_rows": int(pd.Series(h_train).duplicated().sum()),
        "train_conflicting_groups": conflicting,
        "test_duplicate_rows": int(pd.Series(h_test).duplicated().sum()),
        "test_rows_in_train": int(np.isin(h_test, h_train).sum()),
    }


# ---------------------------------------------------------------- drift
def _encode_for_trees(train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """Both splits stacked as numbers: numeric as is, datetimes as int, every other column by the frequency of
    its value over both splits (never by order of appearance, which would tell the splits apart)."""
    both = pd.concat([train, test], axis=0, ignore_index=True)
    out = {}
    for name in both.columns:
        col = both[name]
        kind = column_kind(col, set(), set())
        if kind == "numeric" or kind == "boolean":
            out[str(name)] = pd.to_numeric(col, errors="coerce").astype(float)
        elif kind == "datetime":
            stamps = pd.to_datetime(col, errors="coerce", utc=True)
            out[str(name)] = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
        elif kind == "text":
            out[f"len({name})"] = col.astype("string").str.len().astype(float)
        else:
            text = col.astype("string")
            out[str(name)] = text.map(text.value_counts()).astype(float)
    return pd.DataFrame(out)


def _adversarial(frames: dict[str, pd.DataFrame], rng: np.random.Generator, seed: int) -> dict[str, Any]:
    """AUC of a small LightGBM at telling train rows from test rows (3-fold), and the columns it used."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    train, test = frames["train"], frames["test"]
    shared = [c for c in train.columns if c in test.columns]
    if not shared or len(train) < 20 or len(test) < 20:
        return {"auc": None, "note": "too few rows or no shared columns"}
    a = train[shared].iloc[_sample(len(train), ADVERSARIAL_ROWS, rng)]
    b = test[shared].iloc[_sample(len(test), ADVERSARIAL_ROWS, rng)]
    X = _encode_for_trees(a, b)
    names = list(X.columns)
    X.columns = [f"f{i}" for i in range(len(names))]  # LightGBM refuses names with JSON characters
    is_test = np.r_[np.zeros(len(a)), np.ones(len(b))]
    oof = np.zeros(len(X))
    gain = np.zeros(X.shape[1])
    params = {
        "n_estimators": 100,
        "num_leaves": 15,
        "learning_rate": 0.1,
        "subsample": 0.8,
        "subsample_freq": 1,
    }
    for fit_rows, val_rows in StratifiedKFold(3, shuffle=True, random_state=seed).split(X, is_test):
        model = lgb.LGBMClassifier(**params, n_jobs=1, random_state=seed, verbose=-1, importance_type="gain")
        model.fit(X.iloc[fit_rows], is_test[fit_rows])
        oof[val_rows] = model.predict_proba(X.iloc[val_rows])[:, 1]
        gain += model.feature_importances_
    share = gain / gain.sum() if gain.sum() > 0 else gain
    order = np.argsort(-share)[:N_DRIVERS]
    auc = float(roc_auc_score(is_test, oof))
    return {
        "auc": round(auc, 4),
        "rows_per_side": [len(a), len(b)],
        "verdict": "no drift" if auc < 0.6 else "mild drift" if auc < 0.75 else "strong drift",
        "drivers": [{"column": names[i], "gain_share": _share(share[i])} for i in order if share[i] > 0],
    }


# ---------------------------------------------------------------- helpers
def _sample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, limit, replace=False)) if n > limit else np.arange(n)


def _share(x: float) -> float:
    return round(float(x), 4)


def _num(x: Any) -> float | None:
    value = float(x)
    return round(value, 6) if np.isfinite(value) else None


def eda_facts(profile: dict[str, Any], max_chars: int = 1600) -> str:
    """The profile as a few lines for a prompt: rows, columns by kind with their cardinality and missing
    share, the target, the strongest single-column signals, duplicates and train/test drift."""
    rows, cols = profile.get("rows", {}), profile.get("columns", {})
    lines = [f"Data: {rows.get('train', '?')} train rows, {rows.get('test', '?')} test rows; columns by kind: "
             + ", ".join(f"{k} {n}" for k, n in cols.get("by_kind", {}).items())]  # fmt: skip
    described = []
    for p in cols.get("profiles", [])[:40]:
        missing = max(p.get("missing_train", 0.0), p.get("missing_test", 0.0))
        extra = f", {missing:.0%} missing" if missing >= 0.01 else ""
        described.append(f"{p['name']} ({p['kind']}, {p.get('unique', '?')} distinct{extra})")
    if described:
        lines.append("Columns: " + "; ".join(described))
    target = profile.get("target", {})
    if target:
        shape = {
            k: target[k]
            for k in ("kind", "classes", "share", "mean", "std", "skew", "min", "max")
            if k in target
        }
        lines.append(
            f"Target {', '.join(target.get('columns', []))}: " + json.dumps(shape, default=str)[:300]
        )
    signals = profile.get("signals", [])[:8]
    if signals:
        lines.append("Strongest single columns: " + ", ".join(s["column"] for s in signals))
    dup = profile.get("duplicates", {})
    if any(dup.values()):
        lines.append("Duplicates: " + ", ".join(f"{k} {v}" for k, v in dup.items() if v))
    drift = profile.get("drift", {})
    if drift:
        drivers = ", ".join(d["column"] for d in drift.get("drivers", [])[:5])
        lines.append(
            f"Train/test drift: AUC {drift.get('auc')} ({drift.get('verdict', '')}); driven by {drivers}"
        )
    text = "\n".join(lines)
    return text if len(text) <= max_chars else text[: max_chars - 4] + " ..."


def read_eda(root: Path) -> dict[str, Any] | None:
    """The workspace's profile, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((root / EDA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
