"""The model zoo: every family behind the ``ModelFamily`` protocol of ``medalist.solve.types``.

``fit_predict(X_train, y_train, X_valid, X_test, params, task, seed, y_valid=None)`` returns model-space
predictions (n_valid, n_outputs) and (n_test, n_outputs): P(positive) for binary, C class probabilities
(class index order) for multiclass, one probability per label for multilabel, one value per target for
regression, the value for ordinal. ``params`` are merged over ``default_params(task, n_rows)``.
"""

from __future__ import annotations

from medalist.errors import InputError
from medalist.solve.models.registry import FAMILIES, FamilyInfo
from medalist.solve.types import CLASSIFICATION_KINDS, ModelFamily

MODEL_NAMES: list[str] = list(FAMILIES)


def get_model(name: str) -> ModelFamily:
    """A fresh instance of the family called ``name``."""
    if name not in FAMILIES:
        raise InputError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return FAMILIES[name].factory()


def available_models(modalities: tuple[str, ...] | list[str], task_kind: str | None = None) -> list[str]:
    """Families usable here (packages / weights present) whose primary (first) modality is among the task's
    input ``modalities``; with ``task_kind``, classification-only families only for classification."""
    present = set(modalities)
    out = []
    for name in MODEL_NAMES:
        info = FAMILIES[name]
        if task_kind is not None and info.classification_only and task_kind not in CLASSIFICATION_KINDS:
            continue
        if info.modalities[0] in present and info.factory().available() is None:
            out.append(name)
    return out


__all__ = ["FAMILIES", "MODEL_NAMES", "FamilyInfo", "available_models", "get_model"]
