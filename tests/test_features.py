"""Feature recipes on real competitions: shapes, dtypes, fold-safety of target encoding, datetime parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

from medalist.errors import InputError
from medalist.setup.data import TaskData, align_maps
from medalist.setup.spec import TargetTransform, TaskSpec
from medalist.solve.features import RECIPES, prepare_features, recipes_for

S4E2_CLASSES = [
    "Insufficient_Weight",
    "Normal_Weight",
    "Obesity_Type_I",
    "Obesity_Type_II",
    "Obesity_Type_III",
    "Overweight_Level_I",
    "Overweight_Level_II",
]


def comp_data(
    comp_dir: Path,
    slug: str,
    targets: list[str],
    transform: TargetTransform,
    metric: str,
    *,
    id_col: str = "id",
    text: tuple[str, ...] = (),
    n_rows: int | None = None,
    categorical: tuple[str, ...] = (),
    keep_id_as_input: bool = False,
    edit_test: dict[str, object] | None = None,
    one_hot: str | None = None,
) -> TaskData:
    """TaskData from public/train.csv and public/test.csv (train rows: a seeded sample of ``n_rows``)."""
    train = pd.read_csv(comp_dir / slug / "public" / "train.csv")
    test = pd.read_csv(comp_dir / slug / "public" / "test.csv")
    if n_rows is not None and n_rows < len(train):
        train = train.sample(n_rows, random_state=0).reset_index(drop=True)
    if one_hot:  # submission columns are one probability per class
        for t in targets:
            train[t] = (train[one_hot] == t).astype(float)
    for col, value in (edit_test or {}).items():
        test.loc[: len(test) // 2, col] = value
    inputs = [c for c in test.columns if c != id_col or keep_id_as_input]
    tab = [c for c in inputs if c not in text]
    tr_id, te_id = train[id_col].astype(str).rename("id"), test[id_col].astype(str).rename("id")
    maps = {"train_tab_target": pd.concat([tr_id, train[targets]], axis=1)}
    modalities = []
    for code, modality, cols in (("tab", "tabular", tab), ("txt", "text", list(text))):
        if cols:
            modalities.append(modality)
            maps[f"train_{code}_input"] = pd.concat([tr_id, train[cols]], axis=1)
            maps[f"test_{code}_input"] = pd.concat([te_id, test[cols]], axis=1)
    spec = TaskSpec(
        slug=slug,
        metric=metric,
        id_column=id_col,
        target_columns=targets,
        modalities=modalities,
        categorical_columns=list(categorical),
        target_transform=transform.to_dict(),
    )
    return align_maps(spec, maps)


@pytest.fixture(scope="module")
def titanic(competitions: Path) -> TaskData:
    t = TargetTransform("binary", "label", ["Survived"], classes=[0, 1])
    return comp_data(competitions, "titanic", ["Survived"], t, "accuracy", id_col="PassengerId")


def _kfold(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(KFold(5, shuffle=True, random_state=0).split(np.arange(n)))


def test_every_recipe_has_consistent_frames(titanic: TaskData) -> None:
    assert recipes_for(titanic) == list(RECIPES)
    tr, va = _kfold(titanic.n_train)[0]
    columns: dict[str, set[str]] = {}
    for recipe in RECIPES:
        feats = prepare_features(titanic, recipe, ("tabular",))
        x_tr, x_va, x_te = feats.split(tr, va)
        assert (len(x_tr), len(x_va), len(x_te)) == (len(tr), len(va), titanic.n_test)
        assert list(x_tr.columns) == list(x_va.columns) == list(x_te.columns)
        assert (x_tr.dtypes == x_te.dtypes).all()
        for col in x_tr.columns:
            assert x_tr[col].dtype == "float32" or isinstance(x_tr[col].dtype, pd.CategoricalDtype), col
        columns[recipe] = set(x_tr.columns)
    base = columns["base"]
    assert {"Sex", "Embarked", "Pclass", "Age", "Fare", "Ticket__count"} <= base
    assert "Name" not in base and "Ticket" not in base  # high-cardinality strings are not one level per row
    # what high-cardinality strings hide: title tokens in Name, the ticket's prefix and number
    assert {"Name__has_mr", "Name__has_miss", "Name__has_master", "Ticket__prefix", "Ticket__number"} <= base
    assert len(base) < 40
    assert {"Sex__count", "Embarked__count"} <= columns["count"] - base
    assert {"Sex__te", "Embarked__te"} <= columns["target_enc"] - base
    assert {"Age__isna", "Cabin__isna", "n_missing"} <= columns["missing"] - base
    new = columns["interactions"] - base
    assert 3 <= len(new) <= 40 and all("__x__" in c or "__div__" in c or "__minus__" in c for c in new)
    assert set().union(*columns.values()) == columns["rich"]


def test_base_categories_and_unseen_levels(competitions: Path) -> None:
    t = TargetTransform("binary", "label", ["Survived"], classes=[0, 1])
    data = comp_data(
        competitions,
        "titanic",
        ["Survived"],
        t,
        "accuracy",
        id_col="PassengerId",
        edit_test={"Embarked": "Z"},
    )
    x_tr, _, x_te = prepare_features(data, "base", ("tabular",)).split(
        np.arange(data.n_train), np.array([], int)
    )
    assert list(x_tr["Embarked"].cat.categories) == ["C", "Q", "S"]
    assert x_te["Embarked"].dtype == x_tr["Embarked"].dtype
    edited = data.test["tabular"]["Embarked"] == "Z"
    assert edited.sum() > 100
    assert x_te["Embarked"][edited.to_numpy()].isna().all()
    assert (
        x_te["Embarked"][~edited.to_numpy()].notna().sum()
        == data.test["tabular"]["Embarked"][~edited].notna().sum()
    )
    assert x_tr["Sex"].isin(["male", "female"]).all()
    np.testing.assert_allclose(x_tr["Fare"], data.train["tabular"]["Fare"].astype("float32"))


def test_spec_categorical_numeric_column(competitions: Path) -> None:
    targets = ["formation_energy_ev_natom", "bandgap_energy_ev"]
    t = TargetTransform("regression", "value", targets, log=True)
    data = comp_data(
        competitions,
        "nomad2018-predict-transparent-conductors",
        targets,
        t,
        "mean_columnwise_rmsle",
        categorical=("spacegroup",),
    )
    x_tr, _, _ = prepare_features(data, "target_enc", ("tabular",)).split(
        np.arange(1000), np.arange(1000, 2400)
    )
    assert isinstance(x_tr["spacegroup"].dtype, pd.CategoricalDtype)
    assert set(x_tr["spacegroup"].cat.categories) == {
        str(v) for v in data.train["tabular"]["spacegroup"].unique()
    }
    assert {"spacegroup__te0", "spacegroup__te1"} <= set(x_tr.columns)  # one encoding per target
    assert x_tr["number_of_total_atoms"].dtype == "float32"


def test_multiclass_target_encoding_has_one_column_per_class(competitions: Path) -> None:
    t = TargetTransform("multiclass", "label", ["NObeyesdad"], classes=S4E2_CLASSES)
    data = comp_data(competitions, "playground-series-s4e2", ["NObeyesdad"], t, "accuracy", n_rows=2000)
    tr, va = _kfold(data.n_train)[0]
    x_tr, x_va, _ = prepare_features(data, "target_enc", ("tabular",)).split(tr, va)
    te = [c for c in x_tr.columns if c.startswith("MTRANS__te")]
    assert te == [f"MTRANS__te{k}" for k in range(7)]
    np.testing.assert_allclose(x_va[te].sum(axis=1), 1.0, atol=1e-5)  # class shares of a level sum to 1


def test_target_encoding_is_fitted_inside_folds(titanic: TaskData) -> None:
    """With a random target, in-fold encodings carry no signal, whereas encoding with the rows' own labels
    (the leak the inner out-of-fold pass prevents) does."""
    rng = np.random.default_rng(0)
    data = TaskData(
        titanic.spec,
        titanic.train_ids,
        titanic.test_ids,
        titanic.train,
        titanic.test,
        titanic.target,
        rng.integers(0, 2, titanic.n_train).astype(float)[:, None],
    )
    y = data.y[:, 0]
    feats = prepare_features(data, "target_enc", ("tabular",), seed=0)
    oof = np.zeros(data.n_train)
    for tr, va in _kfold(data.n_train):
        x_tr, x_va, _ = feats.split(tr, va)
        oof[va] = x_va["Cabin__te"].to_numpy()
        if tr[0] == 0 or va[0] == 0:
            in_fold_train = x_tr["Cabin__te"].to_numpy()
            train_rows = tr
    has_cabin = data.train["tabular"]["Cabin"].notna().to_numpy()
    assert abs(roc_auc_score(y[has_cabin], oof[has_cabin]) - 0.5) < 0.08
    inner = has_cabin[train_rows]
    assert abs(roc_auc_score(y[train_rows][inner], in_fold_train[inner]) - 0.5) < 0.08
    # the same smoothing with the rows' own labels: clearly leaky
    cabin = data.train["tabular"]["Cabin"].iloc[train_rows]
    yt = pd.Series(y[train_rows], index=cabin.index)
    stats = yt.groupby(cabin).agg(["sum", "count"])
    naive = ((cabin.map(stats["sum"]) + 10 * yt.mean()) / (cabin.map(stats["count"]) + 10)).to_numpy()
    assert roc_auc_score(y[train_rows][inner], naive[inner]) > 0.6


def test_datetime_parts(competitions: Path) -> None:
    t = TargetTransform("regression", "value", ["count"], log=True, clip_min=0)
    data = comp_data(
        competitions, "bike-sharing-demand", ["count"], t, "rmsle", id_col="datetime", keep_id_as_input=True
    )
    x_tr, _, x_te = prepare_features(data, "base", ("tabular",)).split(
        np.arange(data.n_train), np.array([], int)
    )
    stamps = pd.to_datetime(data.train["tabular"]["datetime"])
    parts = {"year": "year", "month": "month", "dayofweek": "day_of_week", "hour": "hour"}
    for part, attr in {**parts, "dayofyear": "day_of_year"}.items():
        np.testing.assert_array_equal(x_tr[f"datetime__{part}"], getattr(stamps.dt, attr).astype("float32"))
    assert "datetime" not in x_tr.columns
    # Kaggle's split: training rows are days 1-19 of each month, test rows days 20-31, so the day of the
    # month means nothing a model could learn and is left out
    assert stamps.dt.day.max() <= 19 and "datetime__day" not in x_tr.columns
    elapsed = x_tr["datetime__elapsed"].to_numpy()
    assert elapsed.min() == 0 and np.all(np.diff(elapsed) > 0)
    assert x_te["datetime__elapsed"].max() > 700  # two years of hours, in days


def test_text_columns_raw_or_statistics(competitions: Path) -> None:
    t = TargetTransform("multiclass", "proba", ["EAP", "HPL", "MWS"], classes=["EAP", "HPL", "MWS"])
    data = comp_data(
        competitions,
        "spooky-author-identification",
        ["EAP", "HPL", "MWS"],
        t,
        "log_loss",
        text=("text",),
        one_hot="author",
    )
    assert recipes_for(data) == ["base"]
    rows = np.arange(500)
    x_tr, _, _ = prepare_features(data, "base", ("text", "tabular")).split(rows, rows[:0])
    assert list(x_tr.columns) == ["txt__text"]
    assert x_tr["txt__text"].tolist() == data.train["text"]["text"].iloc[:500].tolist()
    stats, _, _ = prepare_features(data, "base", ("tabular",)).split(rows, rows[:0])
    assert "txt_text__n_words" in stats.columns and (stats.dtypes == "float32").all()
    words = data.train["text"]["text"].iloc[:500].str.split().str.len().to_numpy()
    np.testing.assert_array_equal(stats["txt_text__n_words"].to_numpy(), words)


def test_interactions_are_bounded_and_chosen_in_fold(competitions: Path) -> None:
    t = TargetTransform("regression", "value", ["Strength"])
    data = comp_data(competitions, "playground-series-s3e9", ["Strength"], t, "rmse")
    feats = prepare_features(data, "interactions", ("tabular",))
    base = set(prepare_features(data, "base", ("tabular",)).columns)
    tr, va = _kfold(data.n_train)[0]
    x_tr, x_va, x_te = feats.split(tr, va)
    new = [c for c in x_tr.columns if c not in base]
    assert len(new) == 30  # 5 of 8 numeric columns -> 10 pairs x 3
    a, b = new[0].split("__x__")
    np.testing.assert_allclose(x_va[new[0]], x_va[a] * x_va[b], rtol=1e-5)
    assert "CementComponent" in {c.split("__")[0] for c in new}  # the strongest driver of strength
    assert list(x_te.columns) == list(x_tr.columns)


def test_missing_indicators_match_raw_values(titanic: TaskData) -> None:
    x_tr, _, x_te = prepare_features(titanic, "missing", ("tabular",)).split(
        np.arange(titanic.n_train), np.array([], int)
    )
    raw = titanic.train["tabular"]
    np.testing.assert_array_equal(x_tr["Age__isna"].to_numpy(), raw["Age"].isna().to_numpy())
    np.testing.assert_array_equal(x_tr["n_missing"].to_numpy(), raw.isna().sum(axis=1).to_numpy())
    assert x_te["Fare__isna"].sum() == titanic.test["tabular"]["Fare"].isna().sum() == 1


def test_unknown_recipe(titanic: TaskData) -> None:
    with pytest.raises(InputError, match="unknown feature recipe"):
        prepare_features(titanic, "magic", ("tabular",))


def test_structured_strings_are_split(competitions):
    """spaceship-titanic: Cabin 'B/0/P' -> deck, number, side; PassengerId '0013_01' -> group size."""
    from medalist.solve.features_encoders import string_parts

    train = pd.read_csv(competitions / "spaceship-titanic" / "public" / "train.csv")
    cabin = string_parts("Cabin", train["Cabin"])
    assert set(cabin["Cabin__p0"].dropna().unique()) <= set("ABCDEFGT")
    assert set(cabin["Cabin__p2"].dropna().unique()) == {"P", "S"}
    group = string_parts("PassengerId", train["PassengerId"])["PassengerId__p0_count"]
    sizes = (
        train["PassengerId"]
        .str.split("_")
        .str[0]
        .map(train["PassengerId"].str.split("_").str[0].value_counts())
    )
    assert np.array_equal(group.to_numpy(), sizes.to_numpy(dtype="float32"))
