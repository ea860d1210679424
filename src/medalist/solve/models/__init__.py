"""The model zoo: every family behind the ``ModelFamily`` protocol of ``medalist.solve.types``.

``fit_predict(X_train, y_train, X_valid, X_test, params, task, seed, y_valid=None)`` returns model-space
predictions (n_valid, n_outputs) and (n_test, n_outputs): P(positive) for binary, C class probabilities
(class index order) for multiclass, one probability per label for multilabel, one value per target for
regression, the value for ordinal. ``params`` are merged over ``default_params(task, n_rows)``.
"""

from __future__ import annotations

from collections.abc import Callable

from medalist.errors import InputError
from medalist.solve.models.base import Family
from medalist.solve.models.fusion import FusionFamily
from medalist.solve.models.gbdt import CatBoostFamily, LGBMFamily, XGBFamily
from medalist.solve.models.image import CNNFamily
from medalist.solve.models.image_backbone import PretrainedImageFamily
from medalist.solve.models.image_features import ImgEmbedLGBMFamily
from medalist.solve.models.mlp import MLPFamily
from medalist.solve.models.sk import ETFamily, KNNFamily, LinearFamily, RFFamily
from medalist.solve.models.text import NBSVMFamily, TfidfLinearFamily, TfidfNBFamily
from medalist.solve.models.text_embed import SentenceEmbedLGBMFamily, SentenceEmbedLinearFamily
from medalist.solve.models.text_transformer import TransformerFTFamily
from medalist.solve.types import CLASSIFICATION_KINDS, ModelFamily

_FACTORIES: dict[str, Callable[[], Family]] = {
    "lgbm": LGBMFamily,
    "xgb": XGBFamily,
    "catboost": CatBoostFamily,
    "linear": LinearFamily,
    "knn": KNNFamily,
    "rf": RFFamily,
    "et": ETFamily,
    "mlp": MLPFamily,
    "tfidf_linear": TfidfLinearFamily,
    "nbsvm": NBSVMFamily,
    "tfidf_nb": TfidfNBFamily,
    "st_embed_lr": SentenceEmbedLinearFamily,
    "st_embed_lgbm": SentenceEmbedLGBMFamily,
    "transformer_ft": TransformerFTFamily,
    "cnn": CNNFamily,
    "img_embed_lgbm": ImgEmbedLGBMFamily,
    "img_pretrained": PretrainedImageFamily,
    "fusion": FusionFamily,
}

MODEL_NAMES: list[str] = list(_FACTORIES)


def get_model(name: str) -> ModelFamily:
    """A fresh instance of the family called ``name``."""
    if name not in _FACTORIES:
        raise InputError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return _FACTORIES[name]()


def available_models(modalities: tuple[str, ...] | list[str], task_kind: str | None = None) -> list[str]:
    """Families usable here (packages / weights present) whose primary (first) modality is among the task's
    input ``modalities``; with ``task_kind``, classification-only families only for classification."""
    present = set(modalities)
    out = []
    for name in MODEL_NAMES:
        fam = _FACTORIES[name]()
        if task_kind is not None and fam.classification_only and task_kind not in CLASSIFICATION_KINDS:
            continue
        if fam.modalities[0] in present and fam.available() is None:
            out.append(name)
    return out


__all__ = ["MODEL_NAMES", "available_models", "get_model"]
