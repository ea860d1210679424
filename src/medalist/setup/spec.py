"""The task spec (task.json) and the target transform between submission space and model space.

Submission space: what the target columns of a submission hold (labels, probabilities, values).
Model space: what models fit and predict. Targets ``Y`` are (n, k_target) floats; predictions ``P`` are
(n, n_outputs) floats:

=================  =========================  ===========================  =========================
kind               Y (model target)           P (model prediction)         decode(P)
=================  =========================  ===========================  =========================
binary             0/1, one column            P(positive), one column      label or probability
multiclass         class index, one column    class probabilities (C)      label (argmax) or C probs
multilabel         0/1 per column (L)         probability per column (L)   probabilities or labels
regression         value (optionally log1p)   value per target (T)         values (expm1, clipped)
ordinal            ordered value, one column  value, one column            nearest class (cut points)
=================  =========================  ===========================  =========================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError, InputError
from medalist.workspace import write_json_atomic

TASK_TYPES = ("binary", "multiclass", "multilabel", "regression", "multi_target_regression", "ordinal")
MODALITIES = ("tabular", "text", "image")


@dataclass
class TargetTransform:
    """How submission-space targets become model-space targets and predictions go back.

    kind: binary | multiclass | multilabel | regression | ordinal
    output: "label" (decode to class labels), "proba" (probabilities), "value" (numbers)
    classes: class labels in model index order (binary: [negative, positive]; ordinal: sorted values)
    columns: the submission target columns this transform fills
    log: regression fitted on log1p(y) (decode expm1) — for RMSLE-like metrics
    clip_min: lower clip of decoded regression values (e.g. 0 for counts)
    threshold: binary decision threshold; cut_points: ordinal thresholds (len(classes)-1)
    """

    kind: str
    output: str
    columns: list[str]
    classes: list[Any] | None = None
    log: bool = False
    clip_min: float | None = None
    clip_max: float | None = None
    threshold: float = 0.5
    cut_points: list[float] | None = None
    label_dtype: str | None = None

    @property
    def n_outputs(self) -> int:
        if self.kind == "multiclass":
            return len(self.classes or [])
        if self.kind in ("multilabel", "regression"):
            return len(self.columns)
        return 1

    # ------------------------------------------------------------------ encode
    def encode(self, target: pd.DataFrame) -> np.ndarray:
        """Submission-space target columns -> model-space Y of shape (n, k)."""
        missing = [c for c in self.columns if c not in target.columns]
        if missing:
            raise CheckError(
                f"target map lacks columns {missing}; it must hold the submission's target columns"
            )
        t = target[self.columns]
        if self.kind == "multiclass":
            if self.output == "proba" or len(self.columns) > 1:
                arr = t.to_numpy(dtype=float)
                if not np.allclose(arr.sum(axis=1), 1.0):
                    raise CheckError("one-hot target rows must sum to 1 (one class per row)")
                return arr.argmax(axis=1).astype(float)[:, None]
            return self._index_of(t.iloc[:, 0])[:, None]
        if self.kind == "binary":
            if self.classes is None:
                raise CheckError("binary transform needs classes [negative, positive]")
            return self._index_of(t.iloc[:, 0])[:, None]
        if self.kind == "ordinal":
            return t.iloc[:, :1].to_numpy(dtype=float)
        if self.kind == "multilabel":
            return t.to_numpy(dtype=float)
        y = t.to_numpy(dtype=float)
        if self.log:
            if (y <= -1).any():
                raise CheckError("log1p target transform needs targets > -1")
            y = np.log1p(y)
        return y

    def _index_of(self, col: pd.Series) -> np.ndarray:
        lookup = {label_key(c): i for i, c in enumerate(self.classes or [])}
        keys = [label_key(v) for v in col.tolist()]
        bad = sorted({k for k in keys if k not in lookup})[:5]
        if bad:
            raise CheckError(f"target values {bad} are not among the classes {list(lookup)[:10]}")
        return np.array([lookup[k] for k in keys], dtype=float)

    # ------------------------------------------------------------------ decode
    def decode(self, pred: np.ndarray) -> pd.DataFrame:
        """Model-space predictions (n, n_outputs) -> submission-space target columns."""
        p = np.asarray(pred, dtype=float)
        if p.ndim == 1:
            p = p[:, None]
        if p.shape[1] != self.n_outputs:
            raise CheckError(f"predictions have {p.shape[1]} columns; this task needs {self.n_outputs}")
        cols = self.columns
        if self.kind == "multiclass":
            p = np.clip(p, 0, None)
            s = p.sum(axis=1, keepdims=True)
            s[s == 0] = 1
            p = p / s
            if self.output == "proba":
                return pd.DataFrame(p, columns=cols)
            idx = p.argmax(axis=1)
            return pd.DataFrame({cols[0]: self._labels_at(idx)})
        if self.kind == "binary":
            q = np.clip(p[:, 0], 0, 1)
            if self.output == "proba":
                return pd.DataFrame({cols[0]: q})
            return pd.DataFrame({cols[0]: self._labels_at((q >= self.threshold).astype(int))})
        if self.kind == "ordinal":
            classes = np.asarray(self.classes, dtype=float)
            cuts = (
                np.asarray(self.cut_points, dtype=float)
                if self.cut_points
                else (classes[:-1] + classes[1:]) / 2
            )
            idx = np.searchsorted(cuts, p[:, 0], side="right")
            return pd.DataFrame({cols[0]: self._labels_at(idx)})
        if self.kind == "multilabel":
            q = np.clip(p, 0, 1)
            if self.output == "label":
                q = (q >= self.threshold).astype(int)
            return pd.DataFrame(q, columns=cols)
        y = np.expm1(p) if self.log else p.copy()
        if self.clip_min is not None or self.clip_max is not None:
            y = np.clip(y, self.clip_min, self.clip_max)
        return pd.DataFrame(y, columns=cols)

    def _labels_at(self, idx: np.ndarray) -> list[Any]:
        classes = list(self.classes or [])
        out = [classes[i] for i in idx]
        if self.label_dtype == "int":
            return [int(v) for v in out]
        if self.label_dtype == "bool":
            return [bool(v) for v in out]
        return out

    def perfect(self, y: np.ndarray) -> np.ndarray:
        """The model-space prediction that is exactly right for model-space target ``y``."""
        y = np.asarray(y, dtype=float)
        if self.kind == "multiclass":
            out = np.zeros((len(y), self.n_outputs))
            out[np.arange(len(y)), y[:, 0].astype(int)] = 1.0
            return out
        return y.copy()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetTransform:
        return cls(**d)


def label_key(v: Any) -> str:
    """A label's comparison key: 1, 1.0 and '1' agree; True and 'True' agree."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return str(v)


@dataclass
class TaskSpec:
    """What medalist knows about a competition after setup: written to ``task.json``."""

    slug: str
    task_type: str = ""
    metric: str = ""
    lower_is_better: bool = False
    id_column: str = ""
    target_columns: list[str] = field(default_factory=list)  # submission target columns, in order
    label_columns: list[str] = field(default_factory=list)  # train columns that hold the target
    modalities: list[str] = field(default_factory=list)  # input modalities present
    input_columns: dict[str, list[str]] = field(default_factory=dict)  # modality -> train columns
    categorical_columns: list[str] = field(default_factory=list)
    datetime_columns: list[str] = field(default_factory=list)
    excluded_columns: dict[str, str] = field(default_factory=dict)  # column -> why it is not an input
    image_source: dict[str, Any] = field(default_factory=dict)  # how ids map to image files
    group_column: str | None = None
    time_column: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # role -> path relative to the competition dir
    submission: dict[str, Any] = field(default_factory=dict)  # file, columns, n_rows, value kinds
    target_transform: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def transform(self) -> TargetTransform:
        return TargetTransform.from_dict(self.target_transform)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: Path) -> TaskSpec:
        if not path.exists():
            raise InputError(f"no task.json at {path}: run `medalist setup` first")
        data = json.loads(path.read_text(encoding="utf-8"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
