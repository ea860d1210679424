"""Text columns (``txt__*``) as word and character TF-IDF: a linear model on top (``tfidf_linear``),
NB-SVM (``nbsvm``: TF-IDF scaled by naive-Bayes log-count ratios, then logistic regression; one-vs-rest
for several classes and labels) and multinomial naive Bayes (``tfidf_nb``: poorly calibrated alone, but
errors unlike the linear models', which is what a stacker feeds on)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp_sparse

from medalist.errors import CheckError
from medalist.solve.models.base import Family, SubProblem, tabular_only
from medalist.solve.models.sk import (
    LinearHeadFamily,
    categories_as_strings,
    class_outputs,
    predict_rows,
    tabular_preprocessor,
)
from medalist.solve.types import ModelTask

TEXT_PREFIX = "txt__"


def text_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if str(c).startswith(TEXT_PREFIX)]


Blocks = tuple[Any, Any, Any]  # (train, valid, test) matrices of one feature block


def tfidf_defaults() -> dict[str, Any]:
    """The TF-IDF parameters ``tfidf_blocks`` reads, at their defaults."""
    return {
        "word_ngram_max": 2,
        "char_ngram_max": 5,
        "max_features_word": 200_000,
        "max_features_char": 300_000,
        "min_df": 2,
        "use_char": True,
    }


def tfidf_space() -> dict[str, Any]:
    """The search space of the TF-IDF parameters."""
    return {
        "word_ngram_max": ("int", 1, 3),
        "char_ngram_max": ("int", 3, 6),
        "min_df": ("int", 1, 5),
        "use_char": ("cat", [True, False]),
    }


def tfidf_blocks(
    X_train: pd.DataFrame, X_valid: pd.DataFrame, X_test: pd.DataFrame, params: dict[str, Any], family: str
) -> list[Blocks]:
    """Word 1..``word_ngram_max``-gram (+ char_wb 2..``char_ngram_max``-gram when ``use_char``) TF-IDF per
    text column, fitted on the training rows; raises when the frame has no text column."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = text_columns(X_train)
    if not texts:
        raise CheckError(f"{family} needs text columns (txt__*); prepare features with modality 'text'")
    blocks: list[Blocks] = []
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
    return blocks


def tabular_block(X_train: pd.DataFrame, X_valid: pd.DataFrame, X_test: pd.DataFrame) -> Blocks | None:
    """Scaled numerics + one-hot categories of the tabular columns as sparse matrices (None without any)."""
    tab = tabular_only(X_train)
    if not tab.shape[1]:
        return None
    pre = tabular_preprocessor(categories_as_strings(tab))
    tr = pre.fit_transform(categories_as_strings(tab))
    va = pre.transform(categories_as_strings(tabular_only(X_valid)))
    te = pre.transform(categories_as_strings(tabular_only(X_test)))
    return (
        sp_sparse.csr_matrix(tr, dtype=np.float32),
        sp_sparse.csr_matrix(va, dtype=np.float32),
        sp_sparse.csr_matrix(te, dtype=np.float32),
    )


def stack_blocks(blocks: list[Blocks]) -> tuple[Any, Any, Any]:
    """The (train, valid, test) blocks side by side, as CSR matrices."""
    train, valid, test = (sp_sparse.hstack([b[i] for b in blocks], format="csr") for i in range(3))
    return train, valid, test


class TfidfLinearFamily(LinearHeadFamily):
    """Word 1-2-gram + char 2-5-gram TF-IDF per text column (+ scaled tabular columns) -> logistic / Ridge."""

    name = "tfidf_linear"
    modalities = ("text", "tabular")
    raw_columns = True
    packages = ("sklearn",)

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            "C": 4.0,
            "alpha": 1.0,
            **tfidf_defaults(),
            "use_tabular": True,
            "max_iter": 2000,
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        space = tfidf_space()
        if task.is_classification:
            space["C"] = ("logfloat", 0.1, 100.0)
        else:
            space["alpha"] = ("logfloat", 0.01, 100.0)
        return space

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        """Fit the vectorisers on the training rows once for all sub-problems."""
        blocks = tfidf_blocks(X_train, X_valid, X_test, params, self.name)
        if params["use_tabular"]:
            tab = tabular_block(X_train, X_valid, X_test)
            if tab is not None:
                blocks.append(tab)
        return stack_blocks(blocks)


class NBSVMFamily(Family):
    """NB-SVM (Wang & Manning, 2012) in its logistic form: per binary sub-problem (one-vs-rest for classes),
    features x are scaled by r = log((p / |p|_1) / (q / |q|_1)), with p and q the smoothed feature sums of
    the positive and negative rows; then an L2 logistic regression. Scaled tabular columns are appended
    unweighted. Classification only."""

    name = "nbsvm"
    modalities = ("text", "tabular")
    raw_columns = True
    packages = ("sklearn",)
    classification_only = True

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            "C": 8.0,
            "nb_alpha": 0.1,  # TF-IDF values are small: a count-scale alpha of 1 would swamp the ratios
            **tfidf_defaults(),
            "use_tabular": True,
            "max_iter": 1000,
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "C": ("logfloat", 0.5, 50.0),
            "nb_alpha": ("logfloat", 0.01, 1.0),
            **tfidf_space(),
        }

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        """(text TF-IDF, tabular block or None) per split: the text part is NB-weighted per sub-problem."""
        blocks = tfidf_blocks(X_train, X_valid, X_test, params, self.name)
        text = stack_blocks(blocks)
        tab = tabular_block(X_train, X_valid, X_test) if params["use_tabular"] else None
        return tuple((text[i], tab[i] if tab is not None else None) for i in range(3))  # type: ignore[return-value]

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
        if sp.kind == "binary":
            return self._binary(X_train, sp.y.astype(int), X_valid, X_test, params, seed)
        pv = np.zeros((X_valid[0].shape[0], sp.n_classes))
        pt = np.zeros((X_test[0].shape[0], sp.n_classes))
        for k in range(sp.n_classes):
            pv[:, k], pt[:, k] = self._binary(X_train, (sp.y == k).astype(int), X_valid, X_test, params, seed)
        for p in (pv, pt):
            p += 1e-9
            p /= p.sum(axis=1, keepdims=True)
        return pv, pt

    def _binary(
        self, X_train: Any, y: np.ndarray, X_valid: Any, X_test: Any, params: dict[str, Any], seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.linear_model import LogisticRegression

        r = nb_ratio(X_train[0], y, float(params["nb_alpha"]))

        def features(part: tuple[Any, Any]) -> Any:
            x = part[0].multiply(r).tocsr()
            return x if part[1] is None else sp_sparse.hstack([x, part[1]], format="csr")

        xtr = features(X_train)
        if len(np.unique(y)) < 2:
            return np.full(X_valid[0].shape[0], float(y[0])), np.full(X_test[0].shape[0], float(y[0]))
        model = LogisticRegression(
            C=float(params["C"]),
            solver="liblinear",
            dual=True,
            max_iter=int(params["max_iter"]),
            random_state=seed,
        )
        model.fit(xtr, y)
        return predict_rows(model.predict_proba, features(X_valid), 2)[:, 1], predict_rows(
            model.predict_proba, features(X_test), 2
        )[:, 1]


def nb_ratio(X: Any, y: np.ndarray, alpha: float) -> np.ndarray:
    """Naive-Bayes log-count ratio per feature (1, n_features) for binary labels ``y``."""
    pos = np.asarray(X[y == 1].sum(axis=0)).ravel() + alpha
    neg = np.asarray(X[y == 0].sum(axis=0)).ravel() + alpha
    return np.log((pos / pos.sum()) / (neg / neg.sum())).astype(np.float32).reshape(1, -1)


class TfidfNBFamily(Family):
    """Multinomial naive Bayes on word + char TF-IDF of the text columns (tabular columns are not used: NB
    needs non-negative counts). Classification only; seconds where the linear families take minutes."""

    name = "tfidf_nb"
    modalities = ("text",)
    raw_columns = True
    packages = ("sklearn",)
    classification_only = True

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            "nb_alpha": 0.2,  # spooky-author-identification 5-fold log loss: 0.03 -> 0.42, 0.1 -> 0.395, 0.3 -> 0.395, 1 -> 0.49
            **tfidf_defaults(),
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "nb_alpha": ("logfloat", 0.003, 1.0),
            **tfidf_space(),
        }

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        blocks = tfidf_blocks(X_train, X_valid, X_test, params, self.name)
        return stack_blocks(blocks)

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
        from sklearn.naive_bayes import MultinomialNB

        model = MultinomialNB(alpha=float(params["nb_alpha"]))
        model.fit(X_train, sp.y.astype(int))  # constant targets and missing classes: handled by the base
        return class_outputs(model, sp, X_valid, X_test)
