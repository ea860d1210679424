"""Turning small models' answers into the exact artifacts of the setup stages (and the code templates).

The model decides; these helpers normalise what it said (file names, synonyms, ``"ALL_OTHER"``), derive
what follows deterministically from its decisions (label columns, input columns by profile, classes), and
raise :class:`CheckError` with a message the model can act on when an answer cannot be right.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.metrics import METRICS, get_metric
from medalist.policy.llm_facts import compact_names, match_name
from medalist.setup import rules
from medalist.setup.formatter import FORMATTERS
from medalist.setup.profile import (
    profile_column,
    sorted_classes,
)
from medalist.setup.spec import TASK_TYPES, label_key

if TYPE_CHECKING:
    from medalist.intake import Competition

_TASK_SYNONYMS = {
    "binary": "binary",
    "binaryclassification": "binary",
    "binaryclassifier": "binary",
    "twoclass": "binary",
    "multiclass": "multiclass",
    "multiclassclassification": "multiclass",
    "multinomial": "multiclass",
    "classification": "classification",  # resolved by the number of classes
    "multilabel": "multilabel",
    "multilabelclassification": "multilabel",
    "regression": "regression",
    "multitargetregression": "multi_target_regression",
    "multioutputregression": "multi_target_regression",
    "multiregression": "multi_target_regression",
    "ordinal": "ordinal",
    "ordinalregression": "ordinal",
    "ordinalclassification": "ordinal",
}
_MODALITY_SYNONYMS = {
    "tabular": "tabular",
    "table": "tabular",
    "numeric": "tabular",
    "numerical": "tabular",
    "categorical": "tabular",
    "structured": "tabular",
    "text": "text",
    "texts": "text",
    "nlp": "text",
    "string": "text",
    "image": "image",
    "images": "image",
    "img": "image",
    "picture": "image",
    "vision": "image",
}
_OUTPUT_SYNONYMS = {
    "label": "label",
    "labels": "label",
    "class": "label",
    "classes": "label",
    "classlabel": "label",
    "proba": "proba",
    "probability": "proba",
    "probabilities": "proba",
    "prob": "proba",
    "probs": "proba",
    "value": "value",
    "values": "value",
    "number": "value",
    "numbers": "value",
    "numeric": "value",
    "regression": "value",
}
ALL_OTHER = ("all_other", "allother", "all", "all other", "rest", "*")


def _norm(text: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def as_list(value: Any) -> list[Any]:
    """A JSON value as a list (a string is one item, null is none)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def need_json(answer: dict[str, Any] | None) -> dict[str, Any]:
    if answer is None:
        raise CheckError("the answer holds no JSON object; reply with one JSON object only, as shown")
    return answer


# ---------------------------------------------------------------------------------------------- modalities
def normalise_modalities(comp: Competition, ans: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The modalities artifact from the model's JSON; the notes say what was derived."""
    derived: list[str] = []
    tables = list(comp.tables)
    files: dict[str, str | None] = {}
    for role in ("train", "test", "sample_submission", "train_labels"):
        given = ans.get(role)
        found = match_name(given, tables)
        if (
            given not in (None, "", "null", "none")
            and found is None
            and role in ("train", "sample_submission")
        ):
            raise CheckError(f'"{role}": {given!r} is not one of the tables {tables[:8]}')
        files[role] = found
    for role in ("train", "sample_submission"):
        if not files[role]:
            raise CheckError(f'"{role}" must name one of the tables {tables[:8]}')
    if len({files["train"], files["test"], files["sample_submission"]} - {None}) < 2 + bool(files["test"]):
        raise CheckError("train, test and sample_submission must be three different tables")
    if files["train_labels"] in (files["train"], files["test"], files["sample_submission"]):
        files["train_labels"] = None
    inputs: list[str] = []
    for item in as_list(ans.get("inputs")):
        m = _MODALITY_SYNONYMS.get(_norm(item))
        if m and m not in inputs:
            inputs.append(m)
    if not inputs:
        raise CheckError('"inputs" must list at least one of "tabular", "text", "image"')
    inputs = [m for m in ("tabular", "text", "image") if m in inputs]
    sample_cols = comp.table_columns(files["sample_submission"])
    id_column = match_name(ans.get("id_column"), sample_cols) if ans.get("id_column") else None
    if id_column is None:
        train = comp.read_table(files["train"])
        test = comp.read_table(files["test"]) if files["test"] else None
        id_column = rules.id_column(train, test, comp.read_table(files["sample_submission"]))
        derived.append("id_column")
    image: dict[str, Any] = {}
    if "image" in inputs:
        image = image_source(comp, files, ans.get("image_column"), id_column, derived)
    art = {"files": files, "inputs": inputs, "image": image, "id_column": id_column}
    return art, derived


def image_source(
    comp: Competition, files: dict[str, Any], column: Any, id_column: str, derived: list[str]
) -> dict[str, Any]:
    """{"by": "id" | "column", "column": c}: the train column whose values name the image files."""
    if not comp.image_dirs:
        raise CheckError('"image" is listed as an input but the competition folder holds no image files')
    train = comp.read_table(files["train"])
    cols = [str(c) for c in train.columns]
    chosen = match_name(column, cols) if column else None
    if chosen is not None and _matches_images(comp, train[chosen]):
        return {"by": "id" if chosen == id_column else "column", "column": chosen}
    for c in [id_column, *cols]:
        if c in train.columns and _matches_images(comp, train[c]):
            derived.append("image source")
            return {"by": "id" if c == id_column else "column", "column": c}
    what = f"column {column!r}" if column else "no column"
    raise CheckError(
        f"{what} of {files['train']} names the image files ({', '.join(d.rel or '.' for d in comp.image_dirs)}); "
        'set "image_column" to the column whose values are the image file names, or drop "image" from inputs'
    )


def _matches_images(comp: Competition, series: pd.Series) -> bool:
    values = [str(v) for v in series.dropna().head(200)]
    if not values:
        return False
    from pathlib import PurePosixPath

    return bool(comp.find_images(values) or comp.find_images([PurePosixPath(v).stem for v in values]))


# ---------------------------------------------------------------------------------------------- plan
def normalise_task_type(value: Any) -> str:
    key = _norm(value)
    task = _TASK_SYNONYMS.get(key)
    if task is None:
        raise CheckError(f'"task_type" {value!r} must be one of {", ".join(TASK_TYPES)}')
    return task


def derive_plan(
    comp: Competition, mods: dict[str, Any], ans: dict[str, Any], train: pd.DataFrame
) -> tuple[dict[str, Any], list[str]]:
    """The plan artifact from the model's id/targets/task/text decisions (an optional "exclude" list is
    honoured); the rest is derived by the shared rules (:mod:`medalist.setup.rules`)."""
    files = mods["files"]
    sample = comp.read_table(files["sample_submission"])
    sample_cols = [str(c) for c in sample.columns]
    test_cols = set(comp.table_columns(files["test"])) if files.get("test") else set()
    id_column = match_name(ans.get("id_column"), sample_cols)
    if id_column is None:
        raise CheckError(
            f'"id_column" {ans.get("id_column")!r} must be a column of the sample submission {sample_cols}'
        )
    raw_targets = ans.get("target_columns")
    if isinstance(raw_targets, str) and raw_targets.strip().lower() in ALL_OTHER:
        targets = [c for c in sample_cols if c != id_column]
    else:
        targets = []
        others = [c for c in sample_cols if c != id_column]
        for t in as_list(raw_targets):
            found = match_name(t, sample_cols)
            if found is None and _is_one_hot_label(t, train, others):
                targets = list(others)  # the model named the label whose classes are the sample's columns
                break
            if found is None:
                raise CheckError(
                    f'"target_columns": {t!r} is not a sample submission column; choose among '
                    f'{compact_names([c for c in sample_cols if c != id_column], 12)} (or "ALL_OTHER")'
                )
            if found != id_column and found not in targets:
                targets.append(found)
        targets = [c for c in sample_cols if c in targets]  # the submission's order
    if not targets:
        raise CheckError('"target_columns" names no sample submission column other than the id')
    if not test_cols:
        test_cols = {id_column}
    in_test = [t for t in targets if t in test_cols]
    if in_test:
        raise CheckError(
            f"target columns {in_test[:4]} are also test-table columns, so they are inputs, not targets"
        )
    label_columns, one_hot = rules.label_columns(train, test_cols, targets)
    task = rules.check_task_type(
        normalise_task_type(ans.get("task_type")), train, targets, label_columns, one_hot
    )
    shared = [str(c) for c in train.columns if c in test_cols and c not in label_columns]
    text_cols = _pick(ans.get("text_columns"), shared, "text_columns")
    numeric_text = [c for c in text_cols if pd.api.types.is_numeric_dtype(train[c])]
    text_cols = [c for c in text_cols if c not in numeric_text]  # numbers are read as tabular inputs
    texts = [c for c in shared if profile_column(train[c]).kind == "text"]
    if "text" in mods.get("inputs", []) and texts and not text_cols:
        raise CheckError(
            '"text_columns" is empty, but the modalities stage found text inputs and these columns hold free '
            f"text: {', '.join(texts[:4])}"
        )
    exclude = _pick(ans.get("exclude"), shared, "exclude")
    plan = rules.plan_columns(
        comp, mods, train, id_column, targets, label_columns, one_hot, task, text_cols, exclude
    )
    derived = [
        *(["numeric columns listed as text read as tabular"] if numeric_text else []),
        "label_columns",
        "one_hot",
        "modalities",
        "input_columns",
        "categorical_columns",
        "datetime_columns",
        "excluded_columns",
        "time_column",
    ]
    return plan, derived


def _is_one_hot_label(name: Any, train: pd.DataFrame, others: list[str]) -> bool:
    """True when ``name`` is a train column whose classes are exactly the sample's other columns."""
    col = match_name(name, [str(c) for c in train.columns])
    if col is None or len(others) < 2:
        return False
    try:
        labels, one_hot = rules.label_columns(train[[col]], set(), others)
    except CheckError:
        return False
    return one_hot is not None and labels == [col]


def _pick(value: Any, options: list[str], key: str) -> list[str]:
    out = []
    for item in as_list(value):
        found = match_name(item, options)
        if found is not None and found not in out:
            out.append(found)
    return out


# ---------------------------------------------------------------------------------------------- transform
def normalise_output(value: Any) -> str:
    out = _OUTPUT_SYNONYMS.get(_norm(value))
    if out is None:
        raise CheckError(f'"output" {value!r} must be "label", "proba" or "value"')
    return out


def derive_transform(
    plan: dict[str, Any], target: pd.DataFrame, ans: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The target transform from the model's output / positive class / log choices."""
    cols = list(plan["target_columns"])
    task = plan["task_type"]
    output = normalise_output(ans.get("output"))
    derived = ["kind", "columns", "classes"]
    y = target[cols]
    if task == "multiclass" and plan.get("one_hot"):
        if output != "proba":
            raise CheckError(
                'the targets are one column per class: predictions must be class probabilities (output "proba")'
            )
        return {"kind": "multiclass", "output": "proba", "columns": cols, "classes": list(cols)}, derived
    if task in ("binary", "multiclass"):
        values = y.iloc[:, 0]
        classes = sorted_classes(values)
        pos = None
        if output == "value":
            raise CheckError(
                f'a {task} task predicts labels or probabilities: output must be "label" or "proba"'
            )
        if task == "multiclass" and output == "proba":
            raise CheckError(
                f"the submission has one target column ({cols[0]!r}) holding one class label per row: output must "
                'be "label"'
            )
        if task == "binary":
            wanted = ans.get("positive_class")
            pos = next((c for c in classes if wanted is not None and label_key(c) == label_key(wanted)), None)
            if pos is None:
                pos = rules.default_positive(classes)
                derived.append("positive class")
        return rules.class_transform(task, output, cols, values, pos), derived
    if task == "ordinal":
        derived.append("output")
        return rules.ordinal_transform(cols, y.iloc[:, 0]), derived
    if task == "multilabel":
        if output == "value":
            raise CheckError(
                'a multilabel task predicts 0/1 labels or probabilities: output "label" or "proba"'
            )
        return {"kind": "multilabel", "output": output, "columns": cols}, derived
    if output != "value":
        raise CheckError(f'a {task} task predicts numbers: output must be "value"')
    arr = y.to_numpy(dtype=float)
    log = _truthy(ans.get("log"))
    if log and np.nanmin(arr) <= -1:
        raise CheckError(
            f'log1p needs targets > -1, but the smallest target is {np.nanmin(arr):g}: set "log": false'
        )
    derived.append("clip_min")
    return {
        "kind": "regression",
        "output": "value",
        "columns": cols,
        "log": log,
        "clip_min": 0.0 if log and np.nanmin(arr) >= 0 else None,
    }, derived


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "log", "log1p")
    return bool(value)


# ---------------------------------------------------------------------------------------------- metric, formatter
def normalise_metric(ans: dict[str, Any]) -> dict[str, Any]:
    name = ans.get("metric")
    if not name or not isinstance(name, str):
        raise CheckError(f'"metric" must be one of {", ".join(sorted(METRICS))}')
    try:
        m = get_metric(name)
    except Exception:
        try:
            m = get_metric(re.sub(r"\s*\(.*\)$", "", name))
        except Exception as exc:
            raise CheckError(
                f'"metric" {name!r} is unknown; choose one of {", ".join(sorted(METRICS))}'
            ) from exc
    return {"metric": m.name, "lower_is_better": m.lower_is_better}


def normalise_formatter(ans: dict[str, Any]) -> dict[str, Any]:
    choices = [f for f in FORMATTERS if f != "script"]

    def pick(value: Any) -> str | None:
        if isinstance(value, dict):
            value = value.get("method")
        key = _norm(value)
        return next((f for f in choices if _norm(f) == key), None)

    method = pick(ans.get("method"))
    if method is None:
        raise CheckError(f'"method" {ans.get("method")!r} must be one of {choices}')
    alternative = pick(ans.get("alternative"))
    if alternative is None or alternative == method:
        alternative = next(f for f in choices if f != method)
    return {"method": method, "alternative": {"method": alternative}}


# ---------------------------------------------------------------------------------------------- code templates
def py_list(values: Sequence[Any], abbreviate: bool) -> str:
    """A Python list literal; abbreviated (``[...]  # 192 names: …``) for prompts when long."""
    values = list(values)
    if abbreviate and len(values) > 12:
        return f"[...]  # {len(values)} names: {compact_names([str(v) for v in values], 8)}"
    return json.dumps(values, ensure_ascii=False)


def describe_artifact(art: Any, limit: int = 400) -> str:
    """A short description of a stage's artifact for credit-assignment prompts."""
    if isinstance(art, pd.DataFrame):
        ids = ", ".join(art["id"].astype(str).head(3)) if "id" in art.columns else "no id column"
        return (
            f"a table of {len(art)} rows, columns {compact_names([str(c) for c in art.columns], 10)}; "
            f"first ids {ids}"
        )
    text = json.dumps(art, default=str) if isinstance(art, dict) else str(art)
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = [
    "ALL_OTHER",
    "as_list",
    "derive_plan",
    "derive_transform",
    "describe_artifact",
    "image_source",
    "need_json",
    "normalise_formatter",
    "normalise_metric",
    "normalise_modalities",
    "normalise_output",
    "normalise_task_type",
    "py_list",
]
