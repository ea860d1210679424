"""A competition folder as medalist sees it before any decision: files, tables, folders, description."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from medalist.errors import InputError
from medalist.intake.describe import find_description, read_description
from medalist.intake.kaggle import fetch_competition, kaggle_slug
from medalist.intake.scan import (
    DOC_EXTS,
    IMAGE_EXTS,
    ArchiveInfo,
    FileGroup,
    FileInfo,
    ImageDir,
    PerIdDir,
    ext_of,
    scan,
    split_ext,
)
from medalist.intake.tables import Source, count_rows, is_hidden, load_table, make_source

_DOC_STEMS = {"readme", "license", "licence"}


@dataclass
class Competition:
    """One competition folder (read-only). Paths in every field are POSIX paths relative to `root`."""

    root: Path
    slug: str
    description: str = ""
    description_file: str | None = None
    files: list[FileInfo] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    image_dirs: list[ImageDir] = field(default_factory=list)
    per_id_dirs: list[PerIdDir] = field(default_factory=list)
    bulk_dirs: list[FileGroup] = field(default_factory=list)  # other large folders, summarised
    archives: list[ArchiveInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # unreadable archives, links out of the folder, ...
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    # ------------------------------------------------------------------------------------------ paths
    def resolve(self, rel: str) -> Path:
        """Absolute path of `rel`; InputError for absolute paths, '..', or links that leave the folder."""
        text = str(rel).replace("\\", "/")
        pure = PurePosixPath(text)
        if not text.strip() or pure.is_absolute() or re.match(r"^[A-Za-z]:", text) or ".." in pure.parts:
            raise InputError(
                f"{rel!r} is not a relative path inside the competition folder; use a path like 'train.csv'"
            )
        real = Path(os.path.realpath(self.root.joinpath(*pure.parts)))
        if not real.is_relative_to(self.root):
            raise InputError(
                f"{rel} leads outside the competition folder {self.root} (a link?); medalist reads only files "
                "inside it: copy the file in"
            )
        return real

    def _source(self, rel: str) -> Source:
        key = ("source", rel)
        if key not in self._cache:
            parts = PurePosixPath(str(rel).replace("\\", "/")).parts
            self.resolve(rel)  # refuses absolute paths, '..' and links out of the folder, naming `rel`
            for i in range(1, len(parts) + 1):
                path = self.resolve("/".join(parts[:i]))
                if path.is_file():
                    self._cache[key] = make_source(rel, path, "/".join(parts[i:]) or None)
                    break
                if not path.is_dir():
                    break
            else:
                raise InputError(f"{rel} is a folder, not a table; tables here: {', '.join(self.tables[:6])}")
            if key not in self._cache:
                raise InputError(
                    f"{rel} not found in the competition folder; tables here: {', '.join(self.tables[:6]) or 'none'}"
                )
        return self._cache[key]

    # ------------------------------------------------------------------------------------------ tables
    def read_table(self, rel: str, nrows: int | None = None) -> pd.DataFrame:
        """The table at `rel` (a file, 'x.csv.zip', or 'archive.zip/member.csv'); cached per (rel, nrows)."""
        full = self._cache.get(("table", rel, None))
        if full is not None:
            return (full if nrows is None else full.head(nrows)).copy(deep=False)
        key = ("table", rel, nrows)
        if key not in self._cache:
            self._cache[key] = load_table(self._source(rel), nrows)
        return self._cache[key].copy(deep=False)

    def table_columns(self, rel: str) -> list[str]:
        """Column names of a table, from its first rows (a header-only table still has columns)."""
        key = ("columns", rel)
        if key not in self._cache:
            cached = self._cache.get(("table", rel, None))
            frame = cached if cached is not None else load_table(self._source(rel), 5, allow_empty=True)
            self._cache[key] = [str(c) for c in frame.columns]
        return list(self._cache[key])

    def n_rows(self, rel: str) -> int:
        """Number of data rows of a table."""
        key = ("n_rows", rel)
        if key not in self._cache:
            cached = self._cache.get(("table", rel, None))
            self._cache[key] = len(cached) if cached is not None else count_rows(self._source(rel))
        return int(self._cache[key])

    # ------------------------------------------------------------------------------------------ images
    def find_images(self, ids: Sequence[str], min_coverage: float = 0.9) -> dict[str, str] | None:
        """{id: absolute image path} for the ids an image folder's file stems match; None when fewer than
        `min_coverage` of the distinct ids match any image folder (or all of them together)."""
        keys = list(dict.fromkeys(str(i) for i in ids))
        if not keys or not self.image_dirs:
            return None
        best: dict[str, str] = {}
        for d in self.image_dirs:
            found = _match(keys, self._image_index(d.rel))
            if len(found) > len(best):
                best = found
        if len(self.image_dirs) > 1 and len(best) < len(keys):
            union: dict[str, str] = {}
            for d in self.image_dirs:
                for k, v in self._image_index(d.rel).items():
                    union.setdefault(k, v)
            found = _match(keys, union)
            if len(found) > len(best):
                best = found
        if not best or len(best) < min_coverage * len(keys):
            return None
        return best

    def _image_index(self, rel_dir: str) -> dict[str, str]:
        key = ("images", rel_dir)
        if key not in self._cache:
            folder = self.resolve(rel_dir) if rel_dir else self.root
            index: dict[str, str] = {}
            try:
                names = sorted(e.name for e in os.scandir(folder) if not is_hidden(e.name))
            except OSError:
                names = []
            base = f"{folder}/"
            for name in names:
                stem, ext = split_ext(name)
                if ext.lower() not in IMAGE_EXTS:
                    continue
                path = base + name
                index.setdefault(name, path)
                index.setdefault(stem, path)
                if stem.isdigit():
                    index.setdefault(str(int(stem)), path)
            self._cache[key] = index
        return self._cache[key]

    # ------------------------------------------------------------------------------------------ tree
    def tree(self, max_lines: int = 60) -> str:
        """A compact file tree; large folders are one summary line each, never listed in full."""
        top = _Node()
        for d in self.image_dirs:
            node = top.at(d.rel)
            node.summary = (
                f"{_count(d.n_files, 'file')} ({_exts(d.extensions)}), e.g. {', '.join(d.example_files[:3])}"
            )
            node.hidden |= {e for e in d.extensions if e in IMAGE_EXTS}
        for p in self.per_id_dirs:
            node = top.at(p.rel)
            eg = ", ".join(p.example_ids[:3])
            if p.layout == "dirs":
                node.summary = (
                    f"{_count(p.n_ids, 'id folder')}, each with {', '.join(p.common_files[:4])}, e.g. {eg}"
                )
            else:
                ext = p.common_files[0].removeprefix("<id>")
                node.summary = f"{_count(p.n_ids, 'file')} named <id>{ext}, e.g. {eg}"
                node.hidden.add(ext or "(none)")
        for b in self.bulk_dirs:
            node = top.at(b.rel)
            node.summary = (
                f"{_count(b.n_files, 'file')} ({_exts(b.extensions)}), e.g. {', '.join(b.example_files[:3])}"
            )
            node.hidden |= set(b.extensions)
        zips = {a.rel: a for a in self.archives}
        for f in self.files:
            pure = PurePosixPath(f.rel)
            parent = top.at(str(pure.parent) if str(pure.parent) != "." else "")
            if (ext_of(f.rel) or "(none)") in parent.hidden:
                continue
            label = f"{pure.name}  ({_size(f.size)})"
            a = zips.get(f.rel)
            if a is not None and a.error:
                label += f" — unreadable zip: {a.error}"
            elif a is not None and a.n_members >= 0:
                eg = f", e.g. {', '.join(a.example_members[:3])}" if a.example_members else ""
                label += f" — zip of {_count(a.n_members, 'file')} ({_exts(a.extensions)}){eg}"
            if f.rel == self.description_file:
                label += "  [description]"
            parent.files.append(label)
        head = f"{self.root.name}/" + (f" — {top.summary}" if top.summary else "")
        lines = [head, *top.render("  ")]
        if len(lines) > max_lines:
            lines = [*lines[: max(1, max_lines - 1)], f"… {len(lines) - max(1, max_lines - 1)} more lines"]
        return "\n".join(lines)


class _Node:
    MAX_FILES = 12

    def __init__(self) -> None:
        self.dirs: dict[str, _Node] = {}
        self.files: list[str] = []
        self.summary = ""
        self.hidden: set[str] = set()

    def at(self, rel: str) -> _Node:
        node = self
        for part in PurePosixPath(rel).parts if rel else ():
            node = node.dirs.setdefault(part, _Node())
        return node

    def render(self, indent: str) -> list[str]:
        lines: list[str] = []
        for name in sorted(self.dirs):
            child = self.dirs[name]
            lines.append(f"{indent}{name}/" + (f" — {child.summary}" if child.summary else ""))
            lines.extend(child.render(indent + "  "))
        shown = self.files[: self.MAX_FILES]
        lines.extend(indent + f for f in shown)
        rest = self.files[self.MAX_FILES :]
        if rest:
            exts = _exts(dict(_ext_counter(rest)))
            lines.append(f"{indent}… {_count(len(rest), 'more file')} ({exts})")
        return lines


def _ext_counter(labels: list[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for label in labels:
        ext = ext_of(label.split("  (")[0]) or "(none)"
        counts[ext] = counts.get(ext, 0) + 1
    return sorted(counts.items(), key=lambda kv: -kv[1])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _exts(counts: dict[str, int]) -> str:
    items = list(counts.items())
    if len(items) == 1:
        return items[0][0]
    shown = ", ".join(f"{e} {n}" for e, n in items[:4])
    return shown + (", …" if len(items) > 4 else "")


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _match(keys: list[str], index: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for key in keys:
        if key in index:
            found[key] = index[key]
            continue
        k = key.strip()
        candidates = [k, PurePosixPath(k).name, PurePosixPath(k).stem]
        if re.fullmatch(r"\d+\.0+", k):
            candidates.append(k.split(".")[0])
        if k.isdigit():
            candidates.append(str(int(k)))
        for c in candidates:
            if c in index:
                found[key] = index[c]
                break
    return found


def _is_doc(rel: str, description_file: str | None) -> bool:
    pure = PurePosixPath(rel.lower())
    return rel == description_file or pure.suffix in DOC_EXTS or pure.stem in _DOC_STEMS


def open_competition(path: str | Path) -> Competition:
    """Read a competition folder's layout and description; InputError when it is not a usable folder.

    A bare Kaggle slug that is not a local folder (``titanic``, ``kaggle:titanic``) is fetched once with
    the official Kaggle API when credentials exist (see ``medalist.intake.kaggle``)."""
    given = Path(path).expanduser()
    if not given.exists() and (slug := kaggle_slug(str(path))) is not None:
        given = fetch_competition(slug)  # a bare slug: the competition's files from Kaggle, cached
    if not given.exists():
        raise InputError(
            f"competition folder {given} does not exist; pass the folder that holds the competition's files "
            "(train.csv, test.csv, ...)"
        )
    if not given.is_dir():
        hint = (
            "unzip it and pass the folder"
            if given.suffix.lower() in (".zip", ".tar", ".gz")
            else ("pass the folder that holds it")
        )
        raise InputError(f"{given} is a file, not a folder; {hint}")
    root = given.resolve()
    slug = root.parent.name if root.name == "public" and root.parent.name else root.name
    found = scan(root)
    top = [f.rel for f in found.files if "/" not in f.rel]
    description_file = find_description(top)
    comp = Competition(
        root=root,
        slug=slug,
        description=read_description(root / description_file) if description_file else "",
        description_file=description_file,
        files=found.files,
        tables=[t for t in found.tables if t != description_file],
        image_dirs=found.image_dirs,
        per_id_dirs=found.per_id_dirs,
        bulk_dirs=found.bulk_dirs,
        archives=found.archives,
        problems=found.problems,
    )
    has_data = (
        any(not _is_doc(f.rel, description_file) for f in found.files)
        or found.image_dirs
        or found.per_id_dirs
        or found.n_bulk_files
    )
    if not has_data:
        listed = ", ".join(f.rel for f in found.files[:5]) or "nothing"
        raise InputError(
            f"no data files in {root} (found only {listed}); expected tables such as train.csv, test.csv "
            "and sample_submission.csv"
        )
    return comp
