"""Reading a finished setup back: the id-aligned maps every experiment consumes.

Map files (design §2), all keyed by a string column ``id``:
``train_{tab,txt,img}_input_map.parquet``, ``train_tab_target_map.parquet`` (id + the submission's target
columns, in submission space), ``test_{tab,txt,img}_input_map.parquet`` (rows in the sample submission's
order). Image maps hold ``id`` and ``path`` (absolute path of the image file).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medalist.errors import CheckError
from medalist.setup.spec import TargetTransform, TaskSpec, label_key
from medalist.workspace import Workspace

MODALITY_CODES = {"tabular": "tab", "text": "txt", "image": "img"}


def map_name(split: str, modality: str) -> str:
    """('train', 'text') -> 'train_txt_input'."""
    return f"{split}_{MODALITY_CODES[modality]}_input"


def make_keys(values: Sequence[Any]) -> list[str]:
    """Row keys from id values: the id as text, with '#k' on its k-th repeat so keys are unique."""
    seen: dict[str, int] = {}
    keys = []
    for v in values:
        k = label_key(v)
        n = seen.get(k, 0)
        seen[k] = n + 1
        keys.append(k if n == 0 else f"{k}#{n}")
    return keys


@dataclass
class TaskData:
    """Everything an experiment needs, rows aligned by id across every map."""

    spec: TaskSpec
    train_ids: np.ndarray
    test_ids: np.ndarray
    train: dict[str, pd.DataFrame]  # modality -> input columns (no id), rows in train_ids order
    test: dict[str, pd.DataFrame]  # modality -> input columns (no id), rows in test_ids order
    target: pd.DataFrame  # submission-space target columns, rows in train_ids order
    y: np.ndarray  # model-space target (n_train, k)

    @property
    def transform(self) -> TargetTransform:
        return self.spec.transform

    @property
    def n_train(self) -> int:
        return len(self.train_ids)

    @property
    def n_test(self) -> int:
        return len(self.test_ids)


def read_map(ws: Workspace, name: str) -> pd.DataFrame:
    path = ws.map_path(name)
    if not path.exists():
        raise CheckError(f"map {path.name} is missing; rerun `medalist setup`")
    frame = pd.read_parquet(path)
    if "id" not in frame.columns:
        raise CheckError(f"map {path.name} has no 'id' column")
    frame["id"] = frame["id"].astype(str)
    return frame


def align_maps(spec: TaskSpec, maps: dict[str, pd.DataFrame]) -> TaskData:
    """Join the maps on id (train rows in the target map's order); raises CheckError when ids disagree."""
    target_map = maps["train_tab_target"]
    ids = target_map["id"].astype(str).to_numpy()
    if len(set(ids)) != len(ids):
        raise CheckError("train_tab_target_map has duplicated ids; make ids unique (see make_keys)")
    train: dict[str, pd.DataFrame] = {}
    test: dict[str, pd.DataFrame] = {}
    test_ids: np.ndarray | None = None
    for modality in spec.modalities:
        tr = maps[map_name("train", modality)]
        te = maps[map_name("test", modality)]
        train[modality] = _reindex(tr, ids, map_name("train", modality))
        these = te["id"].astype(str).to_numpy()
        if test_ids is None:
            test_ids = these
        elif not np.array_equal(test_ids, these):
            raise CheckError(
                f"{map_name('test', modality)}_map ids differ from the other test maps (order too)"
            )
        test[modality] = te.drop(columns=["id"]).reset_index(drop=True)
        if list(train[modality].columns) != list(test[modality].columns):
            raise CheckError(
                f"{modality} maps: train columns {list(train[modality].columns)[:8]} differ from test columns "
                f"{list(test[modality].columns)[:8]}; both must hold the same inputs in the same order"
            )
    if test_ids is None:
        raise CheckError("no input modality: at least one input map per split is needed")
    target = target_map.drop(columns=["id"]).reset_index(drop=True)
    y = TargetTransform.from_dict(spec.target_transform).encode(target)
    return TaskData(spec, ids, test_ids, train, test, target, y)


def _reindex(frame: pd.DataFrame, ids: np.ndarray, name: str) -> pd.DataFrame:
    by_id = frame.set_index("id")
    if not by_id.index.is_unique:
        raise CheckError(f"{name}_map has duplicated ids")
    missing = [i for i in ids if i not in by_id.index]
    if missing:
        raise CheckError(
            f"{name}_map lacks {len(missing)} ids of the target map (e.g. {missing[:3]}); every train map "
            "must cover the same ids"
        )
    return by_id.loc[ids].reset_index(drop=True)


def load_task_data(ws: Workspace) -> TaskData:
    """Read task.json and every map of a finished setup."""
    spec = TaskSpec.load(ws.task_json)
    names = ["train_tab_target"] + [map_name(s, m) for m in spec.modalities for s in ("train", "test")]
    return align_maps(spec, {n: read_map(ws, n) for n in names})
