"""``transformer_ft``: fine-tune a small local transformer (all-MiniLM-L6-v2 by default, see ``text_embed``)
end to end on CPU, mean-pooled tokens into a head per target. Bounded: few epochs, short sequences and a
time limit per fold (``max_seconds``). Text columns are joined with the tokenizer's separator."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.solve.models.base import missing_package
from medalist.solve.models.fusion_core import NetFamily, NetParts
from medalist.solve.models.net_training import torch_threads
from medalist.solve.models.text import text_columns
from medalist.solve.models.text_embed import go_offline, text_model_dir, weights_reason
from medalist.solve.types import ModelTask


class TokenInputs:
    """``NetInputs`` over token id sequences, padded per batch."""

    def __init__(self, ids: list[np.ndarray], pad_id: int) -> None:
        self.ids = ids
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.ids)

    def batch(self, rows: np.ndarray, train: bool, gen: Any) -> dict[str, Any]:
        import torch

        seqs = [self.ids[int(r)] for r in rows]
        width = max((len(s) for s in seqs), default=1)
        ids = np.full((len(seqs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        return {"input_ids": torch.as_tensor(ids), "attention_mask": torch.as_tensor(mask)}


def joined_texts(X: pd.DataFrame, cols: list[str], sep: str) -> list[str]:
    if len(cols) == 1:
        return X[cols[0]].astype(str).tolist()
    return [f" {sep} ".join(parts) for parts in zip(*(X[c].astype(str).tolist() for c in cols))]


class TransformerFTFamily(NetFamily):
    """Fine-tuned local transformer (mean pooling) with a head per target; body and heads on their own
    learning rates (``lr`` and ``head_lr``)."""

    name = "transformer_ft"
    modalities = ("text",)
    packages = ("torch", "transformers")

    def __init__(self) -> None:
        self._tokenizer: Any = None
        self._model: Any = None

    def available(self) -> str | None:
        return super().available() or weights_reason(text_model_dir())

    def default_params(self, task: ModelTask, n_rows: int) -> dict[str, Any]:
        return {
            "lr": 5e-5,
            "head_lr": 1e-3,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "epochs": 2,
            "batch_size": 32,
            "max_len": 64 if n_rows > 20_000 else 96,
            "warmup": 0.1,
            "patience": 1,
            "hidden": 0,
            "dropout": 0.1,
            "holdout": 0.0,  # two epochs: every training row counts; stops early only on given labels
            "max_seconds": 600,
        }

    def search_space(self, task: ModelTask) -> dict[str, Any]:
        return {
            "lr": ("logfloat", 1e-5, 2e-4),
            "head_lr": ("logfloat", 1e-4, 1e-2),
            "optimizer": ("cat", ["adamw", "sgd"]),
            "epochs": ("int", 1, 4),
            "max_len": ("cat", [64, 96, 128]),
        }

    def _load(self) -> tuple[Any, Any]:
        if self._model is None:
            reason = missing_package("torch", "transformers") or weights_reason(text_model_dir())
            if reason:
                raise CheckError(f"transformer_ft unavailable: {reason}")
            go_offline()
            path = str(text_model_dir())
            try:
                import torch
                from transformers import AutoModel, AutoTokenizer

                torch.set_num_threads(torch_threads())
                self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                self._model = AutoModel.from_pretrained(path, local_files_only=True)
            except Exception as exc:
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise CheckError(f"transformer at {path} failed to load: {msg}") from exc
        return self._tokenizer, self._model

    def build(
        self,
        X_train: pd.DataFrame,
        X_valid: pd.DataFrame,
        X_test: pd.DataFrame,
        params: dict[str, Any],
        task: ModelTask,
        seed: int,
    ) -> NetParts:
        import torch
        from torch import nn

        cols = text_columns(X_train)
        if not cols:
            raise CheckError(
                "transformer_ft needs text columns (txt__*); prepare features with modality 'text'"
            )
        tok, base = self._load()
        max_len = int(params["max_len"])
        sep = tok.sep_token or "|"
        pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)

        def ids(X: pd.DataFrame) -> TokenInputs:
            texts = joined_texts(X, cols, sep)
            enc = tok(texts, truncation=True, max_length=max_len) if texts else {"input_ids": []}
            return TokenInputs([np.asarray(s, dtype=np.int64) for s in enc["input_ids"]], pad)

        encoder = copy.deepcopy(base)
        encoder.train()

        class Body(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, batch: dict[str, Any]) -> Any:
                mask = batch["attention_mask"]
                out = self.encoder(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(out.dtype)
                return (out * m).sum(1) / m.sum(1).clamp(min=1.0)

        body = Body()
        dim = int(getattr(base.config, "hidden_size", 0)) or int(
            body({**ids(X_train.iloc[:1]).batch(np.array([0]), False, None)}).shape[1]
        )

        def groups(net: Any) -> list[dict[str, Any]]:
            enc_ids = {id(p) for p in net.body.parameters()}
            rest = [p for p in net.parameters() if id(p) not in enc_ids]
            return [
                {"params": list(net.body.parameters()), "lr": float(params["lr"])},
                {"params": rest, "lr": float(params["head_lr"])},
            ]

        torch.manual_seed(seed)
        return NetParts(ids(X_train), ids(X_valid), ids(X_test), body, dim, groups=groups)
