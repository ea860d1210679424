"""``img_embed_lgbm``: hand-crafted image features (size, intensity, edges, colour histograms, foreground
shape descriptors, a pooled thumbnail) + pretrained backbone embeddings when local weights exist (see
``image_backbone``) + the tabular columns, into LightGBM."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.solve.models.base import tabular_only
from medalist.solve.models.gbdt import LGBMOnFeaturesFamily
from medalist.solve.models.image_loading import (
    IMG_PREFIX,
    ImageStore,
    column_paths,
    image_columns,
    require_image_column,
)
from medalist.solve.types import ModelTask


def _otsu(gray: np.ndarray) -> float:
    hist = np.bincount(gray.ravel(), minlength=256).astype(float)
    p = hist / max(hist.sum(), 1.0)
    omega = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1 - omega))
    return float(np.nanargmax(np.nan_to_num(between, nan=-1.0)))


def _hu(mask: np.ndarray) -> np.ndarray:
    """Seven Hu moment invariants of a binary mask, log-scaled with their sign."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return np.zeros(7)
    m00 = float(len(xs))
    x = xs - xs.mean()
    y = ys - ys.mean()

    def eta(p: int, q: int) -> float:
        return float(np.sum(x**p * y**q)) / m00 ** (1 + (p + q) / 2)

    n20, n02, n11 = eta(2, 0), eta(0, 2), eta(1, 1)
    n30, n03, n21, n12 = eta(3, 0), eta(0, 3), eta(2, 1), eta(1, 2)
    h = np.array(
        [
            n20 + n02,
            (n20 - n02) ** 2 + 4 * n11**2,
            (n30 - 3 * n12) ** 2 + (3 * n21 - n03) ** 2,
            (n30 + n12) ** 2 + (n21 + n03) ** 2,
            (n30 - 3 * n12) * (n30 + n12) * ((n30 + n12) ** 2 - 3 * (n21 + n03) ** 2)
            + (3 * n21 - n03) * (n21 + n03) * (3 * (n30 + n12) ** 2 - (n21 + n03) ** 2),
            (n20 - n02) * ((n30 + n12) ** 2 - (n21 + n03) ** 2) + 4 * n11 * (n30 + n12) * (n21 + n03),
            (3 * n21 - n03) * (n30 + n12) * ((n30 + n12) ** 2 - 3 * (n21 + n03) ** 2)
            - (n30 - 3 * n12) * (n21 + n03) * (3 * (n30 + n12) ** 2 - (n21 + n03) ** 2),
        ]
    )
    return -np.sign(h) * np.log10(np.abs(h) + 1e-30)


def _shape_features(gray: np.ndarray) -> list[float]:
    """Foreground (the side of Otsu's threshold unlike the border) shape: area, extent, box aspect,
    centroid, eccentricity, compactness, radial-profile summary, Hu moments."""
    t = _otsu(gray)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    bright_bg = np.median(border) > t
    mask = gray <= t if bright_bg else gray > t
    n = gray.size
    area = float(mask.sum())
    if area < 3:
        return [area / n, *([0.0] * 21)]
    ys, xs = np.nonzero(mask)
    h = ys.max() - ys.min() + 1
    w = xs.max() - xs.min() + 1
    cov = np.cov(np.stack([xs, ys]).astype(float))
    ev = np.sort(np.linalg.eigvalsh(cov + 1e-9 * np.eye(2)))
    inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    perimeter = area - float(inner.sum())
    r = np.hypot(xs - xs.mean(), ys - ys.mean())
    r_norm = r / (r.max() or 1.0)
    return [
        area / n,
        area / float(h * w),
        w / float(h),
        xs.mean() / gray.shape[1],
        ys.mean() / gray.shape[0],
        math.sqrt(max(0.0, 1 - ev[0] / ev[1])) if ev[1] > 0 else 0.0,
        perimeter / math.sqrt(area),
        float(r_norm.mean()),
        float(r_norm.std()),
        float(np.percentile(r_norm, 10)),
        float(np.percentile(r_norm, 50)),
        float(np.percentile(r_norm, 90)),
        float(bright_bg),
        float(ev[1] ** 0.5 / gray.shape[0]),
        float(ev[0] ** 0.5 / gray.shape[0]),
        *_hu(mask).tolist(),
    ]


SHAPE_NAMES = [
    "area",
    "extent",
    "box_aspect",
    "cx",
    "cy",
    "eccentricity",
    "compactness",
    "r_mean",
    "r_std",
    "r_p10",
    "r_p50",
    "r_p90",
    "bright_background",
    "axis_major",
    "axis_minor",
    *[f"hu{i}" for i in range(1, 8)],
]


def handcrafted_features(images: np.ndarray, sizes: np.ndarray, pixels: int, prefix: str) -> pd.DataFrame:
    """Per image: original size and aspect, intensity statistics, an edge density, colour histograms (colour
    images), foreground shape descriptors, and the image average-pooled to ``pixels`` x ``pixels`` gray."""
    n, c, s, _ = images.shape
    gray = images.mean(axis=1) if c > 1 else images[:, 0].astype(np.float32)
    rows = []
    for i in range(n):
        g = gray[i]
        g8 = g.astype(np.uint8)
        gx = np.abs(np.diff(g, axis=1)).mean()
        gy = np.abs(np.diff(g, axis=0)).mean()
        stats = [g.mean(), g.std(), *np.percentile(g, [5, 25, 50, 75, 95]), gx, gy]
        colour: list[float] = []
        if c > 1:
            for ch in range(c):
                x = images[i, ch]
                colour += [float(x.mean()), float(x.std())]
                colour += (np.bincount(x.ravel() // 32, minlength=8) / x.size).tolist()
        rows.append([*stats, *colour, *_shape_features(g8)])
    names = ["mean", "std", "p5", "p25", "p50", "p75", "p95", "grad_x", "grad_y"]
    if c > 1:
        for ch in range(c):
            names += [f"c{ch}_mean", f"c{ch}_std", *[f"c{ch}_h{b}" for b in range(8)]]
    names += SHAPE_NAMES
    data: dict[str, np.ndarray] = {}
    arr = np.asarray(rows, dtype=np.float32).reshape(n, len(names))
    for j, name in enumerate(names):
        data[f"{prefix}{name}"] = arr[:, j]
    w, h = sizes[:, 0], sizes[:, 1]
    data[f"{prefix}width"] = w
    data[f"{prefix}height"] = h
    data[f"{prefix}aspect"] = w / np.maximum(h, 1)
    k = max(1, s // pixels)
    crop = gray[:, : k * pixels, : k * pixels]
    pooled = (
        crop.reshape(n, pixels, k, pixels, k).mean(axis=(2, 4)).reshape(n, -1)
        if n
        else np.zeros((0, pixels * pixels))
    )
    for j in range(pooled.shape[1]):
        data[f"{prefix}px{j}"] = pooled[:, j].astype(np.float32)
    return pd.DataFrame(data)


class ImgEmbedLGBMFamily(LGBMOnFeaturesFamily):
    """Hand-crafted image features (+ pretrained backbone embeddings when local weights exist) + the tabular
    columns, into LightGBM (its parameters and search space)."""

    name = "img_embed_lgbm"
    modalities = ("image", "tabular")
    raw_columns = True
    packages = ("lightgbm", "PIL")
    OWN = MappingProxyType({"feature_size": 96, "pixels": 12, "backbone": "auto", "fit": "pad"})

    def __init__(self) -> None:
        super().__init__()
        self.store = ImageStore()
        self._features: dict[tuple[str, int, int, str], tuple[dict[str, np.ndarray], list[str]]] = {}
        self._backbone: Any = None

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {**super().search_space(task), "pixels": ("cat", [8, 12, 16])}

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        cols = image_columns(X_train)
        if not cols:
            require_image_column(X_train, self.name)
        frames = [tabular_only(X).reset_index(drop=True) for X in (X_train, X_valid, X_test)]
        all_paths = [column_paths(X, c) for X in (X_train, X_test) for c in cols]
        channels = self.store.channels([p for ps in all_paths for p in ps])
        for col in cols:
            short = col[len(IMG_PREFIX) :]
            for i, X in enumerate((X_train, X_valid, X_test)):
                frames[i] = pd.concat([frames[i], self._handcrafted(X, col, short, channels, params)], axis=1)
        backbone = self._use_backbone(params)
        if backbone is not None:
            for col in cols:
                short = col[len(IMG_PREFIX) :]
                for i, X in enumerate((X_train, X_valid, X_test)):
                    emb = backbone.embed(column_paths(X, col))
                    frames[i] = pd.concat(
                        [
                            frames[i],
                            pd.DataFrame(emb, columns=[f"{short}__bb{j}" for j in range(emb.shape[1])]),
                        ],
                        axis=1,
                    )
        return frames[0], frames[1], frames[2]

    def _handcrafted(
        self, X: pd.DataFrame, col: str, short: str, channels: int, params: dict[str, Any]
    ) -> pd.DataFrame:
        size, pixels, fit = int(params["feature_size"]), int(params["pixels"]), str(params["fit"])
        conf = (short, size, pixels, fit)
        rows, names = self._features.setdefault(conf, ({}, []))
        paths = column_paths(X, col)
        todo = [p for p in dict.fromkeys(paths) if p not in rows]
        if todo:
            imgs = self.store.load(todo, size, channels, fit)
            feats = handcrafted_features(imgs, self.store.sizes(todo), pixels, f"{short}__")
            names[:] = list(feats.columns)
            for p, row in zip(todo, feats.to_numpy(dtype=np.float32)):
                rows[p] = row
        arr = np.stack([rows[p] for p in paths]) if paths else np.zeros((0, len(names)), dtype=np.float32)
        return pd.DataFrame(arr, columns=names)

    def _use_backbone(self, params: dict[str, Any]) -> Any:
        choice = str(params.get("backbone", "auto"))
        if choice == "none":
            return None
        from medalist.solve.models.image_backbone import Backbone, backbone_reason

        reason = backbone_reason()
        if reason is not None:
            if choice == "auto":
                return None
            raise CheckError(f"img_embed_lgbm: backbone requested but {reason}")
        if self._backbone is None:
            self._backbone = Backbone.load()
        return self._backbone
