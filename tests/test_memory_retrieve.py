"""Retrieval over hand-made task cards, prompt budgets, the expert prior and the curriculum (Eq. 7)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from medalist.memory.card import TaskCard, numeric_similarity
from medalist.memory.curriculum import (
    Candidate,
    CurriculumParams,
    CurriculumState,
    describe_tree,
    difficulties,
    next_task,
    score_candidates,
)
from medalist.memory.embed import HashingEmbedder
from medalist.memory.prior import MIN_SIMILARITY, expert_prior
from medalist.memory.retrieve import format_for_prompt, rag, similar_tasks
from medalist.memory.store import Entry, MemoryStore
from medalist.memory.writeback import stage_text
from medalist.solve.policy import EMPTY_PRIOR

CARDS = [
    TaskCard("titanic", "binary", ("tabular",), "accuracy", False, 891, 418, 5, 5, 0, 0, 0, 891, 147.0, 0.1, 2,
             description="Predict which passengers survived the Titanic shipwreck."),
    TaskCard("house-prices", "regression", ("tabular",), "rmsle", True, 1460, 1459, 36, 43, 0, 0, 0, 25, 5.0,
             0.06, 0, 1.88, description="Predict the sale price of houses in Ames, Iowa."),
    TaskCard("insults", "binary", ("text",), "auc", False, 3947, 2647, 0, 0, 1, 1, 0, 0, 0.0, 0.2, 2,
             description="Detect insulting comments in online social commentary."),
    TaskCard("leaf", "multiclass", ("tabular", "image"), "logloss", True, 990, 594, 192, 0, 0, 0, 1, 0, 0.0,
             0.0, 99, description="Classify 99 plant species from leaf images and shape features."),
]  # fmt: skip
SPACESHIP = TaskCard("spaceship-titanic", "binary", ("tabular",), "accuracy", False, 8693, 4277, 6, 6, 0, 0, 0,
                     8473, 3.0, 0.02, 2, description="Predict which passengers were transported by the spaceship "
                     "Titanic's collision with a spacetime anomaly.")  # fmt: skip


@pytest.fixture
def store(tmp_path) -> MemoryStore:
    s = MemoryStore(tmp_path / "m.sqlite")
    for card in CARDS:
        s.put_task(card.task_key, card.to_dict(), card.text())
    return s


def _experiment(task: str, family: str, rank: int, n: int, gain: float, features: str = "base",
                recipe_gain: float | None = None, params: dict | None = None) -> Entry:  # fmt: skip
    data = {"family": family, "rank": rank, "n_ranked": n, "gain": gain, "features": features,
            "recipe_gain": recipe_gain, "params": params or {"depth": rank}, "cv": 1 - rank / 10}  # fmt: skip
    return Entry(key=f"experiment:{task}:{family}:{features}", kind="experiment", task_key=task, stage="solve",
                 data=data, text=stage_text(CARDS[0], "solve", family))  # fmt: skip


@pytest.mark.parametrize("embedder", [HashingEmbedder(), HashingEmbedder(256)], ids=["h1024", "h256"])
def test_the_nearest_task_is_found(store, embedder):
    found = similar_tasks(store, SPACESHIP, k=4, embedder=embedder)
    assert found[0][0].task_key == "titanic"
    sims = [s for _, s in found]
    assert sims == sorted(sims, reverse=True) and len(found) == 4
    regression = TaskCard("bikes", "regression", ("tabular",), "rmsle", True, 10886, 6493, 8, 0, 0, 1, 0,
                          description="Forecast the sale price of bike rentals per hour.")  # fmt: skip
    assert similar_tasks(store, regression, k=1, embedder=embedder)[0][0].task_key == "house-prices"
    others = similar_tasks(store, CARDS[0], 4, embedder, exclude="titanic")
    assert len(others) == 3 and "titanic" not in {c.task_key for c, _ in others}
    assert numeric_similarity(SPACESHIP, CARDS[0]) > numeric_similarity(SPACESHIP, CARDS[3])


def test_rag_returns_the_stage_and_polarity_asked_for(store):
    emb = HashingEmbedder()
    entries = []
    for card in CARDS:
        for stage in ("metric", "formatter"):
            entries.append(Entry(f"stage_pass:{card.task_key}:{stage}", "stage_pass", card.task_key, stage,
                                 content=f"{stage} of {card.task_key}", text=stage_text(card, stage)))  # fmt: skip
        entries.append(Entry(f"stage_fail:{card.task_key}:metric", "stage_fail", card.task_key, "metric",
                             message=f"bad metric for {card.task_key}", fix="metric: accuracy",
                             text=stage_text(card, "metric", "error: bad metric")))  # fmt: skip
    store.put_entries(entries)
    plus = rag(store, SPACESHIP, "metric", k=2, embedder=emb)
    assert [e.kind for e in plus] == ["stage_pass"] * 2 and {e.stage for e in plus} == {"metric"}
    assert plus[0].task_key == "titanic"
    minus = rag(store, SPACESHIP, "metric", k=10, positive=False, embedder=emb)
    assert len(minus) == 4 and minus[0].task_key == "titanic" and all(e.kind == "stage_fail" for e in minus)
    assert rag(store, SPACESHIP, "no-such-stage", embedder=emb) == []


def test_prompt_text_fits_its_token_budget():
    long = Entry("k1", "stage_pass", "titanic", "formatter", content="x = 1\n" * 2000)
    short = Entry("k0", "stage_fail", "titanic", "metric", message="metric 'acc' unknown", fix="accuracy")
    text = format_for_prompt([short, long], max_tokens=300)
    assert len(text) <= 300 * 4
    assert text.startswith("[RAG- titanic / metric]") and "accuracy" in text and text.endswith(" ...")
    assert format_for_prompt([long], max_tokens=40) == ""  # under 200 characters of room: left out
    assert format_for_prompt([], max_tokens=100) == ""


def test_expert_prior_ranks_families_from_similar_tasks(store):
    emb = HashingEmbedder()
    assert expert_prior(store, SPACESHIP, embedder=emb, min_similarity=0.0) == EMPTY_PRIOR  # no experiments
    assert EMPTY_PRIOR.reorder(["lgbm", "xgb", "mlp"]) == ["lgbm", "xgb", "mlp"]
    store.put_entries([
        _experiment("titanic", "catboost", 1, 4, 0.3, params={"depth": 6}),
        _experiment("titanic", "lgbm", 2, 4, 0.0),
        _experiment("titanic", "catboost", 3, 4, 0.1, features="count", recipe_gain=0.05),
        _experiment("titanic", "knn", 4, 4, -0.5),
        _experiment("house-prices", "lgbm", 1, 3, 0.0),
        _experiment("house-prices", "knn", 3, 3, -0.2),
        _experiment("house-prices", "linear", 2, 3, -0.1, features="target_enc", recipe_gain=-0.3),
    ])  # fmt: skip
    prior = expert_prior(store, SPACESHIP, k=1, embedder=emb, min_similarity=0.0)  # titanic only
    assert prior.families == ("catboost", "lgbm") and prior.never_helped == ()  # one task is not evidence
    assert prior.params_for("catboost")[0] == {"depth": 6} and prior.recipes == ("count",)
    assert prior.sources[0][0] == "titanic"
    assert prior.reorder(["knn", "lgbm", "tabm", "catboost"]) == ["catboost", "lgbm", "knn", "tabm"]
    both = expert_prior(store, SPACESHIP, k=4, embedder=emb, min_similarity=0.0)
    assert both.never_helped == ("knn",)  # two tasks tried it, it never helped; linear: one task only
    assert both.reorder(["knn", "lgbm", "tabm", "catboost"]) == ["catboost", "lgbm", "tabm", "knn"]
    assert "target_enc" not in both.recipes


def test_tasks_not_alike_enough_give_no_prior(store):
    """Only past tasks at least MIN_SIMILARITY alike count: a far one says nothing."""
    emb = HashingEmbedder()
    store.put_entries(
        [_experiment("house-prices", "knn", 1, 3, 0.2), _experiment("house-prices", "lgbm", 2, 3, 0.0)]
    )
    sims = {c.task_key: s for c, s in similar_tasks(store, SPACESHIP, 4, emb)}
    assert sims["house-prices"] < MIN_SIMILARITY
    assert expert_prior(store, SPACESHIP, k=4, embedder=emb) == EMPTY_PRIOR
    assert expert_prior(store, SPACESHIP, k=4, embedder=emb, min_similarity=0.0).families[0] == "knn"


class TableEmbedder:
    """Maps known texts to given unit vectors (for hand-computed scores)."""

    name = "table"

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = {k: np.asarray(v, dtype=np.float32) / np.linalg.norm(v) for k, v in table.items()}

    @property
    def dim(self) -> int:
        return len(next(iter(self.table.values())))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


def test_curriculum_eq7_matches_a_hand_computation(tmp_path):
    pool = [
        Candidate("a", "tree-a", n_files=3, n_bytes=1_000, n_columns=10),
        Candidate("b", "tree-b", n_files=3, n_bytes=100_000, n_columns=10),
        Candidate("c", "tree-c", n_files=30, n_bytes=100_000, n_columns=100),
    ]
    emb = TableEmbedder({"tree-a": [1, 0, 0], "tree-b": [0, 1, 0], "tree-c": [0.6, 0.8, 0],
                         "pass-1": [1, 0, 0], "pass-2": [0.8, 0.6, 0], "fail-1": [0, 1, 0]})  # fmt: skip
    store = MemoryStore(tmp_path / "m.sqlite")
    store.put_entries([Entry("p1", "stage_pass", "x", "metric", text="pass-1"),
                       Entry("p2", "stage_pass", "y", "metric", text="pass-2"),
                       Entry("f1", "stage_fail", "z", "metric", text="fail-1")])  # fmt: skip
    params = CurriculumParams(alpha=1.0, beta=0.5, lam=0.5, gamma=1.0, top_r=2)

    # difficulty: mean of min-max normalised log1p(files), log1p(bytes), log1p(columns)
    lb = (math.log1p(100_000) - math.log1p(1_000)) / (math.log1p(100_000) - math.log1p(1_000))
    d = {"a": 0.0, "b": lb / 3, "c": 1.0}
    assert difficulties(pool) == pytest.approx(d)
    assert next_task(pool, store, CurriculumState(), params, emb) == "a"  # first pick: the simplest

    state = CurriculumState().after("a", True).after("b", False).after("c", True)
    # cosines: a -> passes (1, 0.8), fail 0; b -> passes (0, 0.6), fail 1; c -> passes (0.6, 0.96), fail 0.8
    expected = {
        "a": (1 + 0.8) / 2 - 0.0 - d["a"],
        "b": (0 + 0.6) / 2 - 1.0 - d["b"] - 0.5 * math.exp(-0.5 * 2),  # failed two picks ago
        "c": (0.6 + 0.96) / 2 - 0.8 - d["c"],
    }
    scores = score_candidates(pool, store, state, params, emb)
    assert scores == pytest.approx(expected, abs=1e-5)
    assert next_task(pool, store, state, params, emb) == "a"
    assert next_task(pool[1:], store, state, params, emb) == max(["b", "c"], key=expected.__getitem__)
    assert next_task([], store, state, params, emb) is None


def test_describe_tree_lists_files_sizes_and_csv_columns(tmp_path):
    comp = tmp_path / "demo" / "public"
    (comp / "images").mkdir(parents=True)
    (comp / "train.csv").write_text("id,age,label\n1,30,0\n")
    (comp / "description.md").write_text("# Demo\n")
    for i in range(25):
        (comp / "images" / f"{i}.jpg").write_bytes(b"\xff" * 10)
    text = describe_tree(comp)
    assert (
        text.startswith("demo/")
        and "train.csv" in text
        and "columns: id, age, label" in text
        and "description.md" in text
    )
    assert "25 files (25 .jpg)" in text and "0.jpg" not in text
    cand = Candidate.from_folder(comp)
    assert cand.key == "demo" and cand.n_files == 27 and cand.n_columns == 3 and cand.tree == text
