"""Images (``img__*`` columns holding absolute file paths): loading with PIL, torch augmentations, a small
CNN trained from scratch on CPU (``cnn``), and hand-crafted image features + tabular columns into LightGBM
(``img_embed_lgbm``; pretrained backbone embeddings are added when local weights exist, see
``image_backbone``).

Loading: EXIF orientation applied; palette and transparent images composited over white; 16-bit and
float images rescaled to 8 bits; grayscale vs colour decided once per task from a sample of the files
(colour files whose channels are equal count as grayscale). Resizing keeps the aspect ratio by default
(``fit="pad"``: scaled to fit, padded with the border's median colour); ``"stretch"`` and ``"crop"`` too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.solve.models.base import Family, SubProblem, tabular_only
from medalist.solve.models.fusion_core import NetFamily, NetParts, net_space
from medalist.solve.types import ModelTask

IMG_PREFIX = "img__"
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
CHANNEL_SAMPLE = 24  # files opened to decide grayscale vs colour
DECODE_THREADS = 2  # image files decoded side by side (PIL releases the GIL while decoding)


def image_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if str(c).startswith(IMG_PREFIX)]


def require_image_column(X: pd.DataFrame, family: str) -> str:
    """The first image column (paths); raises when the frame has none."""
    cols = image_columns(X)
    if not cols:
        raise CheckError(
            f"{family} needs an image column (img__*, file paths); prepare features with modality 'image'"
        )
    return cols[0]


# ------------------------------------------------------------------------------------------- loading
def _open(path: str, draft: int | None = None) -> tuple[Any, tuple[int, int]]:
    """(the image, EXIF-upright, decoded at a reduced JPEG scale when ``draft`` allows; its full size)."""
    from PIL import Image, ImageOps

    try:
        img = Image.open(path)
        full = img.size
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # orientations that swap the axes
            full = (full[1], full[0])
        if draft and img.format == "JPEG":
            img.draft(img.mode if img.mode in ("L", "RGB") else "RGB", (draft, draft))
        img.load()
    except (OSError, ValueError) as exc:
        raise CheckError(f"cannot read image {path}: {exc}; check the image map's paths") from exc
    return ImageOps.exif_transpose(img), full


def _to_mode(img: Any, channels: int) -> Any:
    """``img`` as 8-bit 'L' (channels=1) or 'RGB' (3): transparency over white, high bit depths rescaled."""
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(img, dtype=np.float32)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        a = np.nan_to_num((a - lo) / ((hi - lo) or 1.0) * 255.0)
        img = Image.fromarray(a.astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        bg.alpha_composite(rgba)
        img = bg.convert("RGB")
    return img.convert("L" if channels == 1 else "RGB")


def _is_gray(img: Any) -> bool:
    if img.mode in GRAY_MODES:
        return True
    rgb = np.asarray(_to_mode(img, 3).resize((32, 32)), dtype=np.int16)
    return bool(np.abs(rgb - rgb[..., :1]).max() <= 3)


def decide_channels(paths: Sequence[str]) -> int:
    """1 when every sampled file is grayscale, else 3."""
    paths = [p for p in paths if isinstance(p, str) and p]
    if not paths:
        raise CheckError("no image paths to read; the image column is empty")
    step = max(1, len(paths) // CHANNEL_SAMPLE)
    sample = paths[::step][:CHANNEL_SAMPLE]
    return 1 if all(_is_gray(_open(p, 64)[0]) for p in sample) else 3


def load_image(path: str, size: int, channels: int, fit: str = "pad") -> tuple[np.ndarray, tuple[int, int]]:
    """(uint8 array (channels, size, size), original (width, height))."""
    from PIL import Image

    img, full = _open(path, draft=size * 2)
    img = _to_mode(img, channels)
    w, h = img.size
    resample = Image.Resampling.BILINEAR
    if fit == "stretch":
        img = img.resize((size, size), resample, reducing_gap=2.0)
    elif fit == "crop":
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), resample, reducing_gap=2.0)
        left, top = (img.size[0] - size) // 2, (img.size[1] - size) // 2
        img = img.crop((left, top, left + size, top + size))
    elif fit == "pad":
        s = size / max(w, h)
        small = img.resize((max(1, round(w * s)), max(1, round(h * s))), resample, reducing_gap=2.0)
        fill = _border_colour(np.asarray(img))
        img = Image.new(img.mode, (size, size), fill)
        img.paste(small, ((size - small.size[0]) // 2, (size - small.size[1]) // 2))
    else:
        raise CheckError(f"unknown image fit {fit!r}; use 'pad', 'stretch' or 'crop'")
    arr = np.asarray(img, dtype=np.uint8)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr), full


def _border_colour(a: np.ndarray) -> int | tuple[int, ...]:
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    med = np.median(border, axis=0)
    return int(med) if np.ndim(med) == 0 else tuple(int(v) for v in med)


class ImageStore:
    """Decoded, resized images kept in memory for the life of a family instance (every fold re-uses them)."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, int, int, str], np.ndarray] = {}
        self._sizes: dict[str, tuple[int, int]] = {}
        self._channels: dict[tuple[str, ...], int] = {}

    def channels(self, paths: Sequence[str]) -> int:
        key = tuple(paths[:: max(1, len(paths) // CHANNEL_SAMPLE)][:CHANNEL_SAMPLE])
        if key not in self._channels:
            self._channels[key] = decide_channels(list(paths))
        return self._channels[key]

    def load(self, paths: Sequence[str], size: int, channels: int, fit: str) -> np.ndarray:
        """uint8 (n, channels, size, size) for ``paths`` (decoded with ``DECODE_THREADS`` threads)."""
        paths = [str(p) for p in paths]
        todo = sorted({p for p in paths if (p, size, channels, fit) not in self._arrays})

        def one(p: str) -> tuple[str, np.ndarray, tuple[int, int]]:
            arr, full = load_image(p, size, channels, fit)
            return p, arr, full

        if todo:
            with ThreadPoolExecutor(DECODE_THREADS) as pool:
                for p, arr, full in pool.map(one, todo):
                    self._arrays[(p, size, channels, fit)] = arr
                    self._sizes[p] = full
        if not paths:
            return np.zeros((0, channels, size, size), dtype=np.uint8)
        return np.stack([self._arrays[(p, size, channels, fit)] for p in paths])

    def sizes(self, paths: Sequence[str]) -> np.ndarray:
        """Original (width, height) per path (after ``load``)."""
        return np.array([self._sizes[str(p)] for p in paths], dtype=np.float32).reshape(len(paths), 2)


def column_paths(X: pd.DataFrame, col: str) -> list[str]:
    values = X[col].tolist()
    bad = [v for v in values if not isinstance(v, str) or not v]
    if bad:
        raise CheckError(f"image column {col} has {len(bad)} empty paths; every row needs an image file")
    return [str(v) for v in values]


# ------------------------------------------------------------------------------------------- augmenting
def augment(x: Any, gen: Any, params: dict[str, Any]) -> Any:
    """Random affine (rotation, zoom, shift, flips) + brightness/contrast jitter of a float batch (B,C,H,W)."""
    import torch
    from torch.nn import functional

    b = x.shape[0]

    def uniform(*shape: int) -> Any:
        return torch.rand(*shape, generator=gen) * 2 - 1

    ang = uniform(b) * math.radians(float(params.get("rotate", 0)))
    zoom = 1 + uniform(b) * float(params.get("zoom", 0))
    shift = uniform(2, b) * 2 * float(params.get("shift", 0))
    fx = torch.ones(b)
    fy = torch.ones(b)
    if params.get("hflip", True):
        fx = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    if params.get("vflip", False):
        fy = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) * zoom, torch.sin(ang) * zoom
    theta = torch.stack(
        [torch.stack([cos * fx, -sin * fy, shift[0]], 1), torch.stack([sin * fx, cos * fy, shift[1]], 1)], 1
    )
    grid = functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    jitter = float(params.get("jitter", 0))
    if jitter > 0:
        gain = 1 + uniform(b, 1, 1, 1) * jitter
        bias = uniform(b, 1, 1, 1) * jitter
        out = out * gain + bias
    return out


class ImageInputs:
    """``NetInputs`` over uint8 images: scaled to [0, 1], normalised per channel, augmented when training."""

    def __init__(
        self, images: np.ndarray, mean: np.ndarray, std: np.ndarray, params: dict[str, Any], key: str = "img"
    ) -> None:
        self.images = images
        self.mean = mean.reshape(1, -1, 1, 1).astype(np.float32)
        self.std = std.reshape(1, -1, 1, 1).astype(np.float32)
        self.params = params
        self.key = key

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, rows: np.ndarray, train: bool, gen: Any) -> dict[str, Any]:
        import torch

        x = (self.images[rows].astype(np.float32) / 255.0 - self.mean) / self.std
        t = torch.as_tensor(x)
        if train and self.params.get("augment", True):
            t = augment(t, gen, self.params)
        return {self.key: t}


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images scaled to [0, 1]."""
    x = images.astype(np.float32) / 255.0
    mean = x.mean(axis=(0, 2, 3)) if len(x) else np.full(images.shape[1], 0.5, dtype=np.float32)
    std = x.std(axis=(0, 2, 3)) if len(x) else np.full(images.shape[1], 0.25, dtype=np.float32)
    return mean, np.maximum(std, 1e-3)


def hflip_view(batch: dict[str, Any]) -> dict[str, Any]:
    """Test-time augmentation: the batch's images mirrored left-right."""
    return {k: (v.flip(3) if getattr(v, "ndim", 0) == 4 else v) for k, v in batch.items()}


# ------------------------------------------------------------------------------------------- the CNN
def cnn_body(channels: int, width: int, blocks: int, key: str = "img") -> tuple[Any, int]:
    """A small VGG-like CNN: a 3x3 stem then ``blocks`` (conv-BN-ReLU x2, max-pool) doubling the width up to
    8x; global average and max pooling concatenated. Returns (module reading ``batch[key]``, feature width)."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    layers: list[nn.Module] = conv(channels, width)
    cin = width
    for i in range(blocks):
        cout = width * 2 ** min(i, 3)
        layers += [*conv(cin, cout), *conv(cout, cout), nn.MaxPool2d(2)]
        cin = cout

    class Body(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)

        def forward(self, batch: dict[str, Any]) -> Any:
            f = self.features(batch[key])
            return torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)

    return Body(), 2 * cin


def image_net_params(n_rows: int) -> dict[str, Any]:
    """Image-side defaults shared by ``cnn`` and ``fusion``."""
    return {
        "image_size": 64,
        "fit": "pad",
        "width": 16,
        "blocks": 3 if n_rows < 5000 else 4,
        "augment": True,
        "hflip": True,
        "vflip": False,
        "rotate": 15.0,
        "zoom": 0.1,
        "shift": 0.06,
        "jitter": 0.1,
    }


class CNNFamily(NetFamily):
    """A small CNN trained from scratch on the first image column, a head per target, flip TTA."""

    name = "cnn"
    modalities = ("image",)
    packages = ("torch", "PIL")

    def __init__(self) -> None:
        self.store = ImageStore()

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            **image_net_params(n_rows),
            "lr": 2e-3,
            "optimizer": "adamw",
            "weight_decay": 5e-4,
            "epochs": 40,
            "patience": 8,
            "batch_size": 16 if n_rows < 2000 else 32,  # small data: more steps per epoch
            "hidden": 0,
            "dropout": 0.2,
            "holdout": 0.1,
            "tta": True,
            "max_seconds": 900,
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            **net_space(),
            "image_size": ("cat", [48, 64, 96]),
            "width": ("cat", [16, 24, 32]),
            "rotate": ("float", 0.0, 30.0),
        }

    def build(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        task: ModelTask,
        seed: int,
    ) -> NetParts:
        col = require_image_column(X_train, self.name)
        train, valid, test, channels = load_splits(self.store, col, X_train, X_valid, X_test, params)
        mean, std = channel_stats(train)
        body, dim = cnn_body(channels, int(params["width"]), int(params["blocks"]))
        return NetParts(
            ImageInputs(train, mean, std, params),
            ImageInputs(valid, mean, std, params),
            ImageInputs(test, mean, std, params),
            body,
            dim,
            tta=hflip_view if params.get("tta") and params.get("hflip", True) else None,
        )


def load_splits(
    store: ImageStore,
    col: str,
    X_train: pd.DataFrame,
    X_valid: pd.DataFrame,
    X_test: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """uint8 images of the three splits at ``params['image_size']`` and the task's channel count."""
    paths = [column_paths(X, col) for X in (X_train, X_valid, X_test)]
    channels = store.channels(paths[0] + paths[2])
    size, fit = int(params["image_size"]), str(params.get("fit", "pad"))
    tr, va, te = (store.load(p, size, channels, fit) for p in paths)
    return tr, va, te, channels


# ------------------------------------------------------------------------------------------- features
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


class ImgEmbedLGBMFamily(Family):
    """Hand-crafted image features (+ pretrained backbone embeddings when local weights exist) + the tabular
    columns, into LightGBM (its parameters and search space)."""

    name = "img_embed_lgbm"
    modalities = ("image", "tabular")
    packages = ("lightgbm", "PIL")
    OWN = ("feature_size", "pixels", "backbone", "fit")

    def __init__(self) -> None:
        from medalist.solve.models.gbdt import LGBMFamily

        self.store = ImageStore()
        self.lgbm = LGBMFamily()
        self._features: dict[tuple[str, int, int, str], tuple[dict[str, np.ndarray], list[str]]] = {}
        self._backbone: Any = None

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        p = self.lgbm.default_params(task, n_rows)
        p.update(feature_fraction=0.5, feature_size=96, pixels=12, backbone="auto", fit="pad")
        return p

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {**self.lgbm.search_space(task), "pixels": ("cat", [8, 12, 16])}

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        return X

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

    def fit_one(
        self,
        X_train: Any,
        sp: SubProblem,
        X_valid: Any,
        X_test: Any,
        y_valid: np.ndarray | None,
        params: dict[str, Any],
        seed: int,
        task: ModelTask,
    ) -> tuple[np.ndarray, np.ndarray]:
        lib = {k: v for k, v in params.items() if k not in self.OWN}
        return self.lgbm.fit_one(X_train, sp, X_valid, X_test, y_valid, lib, seed, task)
