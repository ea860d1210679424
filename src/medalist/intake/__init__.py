"""Intake: find and read a competition folder's files and description (no decisions yet)."""

from __future__ import annotations

from medalist.intake.competition import Competition, open_competition
from medalist.intake.describe import html_to_text
from medalist.intake.scan import ArchiveInfo, FileGroup, FileInfo, ImageDir, PerIdDir

__all__ = [
    "ArchiveInfo",
    "Competition",
    "FileGroup",
    "FileInfo",
    "ImageDir",
    "PerIdDir",
    "html_to_text",
    "open_competition",
]
