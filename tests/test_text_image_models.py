"""Text, image and late-fusion families on slices of real shared competitions: spooky-author-identification
(3 authors), detecting-insults (binary), nlp-getting-started (binary, text + keyword/location) and
leaf-classification (images + 192 tabular columns, restricted to a few species).

Each family trains on one split of the slice and must give valid predictions of the right shape that beat
the class prior on the held-out rows. Families that load MiniLM (sentence embeddings, fine-tuning) are slow on
a shared 2-core CPU and carry ``@pytest.mark.slow``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

from medalist.errors import CheckError
from medalist.setup.data import TaskData, align_maps
from medalist.setup.spec import TargetTransform, TaskSpec
from medalist.solve.features import prepare_features
from medalist.solve.ledger import Ledger
from medalist.solve.models import get_model
from medalist.solve.tuning import check_space
from medalist.solve.types import ExperimentSpec, ModelTask
from medalist.workspace import Workspace

SPOOKY = "spooky-author-identification"
INSULTS = "detecting-insults-in-social-commentary"
NLP = "nlp-getting-started"
LEAF = "leaf-classification"


# ----------------------------------------------------------------------------------------- task slices
def _spec(slug: str, t: TargetTransform, metric: str, lower: bool, inputs: dict[str, list[str]]) -> TaskSpec:
    return TaskSpec(
        slug=slug,
        task_type=t.kind,
        metric=metric,
        lower_is_better=lower,
        id_column="id",
        target_columns=list(t.columns),
        label_columns=list(t.columns),
        modalities=list(inputs),
        input_columns=inputs,
        target_transform=t.to_dict(),
    )


def spooky(comp: Path, n: int, n_test: int) -> TaskData:
    """The first ``n`` train rows; the target as the submission's three author probabilities."""
    pub = comp / SPOOKY / "public"
    tr = pd.read_csv(pub / "train.csv").iloc[:n]
    te = pd.read_csv(pub / "test.csv").iloc[:n_test]
    authors = ["EAP", "HPL", "MWS"]
    target = pd.concat([tr[["id"]], pd.get_dummies(tr["author"])[authors].astype(float)], axis=1)
    t = TargetTransform("multiclass", "proba", authors, classes=authors)
    maps = {
        "train_tab_target": target,
        "train_txt_input": tr[["id", "text"]],
        "test_txt_input": te[["id", "text"]],
    }
    return align_maps(_spec(SPOOKY, t, "log_loss", True, {"text": ["text"]}), maps)


def insults(comp: Path, n: int, n_test: int) -> TaskData:
    pub = comp / INSULTS / "public"
    tr = pd.read_csv(pub / "train.csv").iloc[:n]
    te = pd.read_csv(pub / "test.csv").iloc[:n_test]
    for f in (tr, te):
        f["id"] = [f"r{i}" for i in range(len(f))]
    t = TargetTransform("binary", "proba", ["Insult"], classes=[0, 1])
    maps = {
        "train_tab_target": tr[["id", "Insult"]],
        "train_txt_input": tr[["id", "Comment"]],
        "test_txt_input": te[["id", "Comment"]],
    }
    return align_maps(_spec(INSULTS, t, "roc_auc", False, {"text": ["Comment"]}), maps)


def tweets(comp: Path, n: int, n_test: int) -> TaskData:
    """Tweets as text, keyword and location as tabular columns."""
    pub = comp / NLP / "public"
    tr = pd.read_csv(pub / "train.csv").iloc[:n]
    te = pd.read_csv(pub / "test.csv").iloc[:n_test]
    for f in (tr, te):
        f["id"] = f["id"].astype(str)
    t = TargetTransform("binary", "label", ["target"], classes=[0, 1], label_dtype="int")
    maps = {
        "train_tab_target": tr[["id", "target"]],
        "train_txt_input": tr[["id", "text"]],
        "test_txt_input": te[["id", "text"]],
        "train_tab_input": tr[["id", "keyword", "location"]],
        "test_tab_input": te[["id", "keyword", "location"]],
    }
    return align_maps(
        _spec(NLP, t, "f1", False, {"text": ["text"], "tabular": ["keyword", "location"]}), maps
    )


def leaf(comp: Path, n_species: int) -> TaskData:
    """Rows of the first ``n_species`` species (about 9 each) with their images, the target as the
    submission's species probabilities; the whole test set."""
    pub = comp / LEAF / "public"
    tr = pd.read_csv(pub / "train.csv")
    te = pd.read_csv(pub / "test.csv")
    species = sorted(tr["species"].unique())[:n_species]
    tr = tr[tr["species"].isin(species)].reset_index(drop=True)
    cols = [c for c in te.columns if c != "id"]
    out = []
    for f in (tr, te):
        ids = f["id"].astype(str)
        paths = pd.Series([str(pub / "images" / f"{i}.jpg") for i in f["id"]], name="path")
        out.append((ids, paths))
    t = TargetTransform("multiclass", "proba", species, classes=species)
    onehot = pd.get_dummies(tr["species"])[species].astype(float)
    maps = {
        "train_tab_target": pd.concat([out[0][0], onehot], axis=1),
        "train_tab_input": pd.concat([out[0][0], tr[cols]], axis=1),
        "test_tab_input": pd.concat([out[1][0], te[cols]], axis=1),
        "train_img_input": pd.concat([out[0][0], out[0][1]], axis=1),
        "test_img_input": pd.concat([out[1][0], out[1][1]], axis=1),
    }
    return align_maps(_spec(LEAF, t, "log_loss", True, {"tabular": cols, "image": ["path"]}), maps)


class Split:
    """One stratified train/valid split of a task for a family reading ``modalities``."""

    def __init__(self, data: TaskData, modalities: tuple[str, ...], valid: float = 0.25) -> None:
        self.data = data
        self.task = ModelTask.from_transform(data.transform, data.spec.metric, data.spec.lower_is_better)
        y = np.asarray(data.y, dtype=float)
        self.tr, self.va = train_test_split(
            np.arange(data.n_train), test_size=valid, random_state=0, stratify=y[:, 0].astype(int)
        )
        feats = prepare_features(data, "base", modalities)
        self.X_tr, self.X_va, self.X_te = feats.split(self.tr, self.va)
        self.y_tr, self.y_va = y[self.tr], y[self.va]

    def fit(
        self, family: Any, params: dict[str, Any] | None = None, stop_on_valid: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        assert family.available() is None, family.available()
        yv = self.y_va if stop_on_valid else None
        pv, pt = family.fit_predict(
            self.X_tr, self.y_tr, self.X_va, self.X_te, params or {}, self.task, 0, yv
        )
        n_out = self.task.n_outputs
        assert pv.shape == (len(self.va), n_out)
        assert pt.shape == (self.data.n_test, n_out)
        for p in (pv, pt):
            assert np.isfinite(p).all()
            if self.task.is_classification:
                assert (p >= 0).all() and (p <= 1).all()
            if self.task.kind == "multiclass":
                np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
        return pv, pt

    def logloss_vs_prior(self, pv: np.ndarray) -> tuple[float, float]:
        k = self.task.n_outputs
        y = self.y_va[:, 0].astype(int)
        prior = np.bincount(self.y_tr[:, 0].astype(int), minlength=k) / len(self.tr)
        prior = np.clip(prior, 1e-3, None)
        return (
            log_loss(y, np.clip(pv, 1e-15, 1), labels=list(range(k))),
            log_loss(y, np.tile(prior / prior.sum(), (len(y), 1)), labels=list(range(k))),
        )

    def auc(self, pv: np.ndarray) -> float:
        return float(roc_auc_score(self.y_va[:, 0], pv[:, 0]))


@pytest.fixture(scope="module")
def spooky_split(competitions: Path) -> Split:
    return Split(spooky(competitions, 2500, 300), ("text",))


@pytest.fixture(scope="module")
def leaf_data(competitions: Path) -> TaskData:
    return leaf(competitions, 20)


@pytest.fixture
def no_backbone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEDALIST_IMAGE_WEIGHTS", raising=False)
    monkeypatch.delenv("MEDALIST_IMAGE_BACKBONE", raising=False)


def needs(family: Any) -> Any:
    """The family, or a skip with its one-line reason when its packages or local weights are missing."""
    reason = family.available()
    if reason is not None:
        pytest.skip(f"{family.name}: {reason}")
    return family


@pytest.fixture(scope="module")
def embed_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embed-cache")


# ----------------------------------------------------------------------------------------- text: TF-IDF
@pytest.mark.parametrize("name", ["nbsvm", "tfidf_linear", "tfidf_nb"])
def test_tfidf_families_on_spooky_beat_the_prior(spooky_split: Split, name: str) -> None:
    family = get_model(name)
    pv, _ = spooky_split.fit(family)
    ll, prior = spooky_split.logloss_vs_prior(pv)
    assert ll < 0.75 * prior, (ll, prior)


@pytest.mark.parametrize("name", ["nbsvm", "tfidf_nb"])
def test_nb_families_binary_on_insults(competitions: Path, name: str) -> None:
    split = Split(insults(competitions, 1600, 200), ("text",))
    pv, _ = split.fit(get_model(name))
    assert split.auc(pv) > 0.8


@pytest.mark.parametrize("name", ["nbsvm", "tfidf_nb"])
def test_nb_families_refuse_regression(spooky_split: Split, name: str) -> None:
    task = ModelTask("regression", 1, "rmse", True)
    y = np.arange(len(spooky_split.tr), dtype=float)[:, None]
    with pytest.raises(CheckError, match="classification"):
        get_model(name).fit_predict(spooky_split.X_tr, y, spooky_split.X_va, spooky_split.X_te, {}, task, 0)


# ----------------------------------------------------------------------------------------- images
def test_load_image_handles_modes(competitions: Path, tmp_path: Path) -> None:
    """A real leaf silhouette saved as RGBA (transparent background), palette, 16-bit and CMYK loads as the
    same picture; channel detection tells grayscale files from colour ones."""
    from PIL import Image

    from medalist.solve.models.image_loading import decide_channels, load_image

    src = competitions / LEAF / "public" / "images" / "10.jpg"
    base, full = load_image(str(src), 48, 1, "pad")
    assert base.shape == (1, 48, 48) and full == Image.open(src).size
    gray = Image.open(src).convert("L")
    a = np.asarray(gray)
    variants = {
        # leaf opaque white, background fully transparent black -> composited over white
        "rgba.png": Image.fromarray(np.dstack([a, a, a, a]), "RGBA"),
        "palette.png": gray.convert("P"),
        "sixteen.png": Image.fromarray(a.astype(np.uint16) * 257),
        "cmyk.jpg": gray.convert("CMYK"),
    }
    for name, img in variants.items():
        path = tmp_path / name
        img.save(path)
        arr, size = load_image(str(path), 48, 3, "pad")
        assert arr.shape == (3, 48, 48) and arr.dtype == np.uint8 and size == gray.size
        g = arr.mean(axis=0)
        if name == "rgba.png":
            assert g.mean() > 200  # white leaf on white: transparency handled, not black
        else:
            assert np.corrcoef(g.ravel(), base[0].ravel().astype(float))[0, 1] > 0.95, name
    assert decide_channels([str(src)]) == 1
    assert decide_channels([str(tmp_path / "palette.png")]) == 1  # colour file with equal channels
    colour = tmp_path / "colour.png"
    Image.fromarray(np.dstack([a, a // 2, 255 - a]), "RGB").save(colour)
    assert decide_channels([str(colour)]) == 3


def test_img_embed_lgbm_on_leaf(leaf_data: TaskData, no_backbone: None) -> None:
    """Image features alone beat the prior by far; with the 192 tabular columns it is better still."""
    from medalist.solve.models.image_features import ImgEmbedLGBMFamily

    only_images = Split(leaf_data, ("image",))
    assert list(only_images.X_tr.columns) == ["img__path"]
    pv, _ = only_images.fit(ImgEmbedLGBMFamily())
    ll_img, prior = only_images.logloss_vs_prior(pv)
    assert ll_img < 0.6 * prior, (ll_img, prior)
    both = Split(leaf_data, ("image", "tabular"))
    pv, _ = both.fit(ImgEmbedLGBMFamily())
    ll_both, _ = both.logloss_vs_prior(pv)
    assert ll_both < 0.3 * prior, (ll_both, prior)


def test_cnn_on_leaf_images(leaf_data: TaskData) -> None:
    from medalist.solve.models.image import CNNFamily

    split = Split(leaf_data, ("image",))
    family = CNNFamily()
    params = {"image_size": 32, "width": 8, "epochs": 8, "lr": 3e-3, "patience": 3}
    pv, _ = split.fit(family, params, stop_on_valid=True)
    ll, prior = split.logloss_vs_prior(pv)
    assert ll < 0.8 * prior, (ll, prior)
    info = family.last_info
    assert 1 <= info.best_epoch <= info.epochs <= 8 and np.isfinite(info.best_loss)


def test_cnn_stops_early_on_valid_labels(leaf_data: TaskData) -> None:
    from medalist.solve.models.image import CNNFamily

    split = Split(leaf_data, ("image",))
    family = CNNFamily()
    params = {"image_size": 24, "width": 8, "epochs": 30, "patience": 1, "lr": 0.3}
    split.fit(family, params, stop_on_valid=True)
    info = family.last_info
    assert info.stopped == "patience" and info.epochs < 30 and info.best_epoch < info.epochs


def leaf_shapes(comp: Path, n: int, kind: str) -> TaskData:
    """Leaf images with targets read off the data itself: the log aspect ratio of each image file
    (regression) or the genus flags Acer / Quercus (multilabel)."""
    from PIL import Image

    pub = comp / LEAF / "public"
    tr = pd.read_csv(pub / "train.csv").iloc[:n]
    te = pd.read_csv(pub / "test.csv")
    paths = [[str(pub / "images" / f"{i}.jpg") for i in f["id"]] for f in (tr, te)]
    ids = [f["id"].astype(str).tolist() for f in (tr, te)]
    if kind == "regression":
        sizes = np.array([Image.open(p).size for p in paths[0]], dtype=float)
        target = pd.DataFrame({"id": ids[0], "log_aspect": np.log(sizes[:, 0] / sizes[:, 1])})
        t = TargetTransform("regression", "value", ["log_aspect"])
        metric, lower = "mae", True
    else:
        genus = tr["species"].str.split("_").str[0]
        target = pd.DataFrame(
            {"id": ids[0], "acer": genus.eq("Acer") * 1.0, "quercus": genus.eq("Quercus") * 1.0}
        )
        t = TargetTransform("multilabel", "proba", ["acer", "quercus"])
        metric, lower = "roc_auc", False
    maps = {
        "train_tab_target": target,
        "train_img_input": pd.DataFrame({"id": ids[0], "path": paths[0]}),
        "test_img_input": pd.DataFrame({"id": ids[1], "path": paths[1]}),
    }
    return align_maps(_spec(LEAF, t, metric, lower, {"image": ["path"]}), maps)


def test_network_heads_for_values_and_labels(competitions: Path) -> None:
    """A regression head (L1 loss for MAE) learns the aspect ratio from padded images; two label heads learn
    genus flags."""
    from medalist.solve.models.fusion import FusionFamily
    from medalist.solve.models.image import CNNFamily
    from medalist.solve.models.net_training import head_loss, make_heads

    params = {"image_size": 32, "width": 8, "epochs": 8}
    data = leaf_shapes(competitions, 300, "regression")
    task = ModelTask.from_transform(data.transform, "mae", True)
    assert type(head_loss(make_heads(data.y, task)[0], task.metric)).__name__ == "L1Loss"
    rows = np.arange(data.n_train)
    va, tr = rows[::4], np.setdiff1d(rows, rows[::4])
    X_tr, X_va, X_te = prepare_features(data, "base", ("image",)).split(tr, va)
    pv, pt = CNNFamily().fit_predict(X_tr, data.y[tr], X_va, X_te, params, task, 0, data.y[va])
    assert pv.shape == (len(va), 1) and pt.shape == (data.n_test, 1) and np.isfinite(pt).all()
    mae = np.abs(pv - data.y[va]).mean()
    baseline = np.abs(np.median(data.y[tr]) - data.y[va]).mean()
    assert mae < 0.5 * baseline, (mae, baseline)

    data = leaf_shapes(competitions, 300, "multilabel")
    task = ModelTask.from_transform(data.transform, "roc_auc", False)
    X_tr, X_va, X_te = prepare_features(data, "base", ("image",)).split(tr, va)
    pv, pt = FusionFamily().fit_predict(X_tr, data.y[tr], X_va, X_te, params, task, 0)
    assert pv.shape == (len(va), 2) and pt.shape == (data.n_test, 2)
    assert ((pt >= 0) & (pt <= 1)).all()
    assert min(roc_auc_score(data.y[va, j], pv[:, j]) for j in range(2)) > 0.7


@pytest.mark.parametrize("fmt", ["pt2", "pt"])
def test_img_pretrained_reads_a_local_backbone_file(
    leaf_data: TaskData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """The backbone path with a torch.export (.pt2) or TorchScript (.pt) file (random weights: no pretrained
    file ships with the tests)."""
    import torch

    from medalist.solve.models.image import cnn_body
    from medalist.solve.models.image_backbone import PretrainedImageFamily
    from medalist.solve.models.image_features import ImgEmbedLGBMFamily

    class Wrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, _ = cnn_body(3, 8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body({"img": x})

    torch.manual_seed(0)
    model = Wrap().eval()
    example = torch.randn(2, 3, 32, 32)
    path = tmp_path / f"backbone.{fmt}"
    if fmt == "pt2":
        batch = torch.export.Dim("batch")
        torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), str(path))
    else:
        torch.jit.trace(model, example).save(str(path))
    monkeypatch.delenv("MEDALIST_IMAGE_BACKBONE", raising=False)
    monkeypatch.setenv("MEDALIST_IMAGE_WEIGHTS", str(path))
    monkeypatch.setenv("MEDALIST_IMAGE_SIZE", "32")
    split = Split(leaf_data, ("image",))
    family = PretrainedImageFamily()
    pv, _ = split.fit(family)
    ll, prior = split.logloss_vs_prior(pv)
    assert ll < prior, (ll, prior)
    lgbm = ImgEmbedLGBMFamily()
    params = lgbm.default_params(split.task, len(split.tr))
    xtr, _, _ = lgbm.encode(split.X_tr, split.X_va, split.X_te, params, 0)
    assert sum(c.startswith("path__bb") for c in xtr.columns) == 32  # 2 * width 16 (avg + max pooled)


def test_available_says_why_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medalist.solve.models.image_backbone import PretrainedImageFamily
    from medalist.solve.models.text_embed import SentenceEmbedLinearFamily
    from medalist.solve.models.text_transformer import TransformerFTFamily

    monkeypatch.delenv("MEDALIST_IMAGE_BACKBONE", raising=False)
    monkeypatch.delenv("MEDALIST_IMAGE_WEIGHTS", raising=False)
    assert "no local pretrained image backbone" in (PretrainedImageFamily().available() or "")
    monkeypatch.setenv("MEDALIST_IMAGE_WEIGHTS", str(tmp_path / "missing.pt"))
    assert "is not a file" in (PretrainedImageFamily().available() or "")
    monkeypatch.setenv("MEDALIST_TEXT_MODEL", str(tmp_path))
    for family in (SentenceEmbedLinearFamily(), TransformerFTFamily()):
        reason = family.available() or ""
        assert "holds no transformer weights" in reason or "not installed" in reason
        assert "\n" not in reason


# ----------------------------------------------------------------------------------------- fusion
def test_fusion_on_leaf_tabular_and_images(leaf_data: TaskData, no_backbone: None) -> None:
    from medalist.solve.models.fusion import FusionFamily

    split = Split(leaf_data, ("image", "text", "tabular"))
    assert "img__path" in split.X_tr.columns and "margin1" in split.X_tr.columns
    family = FusionFamily()
    params = {"image_size": 32, "width": 8, "epochs": 8, "lr": 5e-3, "optimizer": "sgd"}
    pv, _ = split.fit(family, params)
    ll, prior = split.logloss_vs_prior(pv)
    assert ll < 0.3 * prior, (ll, prior)
    assert family.last_info.epochs == 8  # 137 training rows: too few to hold out, fixed epochs


def test_fusion_hashed_text_and_tabular_on_tweets(competitions: Path) -> None:
    """Without sentence embeddings: hashed n-gram bags + keyword/location embeddings; holdout stopping."""
    from medalist.solve.models.fusion import FusionFamily

    split = Split(tweets(competitions, 1500, 200), ("image", "text", "tabular"))
    family = FusionFamily()
    pv, _ = split.fit(family, {"text_embedder": "hash", "epochs": 6, "lr": 5e-3})
    assert split.auc(pv) > 0.75
    info = family.last_info
    assert 1 <= info.best_epoch <= info.epochs and np.isfinite(info.best_loss)


def test_search_spaces_are_valid_for_the_tuner() -> None:
    from medalist.solve.models.fusion import FusionFamily
    from medalist.solve.models.image import CNNFamily
    from medalist.solve.models.image_backbone import PretrainedImageFamily
    from medalist.solve.models.image_features import ImgEmbedLGBMFamily
    from medalist.solve.models.text import NBSVMFamily
    from medalist.solve.models.text_embed import SentenceEmbedLGBMFamily, SentenceEmbedLinearFamily
    from medalist.solve.models.text_transformer import TransformerFTFamily

    task = ModelTask("multiclass", 3, "log_loss", True, 3)
    for family in (
        NBSVMFamily(),
        SentenceEmbedLinearFamily(),
        SentenceEmbedLGBMFamily(),
        TransformerFTFamily(),
        CNNFamily(),
        ImgEmbedLGBMFamily(),
        PretrainedImageFamily(),
        FusionFamily(),
    ):
        space = family.search_space(task)
        check_space(space)
        defaults = family.default_params(task, 1000)
        assert set(space) <= set(defaults), (family.name, set(space) - set(defaults))
    for family in (CNNFamily(), FusionFamily(), TransformerFTFamily()):
        space = family.search_space(task)
        assert {"lr", "optimizer", "epochs"} <= set(space)
        assert set(space["optimizer"][1]) == {"adamw", "sgd"}


# ----------------------------------------------------------------------------------------- through the runner
def test_runner_writes_oof_and_test_arrays(competitions: Path, tmp_path: Path, no_backbone: None) -> None:
    """nbsvm (spooky) and img_embed_lgbm (leaf) as ledger experiments: 5-fold OOF and test arrays."""
    from medalist.solve.folds import load_or_make_folds
    from medalist.solve.runner import run_experiment

    for data, spec in (
        (spooky(competitions, 1000, 100), ExperimentSpec("nbsvm")),
        (leaf(competitions, 12), ExperimentSpec("img_embed_lgbm", {"fixed_rounds": 100})),
    ):
        ws = Workspace.create(tmp_path, data.spec.slug)
        folds = load_or_make_folds(ws, data, 5, seed=0)
        rec = run_experiment(ws, data, folds, spec, Ledger(ws.ledger), family=_family(spec.model))
        assert rec.status == "done", rec.error
        oof, test = np.load(rec.oof_path), np.load(rec.test_path)
        k = data.transform.n_outputs
        assert oof.shape == (data.n_train, k) and test.shape == (data.n_test, k)
        assert rec.cv_score is not None and len(rec.fold_scores) == 5
        prior = np.bincount(data.y[:, 0].astype(int), minlength=k) / data.n_train
        assert rec.cv_score < 0.7 * log_loss(
            data.y[:, 0], np.tile(prior, (data.n_train, 1)), labels=list(range(k))
        )


def _family(name: str) -> Any:
    from medalist.solve.models.image_features import ImgEmbedLGBMFamily
    from medalist.solve.models.text import NBSVMFamily

    return {"nbsvm": NBSVMFamily, "img_embed_lgbm": ImgEmbedLGBMFamily}[name]()


# ----------------------------------------------------------------------------------------- MiniLM (slow)
@pytest.mark.slow
def test_sentence_embedding_families_on_tweets(
    competitions: Path, embed_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medalist.solve.models.text_embed import (
        SentenceEmbedLGBMFamily,
        SentenceEmbedLinearFamily,
        SentenceEncoder,
    )

    monkeypatch.setenv("MEDALIST_CACHE_DIR", str(embed_cache))
    split = Split(tweets(competitions, 800, 100), ("text", "tabular"))
    pv, _ = split.fit(needs(SentenceEmbedLinearFamily()))
    assert split.auc(pv) > 0.8
    pv, _ = split.fit(needs(SentenceEmbedLGBMFamily()))
    assert split.auc(pv) > 0.75
    # a new encoder finds every embedding on disk and never loads the model
    again = SentenceEncoder()
    texts = split.X_tr["txt__text"].tolist()
    emb = again.encode(texts)
    assert again._model is None and emb.shape == (len(texts), 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


@pytest.mark.slow
def test_encoding_stops_at_its_deadline_and_keeps_what_it_embedded(
    competitions: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warm-up that cannot finish by its experiment's time limit stops as soon as its pace says so
    (nlp-getting-started at 300 s spent 158 s embedding 9,216 of 10,678 texts, then failed); the chunks
    done are on disk, and the next try encodes only the rest."""
    from medalist.errors import BudgetExceeded
    from medalist.solve.models import text_embed
    from medalist.solve.models.text_embed import SentenceEmbedLinearFamily, SentenceEncoder

    chunk = 128
    monkeypatch.setattr(text_embed, "ENCODE_CHUNK", chunk)
    monkeypatch.setenv("MEDALIST_CACHE_DIR", str(tmp_path))
    needs(SentenceEmbedLinearFamily())
    texts = pd.read_csv(competitions / "nlp-getting-started" / "public" / "train.csv")["text"].tolist()
    texts = list(dict.fromkeys(texts))[: 10 * chunk]
    enc = SentenceEncoder()
    enc._load()  # the model's load time is not what this test measures
    t0 = time.monotonic()
    enc.encode(texts[-chunk:])  # one chunk's time on this machine now; those texts are cached
    chunk_seconds = time.monotonic() - t0
    # nine new chunks, time for about four: one chunk, then the pace says the rest cannot fit
    with pytest.raises(BudgetExceeded, match=rf"time limit: {chunk} of {9 * chunk} new texts .* would end"):
        enc.encode(texts, deadline=time.monotonic() + 4 * chunk_seconds)
    again = SentenceEncoder()
    again._read_disk()
    assert len(again._mem) == 2 * chunk
    with pytest.raises(BudgetExceeded, match=rf"ended before any of {8 * chunk} new texts was embedded"):
        again.encode(texts, deadline=time.monotonic() - 1.0)  # no pace yet: says so, no rate
    emb = again.encode(texts)  # no deadline: the rest
    assert emb.shape == (len(texts), 384) and len(again._mem) == len(texts)
    np.testing.assert_allclose(emb[:chunk], enc.encode(texts[:chunk]), atol=1e-5)


@pytest.mark.slow
def test_fusion_with_sentence_embeddings(
    competitions: Path, embed_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medalist.solve.models.fusion import FusionFamily
    from medalist.solve.models.text_embed import SentenceEmbedLinearFamily

    monkeypatch.setenv("MEDALIST_CACHE_DIR", str(embed_cache))
    needs(SentenceEmbedLinearFamily())
    split = Split(tweets(competitions, 800, 100), ("image", "text", "tabular"))
    pv, _ = split.fit(FusionFamily(), {"text_embedder": "minilm", "epochs": 15}, stop_on_valid=True)
    assert split.auc(pv) > 0.8


@pytest.mark.slow
def test_transformer_finetune_on_spooky(competitions: Path) -> None:
    from medalist.solve.models.text_transformer import TransformerFTFamily

    split = Split(spooky(competitions, 240, 40), ("text",))
    family = needs(TransformerFTFamily())
    pv, _ = split.fit(family, {"epochs": 1, "max_len": 40, "batch_size": 16, "lr": 1e-4, "head_lr": 3e-3})
    ll, prior = split.logloss_vs_prior(pv)
    assert ll < prior + 0.05, (ll, prior)  # one short epoch: valid output, at least as good as the prior
    assert family.last_info.epochs == 1
