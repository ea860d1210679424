"""Grading: the three must-show cases on every shared competition, validation rules, medal thresholds,
direction inference, the mle-bench layout, the suite runner (with a stand-in pipeline) and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from medalist import pipeline
from medalist.bench import cli as bench_cli
from medalist.bench.grade import canonical, grade_submission, load_competition, read_leaderboard
from medalist.bench.medals import (
    infer_lower_is_better,
    medal_positions,
    medal_thresholds,
    place_on_leaderboard,
)
from medalist.bench.passk import pass_at_k
from medalist.bench.suite import SuiteReport, format_table, run_suite, summary_lines
from medalist.errors import InputError
from medalist.metrics import get_metric
from tests.conftest import all_slugs

SLUGS = all_slugs() or ["<shared competitions missing>"]


def _grading(folder: Path) -> dict:
    return json.loads((folder / "grading.json").read_text())


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def answers_as_submission(folder: Path, tmp_path: Path) -> Path:
    """answers.csv itself when it covers the sample's ids; otherwise the sample with the answers' values
    filled in (unscored ids keep the sample's values)."""
    comp = load_competition(folder)
    sample, answers = _read(comp.sample_submission), _read(comp.answers)
    key = comp.id_column
    if sorted(map(canonical, sample[key])) == sorted(map(canonical, answers[key])):
        return comp.answers
    filled = sample.copy()
    lookup = answers.assign(_k=answers[key].map(canonical)).set_index("_k")
    for c in comp.target_columns:
        known = filled[key].map(canonical).map(lookup[c])
        filled[c] = known.where(known.notna(), filled[c])
    path = tmp_path / "answers_filled.csv"
    filled.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- the must-show cases
@pytest.mark.parametrize("slug", SLUGS)
def test_sample_submission_is_valid(competitions, slug, tmp_path):
    folder = competitions / slug
    g = _grading(folder)
    comp = load_competition(folder)
    report = grade_submission(comp.sample_submission, folder)
    assert report.submission_exists and report.valid_submission, report.reason
    assert report.reason is None
    assert report.score is not None and np.isfinite(report.score)
    assert report.score == round(report.score, 5)
    assert report.competition_id == slug and report.metric == g["metric"]
    assert report.is_lower_better == g["lower_is_better"]
    assert report.n_teams == g["teams"]
    if g["teams"] == 0:  # no leaderboard: a score, nothing to place it against
        assert report.percentile is None and report.any_medal is None and report.gold_threshold is None
    else:
        assert 0.0 <= report.percentile <= 100.0
        assert report.any_medal == (report.gold_medal or report.silver_medal or report.bronze_medal)
    # the sample is a baseline: it never beats the answers
    metric = get_metric(g["metric"])
    best = grade_submission(answers_as_submission(folder, tmp_path), folder)
    assert not metric.better(report.score, best.score)


@pytest.mark.parametrize("slug", SLUGS)
def test_answers_score_the_best_possible(competitions, slug, tmp_path):
    folder = competitions / slug
    g = _grading(folder)
    metric = get_metric(g["metric"])
    report = grade_submission(answers_as_submission(folder, tmp_path), folder)
    assert report.valid_submission, report.reason
    best = 0.0 if metric.lower_is_better else 1.0
    assert report.score == pytest.approx(best, abs=1e-9)
    if g["teams"]:
        assert report.gold_medal and report.any_medal and not report.silver_medal and not report.bronze_medal
        assert report.above_median


@pytest.mark.parametrize("slug", SLUGS)
def test_missing_rows_are_invalid_with_a_reason(competitions, slug, tmp_path):
    folder = competitions / slug
    comp = load_competition(folder)
    sample = _read(comp.sample_submission)
    short = tmp_path / "short.csv"
    sample.iloc[:-5].to_csv(short, index=False)
    report = grade_submission(short, folder)
    assert report.submission_exists and not report.valid_submission
    assert report.score is None and report.percentile is None
    assert "5 ids missing" in report.reason and "\n" not in report.reason
    if report.n_teams:
        assert report.any_medal is False and report.above_median is False
        assert report.gold_threshold is not None


def test_raw_answers_lacking_required_ids_are_invalid(competitions):
    # house-prices: two ambiguous test ids are in the sample (so required) but not in answers.csv
    folder = competitions / "house-prices-advanced-regression-techniques"
    report = grade_submission(folder / "private" / "answers.csv", folder)
    assert not report.valid_submission
    assert "2 ids missing" in report.reason and "2714" in report.reason


def test_unscored_ids_do_not_count(competitions, tmp_path):
    folder = competitions / "house-prices-advanced-regression-techniques"
    perfect = _read(answers_as_submission(folder, tmp_path))
    ids = perfect["Id"].map(canonical)
    perfect.loc[ids.isin(["2714", "2866"]), "SalePrice"] = "1"  # absurd, but not scored
    path = tmp_path / "perfect_plus_junk.csv"
    perfect.to_csv(path, index=False)
    assert grade_submission(path, folder).score == 0.0


def test_duplicate_ids_are_matched_by_order(competitions, tmp_path):
    folder = competitions / "detecting-insults-in-social-commentary"
    answers = _read(folder / "private" / "answers.csv")
    assert answers["Comment"].duplicated().sum() == 20  # the caveat the grader must handle
    shuffled = answers.sample(frac=1.0, random_state=0)
    path = tmp_path / "shuffled.csv"
    shuffled.to_csv(path, index=False)
    report = grade_submission(path, folder)
    assert report.valid_submission and report.score == 1.0


# ---------------------------------------------------------------- validation rules
def _titanic(competitions) -> tuple[Path, pd.DataFrame]:
    folder = competitions / "titanic"
    return folder, _read(folder / "public" / "gender_submission.csv")


def _grade_frame(frame: pd.DataFrame, folder: Path, tmp_path: Path, name: str = "s.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return grade_submission(path, folder)


def test_equivalent_spellings_score_the_same(competitions, tmp_path):
    folder, sample = _titanic(competitions)
    base = grade_submission(folder / "public" / "gender_submission.csv", folder).score
    floats = sample.assign(PassengerId=sample["PassengerId"] + ".0", Survived=sample["Survived"] + ".0")
    assert _grade_frame(floats, folder, tmp_path).score == base
    shuffled = sample.sample(frac=1.0, random_state=1)[["Survived", "PassengerId"]]
    assert _grade_frame(shuffled, folder, tmp_path).score == base
    space = competitions / "spaceship-titanic"
    sp = _read(space / "public" / "sample_submission.csv")
    sp_base = grade_submission(space / "public" / "sample_submission.csv", space).score
    assert (
        _grade_frame(sp.assign(Transported=sp["Transported"].str.lower()), space, tmp_path).score == sp_base
    )


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        (lambda s: s.rename(columns={"Survived": "survived"}), "missing columns ['Survived']"),
        (lambda s: s.assign(extra=1), "unexpected columns ['extra']"),
        (lambda s: s.assign(Survived=["", *list(s["Survived"][1:])]), "1 missing values"),
        (lambda s: pd.concat([s, s.iloc[[0]]]), "1 repeated ids ('892')"),
        (lambda s: s.assign(PassengerId=["1", *list(s["PassengerId"][1:])]), "1 unknown ids ('1')"),
    ],
)
def test_invalid_submissions_say_why(competitions, tmp_path, change, expect):
    folder, sample = _titanic(competitions)
    report = _grade_frame(change(sample), folder, tmp_path)
    assert not report.valid_submission and report.score is None
    assert expect in report.reason and "\n" not in report.reason


def test_numbers_are_required_where_the_metric_needs_them(competitions, tmp_path):
    folder = competitions / "playground-series-s3e26"
    sample = _read(folder / "public" / "sample_submission.csv")
    bad = sample.assign(Status_C=["high", *list(sample["Status_C"][1:])])
    report = _grade_frame(bad, folder, tmp_path)
    assert not report.valid_submission and "needs numbers" in report.reason and "'high'" in report.reason
    nan = sample.assign(Status_D=["nan", *list(sample["Status_D"][1:])])
    assert "missing values" in _grade_frame(nan, folder, tmp_path).reason


def test_unreadable_or_missing_files(competitions, tmp_path):
    folder, _ = _titanic(competitions)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "empty" in grade_submission(empty, folder).reason
    missing = grade_submission(tmp_path / "nope.csv", folder)
    assert (
        not missing.submission_exists
        and not missing.valid_submission
        and "no submission file" in missing.reason
    )
    with pytest.raises(InputError):
        grade_submission(empty, tmp_path)  # not a competition folder


# ---------------------------------------------------------------- medal thresholds and direction
@pytest.mark.parametrize(
    ("n", "positions"),
    [
        (99, (9, 19, 39)),  # < 100: top 10/20/40 %
        (100, (10, 20, 40)),  # 100-249: gold rank 10, silver 20 %, bronze 40 %
        (249, (10, 49, 99)),
        (250, (10, 50, 100)),  # 250-999: gold 10 + 0.2 %, silver rank 50, bronze rank 100
        (999, (11, 50, 100)),
        (1000, (12, 50, 100)),  # 1000+: gold 10 + 0.2 %, silver 5 %, bronze 10 %
        (1500, (13, 75, 150)),
        (5, (1, 1, 2)),
        (1, (1, 1, 1)),
    ],
)
def test_medal_positions_on_both_sides_of_each_boundary(n, positions):
    assert medal_positions(n) == positions
    scores = np.arange(1, n + 1, dtype=float)  # lower is better: rank r has score r
    th = medal_thresholds(scores[::-1], lower_is_better=True)  # order of the input does not matter
    assert (th.gold, th.silver, th.bronze) == tuple(float(p) for p in positions)
    th_hi = medal_thresholds(-scores, lower_is_better=False)
    assert (th_hi.gold, th_hi.silver, th_hi.bronze) == tuple(-float(p) for p in positions)


def test_placement_rules():
    # 100 teams, lower is better: gold <= 10, silver <= 20, bronze <= 40
    scores = np.arange(1, 101, dtype=float)
    at = {s: place_on_leaderboard(s, scores, lower_is_better=True) for s in (10.0, 10.5, 20.0, 40.0, 40.5)}
    assert at[10.0].gold_medal and not at[10.0].silver_medal  # a tie with the threshold earns it; exclusive
    assert at[10.5].silver_medal and not at[10.5].gold_medal
    assert at[20.0].silver_medal and at[40.0].bronze_medal
    assert not at[40.5].any_medal and at[40.5].above_median
    assert at[10.0].percentile == 90.0 and at[10.0].rank == 10  # strictly beats teams 11..100
    median = place_on_leaderboard(50.5, scores, lower_is_better=True)
    assert not median.above_median  # the median itself is not strictly better
    worst = place_on_leaderboard(-200.0, -scores, lower_is_better=False)
    assert (
        worst.any_medal is False and worst.percentile == 0.0 and not worst.above_median and worst.rank == 101
    )
    top = place_on_leaderboard(0.0, -scores, lower_is_better=False)
    assert top.gold_medal and top.percentile == 100.0 and top.rank == 1
    none = place_on_leaderboard(None, scores, lower_is_better=True)
    assert none.any_medal is False and none.percentile is None
    empty = place_on_leaderboard(1.0, [], lower_is_better=True)
    assert empty.n_teams == 0 and empty.any_medal is None and empty.thresholds is None


def test_direction_inference():
    assert infer_lower_is_better([0.1, 0.2, 0.3]) is True
    assert infer_lower_is_better([0.9, 0.8, 0.8]) is False
    assert infer_lower_is_better([1.0, 0.9, 0.95, 1.0, 0.98, 0.97]) is False  # first == last: most steps down
    assert infer_lower_is_better([0.5, 0.5]) is None
    assert infer_lower_is_better([]) is None


@pytest.mark.parametrize("slug", SLUGS)
def test_direction_inferred_from_real_leaderboards(competitions, slug):
    folder = competitions / slug
    scores, _ = read_leaderboard(folder / "leaderboard.csv")
    g = _grading(folder)
    assert infer_lower_is_better(scores) == (g["lower_is_better"] if g["teams"] else None)


# ---------------------------------------------------------------- mle-bench layout
def _mlebench_folder(tmp_path: Path, *, config: bool, lower_first: bool = False) -> Path:
    root = tmp_path / "tiny-comp"
    (root / "prepared" / "public").mkdir(parents=True)
    (root / "prepared" / "private").mkdir(parents=True)
    ids = [f"r{i}" for i in range(10)]
    truth = ["cat", "dog"] * 5
    pd.DataFrame({"id": ids, "label": ["cat"] * 10}).to_csv(
        root / "prepared/public/sample_submission.csv", index=False
    )
    pd.DataFrame({"id": ids, "label": truth}).to_csv(root / "prepared/private/test.csv", index=False)
    (root / "prepared/public/description.md").write_text(
        "## Evaluation\nSubmissions are scored on accuracy.\n"
    )
    lb = np.linspace(0.95, 0.40, 30)
    pd.DataFrame(
        {
            "scoreNullable": lb,
            "teamId": np.arange(30) + 100,
            "hasTeamName": True,
            "score": lb[::-1] if lower_first else lb,
        }
    ).to_csv(root / "leaderboard.csv", index=False)
    if config:
        (root / "config.yaml").write_text(
            "id: tiny-comp\nname: Tiny\ndataset:\n  answers: tiny-comp/prepared/private/test.csv\n"
            "  sample_submission: tiny-comp/prepared/public/sample_submission.csv\n\n"
            "grader:\n  name: accuracy\n  grade_fn: mlebench.competitions.tiny.grade:grade\n"
        )
    return root


@pytest.mark.parametrize("config", [True, False])
def test_mlebench_layout(tmp_path, config):
    root = _mlebench_folder(tmp_path, config=config)
    comp = load_competition(root)
    assert comp.layout == "mle-bench" and comp.metric == "accuracy"
    assert comp.direction_source == "leaderboard" and comp.lower_is_better is False
    assert comp.n_teams == 30 and comp.leaderboard_teams[0] == "100"
    sample = grade_submission(root / "prepared/public/sample_submission.csv", root)
    assert sample.valid_submission and sample.score == 0.5
    perfect = grade_submission(root / "prepared/private/test.csv", root)
    assert perfect.score == 1.0 and perfect.gold_medal and perfect.percentile == 100.0
    # 30 teams: gold = rank 3 (0.95 - 2 steps), bronze = rank 12
    assert perfect.gold_threshold == pytest.approx(np.linspace(0.95, 0.40, 30)[2])


def test_mlebench_one_hot_from_a_label_column(tmp_path):
    root = tmp_path / "probs"
    (root / "prepared" / "public").mkdir(parents=True)
    (root / "prepared" / "private").mkdir(parents=True)
    pd.DataFrame({"id": [1, 2, 3], "a": [1 / 3] * 3, "b": [1 / 3] * 3, "c": [1 / 3] * 3}).to_csv(
        root / "prepared/public/sample_submission.csv", index=False
    )
    pd.DataFrame({"id": [1, 2, 3], "label": ["a", "c", "b"]}).to_csv(
        root / "prepared/private/test.csv", index=False
    )
    (root / "grading.json").write_text(json.dumps({"metric": "log_loss", "target_columns": ["a", "b", "c"]}))
    pd.DataFrame({"id": [3, 1, 2], "a": [0, 1, 0], "b": [1, 0, 0], "c": [0, 0, 1]}).to_csv(
        tmp_path / "p.csv", index=False
    )
    assert grade_submission(tmp_path / "p.csv", root).score == 0.0
    uniform = grade_submission(root / "prepared/public/sample_submission.csv", root)
    assert uniform.score == round(np.log(3), 5) and uniform.n_teams == 0 and uniform.is_lower_better


def test_repeated_ids_match_in_order_of_appearance(tmp_path):
    root = tmp_path / "dups"
    (root / "public").mkdir(parents=True)
    (root / "private").mkdir()
    pd.DataFrame({"text": ["x", "x", "y"], "y": [0, 0, 0]}).to_csv(
        root / "public/sample_submission.csv", index=False
    )
    pd.DataFrame({"text": ["x", "x", "y"], "y": [1, 0, 1]}).to_csv(root / "private/answers.csv", index=False)
    (root / "grading.json").write_text(
        json.dumps({"metric": "accuracy", "id_column": "text", "target_columns": ["y"]})
    )
    pd.DataFrame({"text": ["y", "x", "x"], "y": [1, 1, 0]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"text": ["y", "x", "x"], "y": [1, 0, 1]}).to_csv(tmp_path / "b.csv", index=False)
    assert grade_submission(tmp_path / "a.csv", root).score == 1.0
    assert grade_submission(tmp_path / "b.csv", root).score == pytest.approx(round(1 / 3, 5))


# ---------------------------------------------------------------- the suite runner
SUITE = ["titanic", "detecting-insults-in-social-commentary", "playground-series-s3e26"]


def _fake_pipeline(fail_setup_seeds: set[int] = frozenset()):
    """Stands in for pipeline.run_competition: seed 0 submits the sample submission, seed 1 the answers
    (read from beside the public folder by this test, never by medalist), and writes stage records."""

    def fake(
        competition_dir,
        workdir,
        time_budget=300.0,
        llm="none",
        seed=0,
        setup_only=False,
        max_llm_tokens=None,
        max_cost=None,
    ):
        public = Path(competition_dir)
        assert public.name == "public"
        comp = load_competition(public.parent)
        ws = Path(workdir) / comp.slug
        (ws / "logs").mkdir(parents=True, exist_ok=True)
        records = [
            {"stage": "summarise", "attempt": 1, "ok": True, "error": None, "seconds": 0.1},
            {"stage": "metric", "attempt": 1, "ok": False, "error": "wrong metric", "seconds": 0.1},
            {
                "stage": "metric",
                "attempt": 2,
                "ok": seed not in fail_setup_seeds,
                "error": None,
                "seconds": 0.1,
            },
        ]
        with (ws / "logs" / "stages.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
        source = comp.sample_submission if seed == 0 else answers_as_submission(public.parent, ws)
        sub = None
        if not setup_only:
            sub = ws / "submission.csv"
            sub.write_bytes(Path(source).read_bytes())
        return pipeline.RunResult(slug=comp.slug, workspace=ws, submission=sub, seconds=1.5)

    return fake


def test_run_suite_grades_and_aggregates(competitions, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "run_competition", _fake_pipeline())
    out = tmp_path / "report.json"
    report = run_suite(competitions, tmp_path / "work", 60, only=SUITE, seeds=2, report_path=out)
    assert len(report.rows) == 6 and all(r.grade["valid_submission"] for r in report.rows)
    assert {r.modality for r in report.rows} == {"tabular", "text"}
    # expected numbers from grading each submission directly
    direct = {}
    for slug in SUITE:
        folder = competitions / slug
        (tmp_path / slug).mkdir()
        direct[(slug, 0)] = grade_submission(load_competition(folder).sample_submission, folder)
        direct[(slug, 1)] = grade_submission(answers_as_submission(folder, tmp_path / slug), folder)
    for r in report.rows:
        assert r.grade["score"] == direct[(r.competition, r.seed)].score
    ranked = [s for s in SUITE if direct[(s, 0)].n_teams > 0]
    medal = [100 * np.mean([bool(direct[(s, seed)].any_medal) for s in ranked]) for seed in (0, 1)]
    s = report.summary
    assert s["valid_pct"]["mean"] == 100.0
    assert s["any_medal_pct"]["mean"] == pytest.approx(np.mean(medal))
    assert s["any_medal_pct"]["sem"] == pytest.approx(np.std(medal, ddof=1) / np.sqrt(2))
    pcts = [np.median([direct[(x, seed)].percentile for x in ranked]) for seed in (0, 1)]
    assert s["median_percentile"]["mean"] == pytest.approx(np.mean(pcts))
    # Elo: the perfect seed rates above the sample seed
    per_seed = report.elo["per_seed"]
    assert per_seed["1"]["mu"] > per_seed["0"]["mu"] and per_seed["1"]["n_rounds"] == len(ranked)
    # setup: the "metric" stage passed on its second attempt in every run
    assert report.setup["pass_at_k"]["all"]["pass@1"] == 1.0
    assert {st["stage"]: st["mean_attempts"] for st in report.setup["stages"]} == {
        "summarise": 1.0,
        "metric": 2.0,
    }
    # the JSON report round-trips, the table renders every competition
    again = SuiteReport.load(out)
    assert [r.grade for r in again.rows] == [r.grade for r in report.rows]
    console = Console(record=True, width=200)
    console.print(format_table(report))
    text = console.export_text()
    assert all(slug in text for slug in SUITE) and "2/2" in text
    lines = summary_lines(report)
    assert lines[0].startswith("valid 100.0%") and any(line.startswith("Elo-MMR") for line in lines)


def test_run_suite_setup_only_reports_pass_at_k(competitions, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "run_competition", _fake_pipeline(fail_setup_seeds={1, 2}))
    report = run_suite(competitions, tmp_path / "work", 60, only=SUITE, seeds=3, setup_only=True)
    assert all(r.grade is None for r in report.rows)
    assert [r.setup_passed for r in report.rows[:3]] == [True, False, False]
    table = report.setup["pass_at_k"]
    assert table["tabular"]["pass@1"] == pytest.approx(pass_at_k(3, 1, 1))
    assert table["tabular"]["pass@3"] == 1.0 and table["all"]["pass@10"] is None  # 3 seeds < 10
    metric_stage = next(st for st in report.setup["stages"] if st["stage"] == "metric")
    assert metric_stage["attempted"] == 9 and metric_stage["passed"] == 3


def test_run_suite_keeps_going_when_a_run_crashes(competitions, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("pipeline exploded")

    monkeypatch.setattr(pipeline, "run_competition", boom)
    report = run_suite(competitions, tmp_path / "w", 10, only=["titanic", "spaceship-titanic"])
    assert [r.error for r in report.rows] == ["RuntimeError: pipeline exploded"] * 2
    assert all(not r.grade["submission_exists"] for r in report.rows)
    assert report.summary["valid_pct"]["mean"] == 0.0
    with pytest.raises(InputError, match="not in the suite"):
        run_suite(competitions, tmp_path / "w", 10, only=["no-such-competition"])


# ---------------------------------------------------------------- CLI
def test_cli_grade_json_and_errors(competitions, tmp_path):
    runner = CliRunner()
    folder = competitions / "titanic"
    res = runner.invoke(
        bench_cli.app,
        ["grade", str(folder / "public/gender_submission.csv"), "--competition", str(folder), "--json"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["valid_submission"] and data["competition_id"] == "titanic" and data["score"] == 0.76555
    for key in (
        "gold_threshold",
        "median_threshold",
        "any_medal",
        "above_median",
        "is_lower_better",
        "percentile",
    ):
        assert key in data
    res = runner.invoke(
        bench_cli.app, ["grade", str(folder / "public/gender_submission.csv"), "--competition", str(tmp_path)]
    )
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and res.stderr.count("\n") == 1
    assert "Traceback" not in res.output + res.stderr
    res = runner.invoke(bench_cli.app, ["grade", str(tmp_path / "none.csv"), "--competition", str(folder)])
    assert res.exit_code == 2 and "no submission file" in res.stderr


def test_cli_bench(competitions, tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "run_competition", _fake_pipeline())
    runner = CliRunner()
    args = [
        "bench",
        str(competitions),
        "--workdir",
        str(tmp_path / "w"),
        "--time-budget",
        "5",
        "--only",
        "titanic",
    ]
    res = runner.invoke(bench_cli.app, args)
    assert res.exit_code == 0, res.output + res.stderr
    assert "titanic" in res.stdout and "valid 100.0%" in res.stdout
    assert (tmp_path / "w" / "bench_report.json").is_file()
    res = runner.invoke(bench_cli.app, [*args[:-1], "nope"])
    assert res.exit_code == 2 and "not in the suite" in res.stderr
    res = runner.invoke(bench_cli.app, [*args, "--llm", "gpt"])
    assert res.exit_code == 2 and res.stderr.startswith("error: --llm")
