"""Pull code and JSON out of a model's answer."""

from __future__ import annotations

import ast
import json
import re
from typing import Any

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+.-]*)[^\n]*\n(.*?)(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
_PYTHON_TAGS = {"python", "py", "python3", "py3"}


def _fences(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of each fenced block in order; an unclosed last fence runs to the end."""
    return [(m.group(2).lower(), m.group(3)) for m in _FENCE.finditer(text)]


def extract_code(text: str | None) -> str | None:
    """The first fenced Python block; else the first untagged fenced block; else the whole text when it
    parses as Python and is more than a bare word; else None."""
    if not text or not text.strip():
        return None
    blocks = _fences(text)
    for tag, body in blocks:
        if tag in _PYTHON_TAGS and body.strip():
            return body.strip("\n").rstrip() + "\n"
    for tag, body in blocks:
        if not tag and body.strip():
            return body.strip("\n").rstrip() + "\n"
    if blocks:
        return None  # fenced, but in another language
    candidate = text.strip()
    return candidate + "\n" if _looks_like_code(candidate) else None


def _looks_like_code(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    if not tree.body:
        return False
    # A lone name or constant ("Sure", "42") parses but is not a program.
    return any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Name | ast.Constant))
        for node in tree.body
    )


def extract_json(text: str | None) -> dict[str, Any] | None:
    """The first JSON object in `text`: the whole text, a fenced block, or the first balanced {...}."""
    if not text or not text.strip():
        return None
    candidates = [text.strip()] + [body for _, body in _fences(text)]
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None
