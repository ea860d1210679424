"""Shared fixtures: the real competitions beside the checkout (../shared/competitions)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_memory(monkeypatch, tmp_path):
    """Every test has a long-term memory of its own (empty at start): none reads or writes the user's."""
    monkeypatch.setenv("MEDALIST_MEMORY", str(tmp_path / "memory.sqlite"))


def shared_competitions_dir() -> Path | None:
    """../shared/competitions beside the checkout, or $MEDALIST_COMPETITIONS."""
    env = os.environ.get("MEDALIST_COMPETITIONS")
    path = Path(env) if env else REPO.parent / "shared" / "competitions"
    return path if path.is_dir() else None


def require_competitions() -> Path:
    """The shared competitions; fails under CI when they are missing, skips elsewhere."""
    path = shared_competitions_dir()
    if path is None:
        msg = "../shared/competitions is missing beside the checkout"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def competitions() -> Path:
    return require_competitions()


def all_slugs() -> list[str]:
    path = shared_competitions_dir()
    return sorted(p.name for p in path.iterdir() if (p / "public").is_dir()) if path else []
