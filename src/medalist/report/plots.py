"""Building blocks of the report page: plotly figures as divs (plotly.js itself is inlined once by the page),
HTML tables, cards and notes."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

COLORS = [
    "#4269d0",
    "#efb118",
    "#ff725c",
    "#6cc5b0",
    "#3ca951",
    "#ff8ab7",
    "#a463f2",
    "#97bbf5",
    "#9c6b4e",
    "#9498a0",
]
# a small template: plotly's own ones add ~8 kB to every figure
THEME = go.layout.Template(
    layout={
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#222"},
        "colorway": COLORS,
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": {"gridcolor": "#e6e6e6", "zerolinecolor": "#cccccc", "automargin": True},
        "yaxis": {"gridcolor": "#e6e6e6", "zerolinecolor": "#cccccc", "automargin": True},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 50},
        "legend": {"bgcolor": "rgba(255,255,255,0.6)"},
        "hoverlabel": {"namelength": -1},
    }
)
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def figure(fig: go.Figure, title: str, height: int = 360) -> str:
    """One figure as a div and its Plotly.newPlot call (plotly.js is not included)."""
    fig.update_layout(template=THEME, title={"text": title, "x": 0.01, "font": {"size": 14}}, height=height)
    if fig.layout.annotations:  # subplot titles sit under the figure's title
        fig.update_layout(margin={"t": 75})
    body = pio.to_html(fig, include_plotlyjs=False, full_html=False, config=CONFIG, validate=False)
    return f'<div class="figure">{body}</div>'


def table(
    rows: Iterable[Sequence[Any]],
    columns: Sequence[str],
    numeric: Sequence[str] = (),
    markup: Sequence[str] = (),
) -> str:
    """An HTML table; cells are escaped (except in ``markup`` columns, which hold HTML already), floats
    shown with 5 significant digits."""
    head = "".join(f'<th class="{"num" if c in numeric else ""}">{html.escape(c)}</th>' for c in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"num" if c in numeric else ""}">{v if c in markup else html.escape(fmt(v))}</td>'
            for c, v in zip(columns, row)
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        return note("nothing to show")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def cards(items: Iterable[tuple[str, Any]]) -> str:
    """Key figures as a row of small cards."""
    parts = [
        f'<div class="card"><div class="k">{html.escape(k)}</div><div class="v">{html.escape(fmt(v))}</div></div>'
        for k, v in items
    ]
    return f'<div class="cards">{"".join(parts)}</div>'


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def fmt(value: Any) -> str:
    """A cell's text: floats to 5 significant digits, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:.5g}" if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def cut(text: Any, limit: int = 160) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= limit else s[: limit - 1] + "…"
