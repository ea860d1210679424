"""The zoo's registry: each family's class and every fact the policies need about it, in one record.

A policy reads a family's cost, its place in the baseline order, its time bounds and the names a model may
call it by from here, never from tables of its own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

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

# The baseline order of a table with many classes (see FamilyInfo.baseline).
MANY_CLASSES = "tabular/many-classes"


@dataclass(frozen=True)
class FamilyInfo:
    """What a model family is, beyond its code."""

    factory: Callable[[], Family]
    cost: float = 2.0  # rough cost relative to a LightGBM baseline, until the family has been measured
    row_cost: float = 0.0  # seconds per row (train + test) before it has been measured (0: use ``cost``)
    # place in the first experiments per input modality (or MANY_CLASSES), lowest first; absent: none
    baseline: dict[str, int] = field(default_factory=dict)
    baseline_share: float = 0.0  # a baseline trains for at most this share of the solve time (0: no bound)
    network: bool = False  # a slow network: its first run must fit in a share of the time left
    min_budget: float = 0.0  # worth starting only with this many seconds for the whole solve phase
    max_cells: float = math.inf  # worth starting only below this many train cells (rows x input columns)
    max_train_rows: float = math.inf  # worth starting only below this many train rows
    # families naming the same embedding cache share it: once one of them ran, the others pay no encoding
    embedding_cache: str = ""
    gbdt: bool = False  # a gradient-boosted tree ensemble
    aliases: tuple[str, ...] = ()  # other names a model may use for it (lower case, letters and digits)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The input modalities it reads, the primary one first."""
        return tuple(self.factory.modalities)  # type: ignore[attr-defined]

    @property
    def classification_only(self) -> bool:
        return bool(self.factory.classification_only)  # type: ignore[attr-defined]

    @property
    def tabular_only(self) -> bool:
        """Reads the table alone."""
        return self.modalities == ("tabular",)


# A tabular baseline trains for at most this share of the solve time (the MLP spent 73 of
# bike-sharing-demand's 264 s on a baseline 2.5x worse than CatBoost). Text and image networks keep their own
# bounds: they are slow by nature and weak when cut short.
TABULAR_SHARE = 0.25
# Seconds per row of sentence embeddings and fine-tuning: they cost in proportion to the number of texts,
# whatever a LightGBM baseline took (MiniLM-L6 encodes ~110 texts/s on 2 cores, loading included: 99 s for
# nlp-getting-started's 10,876 texts; the estimate errs on the slow side).
SENTENCE_ROW_COST = 1 / 90

# Baseline orders, cheap and strong first. Text: TF-IDF families first, cheap and far ahead where style
# matters (spooky-author-identification: NB-SVM log loss 0.354 vs sentence embeddings 0.675 after 162 s);
# embeddings next, where they fit (the best single model on nlp-getting-started, and the first to lose its
# place when tuning pre-empts the baselines); then naive Bayes, cheap and erring unlike the linear families.
# Many classes: a tree per class and round makes GBDTs slow and weak, so LightGBM alone stands for them (xgb
# / catboost baselines took 210 of 300 s on leaf-classification's 99 classes, both far behind linear).
FAMILIES: dict[str, FamilyInfo] = {
    "lgbm": FamilyInfo(
        LGBMFamily,
        cost=1.0,
        baseline={"tabular": 0, "text": 4, MANY_CLASSES: 4},
        baseline_share=TABULAR_SHARE,
        gbdt=True,
        aliases=("lightgbm", "lgb", "lgbmclassifier", "lgbmregressor"),
    ),
    "xgb": FamilyInfo(
        XGBFamily,
        cost=1.5,
        baseline={"tabular": 2},
        baseline_share=TABULAR_SHARE,
        gbdt=True,
        aliases=("xgboost", "xgbclassifier", "xgbregressor"),
    ),
    "catboost": FamilyInfo(
        CatBoostFamily,
        cost=3.0,
        baseline={"tabular": 1},
        baseline_share=TABULAR_SHARE,
        gbdt=True,
        aliases=("cat", "catboostclassifier"),
    ),
    "linear": FamilyInfo(
        LinearFamily,
        cost=0.7,
        baseline={"tabular": 3, MANY_CLASSES: 0},
        baseline_share=TABULAR_SHARE,
        aliases=("logistic", "logisticregression", "logreg", "ridge", "linearregression"),
    ),
    "knn": FamilyInfo(
        KNNFamily,
        cost=0.6,
        baseline={"tabular": 6, MANY_CLASSES: 2},
        baseline_share=TABULAR_SHARE,
        max_cells=5_000_000,
        aliases=("kneighbors", "nearestneighbors"),
    ),
    "rf": FamilyInfo(
        RFFamily,
        cost=1.5,
        baseline={"tabular": 7, MANY_CLASSES: 5},
        baseline_share=TABULAR_SHARE,
        max_train_rows=200_000,
        aliases=("randomforest", "randomforestclassifier"),
    ),
    "et": FamilyInfo(
        ETFamily,
        cost=1.2,
        baseline={"tabular": 4, MANY_CLASSES: 3},
        baseline_share=TABULAR_SHARE,
        aliases=("extratrees", "extratreesclassifier"),
    ),
    "mlp": FamilyInfo(
        MLPFamily,
        cost=3.0,
        baseline={"tabular": 5, MANY_CLASSES: 1},
        baseline_share=0.12,
        aliases=("neuralnetwork",),
    ),
    "tfidf_linear": FamilyInfo(
        TfidfLinearFamily, cost=2.0, baseline={"text": 1}, aliases=("tfidf", "tfidflogistic")
    ),
    "nbsvm": FamilyInfo(NBSVMFamily, cost=2.0, baseline={"text": 0}),
    "tfidf_nb": FamilyInfo(TfidfNBFamily, cost=1.0, baseline={"text": 3}),
    "st_embed_lr": FamilyInfo(
        SentenceEmbedLinearFamily,
        cost=4.0,
        row_cost=SENTENCE_ROW_COST,
        baseline={"text": 2},
        embedding_cache="sentence",
    ),
    "st_embed_lgbm": FamilyInfo(
        SentenceEmbedLGBMFamily,
        cost=2.0,
        row_cost=SENTENCE_ROW_COST,
        baseline={"text": 5},
        embedding_cache="sentence",
    ),
    "transformer_ft": FamilyInfo(
        TransformerFTFamily, cost=30.0, row_cost=1 / 10, baseline={"text": 6}, network=True, min_budget=3000.0
    ),
    "cnn": FamilyInfo(CNNFamily, cost=10.0, baseline={"image": 3}, network=True, min_budget=600.0),
    "img_embed_lgbm": FamilyInfo(ImgEmbedLGBMFamily, cost=3.0, baseline={"image": 0}),
    # frozen pretrained embeddings + a linear model: as cheap as the embedding LightGBM once encoded, and the
    # stronger features where local weights exist (it is usable only then)
    "img_pretrained": FamilyInfo(PretrainedImageFamily, cost=3.0, baseline={"image": 1}),
    "fusion": FamilyInfo(FusionFamily, cost=12.0, baseline={"image": 2}, network=True),
}


def baseline_order(key: str) -> tuple[str, ...]:
    """The families' order of first experiments for an input modality (or MANY_CLASSES)."""
    placed = [(info.baseline[key], name) for name, info in FAMILIES.items() if key in info.baseline]
    return tuple(name for _, name in sorted(placed))


def gbdt_families() -> tuple[str, ...]:
    """The gradient-boosted tree families, in their tabular baseline order."""
    return tuple(name for name in baseline_order("tabular") if FAMILIES[name].gbdt)


def tabular_families() -> tuple[str, ...]:
    """The families that read the table alone."""
    return tuple(name for name, info in FAMILIES.items() if info.tabular_only)


def family_named(name: str, among: list[str] | tuple[str, ...]) -> str | None:
    """The family of ``among`` that ``name`` means (its own name in any case, or one of its aliases)."""
    exact = next((m for m in among if m.lower() == name.strip().lower()), None)
    if exact is not None:
        return exact
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return next((m for m in among if m in FAMILIES and key in FAMILIES[m].aliases), None)
