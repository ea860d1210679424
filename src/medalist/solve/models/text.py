"""Text columns (``txt__*``) as word and character TF-IDF, with a linear model on top."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp_sparse

from medalist.errors import CheckError
from medalist.solve.models.base import Family, SubProblem, tabular_only
from medalist.solve.models.sk import categories_as_strings, tabular_preprocessor
from medalist.solve.types import ModelTask

TEXT_PREFIX = "txt__"


def text_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if str(c).startswith(TEXT_PREFIX)]


class TfidfLinearFamily(Family):
    """Word 1-2-gram + char 2-5-gram TF-IDF per text column (+ scaled tabular columns) -> logistic / Ridge."""

    name = "tfidf_linear"
    modalities = ("text", "tabular")
    packages = ("sklearn",)

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            "C": 4.0,
            "alpha": 1.0,
            "word_ngram_max": 2,
            "char_ngram_max": 5,
            "max_features_word": 200_000,
            "max_features_char": 300_000,
            "min_df": 2,
            "use_char": True,
            "use_tabular": True,
            "max_iter": 2000,
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        space: dict[str, Any] = {
            "word_ngram_max": ("int", 1, 3),
            "char_ngram_max": ("int", 3, 6),
            "min_df": ("int", 1, 5),
            "use_char": ("cat", [True, False]),
        }
        if task.is_classification:
            space["C"] = ("logfloat", 0.1, 100.0)
        else:
            space["alpha"] = ("logfloat", 0.01, 100.0)
        return space

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return X

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        """Fit the vectorisers on the training rows once for all sub-problems."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = text_columns(X_train)
        if not texts:
            raise CheckError(
                "tfidf_linear needs text columns (txt__*); prepare features with modality 'text'"
            )
        blocks: list[tuple[Any, Any, Any]] = []
        min_df = int(params["min_df"]) if len(X_train) >= 50 else 1
        for col in texts:
            vecs = [
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=(1, int(params["word_ngram_max"])),
                    min_df=min_df,
                    max_features=int(params["max_features_word"]),
                    sublinear_tf=True,
                    strip_accents="unicode",
                    token_pattern=r"(?u)\b\w+\b",
                    dtype=np.float32,
                )
            ]
            if params["use_char"]:
                vecs.append(
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(2, int(params["char_ngram_max"])),
                        min_df=min_df,
                        max_features=int(params["max_features_char"]),
                        sublinear_tf=True,
                        dtype=np.float32,
                    )
                )
            for vec in vecs:
                tr = vec.fit_transform(X_train[col].astype(str))
                blocks.append(
                    (tr, vec.transform(X_valid[col].astype(str)), vec.transform(X_test[col].astype(str)))
                )
        tab = tabular_only(X_train)
        if params["use_tabular"] and tab.shape[1]:
            pre = tabular_preprocessor(categories_as_strings(tab))
            tr = pre.fit_transform(categories_as_strings(tab))
            va = pre.transform(categories_as_strings(tabular_only(X_valid)))
            te = pre.transform(categories_as_strings(tabular_only(X_test)))
            blocks.append(tuple(sp_sparse.csr_matrix(b, dtype=np.float32) for b in (tr, va, te)))
        out = tuple(sp_sparse.hstack([b[i] for b in blocks], format="csr") for i in range(3))
        return out[0], out[1], out[2]

    def fit_one(
        self,
        X_train: Any,
        sp: SubProblem,
        X_valid: Any,
        X_test: Any,
        y_valid: np.ndarray | None,
        params: dict[str, Any],
        seed: int,
        task: ModelTask,
    ) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.linear_model import LogisticRegression, Ridge

        if sp.kind == "regression":
            model: Any = Ridge(alpha=float(params["alpha"]), random_state=seed)
            model.fit(X_train, sp.y)
            return _rows(model.predict, X_valid, 1), _rows(model.predict, X_test, 1)
        model = LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]), random_state=seed)
        model.fit(X_train, sp.y)
        width = sp.n_classes if sp.kind == "multiclass" else 2
        pv = _rows(model.predict_proba, X_valid, width)
        pt = _rows(model.predict_proba, X_test, width)
        return (pv[:, 1], pt[:, 1]) if sp.kind == "binary" else (pv, pt)


def _rows(fn: Any, X: Any, width: int) -> np.ndarray:
    if X.shape[0] == 0:
        return np.empty((0, width)) if width > 1 else np.empty(0)
    return fn(X)
