"""Pretrained image backbones from local weights only (never downloaded), and ``img_pretrained``: backbone
embeddings + a linear model.

Where the weights come from (environment):

- ``MEDALIST_IMAGE_WEIGHTS=/path/backbone.pt2`` (``torch.export.save``, batch dimension dynamic) or
  ``.pt`` (TorchScript, ``torch.jit.trace(model, x).save(path)``): a module mapping an ImageNet-normalised
  RGB batch (B, 3, S, S) to features (B, D) or feature maps (B, D, h, w) (average-pooled). Any torchvision
  or timm model exported with its classifier removed works.
- ``MEDALIST_IMAGE_BACKBONE=<timm model name>`` with timm installed: weights from
  ``MEDALIST_IMAGE_WEIGHTS`` (a state-dict file) when set, else timm's own Hugging Face cache, read offline.
- ``MEDALIST_IMAGE_SIZE``: input size (default 224).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.solve.models.image_loading import ImageStore, column_paths, image_columns, require_image_column
from medalist.solve.models.net_training import torch_threads
from medalist.solve.models.sk import LinearHeadFamily
from medalist.solve.types import ModelTask

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
ENV_WEIGHTS = "MEDALIST_IMAGE_WEIGHTS"
ENV_BACKBONE = "MEDALIST_IMAGE_BACKBONE"
ENV_SIZE = "MEDALIST_IMAGE_SIZE"


def _hf_cache() -> Path:
    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    return Path(os.environ.get("HF_HUB_CACHE") or Path(home) / "hub")


def backbone_reason() -> str | None:
    """None when a local pretrained backbone is configured and present; otherwise why not (one line)."""
    if importlib.util.find_spec("torch") is None:
        return "python package 'torch' is not installed"
    weights = os.environ.get(ENV_WEIGHTS, "").strip()
    name = os.environ.get(ENV_BACKBONE, "").strip()
    if weights and not Path(weights).expanduser().is_file():
        return f"{ENV_WEIGHTS}={weights} is not a file"
    if name:
        if importlib.util.find_spec("timm") is None:
            return f"{ENV_BACKBONE}={name} needs the timm package (pip install timm)"
        if not weights and not (_hf_cache() / f"models--timm--{name}").is_dir():
            return f"no cached weights for timm model {name} (set {ENV_WEIGHTS} to a local weights file)"
        return None
    if weights:
        return None
    return (
        f"no local pretrained image backbone: set {ENV_WEIGHTS} to a torch.export (.pt2) or TorchScript file (or "
        f"install timm and set {ENV_BACKBONE})"
    )


class Backbone:
    """A frozen pretrained feature extractor with per-path embeddings kept for the instance's life."""

    def __init__(self, module: Any, size: int) -> None:
        self.module = module
        self.size = size
        self.store = ImageStore()
        self._emb: dict[str, np.ndarray] = {}

    @classmethod
    def load(cls) -> Backbone:
        """The backbone the environment names (see the module docstring); raises CheckError when it fails."""
        reason = backbone_reason()
        if reason is not None:
            raise CheckError(f"image backbone unavailable: {reason}")
        import torch

        weights = os.environ.get(ENV_WEIGHTS, "").strip()
        name = os.environ.get(ENV_BACKBONE, "").strip()
        size = int(os.environ.get(ENV_SIZE, "224") or 224)
        try:
            if name:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import timm

                if weights:
                    module = timm.create_model(
                        name,
                        pretrained=True,
                        num_classes=0,
                        pretrained_cfg_overlay={"file": str(Path(weights).expanduser())},
                    )
                else:
                    module = timm.create_model(name, pretrained=True, num_classes=0)
            elif weights.endswith(".pt2"):
                module = torch.export.load(str(Path(weights).expanduser())).module()
            else:
                module = torch.jit.load(str(Path(weights).expanduser()), map_location="cpu")
        except Exception as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckError(f"image backbone failed to load ({name or weights}): {msg}") from exc
        if hasattr(module, "eval") and not isinstance(module, torch.fx.GraphModule):
            module.eval()  # exported programs' modules refuse eval(); they hold no training-mode layers
        return cls(module, size)

    def embed(self, paths: list[str], batch: int = 32) -> np.ndarray:
        """float32 (n, D) features of the images at ``paths`` (RGB, padded to square, ImageNet-normalised)."""
        import torch

        torch.set_num_threads(torch_threads())
        todo = [p for p in dict.fromkeys(paths) if p not in self._emb]
        for start in range(0, len(todo), batch):
            chunk = todo[start : start + batch]
            imgs = self.store.load(chunk, self.size, 3, "pad").astype(np.float32) / 255.0
            x = (imgs - IMAGENET_MEAN.reshape(1, 3, 1, 1)) / IMAGENET_STD.reshape(1, 3, 1, 1)
            with torch.no_grad():
                out = self.module(torch.as_tensor(x))
            if isinstance(out, (tuple, list)):
                out = out[0]
            if out.ndim == 4:
                out = out.mean(dim=(2, 3))
            for p, row in zip(chunk, out.reshape(len(chunk), -1).numpy().astype(np.float32)):
                self._emb[p] = row
        if not paths:
            dim = len(next(iter(self._emb.values()))) if self._emb else 0
            return np.zeros((0, dim), dtype=np.float32)
        return np.stack([self._emb[p] for p in paths])


class PretrainedImageFamily(LinearHeadFamily):
    """Frozen pretrained backbone embeddings of every image column (standardised) -> logistic / Ridge."""

    name = "img_pretrained"
    modalities = ("image",)
    raw_columns = True
    packages = ("torch", "PIL", "sklearn")

    def __init__(self) -> None:
        self._backbone: Backbone | None = None

    def available(self) -> str | None:
        return super().available() or backbone_reason()

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {"C": 0.5, "alpha": 10.0, "max_iter": 2000}

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        if task.is_classification:
            return {"C": ("logfloat", 1e-3, 10.0)}
        return {"alpha": ("logfloat", 0.1, 1000.0)}

    def encode(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Any, Any, Any]:
        from sklearn.preprocessing import StandardScaler

        cols = image_columns(X_train) or [require_image_column(X_train, self.name)]
        if self._backbone is None:
            self._backbone = Backbone.load()
        bb = self._backbone
        out = [np.hstack([bb.embed(column_paths(X, c)) for c in cols]) for X in (X_train, X_valid, X_test)]
        scaler = StandardScaler().fit(out[0])
        return tuple(scaler.transform(a) if len(a) else a for a in out)  # type: ignore[return-value]
