"""Image files (``img__*`` columns holding absolute file paths) into uint8 arrays, with PIL.

Loading: EXIF orientation applied; palette and transparent images composited over white; 16-bit and
float images rescaled to 8 bits; grayscale vs colour decided once per task from a sample of the files
(colour files whose channels are equal count as grayscale). Resizing keeps the aspect ratio by default
(``fit="pad"``: scaled to fit, padded with the border's median colour); ``"stretch"`` and ``"crop"`` too.
``ImageStore`` caches what was loaded, so folds and trials reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError

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
