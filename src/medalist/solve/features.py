"""Feature recipes: from a task's input maps to the frames the model zoo fits, split per fold.

Fold-independent steps (type casts, ordinal categories, count encodings, datetime parts, text statistics,
missing indicators) are computed once on train + test together: they never look at the target. Steps that
look at the target are fitted inside each fold on its training rows only: target encoding (smoothed, with
an inner out-of-fold pass on the training part) and the choice of numeric columns to combine in
``interactions`` (mutual information on the fold's training rows). The per-column encoders live in
``features_encoders``, the fold-dependent steps in ``features_fold``; this module picks the recipe's steps.

Column naming: tabular features keep their (sanitised) names, derived columns get ``<col>__<what>``; raw
text for models that read text is ``txt__<col>``; image columns are ``img__<col>`` (e.g. ``img__path``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medalist.errors import InputError
from medalist.setup.data import TaskData
from medalist.setup.profile import profile_column
from medalist.solve.features_encoders import (
    canon_strings,
    count_encode,
    datetime_parts,
    sanitize_names,
    string_parts,
    text_stats,
    to_float,
)
from medalist.solve.features_fold import RecipeFeatures

RECIPES: dict[str, str] = {
    "base": "numerics as float, categoricals as pandas categories, datetime parts, booleans 0/1, text statistics",
    "count": "base + count (frequency) encodings of categoricals and repeated numeric values",
    "target_enc": "base + smoothed target encoding of categoricals fitted inside each fold (one column per class)",
    "missing": "base + missing-value indicators and a per-row missing count",
    "interactions": "base + products, ratios and differences of the top numeric columns (chosen per fold)",
    "rich": "base + count + target_enc + missing + interactions",
}

MAX_CATEGORIES = 1000  # more distinct values than this -> high-cardinality (count / target encoded only)


@dataclass
class _Roles:
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    high_card: list[str] = field(default_factory=list)
    datetime: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _roles(frame: pd.DataFrame, categorical: list[str], datetime: list[str]) -> _Roles:
    """Decide each column's role, using the spec's lists where given and column profiles otherwise."""
    roles = _Roles()
    for col in frame.columns:
        s = frame[col]
        nunique = int(s.nunique(dropna=True))
        if nunique <= 1 and col not in categorical:
            roles.dropped.append(col)
            continue
        if col in datetime:
            roles.datetime.append(col)
            continue
        if col in categorical:
            (roles.categorical if nunique <= MAX_CATEGORIES else roles.high_card).append(col)
            continue
        kind = profile_column(s).kind
        if kind in ("numeric", "boolean"):
            roles.numeric.append(col)
        elif kind == "datetime":
            roles.datetime.append(col)
        elif kind == "text":
            roles.text.append(col)
        elif kind == "categorical":
            n_valid = int(s.notna().sum())
            small = nunique <= MAX_CATEGORIES and nunique <= max(50, 0.2 * n_valid)
            (roles.categorical if small else roles.high_card).append(col)
        else:  # constant, empty, image_path in a tabular map
            roles.dropped.append(col)
    return roles


def _model_targets(data: TaskData) -> np.ndarray:
    """Targets for encoders, (n, k) floats: one-hot for multiclass, model-space Y otherwise."""
    y = np.asarray(data.y, dtype=float)
    kind = data.transform.kind
    if kind == "multiclass":
        n_classes = len(data.transform.classes or [])
        idx = y[:, 0].astype(int)
        out = np.zeros((len(y), max(n_classes, int(idx.max()) + 1)))
        out[np.arange(len(y)), idx] = 1.0
        return out
    if kind in ("binary", "ordinal"):
        return y[:, :1]
    return y


@dataclass
class _Steps:
    count: bool = False
    target_enc: bool = False
    missing: bool = False
    interactions: bool = False


_RECIPE_STEPS = {
    "base": _Steps(),
    "count": _Steps(count=True),
    "target_enc": _Steps(target_enc=True),
    "missing": _Steps(missing=True),
    "interactions": _Steps(interactions=True),
    "rich": _Steps(True, True, True, True),
}


# ---------------------------------------------------------------------- building the frames
def _tabular_frames(data: TaskData) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    if "tabular" not in data.train:
        return None
    return data.train["tabular"], data.test["tabular"]


def _analyse(data: TaskData) -> tuple[_Roles, pd.DataFrame | None]:
    frames = _tabular_frames(data)
    if frames is None:
        return _Roles(), None
    both = pd.concat([frames[0], frames[1]], ignore_index=True)
    spec = data.spec
    return _roles(both, list(spec.categorical_columns), list(spec.datetime_columns)), both


def recipes_for(data: TaskData) -> list[str]:
    """The recipes that add something on this task (``base`` always applies)."""
    roles, both = _analyse(data)
    if both is None:
        return ["base"]
    out = ["base"]
    coded = roles.categorical + roles.high_card
    if coded or roles.numeric:
        out.append("count")
    if coded:
        out.append("target_enc")
    if both.isna().to_numpy().any():
        out.append("missing")
    if len(roles.numeric) >= 2:
        out.append("interactions")
    if len(out) > 2:
        out.append("rich")
    return out


def prepare_features(
    data: TaskData, recipe: str, modalities: tuple[str, ...], seed: int = 0
) -> RecipeFeatures:
    """Build the frames of ``recipe`` for a model that reads ``modalities`` (see the module docstring)."""
    if recipe not in _RECIPE_STEPS:
        raise InputError(f"unknown feature recipe {recipe!r}; choose one of {sorted(RECIPES)}")
    steps = _RECIPE_STEPS[recipe]
    n_train = data.n_train
    roles, both = _analyse(data)
    cols: dict[str, pd.Series] = {}
    te_codes: dict[str, np.ndarray] = {}
    interaction_columns: list[str] = []
    text_in_tabular: list[str] = []
    if "tabular" in modalities and both is not None:
        for col in both.columns:
            s = both[col]
            if col in roles.numeric:
                cols[col] = to_float(s)
                if steps.interactions and s.nunique(dropna=True) > 2:
                    interaction_columns.append(col)
            elif col in roles.categorical:
                canon = canon_strings(s)
                cats = sorted(canon.iloc[:n_train].dropna().unique())
                cols[col] = pd.Series(
                    pd.Categorical(canon.where(canon.isin(cats)), categories=cats), index=both.index
                )
            elif col in roles.high_card:
                cols[f"{col}__count"] = count_encode(canon_strings(s))
                cols.update(string_parts(col, s))
            elif col in roles.datetime:
                cols.update(datetime_parts(col, s, n_train))
            elif col in roles.text:
                cols.update(text_stats(col, s))
                text_in_tabular.append(col)
        if steps.count:
            for col in roles.categorical:
                cols[f"{col}__count"] = count_encode(canon_strings(both[col]))
            for col in roles.numeric:
                nunique = both[col].nunique(dropna=True)
                if 2 < nunique <= 0.5 * len(both):
                    cols[f"{col}__count"] = count_encode(both[col])
        if steps.missing:
            inputs = [c for c in both.columns if c not in roles.dropped]
            isna = both[inputs].isna()
            for col in inputs:
                if isna[col].any():
                    cols[f"{col}__isna"] = isna[col].astype("float32")
            cols["n_missing"] = isna.sum(axis=1).astype("float32")
        if steps.target_enc:
            for col in roles.categorical + roles.high_card:
                if both[col].nunique(dropna=True) > 0.5 * len(both):
                    continue  # (nearly) unique per row: nothing to average
                codes, _ = pd.factorize(canon_strings(both[col]), use_na_sentinel=True)
                te_codes[col] = codes.astype(np.int64)
    if "text" in data.train:
        text_all = pd.concat([data.train["text"], data.test["text"]], ignore_index=True)
        for col in text_all.columns:
            if "text" in modalities:
                cols[f"txt__{col}"] = (
                    text_all[col].astype(object).where(text_all[col].notna(), "").astype(str)
                )
            elif "tabular" in modalities:
                cols.update(text_stats(f"txt_{col}", text_all[col]))
    if "text" in modalities and both is not None:
        for col in text_in_tabular:
            cols[f"txt__{col}"] = both[col].astype(object).where(both[col].notna(), "").astype(str)
    if "image" in modalities and "image" in data.train:
        img_all = pd.concat([data.train["image"], data.test["image"]], ignore_index=True)
        for col in img_all.columns:
            cols[f"img__{col}"] = img_all[col]
    frame = pd.DataFrame(cols) if cols else pd.DataFrame(index=pd.RangeIndex(n_train + data.n_test))
    # Derived numeric columns that hold one value everywhere carry nothing.
    constant = [
        c for c in frame.columns if frame[c].dtype == "float32" and frame[c].nunique(dropna=False) <= 1
    ]
    frame = frame.drop(columns=constant)
    mapping = dict(zip(frame.columns, sanitize_names(list(frame.columns))))
    frame = frame.rename(columns=mapping)
    interaction_columns = [mapping[c] for c in interaction_columns if c in mapping]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = frame.iloc[:n_train].reset_index(drop=True)
        test = frame.iloc[n_train:].reset_index(drop=True)
    te_clean = {mapping.get(c, sanitize_names([c])[0]): v for c, v in te_codes.items()}
    return RecipeFeatures(
        recipe,
        train,
        test,
        _model_targets(data),
        data.transform.kind in ("binary", "multiclass", "multilabel"),
        te_clean,
        interaction_columns,
        seed,
    )
