"""Reading one table: csv / tsv / txt / parquet / feather / json / jsonl, plain or inside .zip .gz .bz2 .xz.

Every failure becomes an ``InputError`` naming the file and what is wrong with it.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pandas as pd

from medalist.errors import InputError
from medalist.intake.columns import flatten_nested, restore_text, text_columns_to_keep

TABLE_FORMATS = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".feather", ".json", ".jsonl", ".ndjson")
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
HEAD_BYTES = 1 << 16
_DELIMITERS = (",", "\t", ";", "|")
_TEXT_CONTROLS = {9, 10, 11, 12, 13, 27}


def table_format(name: str) -> tuple[str | None, str | None]:
    """('train.csv.gz') -> ('.csv', 'gzip'); (None, ...) when the name is not a table format."""
    path = PurePosixPath(name.lower())
    compression = COMPRESSIONS.get(path.suffix)
    if compression:
        path = path.with_suffix("")
    fmt = path.suffix if path.suffix in TABLE_FORMATS else None
    return fmt, compression


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


@dataclass(frozen=True)
class Source:
    """Where a table's bytes come from: a file, optionally a zip member, optionally compressed."""

    name: str  # as the user addresses it (relative path), used in messages
    path: Path  # the file on disk
    member: str | None  # member of the zip at `path`
    fmt: str
    compression: str | None  # gzip | bz2 | xz (of the file or member itself)


def zip_members(path: Path) -> list[str]:
    """File members of a zip, without folders, hidden files and __MACOSX; raises zipfile.BadZipFile."""
    with zipfile.ZipFile(path) as zf:
        return [
            n
            for n in zf.namelist()
            if not n.endswith("/") and not any(is_hidden(p) for p in PurePosixPath(n).parts)
        ]


def zip_table_members(path: Path) -> list[str]:
    """Members of a zip that are tables (a .txt member only when it looks like one)."""
    out = []
    for member in zip_members(path):
        fmt, comp = table_format(member)
        if fmt is None or comp == "zip":
            continue
        if fmt == ".txt":
            src = Source(member, path, member, fmt, comp)
            if not txt_is_table(_head(src)):
                continue
        out.append(member)
    return out


def make_source(name: str, path: Path, member: str | None) -> Source:
    """The Source for file `path` (and zip `member`); picks the only table inside a zip named alone."""
    fmt, comp = table_format(path.name)
    if member is None and comp != "zip":
        if fmt is None:
            raise InputError(
                f"{name} is not a table file (expected .csv, .tsv, .txt, .parquet, .json, .jsonl)"
            )
        return Source(name, path, None, fmt, comp)
    if not (comp == "zip" or path.suffix.lower() == ".zip"):
        raise InputError(f"{name}: {path.name} is not a zip archive, so it has no member {member!r}")
    with _errors(name):
        members = zip_members(path)
        tables = zip_table_members(path)
    if member is None:
        inner = path.name[: -len(".zip")]
        named = [m for m in tables if PurePosixPath(m).name.lower() == inner.lower()]
        if len(tables) == 1 or len(named) == 1:
            member = named[0] if named else tables[0]
        elif not tables:
            raise InputError(f"{name} holds no table file (members: {', '.join(members[:5]) or 'none'})")
        else:
            raise InputError(
                f"{name} holds {len(tables)} tables ({', '.join(tables[:4])}); name one, e.g. {name}/{tables[0]}"
            )
    elif member not in members:
        raise InputError(f"{name}: no member {member!r} in {path.name} (members: {', '.join(members[:5])})")
    fmt, comp = table_format(member)
    if fmt is None or comp == "zip":
        raise InputError(f"{name} is not a table file (expected .csv, .tsv, .txt, .parquet, .json, .jsonl)")
    return Source(name, path, member, fmt, comp)


@contextmanager
def open_stream(src: Source) -> Iterator[IO[bytes]]:
    """The table's decompressed bytes as a binary stream."""
    with ExitStack() as stack:
        fh: IO[bytes]
        if src.member is not None:
            zf = stack.enter_context(zipfile.ZipFile(src.path))
            fh = stack.enter_context(zf.open(src.member))
        else:
            fh = stack.enter_context(open(src.path, "rb"))
        if src.compression == "gzip":
            fh = stack.enter_context(gzip.GzipFile(fileobj=fh))
        elif src.compression == "bz2":
            fh = stack.enter_context(bz2.BZ2File(fh))
        elif src.compression == "xz":
            fh = stack.enter_context(lzma.LZMAFile(fh))
        yield fh


def _head(src: Source, n: int = HEAD_BYTES) -> bytes:
    with _errors(src.name), open_stream(src) as fh:
        return fh.read(n)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@contextmanager
def _errors(name: str) -> Iterator[None]:
    """Turn the readers' exceptions into one-line InputErrors naming the file."""
    try:
        yield
    except InputError:
        raise
    except zipfile.BadZipFile as exc:
        raise InputError(
            f"{name} is not a readable zip archive ({_first_line(exc)}); re-download or re-zip it"
        ) from None
    except (EOFError, lzma.LZMAError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(
            f"{name} is corrupt or truncated compressed data ({_first_line(exc)}); re-download it"
        ) from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{name} is empty (no columns, no rows); replace it with the real file") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{name} cannot be parsed as a table ({_first_line(exc)})") from None
    except (ValueError, OSError, KeyError, csv.Error) as exc:
        raise InputError(f"cannot read {name}: {_first_line(exc)}") from None
    except Exception as exc:
        import pyarrow as pa

        if isinstance(exc, pa.ArrowException):
            raise InputError(f"cannot read {name}: {_first_line(exc)}") from None
        raise


# ---------------------------------------------------------------------------------------- text decoding
def _binary_offset(head: bytes) -> int | None:
    """Offset of the first byte that makes `head` binary (a NUL, or too many control bytes), else None."""
    nul = head.find(b"\x00")
    if nul >= 0:
        return nul
    controls = [i for i, b in enumerate(head) if (b < 32 and b not in _TEXT_CONTROLS) or b == 127]
    if controls and len(controls) > max(2, len(head) // 100):
        return controls[0]
    return None


def text_encoding(name: str, head: bytes, complete: bool) -> str:
    """'utf-16', 'utf-8-sig' or 'latin-1' for a text head; InputError when the bytes are not text."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    bad = _binary_offset(head)
    if bad is None:
        try:
            codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
            return "utf-8-sig"
        except UnicodeDecodeError:
            high = sum(b >= 0x80 for b in head)
            if high <= 0.3 * len(head):
                return "latin-1"
            bad = next(i for i, b in enumerate(head) if b >= 0x80)
    raise InputError(
        f"{name} is binary, not text (byte 0x{head[bad]:02x} at offset {bad}); it cannot be decoded as "
        "UTF-8 or Latin-1: replace it with the competition's real text file"
    )


def _decode(head: bytes, encoding: str) -> str:
    return head.decode(encoding, errors="ignore")


# ---------------------------------------------------------------------------------------- delimiters
def _widths(text: str, delimiter: str) -> list[int]:
    try:
        return [len(r) for r in csv.reader(io.StringIO(text), delimiter=delimiter) if r][:50]
    except csv.Error:
        return []


def sniff_separator(text: str, fmt: str, complete: bool = True, strict: bool = False) -> str | None:
    """The delimiter that splits the head into a consistent >=2-column table; None when none does.

    The format's own delimiter wins when it works; r"\\s+" is tried for .txt files.
    """
    if not complete:
        cut = text.rfind("\n")
        text = text[: cut + 1] if cut > 0 else text
    default = "\t" if fmt == ".tsv" else ","
    best, best_width = None, 1
    need = 1.0 if strict else 0.9
    for delim in dict.fromkeys((default, *_DELIMITERS)):
        widths = _widths(text, delim)
        if not complete and len(widths) > 1:
            widths = widths[:-1]
        if not widths or widths[0] < 2:
            continue
        share = sum(w == widths[0] for w in widths) / len(widths)
        if share >= need and widths[0] > best_width:
            if delim == default:
                return delim
            best, best_width = delim, widths[0]
    if best is None and fmt == ".txt":
        counts = [len(line.split()) for line in text.splitlines()[:50] if line.strip()]
        if counts and counts[0] >= 2 and all(c == counts[0] for c in counts):
            return r"\s+"
    return best


def txt_is_table(head: bytes) -> bool:
    """Whether a .txt file's head reads as a table: >=2 lines, no blank line, a consistent delimiter."""
    complete = len(head) < HEAD_BYTES
    try:
        encoding = text_encoding("", head, complete)
    except InputError:
        return False
    text = _decode(head, encoding)
    lines = text.splitlines()
    if not complete:
        lines = lines[:-1]
    lines = lines[:20]
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 2 or any(not line.strip() for line in lines):
        return False
    return sniff_separator("\n".join(lines) + "\n", ".txt", complete=True, strict=True) is not None


# ---------------------------------------------------------------------------------------- readers
def load_table(src: Source, nrows: int | None = None, allow_empty: bool = False) -> pd.DataFrame:
    """Read `src` (at most `nrows` rows); InputError when unreadable, empty, or (unless allowed) row-less."""
    with _errors(src.name):
        if src.fmt in (".parquet", ".pq", ".feather"):
            frame = flatten_nested(_read_columnar(src, nrows))
        elif src.fmt in (".json", ".jsonl", ".ndjson"):
            frame = flatten_nested(_read_json(src, nrows))
        else:
            frame = _read_delimited(src, nrows)
    if frame.shape[1] == 0:
        raise InputError(f"{src.name} has no columns; replace it with the real table")
    if len(frame) == 0 and not allow_empty:
        cols = ", ".join(map(str, frame.columns[:5]))
        raise InputError(
            f"{src.name} has a header ({frame.shape[1]} columns: {cols}) but no data rows; "
            "replace it with the full file"
        )
    return frame


def count_rows(src: Source) -> int:
    """Number of data rows, reading as little as the format allows."""
    with _errors(src.name):
        if src.fmt in (".parquet", ".pq") and src.member is None and src.compression is None:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(src.path).metadata.num_rows)
        if src.fmt in (".csv", ".tsv", ".txt"):
            return len(_read_delimited(src, None, usecols=[0]))
    return len(load_table(src, None, allow_empty=True))


def _check_not_empty(src: Source, head: bytes) -> None:
    if not head.strip():
        size = f"{len(head)} bytes" if head else "0 bytes"
        raise InputError(f"{src.name} is empty ({size}); replace it with the competition's real file")


def _read_delimited(src: Source, nrows: int | None, usecols: list[int] | None = None) -> pd.DataFrame:
    head = _head(src)
    _check_not_empty(src, head)
    complete = len(head) < HEAD_BYTES
    encoding = text_encoding(src.name, head, complete)
    sep = sniff_separator(_decode(head, encoding), src.fmt, complete) or ("\t" if src.fmt == ".tsv" else ",")
    encodings = [encoding, "latin-1"] if encoding == "utf-8-sig" else [encoding]
    for enc in encodings:
        try:
            with open_stream(src) as fh:
                frame = pd.read_csv(fh, sep=sep, encoding=enc, nrows=nrows, usecols=usecols, low_memory=False)
            if usecols is not None:
                return frame
            keep = text_columns_to_keep(frame, _decode(head, enc), sep)
            if not keep:
                return frame
            with open_stream(src) as fh:
                raw = pd.read_csv(fh, sep=sep, encoding=enc, nrows=nrows, usecols=keep, dtype=str)
            return restore_text(frame, raw)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{src.name} cannot be decoded as UTF-8 or Latin-1 text")


def _read_bytes(src: Source) -> bytes:
    with open_stream(src) as fh:
        return fh.read()


def _read_columnar(src: Source, nrows: int | None) -> pd.DataFrame:
    target: Any = src.path if src.member is None and src.compression is None else io.BytesIO(_read_bytes(src))
    if src.fmt == ".feather":
        frame = pd.read_feather(target)
        return frame if nrows is None else frame.head(nrows).reset_index(drop=True)
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(target)
    if nrows is None:
        return pf.read().to_pandas()
    batch = next(pf.iter_batches(batch_size=max(1, nrows)), None)
    if batch is None:
        return pf.schema_arrow.empty_table().to_pandas()
    return batch.to_pandas().head(nrows)


def _read_json(src: Source, nrows: int | None) -> pd.DataFrame:
    raw = _read_bytes(src)
    _check_not_empty(src, raw[:HEAD_BYTES])
    encoding = text_encoding(src.name, raw[:HEAD_BYTES], complete=True)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if src.fmt in (".jsonl", ".ndjson"):
        return _json_lines(src.name, text, nrows)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            return _json_lines(src.name, text, nrows)
        raise InputError(f"{src.name} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    frame = _json_frame(src.name, obj)
    return frame if nrows is None else frame.head(nrows)


def _json_lines(name: str, text: str, nrows: int | None) -> pd.DataFrame:
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if nrows is not None and len(records) >= nrows:
            break
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"{name} line {lineno} is not valid JSON ({exc.msg})") from None
    if records and not all(isinstance(r, dict) for r in records):
        raise InputError(f"{name} is JSON lines but not one object per line; expected records")
    return pd.DataFrame.from_records(records)


def _json_frame(name: str, obj: Any) -> pd.DataFrame:
    """records ([{...}]), columns ({col: [..]} or {col: {row: v}}) or a {key: [records]} wrapper."""
    if isinstance(obj, dict) and len(obj) == 1:
        (inner,) = obj.values()
        if isinstance(inner, list) and inner and all(isinstance(r, dict) for r in inner):
            obj = inner
    if isinstance(obj, list):
        if obj and all(isinstance(r, dict) for r in obj):
            return pd.DataFrame.from_records(obj)
        if obj and all(isinstance(r, list) for r in obj):
            return pd.DataFrame(obj)
        if not obj:
            return pd.DataFrame()
        raise InputError(f"{name} is a JSON list of plain values, not a table of records")
    if isinstance(obj, dict) and obj:
        values = list(obj.values())
        if all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == 1:
            return pd.DataFrame(obj)
        if all(isinstance(v, dict) for v in values):
            frame = pd.DataFrame(obj)
            if list(frame.index.astype(str)) == [str(i) for i in range(len(frame))]:
                return frame.reset_index(drop=True)
            return frame.reset_index(names="index")
    raise InputError(f"{name} holds a single JSON value, not a table (expected records, columns or lines)")
