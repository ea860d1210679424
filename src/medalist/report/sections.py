"""Report sections about the task and its setup: task card, EDA, setup stages, LLM calls, grade, Kaggle.

Each section function takes the :class:`RunView` and returns its HTML, or None when it has nothing to show.
"""

from __future__ import annotations

import html
import itertools
from typing import Any

import plotly.graph_objects as go

from medalist.report.collect import RunView
from medalist.report.plots import cards, cut, figure, note, table


def task_card(view: RunView) -> str:
    t = view.task
    inputs = t.get("input_columns") or {}
    chosen = view.chosen or {}
    end = next((e for e in reversed(view.run_events) if e.get("event") == "end"), {})
    start = next((e for e in view.run_events if e.get("event") == "start"), {})
    items = [
        ("competition", t.get("slug", view.ws.root.name)),
        ("task", t.get("task_type")),
        ("metric", f"{t.get('metric')} ({'lower' if view.lower_is_better else 'higher'} is better)"),
        ("modalities", ", ".join(t.get("modalities") or [])),
        ("input columns", sum(len(v) for v in inputs.values())),
        ("targets", ", ".join(t.get("target_columns") or [])),
        ("time budget (s)", start.get("time_budget")),
        ("experiments", len(view.experiments)),
        ("submission", chosen.get("name")),
        ("its CV", chosen.get("cv_score")),
    ]
    rows = [
        ("id column", t.get("id_column")),
        ("categorical columns", ", ".join(t.get("categorical_columns") or []) or None),
        ("datetime columns", ", ".join(t.get("datetime_columns") or []) or None),
        ("group / time column", f"{t.get('group_column')} / {t.get('time_column')}"),
        ("excluded", "; ".join(f"{k}: {v}" for k, v in (t.get("excluded_columns") or {}).items()) or None),
        ("files", ", ".join(f"{k}: {v}" for k, v in (t.get("files") or {}).items())),
        ("submission format", (t.get("submission") or {}).get("formatter", {}).get("method")),
        ("first submission after (s)", _event_value(view, "first_submission", "seconds")),
        ("best at the end", f"{end.get('best')} (cv {end.get('cv')})" if end else None),
        ("workspace", str(view.ws.root)),
    ]
    summary = f'<p class="summary">{html.escape(cut(t.get("summary"), 700))}</p>' if t.get("summary") else ""
    return cards(items) + table(rows, ["", "value"]) + summary


def _event_value(view: RunView, event: str, key: str) -> Any:
    return next((e.get(key) for e in view.run_events if e.get("event") == event), None)


def eda(view: RunView) -> str | None:
    e = view.eda
    if not e:
        return None
    rows, cols, dup, drift = (
        e.get("rows", {}),
        e.get("columns", {}),
        e.get("duplicates", {}),
        e.get("drift", {}),
    )
    kinds = ", ".join(f"{k} {v}" for k, v in (cols.get("by_kind") or {}).items())
    parts = [
        cards(
            [
                ("train rows", rows.get("train")),
                ("test rows", rows.get("test")),
                ("columns", f"{cols.get('n')} ({kinds})"),
                ("duplicate train rows", dup.get("train_duplicate_rows")),
                ("test rows seen in train", dup.get("test_rows_in_train")),
                ("train/test AUC", f"{drift.get('auc')} ({drift.get('verdict', '')})"),
            ]
        )
    ]
    parts.append(_target_figure(e.get("target") or {}))
    signals = e.get("signals") or []
    if signals:
        fig = go.Figure(
            go.Bar(
                x=[s["mutual_info"] for s in signals][::-1],
                y=[s["column"] for s in signals][::-1],
                orientation="h",
                marker_color="#4269d0",
            )
        )
        fig.update_xaxes(title="mutual information with the target (nats, binned values)")
        parts.append(figure(fig, "Strongest single-feature signals", 120 + 22 * len(signals)))
    parts.append(_missing_figure(cols.get("profiles") or []))
    drivers = drift.get("drivers") or []
    if drivers:
        fig = go.Figure(
            go.Bar(
                x=[d["gain_share"] for d in drivers][::-1],
                y=[d["column"] for d in drivers][::-1],
                orientation="h",
                marker_color="#ff725c",
            )
        )
        fig.update_xaxes(title="share of the adversarial model's gain")
        title = f"Train/test drift: what tells test rows apart (AUC {drift.get('auc')})"
        parts.append(figure(fig, title, 120 + 22 * len(drivers)))
    profiles = cols.get("profiles") or []
    parts.append(
        "<details><summary>Column profiles</summary>"
        + table(
            [
                (
                    p["name"],
                    p["kind"],
                    p.get("unique"),
                    p.get("missing_train"),
                    p.get("missing_test"),
                    _col_note(p),
                )
                for p in profiles
            ],
            ["column", "kind", "unique", "missing train", "missing test", "values"],
            numeric=("unique", "missing train", "missing test"),
        )
        + "</details>"
    )
    return "".join(p for p in parts if p)


def _col_note(p: dict[str, Any]) -> str:
    if "mean" in p:
        return (
            f"mean {p.get('mean'):.4g}, std {p.get('std') or 0:.4g}, [{p.get('min'):.4g}, {p.get('max'):.4g}]"
        )
    if "mean_chars" in p:
        return f"{p['mean_chars']:.0f} characters on average"
    return cut(", ".join(f"{k} ({v})" for k, v in (p.get("top") or {}).items()), 120)


def _target_figure(target: dict[str, Any]) -> str:
    if target.get("classes"):
        classes = target["classes"]
        fig = go.Figure(go.Bar(x=list(classes), y=list(classes.values()), marker_color="#6cc5b0"))
        fig.update_xaxes(title="class", type="category")
        fig.update_yaxes(title="train rows")
        return figure(fig, f"Target: {', '.join(target.get('columns', []))} ({target.get('kind')})", 320)
    if target.get("positive_share"):
        share = target["positive_share"]
        fig = go.Figure(go.Bar(x=list(share), y=list(share.values()), marker_color="#6cc5b0"))
        fig.update_yaxes(title="share of positive rows")
        return figure(fig, "Target labels", 320)
    hist = target.get("histogram") or {}
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    if not counts:
        return ""
    centers = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    fig = go.Figure(go.Bar(x=centers, y=counts, marker_color="#6cc5b0"))
    fig.update_layout(bargap=0.02)
    fig.update_xaxes(title=target.get("columns", [""])[0])
    fig.update_yaxes(title="train rows")
    title = f"Target distribution (skew {target.get('skew')}, {'fitted on log1p' if target.get('log_fitted') else 'raw'})"
    return figure(fig, title, 320)


def _missing_figure(profiles: list[dict[str, Any]]) -> str:
    gaps = [p for p in profiles if (p.get("missing_train") or 0) > 0 or (p.get("missing_test") or 0) > 0]
    if not gaps:
        return note("No missing values in any input column.")
    gaps = sorted(gaps, key=lambda p: -(p.get("missing_train") or 0))[:25]
    names = [p["name"] for p in gaps]
    fig = go.Figure(
        [
            go.Bar(name="train", x=names, y=[p.get("missing_train") or 0 for p in gaps]),
            go.Bar(name="test", x=names, y=[p.get("missing_test") or 0 for p in gaps]),
        ]
    )
    fig.update_yaxes(title="missing share", range=[0, 1])
    return figure(fig, "Missing values by column", 320)


def setup_stages(view: RunView) -> str | None:
    if not view.stages:
        return None
    by_stage: dict[str, dict[str, Any]] = {}
    for r in view.stages:
        s = by_stage.setdefault(
            r.get("stage", "?"),
            {
                "attempts": 0,
                "ok": False,
                "policies": [],
                "errors": [],
                "tokens": 0,
                "seconds": 0.0,
                "fallback": None,
            },
        )
        s["attempts"] += 1
        s["ok"] = bool(r.get("ok"))
        if r.get("policy") and r["policy"] not in s["policies"]:
            s["policies"].append(r["policy"])
        if r.get("error"):
            s["errors"].append(cut(r["error"], 200))
        s["tokens"] += int(r.get("prompt_tokens") or 0) + int(r.get("completion_tokens") or 0)
        s["seconds"] += float(r.get("seconds") or 0.0)
        s["fallback"] = r.get("fallback") or s["fallback"]
        if r.get("rollback_from"):
            s["errors"].append(f"rolled back from {r['rollback_from']}")
    names = list(by_stage)
    total = sum(s["seconds"] for s in by_stage.values())
    fig = go.Figure(
        go.Bar(
            x=[by_stage[n]["seconds"] for n in names],
            y=names,
            orientation="h",
            marker_color=["#3ca951" if by_stage[n]["ok"] else "#ff725c" for n in names],
            customdata=[by_stage[n]["attempts"] for n in names],
            hovertemplate="%{y}: %{x:.2f}s, %{customdata} attempt(s)<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title="seconds (all attempts)")
    retried = sum(1 for s in by_stage.values() if s["attempts"] > 1)
    rows = [
        (
            n,
            s["attempts"],
            s["ok"],
            ", ".join(s["policies"]) + (f" (fallback: {s['fallback']})" if s["fallback"] else ""),
            s["tokens"],
            round(s["seconds"], 3),
            " | ".join(s["errors"]) or None,
        )
        for n, s in by_stage.items()
    ]
    return (
        cards([("stages", len(names)), ("retried", retried), ("seconds", round(total, 2))])
        + figure(fig, "Setup stages: seconds (green: passed, red: failed)", 120 + 18 * len(names))
        + table(
            rows,
            ["stage", "attempts", "ok", "decided by", "tokens", "seconds", "errors"],
            ("attempts", "tokens", "seconds"),
        )
    )


def llm_calls(view: RunView) -> str | None:
    if not view.llm_calls:
        return None
    from medalist.llm.client import summarize_calls

    usage = summarize_calls(view.llm_calls)
    stages = list(usage.stages)
    fig = go.Figure(
        [
            go.Bar(name="prompt", x=stages, y=[usage.stages[s].prompt_tokens for s in stages]),
            go.Bar(name="completion", x=stages, y=[usage.stages[s].completion_tokens for s in stages]),
        ]
    )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title="tokens")
    total = usage.total
    models = sorted({str(c.get("model")) for c in view.llm_calls if c.get("model")})
    rows = [
        (
            s,
            t.calls,
            t.cached_calls,
            t.failed_calls,
            t.prompt_tokens,
            t.completion_tokens,
            round(t.seconds, 2),
            t.cost,
        )
        for s, t in usage.stages.items()
    ]
    columns = [
        "stage",
        "calls",
        "cached",
        "failed",
        "prompt tokens",
        "completion tokens",
        "seconds",
        "cost ($)",
    ]
    return (
        cards(
            [
                ("model", ", ".join(models)),
                ("calls", total.calls),
                ("tokens", total.tokens),
                ("cost ($)", round(total.cost, 4) if total.unpriced_calls < total.calls else "unpriced"),
                ("seconds waiting", round(total.seconds, 1)),
            ]
        )
        + figure(fig, "LLM tokens by stage", 340)
        + table(rows, columns, columns[1:])
    )


def grade(view: RunView) -> str | None:
    g = view.grade
    if not g:
        return None
    medal = next((m for m in ("gold", "silver", "bronze") if g.get(f"{m}_medal")), None)
    items = [
        ("score", g.get("score")),
        ("medal", medal or ("above median" if g.get("above_median") else "none")),
        ("beats (% of teams)", g.get("percentile")),
        ("teams", g.get("n_teams")),
        ("valid", g.get("valid_submission")),
    ]
    rows = [(k, g.get(f"{k}_threshold")) for k in ("gold", "silver", "bronze", "median")]
    reason = note(f"invalid: {g['reason']}") if g.get("reason") else ""
    return cards(items) + table(rows, ["threshold", "score"], ("score",)) + reason


def kaggle_submissions(view: RunView) -> str | None:
    """Each upload to Kaggle (newest first) with the public score Kaggle gave it."""
    if not view.kaggle:
        return None
    columns = ["submitted (UTC)", "competition", "message", "status", "public score", "private score", "note"]
    rows = [
        (
            str(k.get("submitted_at", ""))[:19].replace("T", " "),
            k.get("competition"),
            cut(k.get("message"), 80),
            k.get("status"),
            k.get("public_score"),
            k.get("private_score"),
            cut(k.get("error"), 160) or None,
        )
        for k in reversed(view.kaggle)
    ]
    return table(rows, columns, ("public score", "private score"))
