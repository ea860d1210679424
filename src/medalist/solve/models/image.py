"""Image networks: torch augmentations, ``NetInputs`` over uint8 images, and a small CNN trained from
scratch on CPU (``cnn``); its body and image-side defaults are shared with ``fusion``. Files are loaded by
``image_loading``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from medalist.solve.models.fusion_core import NetFamily, NetParts, net_space
from medalist.solve.models.image_loading import ImageStore, load_splits, require_image_column
from medalist.solve.types import ModelTask


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
