"""Intake: real competitions (../shared/competitions) and synthetic folders in tmp_path."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medalist.errors import InputError
from medalist.intake import Competition, open_competition

try:  # tests/ as a package or as a plain folder of test modules
    from tests.conftest import all_slugs
except ImportError:
    from conftest import all_slugs

# ---------------------------------------------------------------------------------------- real competitions


@pytest.mark.shared
@pytest.mark.parametrize("slug", all_slugs())
def test_real_competition(competitions: Path, slug: str) -> None:
    folder = competitions / slug / "public"
    comp = open_competition(folder)
    assert comp.slug == slug
    assert comp.root == folder.resolve()
    assert comp.description_file == "description.md"
    assert len(comp.description) > 500
    assert "train.csv" in comp.tables
    assert "test.csv" in comp.tables
    samples = [t for t in comp.tables if re.search(r"(?i)sample|submission", t)]
    assert len(samples) == 1, comp.tables

    train = comp.read_table("train.csv")
    test = comp.read_table("test.csv")
    sample = comp.read_table(samples[0])
    assert len(train) > 100
    assert len(test) > 50
    assert comp.n_rows("train.csv") == len(train)
    assert comp.n_rows(samples[0]) == len(sample) == len(test)
    assert set(comp.table_columns("test.csv")) <= set(comp.table_columns("train.csv"))
    assert comp.table_columns("train.csv") == [str(c) for c in train.columns]
    head = comp.read_table("train.csv", nrows=7)
    assert len(head) == 7
    assert list(head.columns) == list(train.columns)

    for info in comp.files:
        assert comp.resolve(info.rel).is_file()
        assert info.size == comp.resolve(info.rel).stat().st_size
    tree = comp.tree()
    assert len(tree.splitlines()) <= 60
    assert "train.csv" in tree
    assert "description.md" in tree


@pytest.mark.shared
def test_leaf_images_recognised(competitions: Path) -> None:
    comp = open_competition(competitions / "leaf-classification" / "public")
    assert len(comp.image_dirs) == 1
    images = comp.image_dirs[0]
    assert images.rel == "images"
    assert images.n_files == 990
    assert images.extensions == {".jpg": 990}
    assert all(re.fullmatch(r"\d+", s) for s in images.examples)
    assert not any(f.kind == "image" for f in comp.files)  # summarised, not listed
    tree = comp.tree()
    assert re.search(r"images/ — 990 files \(\.jpg\), e\.g\. \d+\.jpg", tree), tree
    assert len(tree.splitlines()) < 10

    ids = [str(i) for i in comp.read_table("train.csv")["id"]]
    found = comp.find_images(ids)
    assert found is not None
    assert set(found) == set(ids)
    assert all(Path(p).is_file() and Path(p).stem == i for i, p in found.items())
    assert comp.find_images(["no-such-leaf", "nor-this"]) is None


@pytest.mark.shared
def test_nomad_per_id_folders_recognised(competitions: Path) -> None:
    started = time.perf_counter()
    comp = open_competition(competitions / "nomad2018-predict-transparent-conductors" / "public")
    assert time.perf_counter() - started < 2.0
    by_rel = {p.rel: p for p in comp.per_id_dirs}
    assert set(by_rel) == {"train", "test"}
    assert by_rel["train"].n_ids == comp.n_rows("train.csv") == 2400
    assert by_rel["test"].n_ids == comp.n_rows("test.csv") == 600
    for p in by_rel.values():
        assert p.layout == "dirs"
        assert p.common_files == ["geometry.xyz"]
        assert all((comp.root / p.rel / i / "geometry.xyz").is_file() for i in p.example_ids)
    assert not any(f.rel.endswith("geometry.xyz") for f in comp.files)
    tree = comp.tree()
    assert "train/ — 2400 id folders, each with geometry.xyz" in tree
    assert len(tree.splitlines()) < 12


@pytest.mark.shared
def test_house_prices_text_file_is_not_a_table(competitions: Path) -> None:
    comp = open_competition(competitions / "house-prices-advanced-regression-techniques" / "public")
    kinds = {f.rel: f.kind for f in comp.files}
    assert kinds["data_description.txt"] == "text"
    assert "data_description.txt" not in comp.tables
    assert kinds["train.csv"] == "table"


# ---------------------------------------------------------------------------------------- synthetic folders

FRAME = pd.DataFrame(
    {"id": np.arange(12), "x": np.arange(12) * 1.5, "label": list("abcabcabcabc"), "y": [0, 1] * 6}
)


def _csv(frame: pd.DataFrame = FRAME, sep: str = ",") -> bytes:
    return frame.to_csv(index=False, sep=sep).encode()


def _zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


WRITERS: dict[str, Callable[[Path], None]] = {
    "t.csv": lambda p: p.write_bytes(_csv()),
    "t.tsv": lambda p: p.write_bytes(_csv(sep="\t")),
    "semi.csv": lambda p: p.write_bytes(_csv(sep=";")),
    "pipe.txt": lambda p: p.write_bytes(_csv(sep="|")),
    "space.txt": lambda p: p.write_text(FRAME.to_string(index=False)),
    "t.csv.gz": lambda p: p.write_bytes(gzip.compress(_csv())),
    "t.csv.bz2": lambda p: p.write_bytes(bz2.compress(_csv())),
    "t.csv.xz": lambda p: p.write_bytes(lzma.compress(_csv())),
    "t.csv.zip": lambda p: _zip(p, {"t.csv": _csv()}),
    "t.parquet": lambda p: FRAME.to_parquet(p),
    "records.json": lambda p: p.write_text(FRAME.to_json(orient="records")),
    "columns.json": lambda p: p.write_text(FRAME.to_json(orient="columns")),
    "lines.json": lambda p: p.write_text(FRAME.to_json(orient="records", lines=True)),
    "t.jsonl": lambda p: p.write_text(FRAME.to_json(orient="records", lines=True)),
    "bom.csv": lambda p: p.write_bytes(b"\xef\xbb\xbf" + _csv()),
}


@pytest.fixture
def formats_dir(tmp_path: Path) -> Path:
    root = tmp_path / "formats"
    root.mkdir()
    for name, write in WRITERS.items():
        write(root / name)
    return root


def _same(frame: pd.DataFrame, expected: pd.DataFrame = FRAME) -> None:
    assert [str(c) for c in frame.columns] == list(expected.columns)
    pd.testing.assert_frame_equal(
        frame.reset_index(drop=True).astype(str), expected.astype(str), check_dtype=False
    )


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_table_formats_read_back(formats_dir: Path, name: str) -> None:
    comp = open_competition(formats_dir)
    assert name in comp.tables
    assert next(f.kind for f in comp.files if f.rel == name) == "table"
    frame = comp.read_table(name)
    _same(frame)
    assert comp.n_rows(name) == len(FRAME)
    assert comp.table_columns(name) == list(FRAME.columns)
    head = comp.read_table(name, nrows=3)
    assert len(head) == 3
    _same(head, FRAME.head(3))


def test_zip_members_are_addressable(tmp_path: Path) -> None:
    _zip(
        tmp_path / "data.zip",
        {
            "train.csv": _csv(),
            "sub/test.tsv": _csv(FRAME.drop(columns="y"), sep="\t"),
            "notes.md": b"# notes",
            "__MACOSX/._train.csv": b"\x00\x01junk",
            ".hidden.csv": b"a,b\n1,2\n",
        },
    )
    comp = open_competition(tmp_path)
    assert comp.tables == ["data.zip/sub/test.tsv", "data.zip/train.csv"]
    _same(comp.read_table("data.zip/train.csv"))
    assert comp.table_columns("data.zip/sub/test.tsv") == ["id", "x", "label"]
    with pytest.raises(InputError, match=r"data\.zip holds 2 tables.*name one"):
        comp.read_table("data.zip")
    with pytest.raises(InputError, match="no member"):
        comp.read_table("data.zip/nope.csv")
    assert "zip of 3 files" in comp.tree()


def test_latin1_and_binary(tmp_path: Path) -> None:
    (tmp_path / "latin.csv").write_bytes("id,name\n1,Café\n2,Müller\n3,Zoë\n".encode("latin-1"))
    (tmp_path / "junk.csv").write_bytes(random.Random(0).randbytes(5000))
    (tmp_path / "ctrl.csv").write_bytes(bytes(range(1, 32)) * 40)  # no NUL, still not text
    comp = open_competition(tmp_path)
    assert comp.read_table("latin.csv")["name"].tolist() == ["Café", "Müller", "Zoë"]
    for name in ("junk.csv", "ctrl.csv"):
        with pytest.raises(InputError, match=rf"{re.escape(name)} is binary, not text") as info:
            comp.read_table(name)
        assert "\n" not in str(info.value)


def test_latin1_after_the_sniffed_head(tmp_path: Path) -> None:
    rows = "".join(f"{i},plain\n" for i in range(20000)) + "20000,Café\n"
    (tmp_path / "late.csv").write_bytes(("id,name\n" + rows).encode("latin-1"))
    frame = open_competition(tmp_path).read_table("late.csv")
    assert frame["name"].iloc[-1] == "Café"
    assert len(frame) == 20001


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        (b"", r"t\.csv is empty \(0 bytes\)"),
        (b"  \n\n", r"t\.csv is empty"),
        (b"id,x,y\n", r"t\.csv has a header \(3 columns: id, x, y\) but no data rows"),
    ],
)
def test_empty_tables_refused(tmp_path: Path, content: bytes, pattern: str) -> None:
    (tmp_path / "t.csv").write_bytes(content)
    comp = open_competition(tmp_path)
    assert "t.csv" in comp.tables
    with pytest.raises(InputError, match=pattern):
        comp.read_table("t.csv")


def test_header_only_still_has_columns(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,x,y\n")
    comp = open_competition(tmp_path)
    assert comp.table_columns("t.csv") == ["id", "x", "y"]
    assert comp.n_rows("t.csv") == 0


def test_corrupt_archives_and_json(tmp_path: Path) -> None:
    (tmp_path / "train.csv.zip").write_bytes(b"PK\x03\x04" + random.Random(1).randbytes(500))
    (tmp_path / "test.csv.gz").write_bytes(b"\x1f\x8b\x08\x00" + random.Random(2).randbytes(500))
    (tmp_path / "bad.json").write_text('{"a": [1, 2,')
    (tmp_path / "scalar.json").write_text("42")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    comp = open_competition(tmp_path)
    assert "train.csv.zip" in comp.tables
    assert any("train.csv.zip" in p for p in comp.problems)
    cases = {
        "train.csv.zip": r"train\.csv\.zip is not a readable zip archive",
        "test.csv.gz": r"test\.csv\.gz",
        "bad.json": r"bad\.json is not valid JSON",
        "scalar.json": r"scalar\.json holds a single JSON value",
        "bad.jsonl": r"bad\.jsonl line 2 is not valid JSON",
    }
    for rel, pattern in cases.items():
        with pytest.raises(InputError, match=pattern) as info:
            comp.read_table(rel)
        assert "\n" not in str(info.value)


def test_multiline_quoted_fields_count(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": [1, 2, 3], "text": ["one\nline two", 'say "hi"', "plain, with comma"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    comp = open_competition(tmp_path)
    assert comp.n_rows("t.csv") == 3
    assert comp.read_table("t.csv")["text"].tolist() == frame["text"].tolist()


def test_txt_prose_is_text_not_table(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_bytes(_csv())
    (tmp_path / "notes.txt").write_text("Column notes.\n\nid: the row id, x: a value, y: target\n")
    (tmp_path / "codes.txt").write_text("A\tAgriculture\nC\tCommercial\n\nFV\tFloating Village\n")
    comp = open_competition(tmp_path)
    assert comp.tables == ["train.csv"]
    assert {f.rel: f.kind for f in comp.files}["notes.txt"] == "text"


def test_read_table_cache_is_safe(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes(_csv())
    comp = open_competition(tmp_path)
    first = comp.read_table("t.csv")
    first["x"] = -1.0
    first.pop("y")
    again = comp.read_table("t.csv")
    _same(again)
    (tmp_path / "t.csv").write_text("changed,cols\n1,2\n")
    assert list(comp.read_table("t.csv").columns) == list(FRAME.columns)  # cached
    assert len(comp.read_table("t.csv", nrows=4)) == 4  # served from the full read


# ---------------------------------------------------------------------------------------- description and slug


def test_html_description(tmp_path: Path) -> None:
    (tmp_path / "Description.HTML").write_text(
        "<html><head><title>x</title><style>p {color: red}</style></head><body>"
        "<h1>Predict the Price</h1><p>Score is RMSE &amp; lower is better.</p>"
        "<script>var secret = 1;</script><ul><li>train.csv</li><li>test.csv</li></ul></body></html>"
    )
    (tmp_path / "README.md").write_text("readme text")
    (tmp_path / "train.csv").write_bytes(_csv())
    comp = open_competition(tmp_path)
    assert comp.description_file == "Description.HTML"
    text = comp.description
    assert "Predict the Price" in text
    assert "Score is RMSE & lower is better." in text
    assert "<" not in text
    assert "secret" not in text
    assert "color" not in text
    assert "- train.csv" in text


@pytest.mark.parametrize(
    ("names", "chosen"),
    [
        (["README.md", "overview.txt"], "README.md"),
        (["overview.md", "description.txt"], "description.txt"),
        (["readme.txt"], "readme.txt"),
        (["Overview.html"], "Overview.html"),
        (["notes.md"], None),
    ],
)
def test_description_choice(tmp_path: Path, names: list[str], chosen: str | None) -> None:
    for name in names:
        (tmp_path / name).write_text(f"text of {name}")
    (tmp_path / "train.csv").write_bytes(_csv())
    comp = open_competition(tmp_path)
    assert comp.description_file == chosen
    assert comp.description == (f"text of {chosen}" if chosen else "")


def test_slug_from_public_parent(tmp_path: Path) -> None:
    public = tmp_path / "my-comp" / "public"
    public.mkdir(parents=True)
    (public / "train.csv").write_bytes(_csv())
    assert open_competition(public).slug == "my-comp"
    other = tmp_path / "other-comp"
    other.mkdir()
    (other / "train.csv").write_bytes(_csv())
    assert open_competition(other).slug == "other-comp"
    assert open_competition(str(tmp_path / "my-comp" / "public" / ".." / "public")).slug == "my-comp"


# ---------------------------------------------------------------------------------------- refusals and safety


def test_open_refuses_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        open_competition(tmp_path / "nope")
    (tmp_path / "comp.zip").write_bytes(b"PK")
    with pytest.raises(InputError, match="is a file, not a folder; unzip it"):
        open_competition(tmp_path / "comp.zip")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "description.md").write_text("# A competition")
    (docs / "LICENSE").write_text("MIT")
    with pytest.raises(InputError, match=r"no data files in .*found only"):
        open_competition(docs)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="found only nothing"):
        open_competition(empty)


def test_links_out_of_the_folder_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("password,1\nhunter2,2\n")
    comp_dir = tmp_path / "comp"
    comp_dir.mkdir()
    (comp_dir / "train.csv").write_bytes(_csv())
    (comp_dir / "leak.csv").symlink_to(secret)
    (comp_dir / "up").symlink_to(tmp_path)
    (comp_dir / "alias.csv").symlink_to(comp_dir / "train.csv")  # inside: fine
    comp = open_competition(comp_dir)
    rels = {f.rel for f in comp.files}
    assert "leak.csv" not in rels
    assert not any(r.startswith("up/") for r in rels)
    assert "alias.csv" in comp.tables
    _same(comp.read_table("alias.csv"))
    assert any("leak.csv" in p for p in comp.problems)
    for rel in (
        "leak.csv",
        "up/secret.csv",
        "../secret.csv",
        str(secret),
        "/etc/passwd",
        "sub/../../secret.csv",
    ):
        with pytest.raises(InputError, match=r"outside|not a relative path") as info:
            comp.read_table(rel)
        assert rel in str(info.value)
        with pytest.raises(InputError):
            comp.resolve(rel)
    assert comp.resolve("train.csv") == comp_dir.resolve() / "train.csv"


def test_hidden_and_macosx_skipped(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_bytes(_csv())
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._train.csv").write_bytes(b"\x00")
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "x.csv").write_bytes(_csv())
    comp = open_competition(tmp_path)
    assert [f.rel for f in comp.files] == ["train.csv"]
    assert comp.tables == ["train.csv"]


def test_missing_table_and_folder(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_bytes(_csv())
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.csv").write_bytes(_csv())
    comp = open_competition(tmp_path)
    with pytest.raises(InputError, match=r"test\.csv not found .*tables here: sub/a\.csv, train\.csv"):
        comp.read_table("test.csv")
    with pytest.raises(InputError, match="is a folder, not a table"):
        comp.read_table("sub")


# ---------------------------------------------------------------------------------------- large folders


def _touch_many(folder: Path, n: int, ext: str) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        (folder / f"{i}{ext}").touch()


def test_tree_summarises_a_folder_of_5000_files(tmp_path: Path) -> None:
    (tmp_path / "description.md").write_text("# big")
    (tmp_path / "train.csv").write_bytes(_csv())
    (tmp_path / "sample_submission.csv").write_bytes(_csv(FRAME[["id", "y"]]))
    _touch_many(tmp_path / "train_images", 5000, ".png")
    _touch_many(tmp_path / "features", 300, ".npy")
    (tmp_path / "features" / "index.csv").write_bytes(_csv())
    (tmp_path / "misc").mkdir()
    for prefix, n, ext in (("a", 120, ".dat"), ("b", 120, ".bin"), ("c", 30, ".txt")):
        for i in range(n):
            (tmp_path / "misc" / f"{prefix}{i}{ext}").touch()
    started = time.perf_counter()
    comp = open_competition(tmp_path)
    assert time.perf_counter() - started < 3.0
    tree = comp.tree()
    lines = tree.splitlines()
    assert len(lines) <= 15, tree
    assert "train_images/ — 5000 files (.png), e.g. 0.png, 1.png, 10.png" in tree
    assert "features/ — 300 files named <id>.npy" in tree
    assert "misc/ — 270 files (.dat 120, .bin 120, .txt 30), e.g. a0.dat" in tree
    assert not any(re.search(r"\b\d+\.(png|npy)\s+\(", line) for line in lines)

    assert [d.rel for d in comp.image_dirs] == ["train_images"]
    assert comp.image_dirs[0].n_files == 5000
    features = next(p for p in comp.per_id_dirs if p.rel == "features")
    assert (features.layout, features.n_ids, features.common_files) == ("files", 300, ["<id>.npy"])
    assert [b.rel for b in comp.bulk_dirs] == ["misc"]
    assert len(comp.files) < 10  # bulk files are not listed (nor stat-ed)
    assert "features/index.csv" in comp.tables

    found = comp.find_images(["17", "4999", "0"])
    assert found == {i: str(tmp_path.resolve() / "train_images" / f"{i}.png") for i in ("17", "4999", "0")}
    partial = comp.find_images(["1", "2", "x", "y"])
    assert partial is None
    assert comp.find_images(["1", "2", "x", "y"], min_coverage=0.5) == {
        "1": str(tmp_path.resolve() / "train_images" / "1.png"),
        "2": str(tmp_path.resolve() / "train_images" / "2.png"),
    }


def test_find_images_across_class_folders_and_padded_names(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_bytes(_csv())
    for cls, ids in (("cat", range(0, 6)), ("dog", range(6, 12))):
        folder = tmp_path / "train" / cls
        folder.mkdir(parents=True)
        for i in ids:
            (folder / f"{i:04d}.jpg").touch()
    comp = open_competition(tmp_path)
    assert sorted(d.rel for d in comp.image_dirs) == ["train/cat", "train/dog"]
    found = comp.find_images([str(i) for i in range(12)])
    assert found is not None
    assert len(found) == 12
    assert found["7"].endswith("train/dog/0007.jpg")


def test_tree_max_lines(tmp_path: Path) -> None:
    for i in range(30):
        sub = tmp_path / f"d{i:02d}"
        sub.mkdir()
        (sub / f"t{i}.csv").write_bytes(_csv())  # distinct names: not a per-id layout
    comp = open_competition(tmp_path)
    assert isinstance(comp, Competition)
    lines = comp.tree(max_lines=8).splitlines()
    assert len(lines) == 8
    assert re.fullmatch(r"… \d+ more lines", lines[-1])
    assert len(comp.tables) == 30
