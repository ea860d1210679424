"""How the zoo's neural networks train (``cnn``, ``fusion``, ``transformer_ft``): one network with a head
per target, the loss chosen from the task, AdamW or SGD, warm-up + cosine schedule, early stopping on
held-out rows, a time bound per fold, and prediction through the heads (with optional test-time
augmentation).

A network is ``body`` (a module mapping a batch dict of tensors to features ``(B, dim)``) + an optional
neck (Linear-SiLU) + one linear head per sub-problem. Inputs are ``NetInputs``: objects that turn row
indices into a batch dict (so augmentation happens where the data lives).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from medalist.errors import CheckError
from medalist.solve.models.base import sub_problems
from medalist.solve.types import ModelTask

# One intra-op thread by default: on this 2-core class of machine, shared with other work, small networks and
# MiniLM ran 3-10x slower per step with 2 threads than with 1 (synchronisation on small kernels,
# oversubscription); one thread per experiment also lets two experiments run side by side.
THREADS = 1


def torch_threads(params: dict[str, Any] | None = None) -> int:
    """Torch intra-op threads: ``params["threads"]``, else $MEDALIST_THREADS, else ``THREADS``."""
    if params and params.get("threads"):
        return max(1, int(params["threads"]))
    env = os.environ.get("MEDALIST_THREADS", "").strip()
    return max(1, int(env)) if env.isdigit() else THREADS


L1_METRICS = ("mae", "medae", "mean_absolute_error", "median_absolute_error")
SGD_LR_SCALE = 10.0  # SGD's learning rate relative to the (Adam-scale) ``lr`` parameter
PLAN_CHECK_STEP = 5  # after this many steps, the schedule is fitted to the time bound


class NetInputs(Protocol):
    """Rows a network reads: ``batch(rows, train, gen)`` -> dict of tensors (augmented when ``train``)."""

    def __len__(self) -> int: ...

    def batch(self, rows: np.ndarray, train: bool, gen: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Head:
    """One output head: ``kind`` binary | multiclass | regression reading model-space column ``column``."""

    kind: str
    width: int
    column: int
    mean: float = 0.0
    std: float = 1.0


def make_heads(y: np.ndarray, task: ModelTask) -> list[Head]:
    """A head per sub-problem of the task (regression targets standardised on the training rows)."""
    y = np.asarray(y, dtype=float).reshape(len(y), -1)
    heads = []
    for j, sp in enumerate(sub_problems(y, task)):
        if sp.kind == "regression":
            v = y[:, j]
            heads.append(Head("regression", 1, j, float(np.mean(v)), float(np.std(v) or 1.0)))
        elif sp.kind == "multiclass":
            heads.append(Head("multiclass", task.n_outputs, 0))
        else:
            heads.append(Head("binary", 1, j))
    return heads


def head_loss(head: Head, metric: str) -> Any:
    """Cross-entropy for classes, BCE for binary labels, L1 for absolute-error metrics, MSE otherwise."""
    from torch import nn

    if head.kind == "multiclass":
        return nn.CrossEntropyLoss()
    if head.kind == "binary":
        return nn.BCEWithLogitsLoss()
    return nn.L1Loss() if metric.lower() in L1_METRICS else nn.MSELoss()


def build_net(body: Any, dim: int, heads: Sequence[Head], hidden: int, dropout: float) -> Any:
    """``body`` + Dropout-Linear-SiLU neck (skipped when ``hidden`` is 0) + one Linear head per target."""
    from torch import nn

    class HeadNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body
            width = dim
            if hidden > 0:
                self.neck: nn.Module = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.SiLU())
                width = hidden
            else:
                self.neck = nn.Identity()
            self.drop = nn.Dropout(dropout)
            self.heads = nn.ModuleList([nn.Linear(width, h.width) for h in heads])

        def forward(self, batch: dict[str, Any]) -> list[Any]:
            z = self.drop(self.neck(self.body(batch)))
            return [h(z) for h in self.heads]

    return HeadNet()


def device() -> Any:
    """CUDA when torch sees a GPU, else the CPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to(batch: dict[str, Any], dev: Any) -> dict[str, Any]:
    return {k: v.to(dev) for k, v in batch.items()} if dev.type != "cpu" else batch


def _targets(y: np.ndarray, heads: Sequence[Head]) -> list[Any]:
    import torch

    out = []
    for h in heads:
        v = y[:, h.column]
        if h.kind == "multiclass":
            out.append(torch.as_tensor(v.astype(np.int64)))
        elif h.kind == "binary":
            out.append(torch.as_tensor(v.astype(np.float32)).reshape(-1, 1))
        else:
            out.append(torch.as_tensor(((v - h.mean) / h.std).astype(np.float32)).reshape(-1, 1))
    return out


def stop_rows(
    y: np.ndarray, heads: Sequence[Head], seed: int, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, stop rows) of the training part: stratified on a single class target when every class
    has two rows, random otherwise."""
    n = len(y)
    rng = np.random.default_rng(seed)
    n_stop = max(1, round(fraction * n))
    if len(heads) == 1 and heads[0].kind in ("binary", "multiclass"):
        labels = y[:, heads[0].column].astype(int)
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() >= 2 and n_stop >= len(counts):
            from sklearn.model_selection import StratifiedShuffleSplit

            split = StratifiedShuffleSplit(n_splits=1, test_size=n_stop, random_state=seed)
            fit, stop = next(split.split(np.zeros(n), labels))
            return np.sort(fit), np.sort(stop)
    perm = rng.permutation(n)
    return np.sort(perm[n_stop:]), np.sort(perm[:n_stop])


def make_optimizer(groups: list[dict[str, Any]], params: dict[str, Any]) -> Any:
    """AdamW or SGD (Nesterov momentum 0.9) over parameter groups (each may carry its own ``lr``).

    ``lr`` is on Adam's scale; SGD runs at ``SGD_LR_SCALE`` times it, so one range serves both."""
    import torch

    name = str(params.get("optimizer", "adamw")).lower()
    wd = float(params.get("weight_decay", 1e-4))
    lr = float(params["lr"])
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=wd, foreach=True)
    if name == "sgd":
        scaled = [{**g, "lr": float(g.get("lr", lr)) * SGD_LR_SCALE} for g in groups]
        return torch.optim.SGD(
            scaled, lr=lr * SGD_LR_SCALE, momentum=0.9, nesterov=True, weight_decay=wd, foreach=True
        )
    raise CheckError(f"unknown optimizer {name!r}; use 'adamw' or 'sgd'")


@dataclass
class TrainInfo:
    """What a fit did: epochs run, the best epoch, its stopping loss, and why it stopped."""

    epochs: int = 0
    best_epoch: int = 0
    best_loss: float = float("nan")
    stopped: str = "epochs"  # epochs | patience | time
    seconds: float = 0.0


def train_net(
    net: Any,
    heads: Sequence[Head],
    train_in: NetInputs,
    y_train: np.ndarray,
    stop: tuple[NetInputs, np.ndarray] | None,
    params: dict[str, Any],
    task: ModelTask,
    seed: int,
    groups: list[dict[str, Any]] | None = None,
) -> TrainInfo:
    """Train ``net`` in place; with ``stop`` rows, keep the weights of the epoch with the lowest loss there.

    params: lr, optimizer, weight_decay, epochs, batch_size, patience, warmup (fraction of steps),
    max_seconds (the fold's time bound: after a few steps the cosine schedule is shortened to end by then, and
    training stops after the batch that crosses it)."""
    import torch

    torch.set_num_threads(torch_threads(params))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.monotonic()
    dev = device()
    net.to(dev)
    losses = [head_loss(h, task.metric) for h in heads]
    yt = [t.to(dev) for t in _targets(np.asarray(y_train, dtype=float).reshape(len(y_train), -1), heads)]
    ys = _targets(np.asarray(stop[1], dtype=float).reshape(len(stop[1]), -1), heads) if stop else None
    opt = make_optimizer(groups or [{"params": [p for p in net.parameters() if p.requires_grad]}], params)
    n = len(train_in)
    batch = max(2, int(params.get("batch_size", 64)))
    epochs = max(1, int(params["epochs"]))
    steps_per_epoch = max(1, math.ceil(n / batch))
    total = epochs * steps_per_epoch
    warm = max(1, int(float(params.get("warmup", 0.05)) * total))
    plan = {"total": total}  # shortened when the time bound would cut the schedule

    def lr_factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, plan["total"] - warm))))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    max_seconds = float(params.get("max_seconds") or 0) or float("inf")
    step = 0
    patience = int(params.get("patience", 5))
    info = TrainInfo()
    best_state: dict[str, Any] | None = None
    waited = 0
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(n, generator=gen).numpy()
        timed_out = False
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            if len(rows) < 2:
                continue
            out = net(_to(train_in.batch(rows, True, gen), dev))
            idx = torch.as_tensor(rows, device=dev)
            loss = sum(fn(o, t[idx]) for fn, o, t in zip(losses, out, yt)) / len(heads)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            step += 1
            if step == PLAN_CHECK_STEP and math.isfinite(max_seconds):
                per_step = (time.monotonic() - t0) / step
                affordable = step + int((max_seconds - (time.monotonic() - t0)) / max(per_step, 1e-9))
                plan["total"] = max(warm + 1, min(total, affordable))
            if time.monotonic() - t0 > max_seconds or step >= plan["total"]:
                timed_out = step < total  # the schedule was cut short by the time bound
                break
        info.epochs = epoch + 1
        if stop is not None and ys is not None:
            val = _eval_loss(net, stop[0], ys, losses, batch)
            if not math.isfinite(val):
                val = float("inf")
            if best_state is None or val < info.best_loss - 1e-6:
                info.best_loss, info.best_epoch, waited = val, epoch + 1, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                waited += 1
        if timed_out or step >= plan["total"]:
            info.stopped = "time" if timed_out else info.stopped
            break
        if stop is not None and waited >= patience:
            info.stopped = "patience"
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        info.best_epoch = info.epochs
    info.seconds = time.monotonic() - t0
    return info


def _eval_loss(net: Any, inputs: NetInputs, ys: list[Any], losses: list[Any], batch: int) -> float:
    import torch

    outs = forward_all(net, inputs, batch)
    with torch.no_grad():
        return float(sum(fn(o, t) for fn, o, t in zip(losses, outs, ys)) / len(losses))


def forward_all(
    net: Any, inputs: NetInputs, batch: int, tta: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> list[Any]:
    """Raw head outputs for every row of ``inputs`` (eval mode, no augmentation; ``tta`` adds one more
    view whose outputs are averaged with the plain ones)."""
    import torch

    net.eval()
    dev = next(net.parameters()).device
    n = len(inputs)
    parts: list[list[Any]] = []
    with torch.no_grad():
        for start in range(0, n, batch):
            rows = np.arange(start, min(n, start + batch))
            b = _to(inputs.batch(rows, False, None), dev)
            out = net(b)
            if tta is not None:
                out2 = net(tta(b))
                out = [(a + c) / 2 for a, c in zip(out, out2)]
            parts.append([o.float().cpu() for o in out])
    if not parts:
        return [torch.zeros((0, w)) for w in _widths(net)]
    return [torch.cat([p[i] for p in parts]) for i in range(len(parts[0]))]


def _widths(net: Any) -> list[int]:
    return [h.out_features for h in net.heads]


def predict_heads(
    net: Any,
    heads: Sequence[Head],
    inputs: NetInputs,
    batch: int,
    tta: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> np.ndarray:
    """Model-space predictions (n, n_outputs): probabilities for classes, de-standardised values otherwise."""
    import torch

    outs = forward_all(net, inputs, batch, tta)
    cols = []
    for h, o in zip(heads, outs):
        if h.kind == "multiclass":
            cols.append(torch.softmax(o, dim=1).numpy())
        elif h.kind == "binary":
            cols.append(torch.sigmoid(o).numpy())
        else:
            cols.append(o.numpy() * h.std + h.mean)
    return np.hstack(cols).astype(float) if cols else np.zeros((len(inputs), 0))
