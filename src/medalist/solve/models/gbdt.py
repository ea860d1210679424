"""Gradient-boosted trees: LightGBM, XGBoost, CatBoost.

Common parameters beside each library's own: ``n_estimators`` (most rounds), ``early_stopping_rounds``
(patience on the stopping rows: the fold's validation rows when their labels are given, else 10% of the
training rows) and ``fixed_rounds`` (rounds when there is nothing to stop on: small data without
validation labels).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from medalist.solve.models.base import Family, SubProblem, category_columns, stopping_set, threads_for
from medalist.solve.types import ModelTask


def _size_defaults(n_rows: int) -> dict[str, Any]:
    if n_rows < 1000:
        return {"learning_rate": 0.03, "leaves": 15, "min_leaf": 10, "fixed_rounds": 300}
    if n_rows < 20000:
        return {"learning_rate": 0.05, "leaves": 31, "min_leaf": 20, "fixed_rounds": 600}
    return {"learning_rate": 0.05, "leaves": 63, "min_leaf": 40, "fixed_rounds": 1200}


# Parameters medalist reads itself; the others go to the library.
_CONTROL = frozenset({"n_estimators", "early_stopping_rounds", "fixed_rounds", "n_threads", "max_seconds"})


def _control_defaults(n_rows: int) -> dict[str, Any]:
    """The defaults of the parameters in ``_CONTROL``."""
    return {
        "max_seconds": 0.0,  # per fold; 0 = no bound (the solve loop sets one at run time)
        "n_estimators": 2000,
        "early_stopping_rounds": 100,
        "fixed_rounds": _size_defaults(n_rows)["fixed_rounds"],
        "n_threads": threads_for(n_rows),
    }


def _time_bound(params: dict[str, Any]) -> float:
    """Seconds a fold may boost for; 0 for no bound."""
    return float(params.get("max_seconds") or 0.0)


def _stopping(
    X_train: pd.DataFrame,
    sp: SubProblem,
    X_valid: pd.DataFrame,
    y_valid: np.ndarray | None,
    params: dict[str, Any],
    seed: int,
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame | None, np.ndarray | None, bool]:
    """``stopping_set``'s (fit X, fit y, stop X, stop y), and whether to stop early on the stop rows."""
    x_fit, y_fit, x_stop, y_stop = stopping_set(X_train, sp, X_valid, y_valid, seed)
    stopping = x_stop is not None and int(params.get("early_stopping_rounds") or 0) > 0
    return x_fit, y_fit, x_stop, y_stop, stopping


# Stopping metrics per library: AUC, log loss, multiclass log loss, absolute error, squared error.
_LGB_METRICS = ("auc", "binary_logloss", "multi_logloss", "l1", "l2")
_XGB_METRICS = ("auc", "logloss", "mlogloss", "mae", "rmse")
_CB_METRICS = ("AUC", "Logloss", "MultiClass", "MAE", "RMSE")


def _eval_metric(sp: SubProblem, task: ModelTask, names: tuple[str, str, str, str, str]) -> str:
    """The library's stopping metric among its ``names`` that fits the sub-problem and the competition
    metric."""
    auc, logloss, multi, absolute, squared = names
    if sp.kind == "binary":
        return auc if "auc" in task.metric or "gini" in task.metric else logloss
    if sp.kind == "multiclass":
        return multi
    return absolute if task.metric in ("mae", "medae") else squared


def _rounds(params: dict[str, Any], stopping: bool) -> int:
    return int(params["n_estimators"] if stopping else params.get("fixed_rounds", params["n_estimators"]))


# ---------------------------------------------------------------------------------------- LightGBM
class LGBMFamily(Family):
    name = "lgbm"
    packages = ("lightgbm",)

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        d = _size_defaults(n_rows)
        return {
            "learning_rate": d["learning_rate"],
            "num_leaves": d["leaves"],
            "min_child_samples": d["min_leaf"],
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l1": 0.0,
            "lambda_l2": 1.0,
            "max_depth": -1,
            "cat_smooth": 10.0,
            **_control_defaults(n_rows),
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "learning_rate": ("logfloat", 0.01, 0.2),
            "num_leaves": ("int", 7, 255),
            "min_child_samples": ("int", 5, 200),
            "feature_fraction": ("float", 0.3, 1.0),
            "bagging_fraction": ("float", 0.5, 1.0),
            "lambda_l1": ("logfloat", 1e-3, 10.0),
            "lambda_l2": ("logfloat", 1e-3, 30.0),
            "max_depth": ("cat", [-1, 4, 6, 8, 12]),
            "cat_smooth": ("logfloat", 1.0, 100.0),
        }

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
        import lightgbm as lgb

        lib = {k: v for k, v in params.items() if k not in _CONTROL}
        lib.update(
            objective=_lgb_objective(sp),
            metric=_eval_metric(sp, task, _LGB_METRICS),
            num_threads=int(params["n_threads"]),
            verbose=-1,
            seed=seed,
            deterministic=True,
            force_col_wise=True,
        )
        if sp.kind == "multiclass":
            lib["num_class"] = sp.n_classes
        x_fit, y_fit, x_stop, y_stop, stopping = _stopping(X_train, sp, X_valid, y_valid, params, seed)
        train_set = lgb.Dataset(x_fit, y_fit, free_raw_data=True)
        kwargs: dict[str, Any] = {"callbacks": []}
        if _time_bound(params) > 0:
            kwargs["callbacks"].append(_LGBMTimeBound(_time_bound(params)))
        if stopping:
            kwargs["valid_sets"] = [lgb.Dataset(x_stop, y_stop, reference=train_set)]
            kwargs["callbacks"].append(
                lgb.early_stopping(int(params["early_stopping_rounds"]), verbose=False)
            )
        booster = lgb.train(lib, train_set, num_boost_round=_rounds(params, stopping), **kwargs)
        it = booster.best_iteration if stopping and booster.best_iteration > 0 else None
        pv = booster.predict(X_valid, num_iteration=it) if len(X_valid) else np.empty((0, _width(sp)))
        pt = booster.predict(X_test, num_iteration=it) if len(X_test) else np.empty((0, _width(sp)))
        return pv, pt


def _width(sp: SubProblem) -> int:
    return sp.n_classes if sp.kind == "multiclass" else 1


def _lgb_objective(sp: SubProblem) -> str:
    return {"binary": "binary", "multiclass": "multiclass"}.get(sp.kind, "regression")


class LGBMOnFeaturesFamily(Family):
    """LightGBM (its parameters, with ``feature_fraction`` 0.5, and its search space) on the features a
    subclass's ``encode`` derives; ``OWN`` holds the subclass's own parameters with their defaults, kept
    from LightGBM."""

    OWN: Mapping[str, Any] = MappingProxyType({})

    def __init__(self) -> None:
        super().__init__()
        self.lgbm = LGBMFamily()

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        p = self.lgbm.default_params(task, n_rows)
        p.update(feature_fraction=0.5, **self.OWN)
        return p

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return self.lgbm.search_space(task)

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
        lib = {k: v for k, v in params.items() if k not in self.OWN}
        return self.lgbm.fit_one(X_train, sp, X_valid, X_test, y_valid, lib, seed, task)


# ---------------------------------------------------------------------------------------- XGBoost
class XGBFamily(Family):
    name = "xgb"
    packages = ("xgboost",)

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        d = _size_defaults(n_rows)
        return {
            "eta": d["learning_rate"],
            "max_depth": 4 if n_rows < 1000 else 6,
            "min_child_weight": 1.0,
            "subsample": 0.8,
            "colsample_bytree": 0.8,
            "lambda": 1.0,
            "alpha": 0.0,
            "max_cat_to_onehot": 4,
            "max_bin": 256,
            **_control_defaults(n_rows),
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "eta": ("logfloat", 0.01, 0.2),
            "max_depth": ("int", 3, 10),
            "min_child_weight": ("logfloat", 0.5, 50.0),
            "subsample": ("float", 0.5, 1.0),
            "colsample_bytree": ("float", 0.3, 1.0),
            "lambda": ("logfloat", 1e-3, 30.0),
            "alpha": ("logfloat", 1e-3, 10.0),
        }

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
        import xgboost as xgb

        lib = {k: v for k, v in params.items() if k not in _CONTROL}
        lib.update(
            objective={"binary": "binary:logistic", "multiclass": "multi:softprob"}.get(
                sp.kind, "reg:squarederror"
            ),
            eval_metric=_eval_metric(sp, task, _XGB_METRICS),
            tree_method="hist",
            nthread=int(params["n_threads"]),
            seed=seed,
            verbosity=0,
        )
        if sp.kind == "multiclass":
            lib["num_class"] = sp.n_classes
        x_fit, y_fit, x_stop, y_stop, stopping = _stopping(X_train, sp, X_valid, y_valid, params, seed)
        dfit = xgb.DMatrix(x_fit, y_fit, enable_categorical=True, nthread=int(params["n_threads"]))
        # early stopping first: XGBoost stops asking the callbacks after the first that says stop
        callbacks: list[Any] = []
        kwargs: dict[str, Any] = {"verbose_eval": False, "callbacks": callbacks}
        if stopping:
            dstop = xgb.DMatrix(x_stop, y_stop, enable_categorical=True, nthread=int(params["n_threads"]))
            kwargs["evals"] = [(dstop, "stop")]
            callbacks.append(xgb.callback.EarlyStopping(rounds=int(params["early_stopping_rounds"])))
        if _time_bound(params) > 0:
            callbacks.append(_xgb_time_bound(_time_bound(params)))
        booster = xgb.train(lib, dfit, num_boost_round=_rounds(params, stopping), **kwargs)
        rng = (0, booster.best_iteration + 1) if stopping else (0, 0)

        def predict(X: pd.DataFrame) -> np.ndarray:
            if not len(X):
                return np.empty((0, _width(sp)))
            return booster.predict(
                xgb.DMatrix(X, enable_categorical=True, nthread=int(params["n_threads"])), iteration_range=rng
            )

        return predict(X_valid), predict(X_test)


# ---------------------------------------------------------------------------------------- CatBoost
class CatBoostFamily(Family):
    name = "catboost"
    packages = ("catboost",)

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        d = _size_defaults(n_rows)
        return {
            "learning_rate": d["learning_rate"] * 1.5,
            "depth": 6,
            "l2_leaf_reg": 3.0,
            "random_strength": 1.0,
            "bagging_temperature": 1.0,
            "border_count": 254,
            **_control_defaults(n_rows),
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "learning_rate": ("logfloat", 0.01, 0.3),
            "depth": ("int", 4, 9),
            "l2_leaf_reg": ("logfloat", 0.5, 30.0),
            "random_strength": ("logfloat", 0.1, 10.0),
            "bagging_temperature": ("float", 0.0, 2.0),
        }

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
        from catboost import CatBoostClassifier, CatBoostRegressor, Pool

        lib = {k: v for k, v in params.items() if k not in _CONTROL}
        loss = {"binary": "Logloss", "multiclass": "MultiClass"}.get(sp.kind, "RMSE")
        x_fit, y_fit, x_stop, y_stop, stopping = _stopping(X_train, sp, X_valid, y_valid, params, seed)
        lib.update(
            iterations=_rounds(params, stopping),
            loss_function=loss,
            eval_metric=_eval_metric(sp, task, _CB_METRICS),
            thread_count=int(params["n_threads"]),
            random_seed=seed,
            allow_writing_files=False,
            verbose=False,
        )
        cats = category_columns(X_train)

        def pool(X: pd.DataFrame, y: np.ndarray | None = None) -> Pool:
            return Pool(_categories_to_str(X, cats), y, cat_features=cats or None)

        model = CatBoostRegressor(**lib) if sp.kind == "regression" else CatBoostClassifier(**lib)
        kwargs: dict[str, Any] = {}
        if _time_bound(params) > 0:
            kwargs["callbacks"] = [_TimeBound(_time_bound(params))]
        if stopping:
            kwargs.update(
                eval_set=pool(x_stop, y_stop), early_stopping_rounds=int(params["early_stopping_rounds"])
            )
        model.fit(pool(x_fit, y_fit), use_best_model=stopping, **kwargs)

        def predict(X: pd.DataFrame) -> np.ndarray:
            if not len(X):
                return np.empty((0, _width(sp)))
            if sp.kind == "regression":
                return model.predict(pool(X))
            p = model.predict_proba(pool(X))
            return p[:, 1] if sp.kind == "binary" else p

        return predict(X_valid), predict(X_test)


class _TimeBound:
    """CatBoost callback: stop boosting once the fold's time bound has passed (the best iteration so far
    is kept when early stopping is on). A 7-class CatBoost baseline on playground-series-s4e2 otherwise
    ran past 244 s per fold."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def after_iteration(self, info: Any) -> bool:
        return time.monotonic() < self.deadline


class _LGBMTimeBound:
    """LightGBM callback: stop boosting once the fold's time bound has passed, at the best iteration so
    far on the stopping rows (the last one when there are none). It runs before early stopping, so it
    keeps its own record of the best."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.best: tuple[int, float, list] | None = None  # iteration, score (higher is better), results

    def __call__(self, env: Any) -> None:
        import lightgbm as lgb

        results = list(env.evaluation_result_list or [])
        if results:
            _, _, value, higher_is_better = results[0][:4]
            score = value if higher_is_better else -value
            if self.best is None or score > self.best[1]:
                self.best = (env.iteration, score, results)
        if time.monotonic() >= self.deadline:
            best_iteration, _, best_results = self.best or (env.iteration, 0.0, results)
            raise lgb.callback.EarlyStopException(best_iteration, best_results)


def _xgb_time_bound(seconds: float) -> Any:
    """XGBoost callback: stop boosting once the fold's time bound has passed (early stopping, when on,
    keeps the best iteration so far)."""
    import xgboost as xgb

    deadline = time.monotonic() + seconds

    class TimeBound(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return time.monotonic() >= deadline

    return TimeBound()


def _categories_to_str(X: pd.DataFrame, cats: list[str]) -> pd.DataFrame:
    """CatBoost reads categorical features as strings without missing values."""
    if not cats:
        return X
    out = X.copy()
    for c in cats:
        out[c] = out[c].astype(object).where(out[c].notna(), "__missing__").astype(str)
    return out
