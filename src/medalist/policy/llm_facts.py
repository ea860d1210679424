"""Compact facts about a competition for LLM prompts: description excerpts, file tables, column profiles.

Small models read slowly (a few hundred prompt tokens a second at best), so every helper here bounds its
output: long column lists collapse numbered families (``margin1 … margin64``), cells are cut, and only
the evaluation part of a description is quoted where that is what a stage needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from string import Template
from typing import TYPE_CHECKING, Any

import pandas as pd

from medalist.setup.profile import profile_column

if TYPE_CHECKING:
    from medalist.intake import Competition

_PROMPTS = Path(__file__).parent / "prompts"
_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_EVAL_HEAD = re.compile(r"(?im)^[ \t]*#*[ \t]*(evaluation|metric|scoring)\b[^\n]*$")
_PLAN_LINE = re.compile(r"(?im)^\W*plan\W*:?\s*(.+)$")


def prompt(name: str, **values: Any) -> str:
    """Fill the template ``prompts/<name>.txt`` ($-placeholders); blank runs of lines collapse to one."""
    text = Template(_read_template(name)).substitute(
        {k: "" if v is None else str(v) for k, v in values.items()}
    )
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _read_template(name: str) -> str:
    return (_PROMPTS / f"{name}.txt").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------- text
def clean_text(text: str) -> str:
    """Description text without HTML tags, links, LaTeX and markdown decoration."""
    text = re.sub(r"<[^>]+>", " ", text or "")
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # [label](link) -> label
    text = re.sub(r"https?://\S+", "", text)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)  # display formulas
    text = re.sub(r"(?m)^.*\\(frac|sum|text|log)\b.*$", " ", text)  # formula lines
    text = text.replace("$", "")
    text = re.sub(r"\\\\?\(|\\\\?\)", "", text)
    text = re.sub(r"[*`>#]+", "", text)
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit].rsplit(" ", 1)[0]
    return head.rstrip(",.;: ") + " …"


def fenced(text: str) -> str:
    """``text`` in a plain ``` block."""
    return f"```\n{text.strip()}\n```"


def stated_plan(text: str) -> str | None:
    """The answer's "Plan: ..." line (cut), or None when it states none."""
    found = _PLAN_LINE.search(text)
    return cut(found.group(1), 200) if found else None


def memory_examples(memory: Sequence[str]) -> str:
    """The long-term memory's entries for this stage (RAG+ examples and RAG- warnings, already within their
    token budget), or "" without any."""
    if not memory:
        return ""
    items = "\n".join(f"- {cut(m, 800)}" for m in memory[:6])
    return f"From earlier competitions (long-term memory):\n{items}"


def evaluation_excerpt(description: str, limit: int = 600) -> str:
    """The description's evaluation section (or, without one, its sentences about scoring)."""
    raw = description or ""
    match = _EVAL_HEAD.search(raw)
    if match:
        return cut(clean_text(raw[match.end() : match.end() + 4 * limit]), limit)
    text = clean_text(raw)
    sentences = re.split(r"(?<=[.!?])\s+", text)
    hits = [s for s in sentences if re.search(r"evaluat|scor|metric|accuracy|loss|error|auc", s, re.I)]
    return cut(" ".join(hits) or text, limit)


def description_excerpt(description: str, limit: int = 1200) -> str:
    """The opening paragraphs plus the evaluation section, within ``limit`` characters."""
    text = clean_text(description)
    paragraphs = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 40]
    head = cut(" ".join(paragraphs[:3]), limit // 2) if paragraphs else ""
    evaluation = evaluation_excerpt(description, limit - len(head))
    if evaluation and evaluation[:80] not in head:
        return f"{head}\nEvaluation: {evaluation}".strip()
    return head


# ---------------------------------------------------------------------------------------------- columns
def compact_names(names: Sequence[str], limit: int = 24) -> str:
    """Column names with numbered families collapsed (``margin1 … margin64 (64)``), at most ``limit`` items."""
    items: list[str] = []
    i = 0
    names = [str(n) for n in names]
    while i < len(names):
        m = _NUMBERED.match(names[i])
        j = i + 1
        if m:
            while j < len(names):
                n = _NUMBERED.match(names[j])
                if not n or n.group(1) != m.group(1):
                    break
                j += 1
        if j - i >= 4:
            items.append(f"{names[i]} … {names[j - 1]} ({j - i} columns)")
        else:
            items.extend(names[i:j])
        i = j
    if len(items) > limit:
        rest = len(items) - limit
        items = [*items[:limit], f"… {rest} more"]
    return ", ".join(items)


def _value_text(v: Any, width: int = 24) -> str:
    text = repr(v) if isinstance(v, str) else str(v)
    return text if len(text) <= width else text[: width - 1] + "…'"


def column_lines(frame: pd.DataFrame, columns: Sequence[str] | None = None, max_lines: int = 30) -> str:
    """One line per column: kind, distinct values, missing share, examples. Numbered families share a line."""
    cols = [str(c) for c in (columns if columns is not None else frame.columns)]
    lines: list[str] = []
    i = 0
    while i < len(cols) and len(lines) < max_lines:
        m = _NUMBERED.match(cols[i])
        j = i + 1
        if m:
            while j < len(cols) and (n := _NUMBERED.match(cols[j])) and n.group(1) == m.group(1):
                j += 1
        if j - i >= 4:
            kinds = sorted({profile_column(frame[c]).kind for c in cols[i:j]})
            lines.append(f"- {cols[i]} … {cols[j - 1]} ({j - i} columns): {'/'.join(kinds)}")
        else:
            for c in cols[i:j]:
                lines.append("- " + column_line(frame[c]))
        i = j
    if i < len(cols):
        lines.append(f"- … {len(cols) - i} more columns: {compact_names(cols[i:], 12)}")
    return "\n".join(lines)


def column_line(series: pd.Series) -> str:
    prof = profile_column(series)
    dtype = str(series.dtype)
    parts = [f"{series.name}: {prof.kind} ({dtype}), {prof.n_unique} distinct"]
    if prof.missing_share > 0:
        parts.append(f"{prof.missing_share:.0%} missing" if prof.missing_share >= 0.005 else "<1% missing")
    examples = series.dropna().unique()[:3]
    if len(examples):
        width = 40 if prof.kind == "text" else 20
        parts.append("e.g. " + ", ".join(_value_text(v, width) for v in examples))
    return ", ".join(parts)


def frame_head(frame: pd.DataFrame, rows: int = 3, max_cols: int = 8, width: int = 30) -> str:
    """The first rows as CSV-like text, long cells cut, wide frames shortened."""
    cols = list(frame.columns)
    shown = cols if len(cols) <= max_cols else cols[: max_cols - 1]
    lines = [
        ",".join(map(str, shown)) + ("" if shown == cols else f",… ({len(cols) - len(shown)} more columns)")
    ]
    for _, row in frame.head(rows).iterrows():
        cells = [_cell(row[c], width) for c in shown]
        lines.append(",".join(cells) + ("" if shown == cols else ",…"))
    return "\n".join(lines)


def _cell(v: Any, width: int) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    text = str(v)
    return text if len(text) <= width else text[: width - 1] + "…"


def value_counts_text(series: pd.Series, limit: int = 8) -> str:
    """'0: 549, 1: 342' for a few most frequent values."""
    counts = series.value_counts(dropna=True)
    items = [f"{_value_text(k, 20)}: {v}" for k, v in counts.head(limit).items()]
    more = f", … ({len(counts)} distinct)" if len(counts) > limit else ""
    return ", ".join(items) + more


# ---------------------------------------------------------------------------------------------- tables
def table_lines(comp: Competition, max_tables: int = 8) -> str:
    """'- train.csv: 891 rows; columns PassengerId, Survived, …' for each table."""
    lines = []
    for rel in comp.tables[:max_tables]:
        try:
            cols = comp.table_columns(rel)
            rows = comp.n_rows(rel)
        except Exception as exc:  # an unreadable table is a fact too
            lines.append(f"- {rel}: unreadable ({type(exc).__name__})")
            continue
        lines.append(f"- {rel}: {rows} rows; columns {compact_names(cols, 16)}")
    if len(comp.tables) > max_tables:
        lines.append(f"- … {len(comp.tables) - max_tables} more tables")
    return "\n".join(lines)


def image_lines(comp: Competition) -> str:
    """Image folders with counts and example names ('' when there are none)."""
    if not comp.image_dirs:
        return "There are no image files."
    lines = ["Image folders:"]
    for d in comp.image_dirs[:4]:
        lines.append(f"- {d.rel or '.'}/: {d.n_files} images, e.g. {', '.join(d.example_files[:3])}")
    return "\n".join(lines)


def match_name(name: Any, options: Sequence[str]) -> str | None:
    """``name`` among ``options``: exact, then case-insensitive, then by file name or stem."""
    if name is None:
        return None
    text = str(name).strip().strip("/")
    if not text or text.lower() in ("null", "none"):
        return None
    if text in options:
        return text
    low = text.lower()
    for key in (lambda o: o.lower(), lambda o: PurePosixPath(o).name.lower(), lambda o: _stem(o)):
        hits = [o for o in options if key(o) == low or key(o) == _stem(text)]
        if len(hits) == 1:
            return hits[0]
    return None


def _stem(rel: str) -> str:
    name = PurePosixPath(rel).name.lower()
    for ext in (".zip", ".gz", ".bz2", ".xz"):
        name = name.removesuffix(ext)
    return name.rsplit(".", 1)[0]


__all__ = [
    "clean_text",
    "column_line",
    "column_lines",
    "compact_names",
    "cut",
    "description_excerpt",
    "evaluation_excerpt",
    "fenced",
    "frame_head",
    "image_lines",
    "match_name",
    "memory_examples",
    "prompt",
    "stated_plan",
    "table_lines",
    "value_counts_text",
]
