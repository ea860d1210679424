"""Report sections read from the ledger: where the time went, the experiments, the ensembles."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import plotly.graph_objects as go

from medalist.report.collect import RunView
from medalist.report.plots import COLORS, cards, cut, figure, note, table

PRIOR = "prior"  # the training prior: a floor whose score would squash every axis
MAX_TABLE_ROWS = 30


def _origin(row: dict[str, Any]) -> str:
    return row.get("origin") or row.get("kind") or "?"


def _color_map(keys: list[str]) -> dict[str, str]:
    return {k: COLORS[i % len(COLORS)] for i, k in enumerate(sorted(set(keys)))}


def timeline(view: RunView) -> str | None:
    rows = [r for r in view.experiments if r.get("created_at")]
    if not rows:
        return None
    t0 = min(r["created_at"] for r in rows)
    colors = _color_map([_origin(r) for r in rows])
    traces = []
    for origin in sorted(colors):
        mine = [r for r in rows if _origin(r) == origin]
        traces.append(
            go.Bar(
                name=origin,
                orientation="h",
                y=[r["name"] for r in mine],
                base=[r["created_at"] - t0 for r in mine],
                x=[max(0.05, (r.get("updated_at") or r["created_at"]) - r["created_at"]) for r in mine],
                marker_color=colors[origin],
                marker_pattern_shape=["x" if r["status"] == "failed" else "" for r in mine],
                customdata=[[r["status"], r["model"]] for r in mine],
                hovertemplate="%{y} (%{customdata[1]}): %{x:.1f}s from %{base:.1f}s, %{customdata[0]}<extra></extra>",
            )
        )
    fig = go.Figure(traces)
    order = [r["name"] for r in sorted(rows, key=lambda r: r["created_at"])]
    fig.update_yaxes(
        categoryorder="array", categoryarray=order, autorange="reversed", showticklabels=len(rows) <= 60
    )
    fig.update_xaxes(title="seconds since the first experiment started")
    if len(rows) > 60:
        fig.update_yaxes(title=f"{len(rows)} experiments, in start order")
    fig.update_layout(barmode="overlay", bargap=0.25)
    spent: dict[str, float] = defaultdict(float)
    for r in rows:
        spent[_origin(r)] += float(r.get("seconds") or 0.0)
    setup_seconds = sum(float(s.get("seconds") or 0.0) for s in view.stages)
    wall = max((r.get("updated_at") or r["created_at"]) for r in rows) - t0
    share = go.Figure(
        go.Bar(
            x=["setup", *spent],
            y=[setup_seconds, *spent.values()],
            marker_color=["#9498a0", *[colors[k] for k in spent]],
        )
    )
    share.update_yaxes(title="seconds (summed)")
    failed = [r for r in rows if r["status"] == "failed"]
    return (
        cards(
            [
                ("setup (s)", round(setup_seconds, 1)),
                ("experiments wall (s)", round(wall, 1)),
                ("experiment seconds", round(sum(spent.values()), 1)),
                ("failed", len(failed)),
                ("failed seconds", round(sum(float(r.get("seconds") or 0) for r in failed), 1)),
            ]
        )
        + figure(
            fig,
            "Timeline: each experiment from start to end (hatched: failed)",
            min(900, 140 + 16 * len(rows)),
        )
        + figure(share, "Where the time went, by origin (experiments may overlap)", 300)
    )


def experiments(view: RunView) -> str | None:
    if not view.experiments:
        return None
    done = [r for r in view.done() if r["model"] != PRIOR]
    parts = []
    lower = view.lower_is_better
    if done:
        t0 = min((r["created_at"] for r in view.experiments if r.get("created_at")), default=0.0)
        models = _color_map([r["model"] for r in done])
        symbols = dict(
            zip(
                sorted({_origin(r) for r in done}),
                ["circle", "diamond", "square", "triangle-up", "cross", "star", "x", "pentagon", "hexagon"]
                * 2,
            )
        )
        traces = []
        for model in sorted(models):
            mine = [r for r in done if r["model"] == model]
            traces.append(
                go.Scatter(
                    name=model,
                    mode="markers",
                    x=[r["updated_at"] - t0 for r in mine],
                    y=[r["cv_score"] for r in mine],
                    marker={"color": models[model], "size": 9, "symbol": [symbols[_origin(r)] for r in mine]},
                    text=[f"{r['name']} ({_origin(r)}, {r.get('features') or '-'})" for r in mine],
                    hovertemplate="%{text}<br>cv %{y:.5f} at %{x:.0f}s<extra></extra>",
                )
            )
        ordered = sorted(done, key=lambda r: r["updated_at"])
        best, xs, ys = None, [], []
        for r in ordered:
            if best is None or (r["cv_score"] < best if lower else r["cv_score"] > best):
                best = r["cv_score"]
            xs.append(r["updated_at"] - t0)
            ys.append(best)
        traces.append(
            go.Scatter(
                name="best so far",
                x=xs,
                y=ys,
                mode="lines",
                line={"shape": "hv", "color": "#222", "width": 1.5},
            )
        )
        fig = go.Figure(traces)
        fig.update_xaxes(title="seconds since the first experiment started (at its end)")
        fig.update_yaxes(
            title=f"CV {view.task.get('metric', '')} ({'lower' if lower else 'higher'} is better)"
        )
        parts.append(figure(fig, "CV over time (colour: family, symbol: origin)", 420))
        members = [r for r in done if r["kind"] in ("model", "script")]
        if members:
            parts.append(_by_family(members, view))
        parts.append(_cv_vs_seconds(done, models, view))
    else:
        parts.append(note("No finished experiment besides the prior."))
    parts.append(_top_table(view))
    failed = [r for r in view.experiments if r["status"] == "failed"]
    if failed:
        parts.append(
            "<h3>Failed experiments</h3>"
            + table(
                [
                    (r["name"], _origin(r), round(r.get("seconds") or 0, 1), cut(r.get("error"), 240))
                    for r in failed[-MAX_TABLE_ROWS:]
                ],
                ["experiment", "origin", "seconds", "error"],
                ("seconds",),
            )
        )
    return "".join(parts)


def _by_family(done: list[dict[str, Any]], view: RunView) -> str:
    recipes = _color_map([r.get("features") or "-" for r in done])
    traces = [
        go.Box(
            name=recipe,
            x=[r["model"] for r in done if (r.get("features") or "-") == recipe],
            y=[r["cv_score"] for r in done if (r.get("features") or "-") == recipe],
            text=[r["name"] for r in done if (r.get("features") or "-") == recipe],
            boxpoints="all",
            jitter=0.3,
            pointpos=0,
            marker_color=color,
        )
        for recipe, color in recipes.items()
    ]
    fig = go.Figure(traces)
    fig.update_layout(boxmode="group", legend_title_text="feature recipe")
    fig.update_yaxes(title=f"CV {view.task.get('metric', '')}")
    return figure(fig, "CV by family and feature recipe", 380)


def _cv_vs_seconds(done: list[dict[str, Any]], models: dict[str, str], view: RunView) -> str:
    fig = go.Figure(
        [
            go.Scatter(
                name=m,
                mode="markers",
                x=[max(0.01, r.get("seconds") or 0) for r in done if r["model"] == m],
                y=[r["cv_score"] for r in done if r["model"] == m],
                text=[r["name"] for r in done if r["model"] == m],
                marker={"color": c, "size": 8},
                hovertemplate="%{text}: cv %{y:.5f} in %{x:.1f}s<extra></extra>",
            )
            for m, c in models.items()
        ]
    )
    fig.update_xaxes(title="seconds (all folds)", type="log")
    fig.update_yaxes(title=f"CV {view.task.get('metric', '')}")
    return figure(fig, "CV against cost", 360)


def _top_table(view: RunView) -> str:
    done = sorted(view.done(), key=lambda r: r["cv_score"], reverse=not view.lower_is_better)
    chosen = (view.chosen or {}).get("name")
    rows = [
        (
            r["name"] + (" ★" if r["name"] == chosen else ""),
            r["kind"],
            r["model"],
            r.get("features") or None,
            _origin(r),
            r["cv_score"],
            float(np.std(r["fold_scores"])) if r.get("fold_scores") else None,
            round(r.get("seconds") or 0, 1),
        )
        for r in done[:MAX_TABLE_ROWS]
    ]
    more = f" (best {MAX_TABLE_ROWS} of {len(done)})" if len(done) > MAX_TABLE_ROWS else ""
    columns = ["experiment", "kind", "family", "recipe", "origin", "cv", "fold std", "seconds"]
    return f"<h3>Leaderboard of the run{more}</h3>" + table(rows, columns, ("cv", "fold std", "seconds"))


def ensembles(view: RunView) -> str | None:
    ens = [r for r in view.experiments if r["kind"] in ("ensemble", "distill")]
    if not ens:
        return None
    rows = []
    weights: dict[str, dict[str, float]] = {}
    for r in ens:
        p = r.get("params") or {}
        post = p.get("postprocess") or {}
        members = p.get("members") or []
        rows.append(
            (
                r["name"],
                p.get("method") or r["model"],
                r["status"],
                r.get("cv_score"),
                p.get("raw_cv_score"),
                f"{post.get('kind')} ({'kept' if post.get('kept') else 'not kept'})" if post else None,
                len(members),
                round(r.get("seconds") or 0, 1),
            )
        )
        w = p.get("weights")
        if isinstance(w, list) and len(w) == len(members) and r["status"] == "done":
            weights[r["name"]] = {m: float(x) for m, x in zip(members, w) if x}
    parts = [
        table(
            rows,
            [
                "ensemble",
                "method",
                "status",
                "cv",
                "cv before post-processing",
                "post-processing",
                "members",
                "seconds",
            ],
            ("cv", "cv before post-processing", "members", "seconds"),
        )
    ]
    if weights:
        fig = go.Figure([go.Bar(name=name, x=list(w), y=list(w.values())) for name, w in weights.items()])
        fig.update_layout(barmode="group")
        fig.update_yaxes(title="weight")
        parts.append(figure(fig, "Ensemble weights (members with a non-zero weight)", 340))
    scores = next(
        (
            r["params"].get("member_scores")
            for r in reversed(ens)
            if (r.get("params") or {}).get("member_scores")
        ),
        None,
    )
    if scores:
        done = {
            r["name"]: r["cv_score"] for r in ens if r["status"] == "done" and r.get("cv_score") is not None
        }
        both = {**scores, **done}
        names = sorted(both, key=both.get, reverse=not view.lower_is_better)
        fig = go.Figure(
            go.Bar(
                x=names,
                y=[both[n] for n in names],
                marker_color=["#1f2a44" if n in done else "#97bbf5" for n in names],
            )
        )
        lo, hi = min(both.values()), max(both.values())
        pad = 0.1 * (hi - lo or abs(hi) or 1)
        fig.update_yaxes(title=f"CV {view.task.get('metric', '')}", range=[lo - pad, hi + pad])
        parts.append(figure(fig, "Ensembles (dark) against their members (light), best first", 360))
    return "".join(parts)
