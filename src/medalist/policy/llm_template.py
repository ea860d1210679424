"""The code template of a code stage: the script header the model's ``build()`` runs under, and the facts.

The header imports what ``build()`` may use and binds named constants (the competition's files, the id
and label columns, the stage's output columns); the facts say in a line each what the map must hold (row
counts, how ids are made, a pandas idiom). The prompt shows the header with long lists abbreviated; the
script runs it in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from medalist.policy import llm_stages as st
from medalist.setup import rules
from medalist.setup.policy import StageContext

if TYPE_CHECKING:
    from medalist.intake import Competition

Const = tuple[str, Any, str]  # (name, value, comment) of a header constant


def code_template(ctx: StageContext, columns: list[str]) -> tuple[str, str, list[str]]:
    """(header that runs, header shown in the prompt, facts) for a code stage."""
    plan = ctx.artifacts["plan"]
    consts, facts = _table_part(ctx)
    if ctx.stage == "train_tab_target":
        _target_part(plan, consts, facts)
    elif ctx.modality == "image":
        _image_part(ctx, consts, facts)
    else:
        _columns_part(columns, consts, facts)
    consts.append(("OUTPUT", "out.pkl", "where the result is saved (done for you)"))
    return _header(ctx, consts, False), _header(ctx, consts, True), facts


def _table_part(ctx: StageContext) -> tuple[list[Const], list[str]]:
    """The competition's tables, the id and label columns, and the facts about the map's rows."""
    comp = ctx.competition
    plan = ctx.artifacts["plan"]
    files = ctx.artifacts["modalities"]["files"]
    labels = list(plan["label_columns"])
    consts: list[Const] = [("TRAIN", files["train"], "the training table")]
    facts: list[str] = []
    if files.get("train_labels"):
        consts.append(("TRAIN_LABELS", files["train_labels"], "a separate table of training labels"))
        facts.append(
            f"the labels are in TRAIN_LABELS: merge them into the training table on {_shared_key(comp, files)!r}"
        )
    if ctx.split == "test" or ctx.stage.startswith("test"):
        consts.append(("TEST", files.get("test"), "the test table"))
    consts.append(("SAMPLE", files["sample_submission"], "the sample submission"))
    consts.append(("ID", plan["id_column"], "the id column"))
    consts.append(("LABELS", labels, "label column(s) of the training table"))
    if ctx.split == "train" or ctx.stage == "train_tab_target":
        facts += _train_row_facts(ctx, labels)
    else:
        facts += _test_row_facts(comp, files)
    return consts, facts


def _train_row_facts(ctx: StageContext, labels: list[str]) -> list[str]:
    train = rules.train_table(ctx.competition, ctx.artifacts["modalities"]["files"])
    unlabelled = int((~train[labels].notna().all(axis=1)).sum())
    rows = f"read_table(TRAIN) has {len(train)} rows; " + (
        "every row is labelled."
        if not unlabelled
        else f"{unlabelled} rows have a missing label in LABELS: drop them (keep the labelled rows, in order)."
    )
    ids = (
        "id: make_keys(df[ID].tolist()) (text keys, unique)."
        if ctx.artifacts["plan"]["id_column"] in train.columns
        else 'the training table has no ID column: the ids are "row0", "row1", … in row order (after '
        "dropping unlabelled rows)."
    )
    return [rows, ids]


def _test_row_facts(comp: Competition, files: dict[str, Any]) -> list[str]:
    sample_rows = comp.n_rows(files["sample_submission"])
    if files.get("test"):
        rows = (
            f"read_table(TEST) has {comp.n_rows(files['test'])} rows; the map must follow the sample "
            f"submission ({sample_rows} rows) row by row: sample = read_table(SAMPLE), then take the test "
            "row whose ID equals each sample ID, in the sample's order."
        )
    else:
        rows = "there is no test table: the test rows are the sample submission's rows."
    return [rows, "id: make_keys(sample[ID].tolist())."]


def _target_part(plan: dict[str, Any], consts: list[Const], facts: list[str]) -> None:
    one_hot = plan.get("one_hot")
    consts.append(("TARGETS", list(plan["target_columns"]), "the submission's target columns, in order"))
    if one_hot:
        consts.append(("LABEL", one_hot["column"], "the class label column"))
        consts.append(("PREFIX", one_hot.get("prefix", ""), "target column = PREFIX + class label"))
        facts.append(
            "the targets are one 0/1 column per class: a row whose LABEL value is v gets 1 in "
            "column PREFIX + str(v) and 0 in every other TARGETS column (integers)."
        )
        facts.append(
            "pandas idiom: pd.get_dummies(df[LABEL].astype(str)).add_prefix(PREFIX)"
            ".reindex(columns=TARGETS, fill_value=0).astype(int)."
        )
    else:
        facts.append(
            "the targets are the LABELS columns of the training table with their values unchanged, "
            "renamed to TARGETS (in order)."
        )
        facts.append(
            'pandas idiom: out = df[LABELS].copy(); out.columns = TARGETS; out.insert(0, "id", keys).'
        )


def _image_part(ctx: StageContext, consts: list[Const], facts: list[str]) -> None:
    image = ctx.artifacts["modalities"].get("image") or {}
    idc = ctx.artifacts["plan"]["id_column"]
    consts.append(("IMAGE_COLUMN", image.get("column", idc), "the column whose values name the image files"))
    dirs = ", ".join(
        f"{d.rel}/ ({d.n_files} files, e.g. {', '.join(d.example_files[:2])})"
        for d in ctx.competition.image_dirs[:3]
    )
    facts.append(f"image folders: {dirs}.")
    facts.append(
        "find_images(values) takes a list of str values of IMAGE_COLUMN and returns a dict "
        "{value: absolute image path}."
    )


def _columns_part(columns: list[str], consts: list[Const], facts: list[str]) -> None:
    consts.append(("COLUMNS", columns, "the planned input columns, in this order"))
    facts.append(f"the output columns must be exactly ['id'] + COLUMNS ({len(columns)} input columns).")
    facts.append('pandas idiom: out = df[COLUMNS].copy(); out.insert(0, "id", keys).')


def _header(ctx: StageContext, consts: list[Const], abbreviate: bool) -> str:
    lines = [
        "import numpy as np",
        "import pandas as pd",
        "from medalist.intake import open_competition",
        "from medalist.setup.data import make_keys  # make_keys(values) -> unique text ids",
        "",
        f"_comp = open_competition({str(ctx.competition.root)!r})  # the competition folder",
        "read_table = _comp.read_table  # read_table(name) -> pandas DataFrame of a competition table",
    ]
    if ctx.modality == "image" and ctx.stage != "train_tab_target":
        lines.append("find_images = _comp.find_images  # find_images(list of str) -> {value: image path}")
    for name, value, comment in consts:
        literal = st.py_list(value, abbreviate) if isinstance(value, list) else repr(value)
        sep = "" if literal.lstrip("[").startswith("...") else f"  # {comment}"
        lines.append(f"{name} = {literal}{sep}")
    return "\n".join(lines) + "\n"


def _shared_key(comp: Competition, files: dict[str, Any]) -> str:
    train = comp.table_columns(files["train"])
    labels = comp.table_columns(files["train_labels"])
    return next((c for c in labels if c in train), labels[0])


__all__ = ["code_template"]
