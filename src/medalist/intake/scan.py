"""Walking a competition folder: files, image folders, per-id folders, large folders summarised.

Large folders are never listed in full: their names are read (one scandir) but their bulk files are neither
stat-ed nor opened; per-id folders are judged from a sample of their sub-folders.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from medalist.intake.tables import (
    HEAD_BYTES,
    Source,
    is_hidden,
    open_stream,
    table_format,
    txt_is_table,
    zip_members,
    zip_table_members,
)

IMAGE_EXTS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".dcm", ".jp2", ".ppm", ".pgm"}
)
ARCHIVE_EXTS = frozenset({".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar"})
DOC_EXTS = frozenset({".md", ".html", ".htm", ".rst", ".pdf"})
TEXT_EXTS = frozenset({".txt", ".md", ".html", ".htm", ".rst"})

BULK_FILES = 200  # a folder with more files is summarised, not listed
BULK_EXT = 20  # in such a folder, files of an extension this frequent are not listed
MIN_IMAGES = 5
MIN_PER_ID = 10
PER_ID_SAMPLE = 12
MAX_DIRS = 20000


@dataclass
class FileInfo:
    """One listed file: path relative to the competition root (POSIX), size in bytes, kind."""

    rel: str
    size: int
    kind: str  # table | image | text | archive | other


@dataclass
class FileGroup:
    """A folder summarised by counts: number of files, extension counts, a few example file names."""

    rel: str
    n_files: int
    extensions: dict[str, int]
    example_files: list[str] = field(default_factory=list)

    @property
    def examples(self) -> list[str]:
        """Example file stems."""
        return [PurePosixPath(n).stem for n in self.example_files]


@dataclass
class ImageDir(FileGroup):
    """A folder of image files (>= 80% of its files are images)."""


@dataclass
class PerIdDir:
    """A folder keyed by ids: `layout` 'dirs' (<rel>/<id>/<common file>) or 'files' (<rel>/<id><ext>)."""

    rel: str
    n_ids: int
    layout: str
    common_files: list[str]
    example_ids: list[str]


@dataclass
class ArchiveInfo:
    """A zip's members at a glance (tar and others: n_members -1)."""

    rel: str
    n_members: int
    extensions: dict[str, int]
    example_members: list[str]
    error: str | None = None


@dataclass
class ScanResult:
    files: list[FileInfo] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    image_dirs: list[ImageDir] = field(default_factory=list)
    per_id_dirs: list[PerIdDir] = field(default_factory=list)
    bulk_dirs: list[FileGroup] = field(default_factory=list)
    archives: list[ArchiveInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    n_bulk_files: int = 0


def split_ext(name: str) -> tuple[str, str]:
    """('a/1.JPG') -> ('1', '.JPG'): stem and last suffix of a path's file name (fast: plain strings)."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return (base, "") if dot <= 0 else (base[:dot], base[dot:])


def ext_of(name: str) -> str:
    """Lower-case last suffix ('' when none)."""
    return split_ext(name)[1].lower()


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def _ext_counts(names: list[str]) -> dict[str, int]:
    return dict(Counter(ext_of(n) or "(none)" for n in names).most_common())


def kind_of(name: str, path: Path | None = None) -> str:
    """table | image | text | archive | other, from the name (a .txt file is a table when it reads as one)."""
    ext = ext_of(name)
    fmt, _ = table_format(name)
    if fmt == ".txt" and ext == ".txt":
        return "table" if path is not None and _txt_table(path) else "text"
    if fmt is not None:
        return "table"
    if ext in IMAGE_EXTS:
        return "image"
    if ext in ARCHIVE_EXTS or name.lower().endswith(".tar.gz"):
        return "archive"
    if ext in TEXT_EXTS:
        return "text"
    return "other"


def _txt_table(path: Path) -> bool:
    try:
        with open_stream(Source(path.name, path, None, ".txt", None)) as fh:
            return txt_is_table(fh.read(HEAD_BYTES))
    except OSError:
        return False


def _inside(path: Path, root: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(root)
    except OSError:
        return False


def scan(root: Path, description_file: str | None = None) -> ScanResult:
    """Walk `root` (resolved) without following links out of it."""
    out = ScanResult()
    stack = [""]
    n_dirs = 0
    while stack:
        rel_dir = stack.pop()
        n_dirs += 1
        if n_dirs > MAX_DIRS:
            out.problems.append(f"stopped scanning after {MAX_DIRS} folders; the rest is not listed")
            break
        subdirs = _scan_dir(root, rel_dir, out)
        stack.extend(reversed(subdirs))
    out.files.sort(key=lambda f: f.rel)
    _collect_tables(root, out, description_file)
    for group in (out.image_dirs, out.per_id_dirs, out.bulk_dirs):
        group.sort(key=lambda g: g.rel)
    return out


def _scan_dir(root: Path, rel_dir: str, out: ScanResult) -> list[str]:
    """Scan one folder; returns the sub-folders (relative) still to walk."""
    path = root / rel_dir if rel_dir else root
    try:
        entries = list(os.scandir(path))
    except OSError as exc:
        out.problems.append(f"cannot list {rel_dir or '.'}: {exc.strerror or exc}")
        return []
    files: list[os.DirEntry[str]] = []
    dirs: list[str] = []
    for entry in entries:
        if is_hidden(entry.name):
            continue
        rel = _join(rel_dir, entry.name)
        try:
            if entry.is_symlink():
                if not _inside(Path(entry.path), root):
                    out.problems.append(f"{rel} links outside the competition folder; ignored")
                    continue
                if entry.is_dir():
                    out.problems.append(f"{rel} is a link to a folder; not followed")
                    continue
            if entry.is_dir():
                dirs.append(entry.name)
            elif entry.is_file():
                files.append(entry)
        except OSError:
            continue
    dirs.sort()
    files.sort(key=lambda e: e.name)

    walk = [_join(rel_dir, d) for d in dirs]
    if len(dirs) >= MIN_PER_ID:
        per_id = _per_id_subdirs(path, rel_dir, dirs)
        if per_id is not None:
            out.per_id_dirs.append(per_id)
            walk = []

    names = [e.name for e in files]
    counts = _ext_counts(names)
    n_images = sum(n for ext, n in counts.items() if ext in IMAGE_EXTS)
    bulk = len(names) > BULK_FILES
    examples = names[:5]
    summarised: set[str] = set()
    if n_images >= MIN_IMAGES and n_images >= 0.8 * len(names):
        out.image_dirs.append(ImageDir(rel_dir, len(names), counts, examples))
        summarised = {ext for ext in counts if ext in IMAGE_EXTS}
    elif rel_dir and len(names) >= 2 * MIN_PER_ID and next(iter(counts.values())) >= 0.8 * len(names):
        ext = next(iter(counts))
        keyed = [n for n in names if ext_of(n) == ext or (ext == "(none)" and not ext_of(n))]
        out.per_id_dirs.append(
            PerIdDir(rel_dir, len(keyed), "files", [f"<id>{'' if ext == '(none)' else ext}"],
                     [PurePosixPath(n).stem for n in keyed[:5]])
        )  # fmt: skip
        summarised = {ext}
    elif bulk:
        out.bulk_dirs.append(FileGroup(rel_dir, len(names), counts, examples))
    if bulk:
        summarised |= {ext for ext, n in counts.items() if n >= BULK_EXT}
        if not summarised:
            summarised = set(counts)
    for entry in files:
        ext = ext_of(entry.name) or "(none)"
        if bulk and ext in summarised:
            out.n_bulk_files += 1
            continue
        try:
            size = entry.stat().st_size
        except OSError:
            continue
        out.files.append(FileInfo(_join(rel_dir, entry.name), size, kind_of(entry.name, Path(entry.path))))
    return walk


def _per_id_subdirs(path: Path, rel_dir: str, dirs: list[str]) -> PerIdDir | None:
    """Sub-folders keyed by ids when sampled ones hold few files with names in common."""
    step = max(1, len(dirs) // PER_ID_SAMPLE)
    sample = dirs[::step][:PER_ID_SAMPLE]
    common: Counter[str] = Counter()
    for name in sample:
        try:
            inner = [e.name for e in os.scandir(path / name) if not is_hidden(e.name)]
        except OSError:
            return None
        if len(inner) > 50:
            return None
        common.update(set(inner))
    shared = sorted(n for n, c in common.items() if c >= 0.8 * len(sample))
    if not shared:
        return None
    return PerIdDir(rel_dir, len(dirs), "dirs", shared, dirs[:5])


def _collect_tables(root: Path, out: ScanResult, description_file: str | None) -> None:
    """Tables among the listed files, and table members of zip archives."""
    tables: list[str] = []
    for info in out.files:
        if info.rel == description_file:
            continue
        fmt, comp = table_format(info.rel)
        is_zip = comp == "zip" or ext_of(info.rel) == ".zip"
        if info.kind == "table" and not is_zip:
            tables.append(info.rel)
            continue
        if not is_zip:
            if info.kind == "archive":
                out.archives.append(ArchiveInfo(info.rel, -1, {}, []))
            continue
        path = root / info.rel
        try:
            members = zip_members(path)
            member_tables = zip_table_members(path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            out.archives.append(ArchiveInfo(info.rel, 0, {}, [], msg))
            out.problems.append(f"{info.rel} is not a readable zip archive ({msg})")
            if fmt is not None:
                tables.append(info.rel)  # named like a table: reading it reports the problem
            continue
        out.archives.append(ArchiveInfo(info.rel, len(members), _ext_counts(members), members[:5]))
        inner = PurePosixPath(info.rel).name[: -len(".zip")].lower()
        if len(member_tables) == 1 and (
            fmt is not None or PurePosixPath(member_tables[0]).name.lower() == inner
        ):
            tables.append(info.rel)
        else:
            tables.extend(f"{info.rel}/{m}" for m in member_tables)
    out.tables = sorted(tables)
