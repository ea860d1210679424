"""Fold-dependent features: the frames of one recipe, and the columns that look at the target, fitted on
each fold's training rows only — smoothed target encoding (with an inner out-of-fold pass on the training
part) and the numeric columns chosen for ``interactions`` (mutual information on the fold's rows)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression
from sklearn.model_selection import KFold

TOP_INTERACTION_COLUMNS = 5  # 5 columns -> 10 pairs x 3 operations = 30 new columns
TE_SMOOTHING = 10.0
TE_INNER_FOLDS = 5
MI_SAMPLE_ROWS = 4000
MI_MAX_COLUMNS = 40

_Splits = tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]  # train, valid, test


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
        frames = (
            self.train.iloc[train_idx].reset_index(drop=True),
            self.train.iloc[valid_idx].reset_index(drop=True),
            self.test.reset_index(drop=True),
        )
        extras: _Splits = ({}, {}, {})  # fold-dependent columns of the train, valid and test rows
        if self._te_codes:
            self._target_encode(train_idx, valid_idx, extras)
        if self._interaction_columns:
            self._interactions(train_idx, frames, extras)
        if not extras[0]:
            return frames[0], frames[1], frames[2].copy()
        x_tr, x_va, x_te = (
            pd.concat([x, pd.DataFrame(extra, index=x.index)], axis=1) for x, extra in zip(frames, extras)
        )
        return x_tr, x_va, x_te

    # ---------------------------------------------------------------- target encoding
    def _target_encode(self, train_idx: np.ndarray, valid_idx: np.ndarray, extras: _Splits) -> None:
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
                for out, enc in zip(extras, (enc_tr, enc_va, enc_te)):
                    out[name] = enc[:, j]

    # ---------------------------------------------------------------- interactions
    def _interactions(self, train_idx: np.ndarray, frames: tuple[pd.DataFrame, ...], extras: _Splits) -> None:
        cols = self._top_numeric(train_idx, frames[0])
        for i, a in enumerate(cols):
            for b in cols[i + 1 :]:
                for frame, out in zip(frames, extras):
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
