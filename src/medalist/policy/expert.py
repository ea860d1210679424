"""ExpertPolicy: the setup decisions a seasoned Kaggler makes by eye. No LLM, deterministic."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.intake import Competition
from medalist.metrics import get_metric, recognize_metric
from medalist.setup import rules
from medalist.setup.data import make_keys
from medalist.setup.policy import StageContext, Usage
from medalist.setup.profile import (
    IMAGE_EXTENSIONS,
    is_integer_valued,
    profile_column,
    sorted_classes,
)
from medalist.setup.spec import label_key

LOG_METRICS = ("rmsle", "rmse_log", "mean_columnwise_rmsle")


def _base(rel: str) -> str:
    return PurePosixPath(rel).name.lower()


def _stem(rel: str) -> str:
    name = _base(rel)
    for ext in (".zip", ".gz", ".bz2", ".xz"):
        name = name.removesuffix(ext)
    return name.rsplit(".", 1)[0]


class ExpertPolicy:
    """Rules of a strong practitioner, applied to the files and the description."""

    name = "expert"

    def usage(self) -> Usage:
        return Usage()

    def keep_artifact(self, ctx: StageContext) -> bool:
        # Deterministic rules give the same artifact again; redo only stages the failure names.
        return not (ctx.meta_failure and ctx.stage in ctx.meta_failure)

    # ------------------------------------------------------------------ summary
    def summarize(self, ctx: StageContext) -> str:
        comp = ctx.competition
        text = re.sub(r"<[^>]+>|[#*`>\[\]]|\(http[^)]*\)", " ", comp.description or "")
        text = re.sub(r"[ \t]+", " ", text)
        paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) > 60]
        head = " ".join(paragraphs[:2])[:600] if paragraphs else ""
        metric = recognize_metric(comp.description or "")
        tables = ", ".join(comp.tables[:8])
        parts = [f"Competition {comp.slug}."]
        if head:
            parts.append(head)
        if metric:
            parts.append(f"Evaluation: {metric.name} ({metric.word} is better).")
        parts.append(f"Tables: {tables or 'none'}.")
        if comp.image_dirs:
            parts.append(
                "Image folders: " + ", ".join(f"{d.rel} ({d.n_files})" for d in comp.image_dirs) + "."
            )
        return " ".join(parts)

    # ------------------------------------------------------------------ files and modalities
    def detect_modalities(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        files = self._file_roles(comp)
        train = comp.read_table(files["train"])
        test = comp.read_table(files["test"]) if files["test"] else None
        sample = comp.read_table(files["sample_submission"])
        id_column = rules.id_column(train, test, sample)
        shared = [c for c in train.columns if test is not None and c in test.columns]
        inputs: set[str] = set()
        for col in shared:
            kind = profile_column(train[col]).kind
            if kind == "text":
                inputs.add("text")
            elif kind == "image_path":
                inputs.add("image")
            elif kind not in ("constant", "empty") and col != id_column:
                inputs.add("tabular")
        if id_column and id_column in train.columns:
            kind = profile_column(train[id_column]).kind
            if kind == "datetime":
                inputs.add("tabular")
            elif kind == "text":
                inputs.add("text")
        image: dict[str, Any] = {}
        if id_column and id_column in train.columns:
            found = comp.find_images([str(v) for v in train[id_column].head(200)])
            if found:
                image = {"by": "id", "column": id_column}
                inputs.add("image")
        path_cols = [c for c in shared if profile_column(train[c]).kind == "image_path"]
        if path_cols and not image:
            image = {"by": "column", "column": path_cols[0]}
        order = [m for m in ("tabular", "text", "image") if m in inputs]
        if not order:
            raise CheckError(
                "train and test share no usable input column and no image files are keyed by the ids: "
                f"train has {list(train.columns)[:8]}, test has {list(test.columns)[:8] if test is not None else []}"
            )
        return {"files": files, "inputs": order, "image": image, "id_column": id_column}

    def _file_roles(self, comp: Competition) -> dict[str, str | None]:
        tables = list(comp.tables)
        if not tables:
            raise CheckError("no data table found (expected train.csv, test.csv and a sample submission)")
        samples = [t for t in tables if re.search(r"sample|submission|submit", _base(t))]
        samples.sort(key=lambda t: (0 if "sample" in _base(t) else 1, len(t)))
        if not samples:
            raise CheckError(
                f"no sample submission found among {tables[:6]}: add the competition's sample_submission.csv"
            )
        sample = samples[0]
        rest = [t for t in tables if t not in samples]
        trains = [t for t in rest if "train" in _base(t)]
        trains.sort(key=lambda t: (0 if _stem(t) == "train" else 1, "label" in _base(t), len(t)))
        if not trains:
            raise CheckError(
                f"no training table found among {tables[:6]}: expected a file named like train.csv"
            )
        train = trains[0]
        labels = next((t for t in trains[1:] if "label" in _base(t) or "target" in _base(t)), None)
        tests = [t for t in rest if "test" in _base(t)]
        tests.sort(key=lambda t: (0 if _stem(t) == "test" else 1, len(t)))
        test = tests[0] if tests else None
        if test is None and not comp.image_dirs and not comp.per_id_dirs:
            raise CheckError(f"no test table found among {tables[:6]}: expected a file named like test.csv")
        return {"train": train, "test": test, "sample_submission": sample, "train_labels": labels}

    # ------------------------------------------------------------------ plan
    def plan(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        mods = ctx.artifacts["modalities"]
        files = mods["files"]
        train = rules.train_table(comp, files)
        test = comp.read_table(files["test"]) if files["test"] else None
        sample = comp.read_table(files["sample_submission"])
        id_column = mods["id_column"]
        test_cols = rules.test_columns(test, id_column)
        targets = rules.target_columns(sample, id_column, test_cols)
        labels, one_hot = rules.label_columns(train, test_cols, targets)
        task_type = rules.infer_task_type(comp, train, sample, targets, labels, one_hot)
        return rules.plan_columns(comp, mods, train, id_column, targets, labels, one_hot, task_type)

    # ------------------------------------------------------------------ maps
    def input_map(self, ctx: StageContext) -> pd.DataFrame:
        comp = ctx.competition
        plan = ctx.artifacts["plan"]
        files = ctx.artifacts["modalities"]["files"]
        cols = plan["input_columns"][ctx.modality]
        if ctx.split == "train":
            frame = rules.train_table(comp, files)
            frame = frame[self._labeled_mask(frame, plan)].reset_index(drop=True)
            keys = self._train_keys(frame, plan["id_column"])
        else:
            sample = comp.read_table(files["sample_submission"])
            frame = self._test_in_sample_order(comp, files, sample, plan["id_column"])
            keys = make_keys(sample[plan["id_column"]].tolist())
        if ctx.modality == "image":
            paths = self._image_paths(
                comp, ctx.artifacts["modalities"]["image"], frame, keys, plan["id_column"]
            )
            return pd.DataFrame({"id": keys, "path": paths})
        out = frame[cols].copy() if cols else pd.DataFrame(index=frame.index)
        out.insert(0, "id", keys)
        return out.reset_index(drop=True)

    def _labeled_mask(self, train: pd.DataFrame, plan: dict[str, Any]) -> pd.Series:
        return train[plan["label_columns"]].notna().all(axis=1)

    def _train_keys(self, train: pd.DataFrame, id_column: str) -> list[str]:
        if id_column in train.columns:
            return make_keys(train[id_column].tolist())
        return [f"row{i}" for i in range(len(train))]

    def _test_in_sample_order(
        self, comp: Competition, files: dict[str, Any], sample: pd.DataFrame, id_column: str
    ) -> pd.DataFrame:
        sample_keys = make_keys(sample[id_column].tolist())
        if not files.get("test"):
            return sample[[id_column]].copy()
        test = comp.read_table(files["test"])
        if id_column not in test.columns:
            if len(test) != len(sample):
                raise CheckError(
                    f"test table has no {id_column!r} column and {len(test)} rows vs {len(sample)} in the sample"
                )
            return test.reset_index(drop=True)
        test_keys = make_keys(test[id_column].tolist())
        index = {k: i for i, k in enumerate(test_keys)}
        missing = [k for k in sample_keys if k not in index]
        if missing:
            dup = int(test[id_column].duplicated().sum())
            hint = f"; the test table repeats {dup} ids" if dup else ""
            raise CheckError(
                f"{len(missing)} sample-submission ids are not in the test table (e.g. {missing[:3]}){hint}"
            )
        extra = len(test_keys) - len(sample_keys)
        if extra > 0:
            dup = int(test[id_column].duplicated().sum())
            if dup:
                raise CheckError(
                    f"the test table has {dup} duplicated ids that the sample submission lists once"
                )
        return test.iloc[[index[k] for k in sample_keys]].reset_index(drop=True)

    def _image_paths(
        self, comp: Competition, image: dict[str, Any], frame: pd.DataFrame, keys: list[str], id_column: str
    ) -> list[str]:
        if image.get("by") == "column":
            col = image["column"]
            out = []
            for v in frame[col].astype(str):
                found = comp.find_images([PurePosixPath(v).stem])
                out.append(next(iter(found.values())) if found else str(comp.resolve(v)))
            return out
        ids = (
            [str(v) for v in frame[id_column].tolist()]
            if id_column in frame.columns
            else [k.split("#")[0] for k in keys]
        )
        found = comp.find_images(ids) or {}
        missing = [i for i in ids if i not in found]
        if missing:
            raise CheckError(f"no image file for {len(missing)} ids (e.g. {missing[:3]})")
        return [str(found[i]) for i in ids]

    def target_map(self, ctx: StageContext) -> pd.DataFrame:
        comp = ctx.competition
        plan = ctx.artifacts["plan"]
        files = ctx.artifacts["modalities"]["files"]
        train = rules.train_table(comp, files)
        labels = plan["label_columns"]
        if not train[labels].notna().any().any():
            raise CheckError(f"target column(s) {labels} hold no values in the training table")
        train = train[self._labeled_mask(train, plan)].reset_index(drop=True)
        keys = self._train_keys(train, plan["id_column"])
        one_hot = plan.get("one_hot")
        if one_hot:
            col = train[one_hot["column"]].map(label_key)
            data = {t: (col == label_key(v)).astype(int).to_numpy() for t, v in one_hot["classes"].items()}
            out = pd.DataFrame(data)
        else:
            out = train[plan["target_columns"]].copy()
        out.insert(0, "id", keys)
        return out

    # ------------------------------------------------------------------ transform
    def target_transform(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        plan = ctx.artifacts["plan"]
        target = ctx.artifacts["train_tab_target"]
        cols = plan["target_columns"]
        metric = recognize_metric(comp.description or "", len(cols))
        task = plan["task_type"]
        y = target[cols]
        if task == "multiclass" and plan.get("one_hot"):
            return {"kind": "multiclass", "output": "proba", "columns": cols, "classes": list(cols)}
        if task in ("binary", "multiclass"):
            values = y.iloc[:, 0]
            output = "proba" if metric is not None and metric.scores == "proba" else "label"
            sample_kind = self._sample_value_kind(comp, ctx.artifacts["modalities"]["files"], cols[0])
            if metric is None and sample_kind == "float" and task == "binary":
                output = "proba"
            return rules.class_transform(
                task, output, cols, values, rules.default_positive(sorted_classes(values))
            )
        if task == "ordinal":
            return rules.ordinal_transform(cols, y.iloc[:, 0])
        if task == "multilabel":
            output = "proba" if metric is None or metric.scores == "proba" else "label"
            return {"kind": "multilabel", "output": output, "columns": cols}
        arr = y.to_numpy(dtype=float)
        nonneg = bool(np.nanmin(arr) >= 0)
        use_log = metric is not None and metric.name in LOG_METRICS and nonneg
        return {
            "kind": "regression",
            "output": "value",
            "columns": cols,
            "log": use_log,
            "clip_min": 0.0
            if (use_log or (nonneg and metric is not None and metric.name.startswith("rmsle")))
            else None,
        }

    def _sample_value_kind(self, comp: Competition, files: dict[str, Any], col: str) -> str:
        sample = comp.read_table(files["sample_submission"])
        vals = sample[col].dropna()
        if pd.api.types.is_float_dtype(vals) and not is_integer_valued(vals.to_numpy()):
            return "float"
        return "label"

    # ------------------------------------------------------------------ metric and formatter
    def metric(self, ctx: StageContext) -> dict[str, Any]:
        comp = ctx.competition
        plan = ctx.artifacts["plan"]
        transform = ctx.artifacts["target_transform"]
        found = recognize_metric(comp.description or "", len(plan["target_columns"]))
        if found is None:
            found = get_metric(rules.default_metric(plan["task_type"], transform.get("output", "value")))
        if found.scores == "proba" and transform.get("output") == "label" and transform["kind"] != "ordinal":
            found = get_metric(rules.default_metric(plan["task_type"], "label"))
        return {
            "metric": found.name,
            "lower_is_better": found.lower_is_better,
            "recognized": found is not None,
        }

    def formatter(self, ctx: StageContext) -> dict[str, Any]:
        return {"method": "fill_sample", "alternative": {"method": "merge_on_id"}}


__all__ = ["IMAGE_EXTENSIONS", "ExpertPolicy"]
