"""Column and task rules of the setup plan, shared by every policy.

A policy decides what it is asked (the expert by these same rules, an LLM by its answer: id column,
targets, task type, text columns, columns to leave out); everything else in the plan is derived here, the
same way for both: the training table, label columns, which column feeds which modality, categorical and
datetime columns, excluded columns and why, the forecast time column and the default metric.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import pandas as pd

from medalist.errors import CheckError
from medalist.metrics import recognize_metric
from medalist.setup.profile import (
    is_integer_valued,
    is_structured_id,
    label_dtype,
    parse_datetime,
    plain_value,
    profile_column,
    sorted_classes,
    uniqueness,
)
from medalist.setup.spec import label_key

if TYPE_CHECKING:
    from medalist.intake import Competition

POSITIVE_LABELS = ("1", "True", "true", "yes", "Yes", "Y", "y", "positive", "pos")
ORDINAL_METRICS = ("qwk",)
MAX_CLASSES_FOR_LABELS = 200
TRAIN_ONLY = "in train but not in test (not available at prediction time)"
EXCLUDED_BY_POLICY = "excluded by the model's plan"
MAP_KEY = "id"  # every map's key column (setup/data.py): an input column of that name would clash with it
KEY_NAME_CLASH = "named 'id' like the maps' key column, so it cannot also be an input"


# ---------------------------------------------------------------------------------------------- tables and ids
def train_table(comp: Competition, files: dict[str, Any]) -> pd.DataFrame:
    """The training table, with the columns of a separate labels table merged in on their shared key."""
    train = comp.read_table(files["train"])
    if files.get("train_labels"):
        labels = comp.read_table(files["train_labels"])
        key = next((c for c in labels.columns if c in train.columns), None)
        if key is not None:
            extra = [c for c in labels.columns if c not in train.columns]
            if extra:
                train = train.merge(labels[[key, *extra]], on=key, how="left")
    return train


def id_column(train: pd.DataFrame, test: pd.DataFrame | None, sample: pd.DataFrame) -> str:
    """The sample submission column that identifies test rows (it must also be in the test table)."""
    if test is None:
        return str(sample.columns[0])
    candidates = [c for c in sample.columns if c in test.columns]
    if not candidates:
        rows = (
            f"; it has {len(sample)} rows and the test table {len(test)}" if len(sample) != len(test) else ""
        )
        raise CheckError(
            f"the sample submission's columns {list(sample.columns)[:6]} include no id column of the test "
            f"table{rows}: the sample must name each test row by an id the test table holds"
        )
    return str(max(candidates, key=lambda c: (round(uniqueness(test[c]), 2), -list(sample.columns).index(c))))


def test_columns(test: pd.DataFrame | None, id_col: str) -> set[str]:
    """The columns available at prediction time (just the id when there is no test table)."""
    return set(test.columns) if test is not None else {id_col}


# ---------------------------------------------------------------------------------------------- targets
def target_columns(sample: pd.DataFrame, id_col: str, test_cols: set[str]) -> list[str]:
    """The sample submission's columns that the test table does not hold: what is predicted."""
    targets = [c for c in sample.columns if c != id_col and c not in test_cols]
    if not targets:
        raise CheckError(
            f"sample submission columns {list(sample.columns)} name no target: every column is also in the "
            "test table"
        )
    return targets


def label_columns(
    train: pd.DataFrame, test_cols: set[str], targets: list[str]
) -> tuple[list[str], dict[str, Any] | None]:
    """The training columns holding the targets, and the one-hot description when one label column's
    values are the target columns (optionally with a shared prefix)."""
    if all(t in train.columns for t in targets):
        return list(targets), None
    for col in train.columns:
        if col in test_cols:
            continue
        values = train[col].dropna().unique()
        if len(values) < 2 or len(values) > 5000:
            continue
        names = {label_key(v): v for v in values}
        prefix = _common_prefix(targets, names)
        if prefix is not None:
            mapping = {t: names[t[len(prefix) :]] for t in targets}
            return [col], {
                "column": col,
                "prefix": prefix,
                "classes": {t: plain_value(v) for t, v in mapping.items()},
            }
    missing = [t for t in targets if t not in train.columns]
    raise CheckError(
        f"the sample submission's target columns {missing[:5]} match nothing in the training table "
        f"(columns: {list(train.columns)[:10]})"
    )


def _common_prefix(targets: list[str], names: dict[str, Any]) -> str | None:
    """The prefix p such that every target is p + one of the label values (p may be empty)."""
    if len(targets) != len(names):
        return None
    first = targets[0]
    for cut in range(len(first) + 1):
        prefix = first[:cut]
        rest = [t[len(prefix) :] for t in targets if t.startswith(prefix)]
        if len(rest) == len(targets) and set(rest) == set(names):
            return prefix
    return None


# ---------------------------------------------------------------------------------------------- task type
def infer_task_type(
    comp: Competition,
    train: pd.DataFrame,
    sample: pd.DataFrame,
    targets: list[str],
    labels: list[str],
    one_hot: dict[str, Any] | None,
) -> str:
    """The task type read from the target values, the sample and the metric the description names."""
    if one_hot is not None:
        return "multiclass"
    metric = recognize_metric(comp.description or "", len(targets))
    values = train[labels].dropna()
    if values.empty:
        raise CheckError(f"target column(s) {labels} have no values in the training table")
    if len(targets) > 1:
        if all(set(pd.unique(values[c])) <= {0, 1} for c in labels):
            return "multilabel"
        return "multi_target_regression"
    col = values[labels[0]]
    n_unique = col.nunique()
    if n_unique < 2:
        raise CheckError(f"target column {labels[0]!r} has a single value; nothing to learn")
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if not numeric:
        return "binary" if n_unique == 2 else "multiclass"
    if n_unique == 2:
        return "binary"
    if metric is not None and metric.name in ORDINAL_METRICS and is_integer_valued(col.to_numpy()):
        return "ordinal"
    if metric is not None and metric.scores == "label" and n_unique <= MAX_CLASSES_FOR_LABELS:
        return "multiclass"
    integer = is_integer_valued(col.to_numpy())
    if metric is None and integer and n_unique <= 20 and is_integer_valued(sample[targets[0]].to_numpy()):
        return "multiclass"
    return "regression"


def check_task_type(
    task: str, train: pd.DataFrame, targets: list[str], labels: list[str], one_hot: dict[str, Any] | None
) -> str:
    """A task type a policy chose, checked against the target values ("classification" is resolved by the
    number of classes); raises with a message the policy can act on when it cannot be right."""
    if one_hot is not None:
        if task not in ("multiclass", "classification"):
            raise CheckError(
                f"the targets are one column per class of {one_hot['column']!r} ({len(targets)} classes, one per "
                f"row): task_type {task!r} is wrong"
            )
        return "multiclass"
    values = train[labels].dropna()
    if len(targets) > 1:
        binary = all(set(pd.unique(values[c])) <= {0, 1} for c in labels)  # 0.0/False count too
        if task in ("multilabel", "multi_target_regression"):
            if task == "multilabel" and not binary:
                raise CheckError(f"multilabel targets must be 0/1, but {labels[:3]} hold other values")
            return task
        raise CheckError(
            f"there are {len(targets)} target columns: task_type must be multilabel (0/1 columns) or "
            "multi_target_regression"
        )
    col = values[labels[0]]
    n_unique = int(col.nunique())
    numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
    if task == "classification":
        return "binary" if n_unique == 2 else "multiclass"
    if task in ("multilabel", "multi_target_regression"):
        raise CheckError(f"there is one target column ({targets[0]!r}): task_type {task!r} needs several")
    if task in ("regression", "ordinal") and not numeric:
        raise CheckError(
            f"target {labels[0]!r} holds non-numeric values (e.g. {col.iloc[0]!r}): {task} is wrong"
        )
    if task == "regression" and n_unique == 2:
        raise CheckError(
            f"target {labels[0]!r} has only 2 distinct values ({', '.join(map(str, sorted(pd.unique(col))[:2]))}): "
            "that is binary classification, not regression"
        )
    if task == "binary" and n_unique != 2:
        raise CheckError(f"target {labels[0]!r} has {n_unique} distinct values, not 2: binary is wrong")
    if task == "multiclass" and n_unique == 2:
        return "binary"
    if task == "ordinal" and not is_integer_valued(col.to_numpy()):
        raise CheckError(f"ordinal targets must be whole numbers, but {labels[0]!r} is not")
    return task


def default_metric(task_type: str, output: str) -> str:
    """The metric to use when the description names none."""
    if task_type in ("regression", "multi_target_regression"):
        return "rmse"
    if task_type == "ordinal":
        return "qwk"
    if task_type == "multilabel":
        return "mean_columnwise_roc_auc" if output == "proba" else "micro_f1"
    if output == "proba":
        return "roc_auc" if task_type == "binary" else "log_loss"
    return "accuracy"


# ---------------------------------------------------------------------------------------------- input columns
def forecast_time_column(train: pd.DataFrame, test: pd.DataFrame | None, datetimes: list[str]) -> str | None:
    """A datetime column along which the test rows all come after the training rows (a forecast):
    then folds must be time-ordered. Interleaved periods (bike-sharing's days 20+) are not a forecast."""
    if test is None:
        return None
    for col in datetimes:
        tr, te = parse_datetime(train[col]).dropna(), parse_datetime(test[col]).dropna()
        if len(tr) > 10 and len(te) > 10 and te.min() >= tr.max():
            return col
    return None


def plan_columns(
    comp: Competition,
    mods: dict[str, Any],
    train: pd.DataFrame,
    id_col: str,
    targets: list[str],
    labels: list[str],
    one_hot: dict[str, Any] | None,
    task_type: str,
    text_columns: Collection[str] | None = None,
    exclude: Collection[str] = (),
) -> dict[str, Any]:
    """The plan artifact from the decisions (id, targets and their labels, task type); the rest is derived.

    ``text_columns`` None reads free text by the column profile; a policy that decides which columns are
    text passes them. ``exclude`` names columns the policy leaves out (never the id)."""
    files = mods["files"]
    test = comp.read_table(files["test"]) if files.get("test") else None
    test_cols = test_columns(test, id_col)
    has_image = bool(mods.get("image"))
    excluded: dict[str, str] = {
        c: TRAIN_ONLY for c in train.columns if c not in test_cols and c not in labels
    }
    input_columns: dict[str, list[str]] = {"tabular": [], "text": [], "image": ["path"] if has_image else []}
    categorical, datetimes = [], []
    for col in train.columns:
        if col in labels or col in excluded:
            continue
        if col in exclude and col != id_col:
            excluded[col] = EXCLUDED_BY_POLICY
            continue
        prof = profile_column(train[col])
        is_text = prof.kind == "text" if text_columns is None else col in text_columns
        if col == id_col and not (prof.kind == "datetime" or is_text or is_structured_id(train[col])):
            excluded[col] = "id column"
        elif col == MAP_KEY:
            excluded[col] = KEY_NAME_CLASH
        elif not prof.is_input_kind:
            excluded[col] = f"{prof.kind} column"
        elif is_text:
            input_columns["text"].append(col)
        elif prof.kind == "image_path":
            excluded[col] = (
                "image path column (images come through the image map)" if has_image else "image path"
            )
        else:
            input_columns["tabular"].append(col)
            if prof.kind == "categorical":
                categorical.append(col)
            elif prof.kind == "datetime":
                datetimes.append(col)
    modalities = [m for m in ("tabular", "text", "image") if input_columns[m]]
    if not modalities:
        raise CheckError(
            "the plan leaves no input column: train and test share no usable column outside the excluded, "
            "and there are no image files"
        )
    return {
        "id_column": id_col,
        "target_columns": targets,
        "label_columns": labels,
        "one_hot": one_hot,
        "task_type": task_type,
        "modalities": modalities,
        "input_columns": {m: input_columns[m] for m in modalities},
        "categorical_columns": categorical,
        "datetime_columns": datetimes,
        "excluded_columns": excluded,
        "time_column": forecast_time_column(train, test, datetimes),
        "group_column": None,  # no rule derives groups yet; folds honour one when a plan sets it
    }


# ---------------------------------------------------------------------------------------------- target transform
def default_positive(classes: list[Any]) -> Any:
    """The binary positive class when none is named: the first of ``POSITIVE_LABELS`` present, else the last."""
    return next((c for c in classes if label_key(c) in POSITIVE_LABELS), classes[-1])


def class_transform(
    task: str, output: str, cols: list[str], values: pd.Series, positive: Any = None
) -> dict[str, Any]:
    """The target transform of a binary / multiclass label column ``values``: its sorted classes, with
    ``positive`` (binary) last."""
    classes = sorted_classes(values)
    if task == "binary":
        classes = [c for c in classes if label_key(c) != label_key(positive)] + [positive]
    return {
        "kind": task,
        "output": output,
        "columns": cols,
        "classes": [plain_value(c) for c in classes],
        "label_dtype": label_dtype(values),
    }


def ordinal_transform(cols: list[str], values: pd.Series) -> dict[str, Any]:
    """The target transform of an ordinal target: its sorted values as classes, predicted as labels."""
    classes = sorted({float(v) for v in values.dropna()})
    return {
        "kind": "ordinal",
        "output": "label",
        "columns": cols,
        "classes": [int(c) if float(c).is_integer() else c for c in classes],
        "label_dtype": "int" if all(float(c).is_integer() for c in classes) else None,
    }


__all__ = [
    "EXCLUDED_BY_POLICY",
    "KEY_NAME_CLASH",
    "MAP_KEY",
    "POSITIVE_LABELS",
    "TRAIN_ONLY",
    "check_task_type",
    "class_transform",
    "default_metric",
    "default_positive",
    "forecast_time_column",
    "id_column",
    "infer_task_type",
    "label_columns",
    "ordinal_transform",
    "plan_columns",
    "target_columns",
    "test_columns",
    "train_table",
]
