"""Shapes shared by the runner, the model zoo, the ledger and the ensembles."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from medalist.setup.spec import TargetTransform

STATUSES = ("running", "done", "failed")
KINDS = ("model", "script", "ensemble", "distill")
# Who made an experiment: a policy's declarative spec (a family's baseline, a recipe or family variant), a
# tuning trial, another seed of the best, a model's proposal, a script, an ensemble, a distilled student, a
# person (API / CLI), predictions imported from elsewhere.
ORIGINS = ("baseline", "trial", "seed", "llm", "script", "ensemble", "distilled", "user", "imported")
CLASSIFICATION_KINDS = ("binary", "multiclass", "multilabel")


@dataclass(frozen=True)
class ModelTask:
    """What a model needs to know about the task: output shape and objective."""

    kind: str  # binary | multiclass | multilabel | regression | ordinal (TargetTransform.kind)
    n_outputs: int
    metric: str
    lower_is_better: bool
    n_classes: int = 0

    @classmethod
    def from_transform(cls, t: TargetTransform, metric: str, lower_is_better: bool) -> ModelTask:
        return cls(t.kind, t.n_outputs, metric, lower_is_better, len(t.classes or []))

    @property
    def is_classification(self) -> bool:
        return self.kind in CLASSIFICATION_KINDS


class ModelFamily(Protocol):
    """A model in the zoo. ``fit_predict`` trains on one fold and predicts its validation rows and test."""

    name: str
    modalities: tuple[str, ...]  # the input modalities it reads ("tabular", "text", "image")

    def available(self) -> str | None:
        """None when usable here; otherwise a one-line reason (missing package, missing weights)."""
        ...

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]: ...

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        """Hyper-parameter space for the tuners: name -> ("int"|"float"|"logfloat"|"cat", low/choices, high)."""
        ...

    def fit_predict(
        self,
        X_train: pd.DataFrame,
        y_train: np.ndarray,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        task: ModelTask,
        seed: int,
        y_valid: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return model-space predictions (n_valid, n_outputs) and (n_test, n_outputs). ``y_valid`` (the
        validation rows' model-space targets, optional) is used only for early stopping."""
        ...


@dataclass
class ExperimentSpec:
    """A declarative experiment: model family + params + feature recipe + seed."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    features: str = "base"
    seed: int = 0
    parent: str | None = None
    note: str = ""
    origin: str = "user"  # one of ORIGINS (not part of the version: the same spec is the same experiment)

    def version(self) -> str:
        """Short stable hash of what defines the experiment (same spec -> same version)."""
        blob = json.dumps(
            {"m": self.model, "p": self.params, "f": self.features, "s": self.seed},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:8]

    @property
    def name(self) -> str:
        return f"{self.model}_{self.version()}"


@dataclass
class ExperimentRecord:
    """One ledger row."""

    name: str
    model: str
    version: str
    kind: str = "model"
    params: dict[str, Any] = field(default_factory=dict)
    features: str = ""
    seed: int = 0
    cv_score: float | None = None
    fold_scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "running"
    error: str = ""
    parent: str | None = None
    oof_path: str = ""
    test_path: str = ""
    code_hash: str = ""
    note: str = ""
    origin: str = "user"  # one of ORIGINS: who made the experiment
    created_at: float = 0.0
    id: int | None = None


class FoldFeatures(Protocol):
    """Feature matrices of one recipe, split per fold (fold-dependent steps such as target encoding are
    fitted on the fold's training rows only)."""

    def split(
        self, train_idx: np.ndarray, valid_idx: np.ndarray
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """(X_train, X_valid, X_test) for one fold; pass all rows as train_idx and an empty valid_idx to
        fit on everything."""
        ...
