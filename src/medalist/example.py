"""Embedded example competitions, generated from datasets that ship inside scikit-learn (no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medalist.errors import InputError

_DESCRIPTIONS = {
    "breast-cancer": (
        "Predict whether a breast mass is malignant from features computed from a digitized image of a "
        "fine needle aspirate.\n\n## Evaluation\n\nSubmissions are evaluated on area under the ROC curve "
        "between the predicted probability and the observed target.\n\n## Submission File\n\n"
        "For each id in the test set, predict a probability for the target `malignant`.\n"
    ),
    "wine": (
        "Predict the cultivar of a wine from its chemical analysis.\n\n## Evaluation\n\nSubmissions are "
        "evaluated using the multi-class logarithmic loss. For each id, submit a probability per class.\n"
    ),
    "diabetes": (
        "Predict a quantitative measure of diabetes progression one year after baseline.\n\n## Evaluation\n\n"
        "Submissions are scored on the root mean squared error (RMSE).\n"
    ),
}
EXAMPLES = tuple(_DESCRIPTIONS)


def make_example(root: str | Path, name: str = "breast-cancer", seed: int = 0) -> Path:
    """Write a Kaggle-style competition folder ``root/name`` and return it; answers go to ``root/name-answers.csv``."""
    from sklearn import datasets

    if name not in _DESCRIPTIONS:
        raise InputError(f"unknown example {name!r}; choose one of {', '.join(EXAMPLES)}")
    loader = {
        "breast-cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
        "diabetes": datasets.load_diabetes,
    }[name]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    target = "target"
    rng = np.random.default_rng(seed)
    frame.insert(0, "id", rng.permutation(len(frame)) + 1000)
    if name == "breast-cancer":
        frame = frame.rename(columns={target: "malignant"})
        frame["malignant"] = 1 - frame["malignant"]  # sklearn codes malignant as 0
        target = "malignant"
    order = rng.permutation(len(frame))
    n_test = len(frame) // 4
    test_rows, train_rows = order[:n_test], order[n_test:]
    train = frame.iloc[train_rows].sort_values("id")
    test_full = frame.iloc[test_rows].sort_values("id")
    out = Path(root) / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "description.md").write_text(f"# {name}\n\n{_DESCRIPTIONS[name]}", encoding="utf-8")
    train.to_csv(out / "train.csv", index=False)
    test_full.drop(columns=[target]).to_csv(out / "test.csv", index=False)
    if name == "wine":
        classes = sorted(frame[target].unique())
        sample = pd.DataFrame({"id": test_full["id"]})
        answers = sample.copy()
        for c in classes:
            sample[f"class_{c}"] = 1.0 / len(classes)
            answers[f"class_{c}"] = (test_full[target] == c).astype(int).to_numpy()
        train = train.assign(**{target: train[target].map(lambda c: f"class_{c}")})
        train.to_csv(out / "train.csv", index=False)
    else:
        fill = 0.5 if name == "breast-cancer" else float(train[target].mean())
        sample = pd.DataFrame({"id": test_full["id"], target: fill})
        answers = pd.DataFrame({"id": test_full["id"], target: test_full[target].to_numpy()})
    sample.to_csv(out / "sample_submission.csv", index=False)
    answers.to_csv(Path(root) / f"{name}-answers.csv", index=False)
    return out
