"""Out-of-fold diagnostics of the chosen submission: ROC / PR / calibration and a confusion matrix for
classification, predicted against actual and residuals for regression (all in model space)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from medalist.report.collect import RunView
from medalist.report.plots import COLORS, cards, figure, note
from medalist.setup.spec import TargetTransform

MAX_POINTS = 300  # points kept on a curve
MAX_SCATTER = 2000  # rows drawn in a scatter
MAX_CLASSES = 10  # classes drawn as one-vs-rest curves
MAX_MATRIX = 30  # classes of a confusion matrix


def oof_diagnostics(view: RunView) -> str | None:
    chosen = (view.chosen or {}).get("name")
    row = next((r for r in reversed(view.experiments) if r["name"] == chosen and r["status"] == "done"), None)
    if row is None:
        return None
    oof = _load_oof(view, row)
    y, transform = _targets(view, row)
    if oof is None or y is None or transform is None:
        return note(f"No out-of-fold predictions or targets found for {chosen}.")
    if oof.ndim == 1:
        oof = oof[:, None]
    if len(oof) != len(y):
        return note(f"{chosen}: {len(oof)} out-of-fold rows against {len(y)} targets; not compared.")
    head = f"<p>Out-of-fold predictions of <b>{chosen}</b> against the train targets ({transform.kind}).</p>"
    if transform.kind == "binary":
        return head + _binary(y[:, 0], oof[:, 0], transform.threshold)
    if transform.kind == "multiclass":
        return head + _multiclass(y[:, 0].astype(int), oof, [str(c) for c in transform.classes or []])
    if transform.kind == "multilabel":
        return head + _multilabel(y, oof, transform.columns)
    space = "log1p space" if transform.log else "target units"
    if len(transform.columns) > 1:
        space += f", {transform.columns[0]} of {len(transform.columns)} targets"
    body = _regression(y[:, 0], oof[:, 0], space)
    if transform.kind == "ordinal" and transform.classes:
        decoded = transform.decode(oof).iloc[:, 0].astype(str).to_numpy()
        truth = transform.decode(y).iloc[:, 0].astype(str).to_numpy()
        labels = [str(c) for c in transform.classes]
        body += _confusion(
            np.array([labels.index(t) for t in truth]), np.array([labels.index(d) for d in decoded]), labels
        )
    return head + body


def _load_oof(view: RunView, row: dict[str, Any]) -> np.ndarray | None:
    for path in (Path(row.get("oof_path") or ""), view.ws.experiments / Path(row.get("oof_path") or "").name):
        if path.is_file():
            return np.load(path, allow_pickle=False).astype(float)
    return None


def _targets(view: RunView, row: dict[str, Any]) -> tuple[np.ndarray | None, TargetTransform | None]:
    """Model-space targets in the maps' row order, with the chosen experiment's transform (its threshold)."""
    path = view.ws.map_path("train_tab_target")
    spec = view.task.get("target_transform")
    if not path.exists() or not isinstance(spec, dict):
        return None, None
    own = (row.get("params") or {}).get("transform")
    transform = TargetTransform.from_dict(own if isinstance(own, dict) else spec)
    frame = pd.read_parquet(path).drop(columns=["id"])
    return transform.encode(frame), transform


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    n = len(arrays[0])
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).astype(int)) if n else np.zeros(0, int)
    return [a[keep] for a in arrays]


def _calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted probability, observed rate and row count of each quantile bin of ``p``."""
    order = np.argsort(p, kind="stable")
    groups = [g for g in np.array_split(order, bins) if len(g)]
    return (
        np.array([p[g].mean() for g in groups]),
        np.array([y[g].mean() for g in groups]),
        np.array([len(g) for g in groups]),
    )


def _binary(y: np.ndarray, p: np.ndarray, threshold: float) -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    if len(np.unique(y)) < 2:
        return note("Only one class in the targets: no curves.")
    fpr, tpr, _ = roc_curve(y, p)
    prec, rec, _ = precision_recall_curve(y, p)
    auc, ap = roc_auc_score(y, p), average_precision_score(y, p)
    mean_p, rate, count = _calibration(y, p)
    fig = make_subplots(
        1, 3, subplot_titles=[f"ROC (AUC {auc:.4f})", f"Precision-recall (AP {ap:.4f})", "Calibration"]
    )
    fpr, tpr = _thin(fpr, tpr)
    prec, rec = _thin(prec, rec)
    fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name="ROC", line_color=COLORS[0]), 1, 1)
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#aaa"}, showlegend=False),
        1,
        1,
    )
    fig.add_trace(go.Scatter(x=rec, y=prec, mode="lines", name="PR", line_color=COLORS[1]), 1, 2)
    fig.add_trace(
        go.Scatter(
            x=mean_p,
            y=rate,
            mode="lines+markers",
            name="observed",
            text=count,
            line_color=COLORS[2],
            hovertemplate="predicted %{x:.3f}, observed %{y:.3f} (%{text} rows)<extra></extra>",
        ),
        1,
        3,
    )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#aaa"}, showlegend=False),
        1,
        3,
    )
    fig.update_xaxes(title_text="false positive rate", row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", row=1, col=1)
    fig.update_xaxes(title_text="recall", row=1, col=2)
    fig.update_yaxes(title_text="precision", row=1, col=2)
    fig.update_xaxes(title_text="mean predicted probability", row=1, col=3)
    fig.update_yaxes(title_text="observed positive rate", row=1, col=3)
    fig.update_layout(showlegend=False)
    pred = (p >= threshold).astype(int)
    items = [
        ("rows", len(y)),
        ("ROC AUC", round(auc, 4)),
        ("threshold", round(threshold, 4)),
        ("accuracy at it", round(float((pred == y).mean()), 4)),
    ]
    return (
        cards(items)
        + figure(fig, "Ranking and calibration", 380)
        + _confusion(y.astype(int), pred, ["0 (negative)", "1 (positive)"])
    )


def _multiclass(y: np.ndarray, proba: np.ndarray, labels: list[str]) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve

    labels = labels or [str(i) for i in range(proba.shape[1])]
    fig = make_subplots(1, 2, subplot_titles=["One-vs-rest ROC", "Calibration of the top class"])
    for k in range(min(proba.shape[1], MAX_CLASSES)):
        hit = (y == k).astype(int)
        if 0 < hit.sum() < len(hit):
            fpr, tpr, _ = roc_curve(hit, proba[:, k])
            fpr, tpr = _thin(fpr, tpr)
            auc = roc_auc_score(hit, proba[:, k])
            fig.add_trace(
                go.Scatter(
                    x=fpr,
                    y=tpr,
                    mode="lines",
                    name=f"{labels[k]} (AUC {auc:.3f})",
                    line_color=COLORS[k % len(COLORS)],
                ),
                1,
                1,
            )
    top = proba.argmax(axis=1)
    mean_p, rate, count = _calibration((top == y).astype(float), proba.max(axis=1))
    fig.add_trace(
        go.Scatter(x=mean_p, y=rate, mode="lines+markers", name="top class", text=count, line_color="#222"),
        1,
        2,
    )
    for col in (1, 2):
        fig.add_trace(
            go.Scatter(
                x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#aaa"}, showlegend=False
            ),
            1,
            col,
        )
    fig.update_xaxes(title_text="false positive rate", row=1, col=1)
    fig.update_yaxes(title_text="true positive rate", row=1, col=1)
    fig.update_xaxes(title_text="top-class probability", row=1, col=2)
    fig.update_yaxes(title_text="share correct", row=1, col=2)
    items = [
        ("rows", len(y)),
        ("classes", proba.shape[1]),
        ("accuracy (argmax)", round(float((top == y).mean()), 4)),
    ]
    out = cards(items) + figure(fig, "Ranking and calibration", 400)
    if proba.shape[1] <= MAX_MATRIX:
        out += _confusion(y, top, labels)
    return out


def _multilabel(y: np.ndarray, p: np.ndarray, columns: list[str]) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig = go.Figure()
    for k in range(min(y.shape[1], MAX_CLASSES)):
        hit = np.nan_to_num(y[:, k]).astype(int)
        if 0 < hit.sum() < len(hit):
            fpr, tpr, _ = roc_curve(hit, p[:, k])
            fpr, tpr = _thin(fpr, tpr)
            fig.add_trace(
                go.Scatter(
                    x=fpr, y=tpr, mode="lines", name=f"{columns[k]} (AUC {roc_auc_score(hit, p[:, k]):.3f})"
                )
            )
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#aaa"}, showlegend=False)
    )
    fig.update_xaxes(title="false positive rate")
    fig.update_yaxes(title="true positive rate")
    return figure(fig, "ROC per label", 400)


def _regression(y: np.ndarray, p: np.ndarray, space: str) -> str:
    resid = p - y
    rows = np.random.default_rng(0).choice(len(y), min(len(y), MAX_SCATTER), replace=False)
    lo, hi = float(min(y.min(), p.min())), float(max(y.max(), p.max()))
    fig = make_subplots(
        1, 2, subplot_titles=[f"Predicted against actual ({space})", "Residuals (predicted − actual)"]
    )
    fig.add_trace(
        go.Scatter(
            x=y[rows],
            y=p[rows],
            mode="markers",
            marker={"size": 4, "opacity": 0.5, "color": COLORS[0]},
            name="rows",
        ),
        1,
        1,
    )
    fig.add_trace(
        go.Scatter(
            x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "#aaa"}, showlegend=False
        ),
        1,
        1,
    )
    counts, edges = np.histogram(resid, bins=40)
    fig.add_trace(
        go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, marker_color=COLORS[2], name="residuals"), 1, 2
    )
    fig.update_xaxes(title_text="actual", row=1, col=1)
    fig.update_yaxes(title_text="predicted", row=1, col=1)
    fig.update_xaxes(title_text="residual", row=1, col=2)
    fig.update_yaxes(title_text="rows", row=1, col=2)
    fig.update_layout(showlegend=False, bargap=0.02)
    rmse = float(np.sqrt(np.mean(resid**2)))
    items = [
        ("rows", len(y)),
        (f"RMSE ({space})", round(rmse, 5)),
        ("mean residual", round(float(resid.mean()), 5)),
        ("R²", round(1 - float(np.var(resid) / (np.var(y) or 1)), 4)),
    ]
    return cards(items) + figure(fig, "Fit and residuals", 400)


def _confusion(y: np.ndarray, pred: np.ndarray, labels: list[str]) -> str:
    k = len(labels)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y.astype(int), pred.astype(int)), 1)
    share = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=labels,
            y=labels,
            text=matrix,
            texttemplate="%{text}" if k <= 12 else None,
            colorscale="Blues",
            zmin=0,
            zmax=1,
            hovertemplate="actual %{y}, predicted %{x}: %{text} rows (%{z:.1%} of the class)<extra></extra>",
            colorbar={"title": {"text": "share of class"}},
        )
    )
    fig.update_xaxes(title="predicted", type="category")
    fig.update_yaxes(title="actual", type="category", autorange="reversed")
    return figure(fig, "Confusion matrix (rows: actual class)", min(700, 260 + 24 * k))
