"""Feature recipes: from a task's input maps to the frames the model zoo fits, split per fold.

Fold-independent steps (type casts, ordinal categories, count encodings, datetime parts, text statistics,
missing indicators) are computed once on train + test together: they never look at the target. Steps that
look at the target are fitted inside each fold on its training rows only: target encoding (smoothed, with
an inner out-of-fold pass on the training part) and the choice of numeric columns to combine in
``interactions`` (mutual information on the fold's training rows).

Column naming: tabular features keep their (sanitised) names, derived columns get ``<col>__<what>``; raw
text for models that read text is ``txt__<col>``; image columns are ``img__<col>`` (e.g. ``img__path``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression
from sklearn.model_selection import KFold

from medalist.errors import InputError
from medalist.setup.data import TaskData
from medalist.setup.profile import parse_datetime, profile_column

RECIPES: dict[str, str] = {
    "base": "numerics as float, categoricals as pandas categories, datetime parts, booleans 0/1, text statistics",
    "count": "base + count (frequency) encodings of categoricals and repeated numeric values",
    "target_enc": "base + smoothed target encoding of categoricals fitted inside each fold (one column per class)",
    "missing": "base + missing-value indicators and a per-row missing count",
    "interactions": "base + products, ratios and differences of the top numeric columns (chosen per fold)",
    "rich": "base + count + target_enc + missing + interactions",
}

MAX_CATEGORIES = 1000  # more distinct values than this -> high-cardinality (count / target encoded only)
TOP_INTERACTION_COLUMNS = 5  # 5 columns -> 10 pairs x 3 operations = 30 new columns
TE_SMOOTHING = 10.0
TE_INNER_FOLDS = 5
MI_SAMPLE_ROWS = 4000
MI_MAX_COLUMNS = 40


@dataclass
class _Roles:
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    high_card: list[str] = field(default_factory=list)
    datetime: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


def _canon(values: pd.Series) -> pd.Series:
    """Values as canonical strings (1, 1.0 and '1' agree), NaN kept."""
    present = values.notna()
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        v = values.astype("float64")
        out = pd.Series(np.nan, index=values.index, dtype=object)
        kept = v[present]
        if np.all(np.mod(kept.to_numpy(), 1) == 0):
            out[present] = kept.astype(np.int64).astype(str).to_numpy()
        else:
            out[present] = [str(int(x)) if float(x).is_integer() else repr(float(x)) for x in kept]
        return out
    if pd.api.types.is_string_dtype(values) and values.dtype != object:
        return values.astype(object).where(present, np.nan)

    def one(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT:
            return np.nan
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v))
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return str(int(v)) if float(v).is_integer() else repr(float(v))
        return str(v)

    return pd.Series([one(v) for v in values.astype(object).tolist()], index=values.index, dtype=object)


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


def _to_float(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("float32")
    if pd.api.types.is_numeric_dtype(s):
        return pd.to_numeric(s, errors="coerce").astype("float32")
    low = s.astype("string").str.strip().str.lower()
    mapped = low.map({"true": 1.0, "false": 0.0})
    num = pd.to_numeric(low, errors="coerce")
    return num.fillna(mapped).astype("float32")


def _datetime_parts(name: str, s: pd.Series, n_train: int) -> dict[str, pd.Series]:
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


def _text_stats(name: str, s: pd.Series) -> dict[str, pd.Series]:
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


def _string_parts(name: str, s: pd.Series) -> dict[str, pd.Series]:
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
                out[f"{name}__p{i}_count"] = _counts(part)
            else:
                nunique = part.nunique(dropna=True)
                if nunique <= 50:
                    codes = pd.Categorical(part)
                    out[f"{name}__p{i}"] = pd.Series(codes, index=s.index)
                out[f"{name}__p{i}_count"] = _counts(part)
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


def _counts(values: pd.Series) -> pd.Series:
    """How often each value occurs in the column (NaN where the value is missing)."""
    freq = values.map(values.value_counts(dropna=True))
    return freq.astype("float32")


def _sanitize(names: list[str]) -> list[str]:
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


class RecipeFeatures:
    """The frames of one recipe; ``split`` adds the fold-dependent columns for one fold."""

    def __init__(
        self,
        recipe: str,
        train: pd.DataFrame,
        test: pd.DataFrame,
        targets: np.ndarray,
        is_classification: bool,
        te_codes: dict[str, np.ndarray],
        interaction_columns: list[str],
        seed: int,
    ) -> None:
        self.recipe = recipe
        self.train = train
        self.test = test
        self._targets = targets
        self._is_classification = is_classification
        self._te_codes = te_codes  # column -> integer codes over train + test (-1 = missing)
        self._interaction_columns = interaction_columns
        self._seed = seed

    @property
    def columns(self) -> list[str]:
        """Fold-independent columns (fold-dependent ones are appended by ``split``)."""
        return list(self.train.columns)

    def split(
        self, train_idx: np.ndarray, valid_idx: np.ndarray
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        train_idx = np.asarray(train_idx, dtype=int)
        valid_idx = np.asarray(valid_idx, dtype=int)
        x_tr = self.train.iloc[train_idx].reset_index(drop=True)
        x_va = self.train.iloc[valid_idx].reset_index(drop=True)
        x_te = self.test.reset_index(drop=True)
        extra_tr: dict[str, np.ndarray] = {}
        extra_va: dict[str, np.ndarray] = {}
        extra_te: dict[str, np.ndarray] = {}
        if self._te_codes:
            self._target_encode(train_idx, valid_idx, extra_tr, extra_va, extra_te)
        if self._interaction_columns:
            self._interactions(train_idx, x_tr, x_va, x_te, extra_tr, extra_va, extra_te)
        if not extra_tr:
            return x_tr, x_va, x_te.copy()
        return (
            pd.concat([x_tr, pd.DataFrame(extra_tr, index=x_tr.index)], axis=1),
            pd.concat([x_va, pd.DataFrame(extra_va, index=x_va.index)], axis=1),
            pd.concat([x_te, pd.DataFrame(extra_te, index=x_te.index)], axis=1),
        )

    # ---------------------------------------------------------------- target encoding
    def _target_encode(
        self,
        train_idx: np.ndarray,
        valid_idx: np.ndarray,
        out_tr: dict[str, np.ndarray],
        out_va: dict[str, np.ndarray],
        out_te: dict[str, np.ndarray],
    ) -> None:
        n_train_all = len(self.train)
        t = self._targets[train_idx]
        k = t.shape[1]
        inner = KFold(
            n_splits=min(TE_INNER_FOLDS, max(2, len(train_idx))), shuffle=True, random_state=self._seed
        )
        inner_splits = list(inner.split(train_idx)) if len(train_idx) >= 2 else []
        prior = t.mean(axis=0) if len(t) else np.zeros(k)
        for col, codes in self._te_codes.items():
            n_codes = int(codes.max()) + 2  # code -1 (missing) is shifted to 0
            c_all = codes + 1
            c_tr = c_all[train_idx]
            enc_tr = np.empty((len(train_idx), k), dtype=np.float32)
            for fit_rows, apply_rows in inner_splits:
                enc_tr[apply_rows] = _smoothed_means(
                    c_tr[fit_rows], t[fit_rows], c_tr[apply_rows], n_codes, prior
                )
            if not inner_splits:
                enc_tr[:] = _smoothed_means(c_tr, t, c_tr, n_codes, prior)
            enc_va = _smoothed_means(c_tr, t, c_all[valid_idx], n_codes, prior)
            enc_te = _smoothed_means(c_tr, t, c_all[n_train_all:], n_codes, prior)
            for j in range(k):
                name = f"{col}__te" if k == 1 else f"{col}__te{j}"
                out_tr[name], out_va[name], out_te[name] = enc_tr[:, j], enc_va[:, j], enc_te[:, j]

    # ---------------------------------------------------------------- interactions
    def _interactions(
        self,
        train_idx: np.ndarray,
        x_tr: pd.DataFrame,
        x_va: pd.DataFrame,
        x_te: pd.DataFrame,
        out_tr: dict[str, np.ndarray],
        out_va: dict[str, np.ndarray],
        out_te: dict[str, np.ndarray],
    ) -> None:
        cols = self._top_numeric(train_idx, x_tr)
        for i, a in enumerate(cols):
            for b in cols[i + 1 :]:
                for frame, out in ((x_tr, out_tr), (x_va, out_va), (x_te, out_te)):
                    va = frame[a].to_numpy(dtype=np.float64)
                    vb = frame[b].to_numpy(dtype=np.float64)
                    with np.errstate(all="ignore"):
                        ratio = np.where(vb != 0, va / np.where(vb != 0, vb, 1.0), np.nan)
                    out[f"{a}__x__{b}"] = (va * vb).astype(np.float32)
                    out[f"{a}__div__{b}"] = ratio.astype(np.float32)
                    out[f"{a}__minus__{b}"] = (va - vb).astype(np.float32)

    def _top_numeric(self, train_idx: np.ndarray, x_tr: pd.DataFrame) -> list[str]:
        cols = self._interaction_columns
        if len(cols) <= TOP_INTERACTION_COLUMNS:
            return cols
        rng = np.random.default_rng(self._seed)
        rows = np.arange(len(train_idx))
        if len(rows) > MI_SAMPLE_ROWS:
            rows = np.sort(rng.choice(rows, MI_SAMPLE_ROWS, replace=False))
        x = x_tr[cols].iloc[rows].astype("float64")
        x = x.fillna(x.median()).fillna(0.0).to_numpy()
        t = self._targets[train_idx][rows]
        score = np.zeros(len(cols))
        if self._is_classification and t.shape[1] > 1 and np.allclose(t.sum(axis=1), 1.0):
            t = t.argmax(axis=1)[:, None]  # one-hot classes: one MI against the class, not one per class
        if len(cols) > MI_MAX_COLUMNS:  # a fast univariate F-test narrows wide tables before MI
            from sklearn.feature_selection import f_classif, f_regression

            f_test = f_classif if self._is_classification else f_regression
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f_score = np.nan_to_num(
                    f_test(x, t[:, 0].astype(int) if self._is_classification else t[:, 0])[0]
                )
            keep = np.sort(np.argsort(-f_score, kind="stable")[:MI_MAX_COLUMNS])
            cols, x = [cols[i] for i in keep], x[:, keep]
        score = np.zeros(len(cols))
        for j in range(t.shape[1]):
            if self._is_classification:
                score += mutual_info_classif(x, t[:, j].astype(int), random_state=self._seed)
            else:
                score += mutual_info_regression(x, t[:, j], random_state=self._seed)
        order = np.argsort(-score, kind="stable")[:TOP_INTERACTION_COLUMNS]
        return [cols[i] for i in sorted(order)]


def _smoothed_means(
    codes_fit: np.ndarray, t_fit: np.ndarray, codes_apply: np.ndarray, n_codes: int, prior: np.ndarray
) -> np.ndarray:
    """(count * mean + m * prior) / (count + m) per code, for each target column.

    The prior is the whole training part's mean (not the inner fold's), so categories seen once carry no
    trace of the inner split."""
    counts = np.bincount(codes_fit, minlength=n_codes).astype(float)
    out = np.empty((len(codes_apply), t_fit.shape[1]), dtype=np.float32)
    for j in range(t_fit.shape[1]):
        sums = np.bincount(codes_fit, weights=t_fit[:, j], minlength=n_codes)
        enc = (sums + TE_SMOOTHING * prior[j]) / (counts + TE_SMOOTHING)
        out[:, j] = enc[codes_apply]
    return out


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
                cols[col] = _to_float(s)
                if steps.interactions and s.nunique(dropna=True) > 2:
                    interaction_columns.append(col)
            elif col in roles.categorical:
                canon = _canon(s)
                cats = sorted(canon.iloc[:n_train].dropna().unique())
                cols[col] = pd.Series(
                    pd.Categorical(canon.where(canon.isin(cats)), categories=cats), index=both.index
                )
            elif col in roles.high_card:
                cols[f"{col}__count"] = _counts(_canon(s))
                cols.update(_string_parts(col, s))
            elif col in roles.datetime:
                cols.update(_datetime_parts(col, s, n_train))
            elif col in roles.text:
                cols.update(_text_stats(col, s))
                text_in_tabular.append(col)
        if steps.count:
            for col in roles.categorical:
                cols[f"{col}__count"] = _counts(_canon(both[col]))
            for col in roles.numeric:
                nunique = both[col].nunique(dropna=True)
                if 2 < nunique <= 0.5 * len(both):
                    cols[f"{col}__count"] = _counts(both[col])
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
                codes, _ = pd.factorize(_canon(both[col]), use_na_sentinel=True)
                te_codes[col] = codes.astype(np.int64)
    if "text" in data.train:
        text_all = pd.concat([data.train["text"], data.test["text"]], ignore_index=True)
        for col in text_all.columns:
            if "text" in modalities:
                cols[f"txt__{col}"] = (
                    text_all[col].astype(object).where(text_all[col].notna(), "").astype(str)
                )
            elif "tabular" in modalities:
                cols.update(_text_stats(f"txt_{col}", text_all[col]))
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
    mapping = dict(zip(frame.columns, _sanitize(list(frame.columns))))
    frame = frame.rename(columns=mapping)
    interaction_columns = [mapping[c] for c in interaction_columns if c in mapping]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train = frame.iloc[:n_train].reset_index(drop=True)
        test = frame.iloc[n_train:].reset_index(drop=True)
    te_clean = {mapping.get(c, _sanitize([c])[0]): v for c, v in te_codes.items()}
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
