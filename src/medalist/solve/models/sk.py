"""scikit-learn families: linear (Ridge / logistic regression), kNN, random forest, extra trees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, QuantileTransformer, StandardScaler

from medalist.solve.models.base import Family, SubProblem, category_columns, threads_for
from medalist.solve.types import ModelTask


def categories_as_strings(X: pd.DataFrame) -> pd.DataFrame:
    """Category columns as plain strings with an explicit missing marker (what OneHotEncoder reads best)."""
    cats = category_columns(X)
    if not cats:
        return X
    out = X.copy()
    for c in cats:
        out[c] = out[c].astype(object).where(out[c].notna(), "__missing__").astype(str).astype(object)
    return out


def numeric_scaler(kind: str, n_rows: int) -> Any:
    if kind == "quantile":
        return QuantileTransformer(
            n_quantiles=max(10, min(1000, n_rows)),
            output_distribution="normal",
            subsample=100_000,
            random_state=0,
        )
    return StandardScaler()


def tabular_preprocessor(
    X: pd.DataFrame, numeric: str = "standard", min_frequency: int = 5
) -> ColumnTransformer:
    """Impute (+ missing indicators) and scale numerics, one-hot categories (rare and unseen levels pooled)."""
    from sklearn.impute import SimpleImputer

    cats = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype) or X[c].dtype == object]
    nums = [c for c in X.columns if c not in cats]
    parts: list[tuple[str, Any, list[str]]] = []
    if nums:
        parts.append(
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    numeric_scaler(numeric, len(X)),
                ),
                nums,
            )
        )
    if cats:
        parts.append(
            (
                "cat",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=min(min_frequency, max(1, len(X) // 100)),
                    max_categories=100,
                    sparse_output=True,
                ),
                cats,
            )
        )
    return ColumnTransformer(parts, sparse_threshold=0.3)


class _SklearnFamily(Family):
    """A family whose estimator is a scikit-learn pipeline built per sub-problem."""

    packages = ("sklearn",)

    def build(self, sp: SubProblem, params: dict[str, Any], X: pd.DataFrame, seed: int) -> Pipeline:
        raise NotImplementedError

    def transform_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        return categories_as_strings(X)

    def fit_one(
        self,
        X_train: pd.DataFrame,
        sp: SubProblem,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        y_valid: np.ndarray | None,
        params: dict[str, Any],
        seed: int,
        task: ModelTask,
    ) -> tuple[np.ndarray, np.ndarray]:
        xtr = self.transform_frame(X_train)
        max_rows = int(params.get("max_train_rows") or 0)
        y = sp.y
        if max_rows and len(xtr) > max_rows:
            rows = np.sort(np.random.default_rng(seed).choice(len(xtr), max_rows, replace=False))
            xtr, y = xtr.iloc[rows], y[rows]
        model = self.build(sp, params, xtr, seed)
        model.fit(xtr, y)
        return _predict(model, self.transform_frame(X_valid), sp), _predict(
            model, self.transform_frame(X_test), sp
        )


def _predict(model: Any, X: pd.DataFrame, sp: SubProblem) -> np.ndarray:
    if not len(X):
        return np.empty((0, sp.n_classes if sp.kind == "multiclass" else 1))
    if sp.kind == "regression":
        return model.predict(X)
    p = model.predict_proba(X)
    return p[:, 1] if sp.kind == "binary" else p


# ---------------------------------------------------------------------------------------- linear
class LinearFamily(_SklearnFamily):
    name = "linear"

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {"C": 1.0, "alpha": 1.0, "numeric": "standard", "max_iter": 2000}

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        if task.is_classification:
            return {"C": ("logfloat", 1e-3, 100.0), "numeric": ("cat", ["standard", "quantile"])}
        return {"alpha": ("logfloat", 1e-3, 1e3), "numeric": ("cat", ["standard", "quantile"])}

    def build(self, sp: SubProblem, params: dict[str, Any], X: pd.DataFrame, seed: int) -> Pipeline:
        return make_pipeline(tabular_preprocessor(X, params["numeric"]), linear_estimator(sp, params, seed))


def linear_estimator(sp: SubProblem, params: dict[str, Any], seed: int) -> Any:
    """Ridge (``alpha``) for values, logistic regression (``C``, ``max_iter``) for classes."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if sp.kind == "regression":
        return Ridge(alpha=float(params["alpha"]), random_state=seed)
    return LogisticRegression(C=float(params["C"]), max_iter=int(params["max_iter"]), random_state=seed)


def predict_rows(fn: Any, X: Any, width: int) -> np.ndarray:
    """``fn(X)``, or an empty (0,) / (0, width) array when ``X`` has no rows."""
    if X.shape[0] == 0:
        return np.empty((0, width)) if width > 1 else np.empty(0)
    return fn(X)


def class_outputs(model: Any, sp: SubProblem, X_valid: Any, X_test: Any) -> tuple[np.ndarray, np.ndarray]:
    """A fitted classifier's probabilities on valid / test: P(positive) for binary, all classes otherwise."""
    width = sp.n_classes if sp.kind == "multiclass" else 2
    pv = predict_rows(model.predict_proba, X_valid, width)
    pt = predict_rows(model.predict_proba, X_test, width)
    return (pv[:, 1], pt[:, 1]) if sp.kind == "binary" else (pv, pt)


class LinearHeadFamily(Family):
    """Ridge / logistic regression (``alpha``, ``C``, ``max_iter``) on the dense or sparse matrices that a
    subclass's ``encode`` derives (TF-IDF, sentence or image embeddings)."""

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
        model = linear_estimator(sp, params, seed)
        model.fit(X_train, sp.y)
        if sp.kind == "regression":
            return predict_rows(model.predict, X_valid, 1), predict_rows(model.predict, X_test, 1)
        return class_outputs(model, sp, X_valid, X_test)


# ---------------------------------------------------------------------------------------- kNN
class KNNFamily(_SklearnFamily):
    name = "knn"

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        k = int(np.clip(round(np.sqrt(max(n_rows, 1)) / 2), 5, 50))
        return {
            "n_neighbors": k,
            "weights": "distance",
            "p": 2,
            "numeric": "quantile",
            "max_train_rows": 100_000,
            "n_threads": threads_for(n_rows),
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "n_neighbors": ("int", 3, 100),
            "weights": ("cat", ["uniform", "distance"]),
            "p": ("cat", [1, 2]),
            "numeric": ("cat", ["standard", "quantile"]),
        }

    def build(self, sp: SubProblem, params: dict[str, Any], X: pd.DataFrame, seed: int) -> Pipeline:
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        k = max(1, min(int(params["n_neighbors"]), len(X)))
        kw = {
            "n_neighbors": k,
            "weights": params["weights"],
            "p": int(params["p"]),
            "n_jobs": int(params["n_threads"]),
        }
        est: Any = KNeighborsRegressor(**kw) if sp.kind == "regression" else KNeighborsClassifier(**kw)
        return make_pipeline(tabular_preprocessor(X, params["numeric"]), est)


# ---------------------------------------------------------------------------------------- forests
class _ForestFamily(_SklearnFamily):
    extra = False

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            "n_estimators": 300 if n_rows < 50_000 else 200,
            "max_features": "sqrt" if task.is_classification else 0.5,
            "min_samples_leaf": 1 if task.is_classification else 2,
            "max_depth": None,
            "max_samples": None if n_rows <= 200_000 else 200_000 / n_rows,
            "n_threads": threads_for(n_rows),
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "max_features": ("cat", ["sqrt", 0.3, 0.5, 0.8, 1.0]),
            "min_samples_leaf": ("int", 1, 20),
            "max_depth": ("cat", [None, 8, 12, 16, 24]),
        }

    def transform_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """Trees read categories as their integer codes; missing values stay NaN (native support)."""
        cats = category_columns(X)
        if not cats:
            return X.astype("float32")
        out = X.copy()
        for c in cats:
            codes = out[c].cat.codes.astype("float32")
            out[c] = codes.where(codes >= 0)
        return out.astype("float32")

    def build(self, sp: SubProblem, params: dict[str, Any], X: pd.DataFrame, seed: int) -> Any:
        from sklearn.ensemble import (
            ExtraTreesClassifier,
            ExtraTreesRegressor,
            RandomForestClassifier,
            RandomForestRegressor,
        )

        reg = sp.kind == "regression"
        if self.extra:
            cls: Any = ExtraTreesRegressor if reg else ExtraTreesClassifier
        else:
            cls = RandomForestRegressor if reg else RandomForestClassifier
        max_samples = params.get("max_samples")
        return cls(
            n_estimators=int(params["n_estimators"]),
            max_features=params["max_features"],
            min_samples_leaf=int(params["min_samples_leaf"]),
            max_depth=params["max_depth"],
            bootstrap=bool(max_samples) or not self.extra,
            max_samples=max_samples,
            n_jobs=int(params["n_threads"]),
            random_state=seed,
        )


class RFFamily(_ForestFamily):
    name = "rf"


class ETFamily(_ForestFamily):
    name = "et"
    extra = True
