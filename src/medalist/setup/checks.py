"""Task-agnostic checks of each setup stage's artifact, and meta checks that span stages.

Each check raises CheckError with a message that says what is wrong and how to fix it; the stage
machine feeds that message back to the policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.metrics import get_metric
from medalist.setup.data import align_maps, make_keys, map_name
from medalist.setup.formatter import FORMATTERS, format_submission, validate_submission
from medalist.setup.spec import MODALITIES, TASK_TYPES, TargetTransform, TaskSpec, label_key

if TYPE_CHECKING:
    from medalist.intake import Competition

TRANSFORM_KINDS = ("binary", "multiclass", "multilabel", "regression", "ordinal")


# ---------------------------------------------------------------------- stage checks
def check_summary(art: Any, comp: Competition, arts: dict[str, Any]) -> None:
    if not isinstance(art, str) or len(art.strip()) < 20:
        raise CheckError("the summary must be a text of at least 20 characters describing the task")
    if len(art) > 4000:
        raise CheckError(f"the summary is {len(art)} characters; keep it under 4000")


def check_modalities(art: Any, comp: Competition, arts: dict[str, Any]) -> None:
    if not isinstance(art, dict) or "files" not in art or "inputs" not in art:
        raise CheckError('return {"files": {"train", "test", "sample_submission"}, "inputs": [...], ...}')
    files = art["files"]
    for role in ("train", "sample_submission"):
        rel = files.get(role)
        if not rel or rel not in comp.tables:
            raise CheckError(
                f"files.{role} = {rel!r} is not one of the competition's tables {comp.tables[:8]}"
            )
    if files.get("test") and files["test"] not in comp.tables:
        raise CheckError(f"files.test = {files['test']!r} is not one of the competition's tables")
    if files["train"] == files.get("test") or files["train"] == files["sample_submission"]:
        raise CheckError("train, test and sample submission must be different files")
    inputs = art["inputs"]
    if not inputs or any(m not in MODALITIES for m in inputs):
        raise CheckError(f"inputs must be a non-empty subset of {list(MODALITIES)}, got {inputs}")
    if "image" in inputs and not art.get("image"):
        raise CheckError('"image" input needs an "image" entry saying how ids map to image files')
    sample_cols = comp.table_columns(files["sample_submission"])
    if art.get("id_column") and art["id_column"] not in sample_cols:
        raise CheckError(f"id column {art['id_column']!r} is not a sample submission column {sample_cols}")


def check_plan(art: Any, comp: Competition, arts: dict[str, Any]) -> None:
    if not isinstance(art, dict):
        raise CheckError("the plan must be a dict")
    files = arts["modalities"]["files"]
    sample_cols = comp.table_columns(files["sample_submission"])
    train_cols = set(comp.table_columns(files["train"]))
    if files.get("train_labels"):
        train_cols |= set(comp.table_columns(files["train_labels"]))
    test_cols = set(comp.table_columns(files["test"])) if files.get("test") else set()
    idc = art.get("id_column")
    if idc not in sample_cols:
        raise CheckError(f"id_column {idc!r} must be a column of the sample submission {sample_cols}")
    targets = art.get("target_columns") or []
    if not targets or any(t not in sample_cols or t == idc for t in targets):
        raise CheckError(f"target_columns {targets} must be sample submission columns other than the id")
    labels = art.get("label_columns") or []
    if not labels or any(c not in train_cols for c in labels):
        raise CheckError(f"label_columns {labels} must be columns of the training table")
    if art.get("task_type") not in TASK_TYPES:
        raise CheckError(f"task_type must be one of {TASK_TYPES}, got {art.get('task_type')!r}")
    mods = art.get("modalities") or []
    if not mods or any(m not in MODALITIES for m in mods):
        raise CheckError(f"modalities must be a non-empty subset of {list(MODALITIES)}")
    inputs = art.get("input_columns") or {}
    for m in mods:
        cols = inputs.get(m)
        if not cols:
            raise CheckError(f"modality {m!r} has no input columns")
        if m == "image":
            continue
        for c in cols:
            if c in labels:
                raise CheckError(f"input column {c!r} is a target; targets are never inputs")
            if c not in train_cols or (test_cols and c not in test_cols):
                raise CheckError(
                    f"input column {c!r} must be in both train and test (train-only columns leak)"
                )


def check_input_map(art: Any, comp: Competition, arts: dict[str, Any], split: str, modality: str) -> None:
    name = map_name(split, modality)
    if not isinstance(art, pd.DataFrame):
        raise CheckError(f"{name} must be a DataFrame")
    if "id" not in art.columns or art.columns[0] != "id":
        raise CheckError(f"{name} must have 'id' as its first column")
    ids = art["id"]
    if ids.isna().any():
        raise CheckError(f"{name} has {int(ids.isna().sum())} missing ids")
    if not ids.astype(str).is_unique:
        dup = ids[ids.astype(str).duplicated()].astype(str).head(3).tolist()
        raise CheckError(f"{name} has duplicated ids (e.g. {dup}); make them unique (make_keys adds '#k')")
    if len(art) == 0:
        raise CheckError(f"{name} is empty")
    plan = arts["plan"]
    expected = ["path"] if modality == "image" else list(plan["input_columns"][modality])
    if list(art.columns[1:]) != expected:
        raise CheckError(
            f"{name} columns {list(art.columns[1:])[:8]} must be exactly the planned {expected[:8]}"
        )
    if modality == "image":
        sample = art["path"].astype(str).head(50)
        missing = [p for p in sample if not Path(p).is_file()]
        if missing:
            raise CheckError(f"{name}: image files not found, e.g. {missing[:2]}")
    if split == "test":
        files = arts["modalities"]["files"]
        sample = comp.read_table(files["sample_submission"])
        keys = make_keys(sample[plan["id_column"]].tolist())
        if list(ids.astype(str)) != keys:
            raise CheckError(
                f"{name} ids must be the sample submission's ids in its row order ({len(keys)} rows; got {len(art)})"
            )


def check_target_map(art: Any, comp: Competition, arts: dict[str, Any]) -> None:
    if not isinstance(art, pd.DataFrame):
        raise CheckError("train_tab_target_map must be a DataFrame")
    targets = arts["plan"]["target_columns"]
    if list(art.columns) != ["id", *targets]:
        raise CheckError(
            f"train_tab_target_map columns must be ['id'] + the submission targets {targets[:6]}"
        )
    if not art["id"].astype(str).is_unique:
        raise CheckError("train_tab_target_map has duplicated ids")
    if len(art) < 2:
        raise CheckError("train_tab_target_map needs at least 2 labelled rows")
    block = art[targets]
    if block.isna().any().any():
        bad = block.columns[block.isna().any()].tolist()
        raise CheckError(
            f"target columns {bad[:4]} have missing values; drop unlabelled rows from every train map"
        )
    for c in targets:
        if block[c].nunique() < 2 and len(targets) == 1:
            raise CheckError(f"target column {c!r} has a single value; nothing to learn")


def check_target_transform(art: Any, comp: Competition, arts: dict[str, Any]) -> None:
    if not isinstance(art, dict) or art.get("kind") not in TRANSFORM_KINDS:
        raise CheckError(f"target transform kind must be one of {TRANSFORM_KINDS}")
    if art.get("output") not in ("label", "proba", "value"):
        raise CheckError("target transform output must be 'label', 'proba' or 'value'")
    targets = arts["plan"]["target_columns"]
    if art.get("columns") != targets:
        raise CheckError(f"target transform columns must be the submission targets {targets[:6]}")
    try:
        t = TargetTransform.from_dict(art)
    except TypeError as e:
        raise CheckError(f"target transform has unknown fields: {e}") from e
    if t.kind in ("binary", "multiclass", "ordinal") and not t.classes:
        raise CheckError(f"a {t.kind} transform needs its classes")
    y = t.encode(arts["train_tab_target"].drop(columns=["id"]))
    if not np.isfinite(y).all():
        raise CheckError("encoded targets hold non-finite values")
    if t.n_outputs < 1:
        raise CheckError("the transform has no model outputs")


def check_metric(art: Any, comp: Competition, arts: dict[str, Any]) -> None:
    if not isinstance(art, dict) or "metric" not in art:
        raise CheckError('return {"metric": name, "lower_is_better": bool}')
    m = get_metric(art["metric"])
    if bool(art.get("lower_is_better")) != m.lower_is_better:
        raise CheckError(f"{m.name} is {m.word}-is-better")
    output = arts["target_transform"]["output"]
    kind = arts["target_transform"]["kind"]
    compatible = {"proba": ("proba",), "label": ("label",), "value": ("value",)}[m.scores]
    if output not in compatible and not (kind == "ordinal" and m.scores == "value"):
        raise CheckError(
            f"metric {m.name} scores {m.scores}s but the target transform outputs {output}s; "
            "make them agree (redo the transform or the metric)"
        )


def check_formatter(art: Any, comp: Competition, arts: dict[str, Any]) -> None:
    if not isinstance(art, dict) or art.get("method") not in FORMATTERS:
        raise CheckError(f"formatter method must be one of {FORMATTERS}")
    alt = art.get("alternative")
    if alt is not None and alt.get("method") not in FORMATTERS:
        raise CheckError(f"alternative formatter method must be one of {FORMATTERS}")


# ---------------------------------------------------------------------- meta checks
def build_spec(comp: Competition, arts: dict[str, Any]) -> TaskSpec:
    """The task spec from the artifacts of every stage so far."""
    plan, mods = arts["plan"], arts["modalities"]
    metric = arts.get("metric", {})
    return TaskSpec(
        slug=comp.slug,
        task_type=plan["task_type"],
        metric=metric.get("metric", ""),
        lower_is_better=bool(metric.get("lower_is_better", False)),
        id_column=plan["id_column"],
        target_columns=list(plan["target_columns"]),
        label_columns=list(plan["label_columns"]),
        modalities=list(plan["modalities"]),
        input_columns={m: list(c) for m, c in plan["input_columns"].items()},
        categorical_columns=list(plan.get("categorical_columns", [])),
        datetime_columns=list(plan.get("datetime_columns", [])),
        excluded_columns=dict(plan.get("excluded_columns", {})),
        image_source=dict(mods.get("image") or {}),
        group_column=plan.get("group_column"),
        time_column=plan.get("time_column"),
        files={k: v for k, v in mods["files"].items() if v},
        submission={},
        target_transform=dict(arts.get("target_transform", {})),
        summary=arts.get("summary", ""),
    )


def meta_train_ids(comp: Competition, arts: dict[str, Any]) -> None:
    """All train maps share the same ids."""
    target_ids = set(arts["train_tab_target"]["id"].astype(str))
    for m in arts["plan"]["modalities"]:
        name = map_name("train", m)
        ids = set(arts[name]["id"].astype(str))
        if ids != target_ids:
            only_map, only_target = len(ids - target_ids), len(target_ids - ids)
            raise CheckError(
                f"{name} and the target map disagree on ids ({only_map} only in the input map, {only_target} "
                "only in the target map); every train map must hold exactly the labelled rows"
            )


def meta_target_roundtrip(comp: Competition, arts: dict[str, Any]) -> None:
    """decode(encode(targets)) reproduces the targets."""
    t = TargetTransform.from_dict(arts["target_transform"])
    target = arts["train_tab_target"].drop(columns=["id"]).reset_index(drop=True)
    decoded = t.decode(t.perfect(t.encode(target)))
    if list(decoded.columns) != list(target.columns):
        raise CheckError(
            f"decoded columns {list(decoded.columns)[:5]} differ from the targets' {list(target.columns)[:5]}"
        )
    for col in target.columns:
        a, b = target[col], decoded[col]
        if t.output == "label" or (t.kind in ("binary", "multiclass", "ordinal") and t.output != "proba"):
            same = np.array([label_key(x) == label_key(y) for x, y in zip(a.tolist(), b.tolist())])
        else:
            same = np.isclose(
                pd.to_numeric(a, errors="coerce").to_numpy(dtype=float),
                b.to_numpy(dtype=float),
                rtol=1e-6,
                atol=1e-8,
            )
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            raise CheckError(
                f"decode(encode(target)) does not reproduce column {col!r}: row {i} has {label_key(a.iloc[i])!r} -> "
                f"{label_key(b.iloc[i])!r}; fix the target transform (classes, log, clipping) or the target map"
            )


def meta_loader(comp: Competition, arts: dict[str, Any]) -> None:
    """A loader yields id-aligned rows from every map."""
    spec = build_spec(comp, arts)
    names = ["train_tab_target"] + [map_name(s, m) for m in spec.modalities for s in ("train", "test")]
    maps = {n: arts[n].assign(id=arts[n]["id"].astype(str)) for n in names}
    data = align_maps(spec, maps)
    first = np.array(data.train_ids[:5])
    for m in spec.modalities:
        if len(data.train[m]) != data.n_train or len(data.test[m]) != data.n_test:
            raise CheckError(f"{m} maps are not row-aligned with the ids")
    if data.y.shape[0] != data.n_train or len(first) == 0:
        raise CheckError("the loader yielded no aligned training rows")


def prior_prediction(arts: dict[str, Any], n: int) -> np.ndarray:
    """A tiny model: the training prior (class shares or mean) in model space, for n rows."""
    t = TargetTransform.from_dict(arts["target_transform"])
    y = t.encode(arts["train_tab_target"].drop(columns=["id"]))
    prior = t.perfect(y).mean(axis=0)
    return np.repeat(prior[None, :], n, axis=0)


def meta_formatter(comp: Competition, arts: dict[str, Any]) -> None:
    """The formatter's output is identical in structure to the sample submission."""
    files = arts["modalities"]["files"]
    sample = comp.read_table(files["sample_submission"])
    plan = arts["plan"]
    t = TargetTransform.from_dict(arts["target_transform"])
    test_ids = arts[map_name("test", plan["modalities"][0])]["id"].astype(str).to_numpy()
    decoded = t.decode(prior_prediction(arts, len(test_ids)))
    errors = []
    for fmt in (arts["formatter"], arts["formatter"].get("alternative")):
        if not fmt:
            continue
        try:
            out = format_submission(decoded, test_ids, sample, plan["id_column"], fmt)
            validate_submission(out, sample, plan["id_column"], plan["target_columns"], t)
            return
        except CheckError as e:
            errors.append(f"{fmt.get('method')}: {e}")
    raise CheckError("no formatter yields the sample submission's structure: " + "; ".join(errors))


@dataclass(frozen=True)
class MetaCheck:
    """A check across stages; the stages it covers are named in the stage table (setup/stages.py)."""

    name: str
    fn: Callable[[Competition, dict[str, Any]], None]


META_CHECKS = (
    MetaCheck("train_ids_agree", meta_train_ids),
    MetaCheck("target_roundtrip", meta_target_roundtrip),
    MetaCheck("loader_aligned", meta_loader),
    MetaCheck("formatter_matches_sample", meta_formatter),
)
