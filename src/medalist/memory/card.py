"""Task cards: what a competition looks like, as text (for embeddings) and as numbers (for similarity).

A card is built from a workspace (task.json and the maps); task similarity mixes the cosine of the
cards' text embeddings with a numeric similarity of their descriptors:
``sim(a, b) = w_text * cos(e_a, e_b) + (1 - w_text) * exp(-||v_a - v_b||)``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from medalist.metrics import Direction
from medalist.setup.data import MODALITY_CODES
from medalist.setup.spec import MODALITIES, TASK_TYPES, TaskSpec

DESCRIPTION_CHARS = 600
METRIC_BUCKETS = 8
TEXT_WEIGHT = 0.5
CLASSIFICATION = ("binary", "multiclass", "multilabel", "ordinal")


@dataclass(frozen=True)
class TaskCard:
    """One competition at a glance (one card per competition, keyed by its slug)."""

    task_key: str
    task_type: str = ""
    modalities: tuple[str, ...] = ()
    metric: str = ""
    lower_is_better: bool = False
    n_train: int = 0
    n_test: int = 0
    n_numeric: int = 0
    n_categorical: int = 0
    n_text: int = 0
    n_datetime: int = 0
    n_image: int = 0
    max_cardinality: int = 0
    median_cardinality: float = 0.0
    missing_share: float = 0.0
    n_classes: int = 0
    target_skew: float = 0.0
    n_targets: int = 1
    description: str = ""

    # ------------------------------------------------------------------ build
    @classmethod
    def from_workspace(cls, ws_path: str | Path) -> TaskCard:
        """The card of the workspace at ``ws_path`` (task.json required; maps used when present)."""
        root = Path(ws_path)
        spec = TaskSpec.load(root / "task.json")
        maps = root / "maps"
        tab = _read_map(maps, "train", "tabular")
        cats = [c for c in spec.categorical_columns if tab is not None and c in tab.columns]
        tab_inputs = [
            c for c in spec.input_columns.get("tabular", []) if tab is not None and c in tab.columns
        ]
        dates = [c for c in spec.datetime_columns if c in tab_inputs]
        cards = [int(tab[c].nunique()) for c in cats] if tab is not None else []
        missing = float(tab[tab_inputs].isna().to_numpy().mean()) if tab is not None and tab_inputs else 0.0
        n_classes, skew = _target_shape(spec, maps)
        return cls(
            task_key=spec.slug,
            task_type=spec.task_type,
            modalities=tuple(spec.modalities),
            metric=spec.metric,
            lower_is_better=bool(spec.lower_is_better),
            n_train=_rows(maps, "train", spec.modalities),
            n_test=_rows(maps, "test", spec.modalities) or int(spec.submission.get("n_rows") or 0),
            n_numeric=len(tab_inputs) - len(cats) - len(dates),
            n_categorical=len(cats),
            n_text=len(spec.input_columns.get("text", [])),
            n_datetime=len(dates),
            n_image=len(spec.input_columns.get("image", [])) or int("image" in spec.modalities),
            max_cardinality=max(cards, default=0),
            median_cardinality=float(np.median(cards)) if cards else 0.0,
            missing_share=round(missing, 4),
            n_classes=n_classes,
            target_skew=round(skew, 3),
            n_targets=max(len(spec.target_columns), 1),
            description=" ".join(spec.summary.split())[:DESCRIPTION_CHARS],
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskCard:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["modalities"] = tuple(values.get("modalities", ()))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        return out

    # ------------------------------------------------------------------ views
    def text(self) -> str:
        """A short description of the task for text embeddings and prompts."""
        direction = f"{Direction(self.lower_is_better).word} is better"
        target = (
            f"{self.n_classes} classes"
            if self.task_type in CLASSIFICATION
            else f"target skew {self.target_skew:.2f}"
        )
        return (
            f"Competition {self.task_key}: {self.task_type} task on {' + '.join(self.modalities) or 'unknown'} "
            f"data, metric {self.metric} ({direction}), {target}. {self.n_train} train rows, {self.n_test} "
            f"test rows; columns: {self.n_numeric} numeric, {self.n_categorical} categorical (max cardinality "
            f"{self.max_cardinality}), {self.n_text} text, {self.n_datetime} datetime, {self.n_image} image; "
            f"{self.missing_share:.0%} missing. {self.description}"
        )

    def vector(self) -> np.ndarray:
        """Numeric descriptor, each component roughly in [0, 1]: task type and modality one-hots, hashed
        metric, direction, log sizes, column-kind shares, cardinalities, missing share, classes, skew."""
        n_cols = self.n_numeric + self.n_categorical + self.n_text + self.n_datetime + self.n_image
        shares = [
            k / max(n_cols, 1)
            for k in (self.n_numeric, self.n_categorical, self.n_text, self.n_datetime, self.n_image)
        ]
        metric = [0.0] * METRIC_BUCKETS
        if self.metric:
            metric[int(hashlib.sha1(self.metric.encode()).hexdigest(), 16) % METRIC_BUCKETS] = 1.0
        parts = [
            [float(self.task_type == t) for t in TASK_TYPES],
            [float(m in self.modalities) for m in MODALITIES],
            metric,
            [float(self.lower_is_better)],
            [math.log10(self.n_train + 1) / 7, math.log10(self.n_test + 1) / 7, math.log10(n_cols + 1) / 4],
            shares,
            [math.log10(self.max_cardinality + 1) / 6, math.log10(self.median_cardinality + 1) / 6],
            [self.missing_share, math.log2(self.n_classes + 1) / 8, math.tanh(self.target_skew / 3)],
        ]
        return np.array([x for part in parts for x in part], dtype=np.float32)


def numeric_similarity(a: TaskCard, b: TaskCard) -> float:
    """exp(-||v_a - v_b||): 1 for identical descriptors, towards 0 for very different tasks."""
    return float(np.exp(-np.linalg.norm(a.vector() - b.vector())))


def task_similarity(
    a: TaskCard, b: TaskCard, text_a: np.ndarray, text_b: np.ndarray, text_weight: float = TEXT_WEIGHT
) -> float:
    """``text_weight`` * cosine of the (unit) text vectors + (1 - text_weight) * numeric similarity."""
    cosine = float(np.dot(text_a, text_b))
    return text_weight * cosine + (1 - text_weight) * numeric_similarity(a, b)


# ---------------------------------------------------------------------- helpers
def _map_file(maps: Path, split: str, modality: str) -> Path:
    return maps / f"{split}_{MODALITY_CODES[modality]}_input_map.parquet"


def _read_map(maps: Path, split: str, modality: str) -> pd.DataFrame | None:
    path = _map_file(maps, split, modality)
    return pd.read_parquet(path) if path.is_file() else None


def _rows(maps: Path, split: str, modalities: list[str]) -> int:
    for modality in modalities:
        path = _map_file(maps, split, modality)
        if path.is_file():
            return int(pq.read_metadata(path).num_rows)
    return 0


def _target_shape(spec: TaskSpec, maps: Path) -> tuple[int, float]:
    """(number of classes, 0) for classification; (0, skewness of the first target) for regression."""
    classes = spec.target_transform.get("classes") or []
    if spec.task_type in CLASSIFICATION:
        return (len(classes) or max(len(spec.target_columns), 2)), 0.0
    path = maps / "train_tab_target_map.parquet"
    if not path.is_file() or not spec.target_columns:
        return 0, 0.0
    target = pd.read_parquet(path)
    column = next((c for c in spec.target_columns if c in target.columns), None)
    if column is None:
        return 0, 0.0
    skew = pd.to_numeric(target[column], errors="coerce").skew()
    return 0, float(skew) if pd.notna(skew) else 0.0
