"""Evaluation: grading against answers and a leaderboard, medals, Pass@k, Elo-MMR, the suite runner
(``medalist.bench.suite``) and the ``grade`` / ``bench`` commands (``medalist.bench.cli``)."""

from medalist.bench.elo import EloReport, LeaderboardRound, rate_against_leaderboards
from medalist.bench.grade import Competition, GradeReport, grade_submission, load_competition
from medalist.bench.medals import infer_lower_is_better, medal_thresholds, place_on_leaderboard
from medalist.bench.passk import pass_at_k, stage_success_rates

__all__ = [
    "Competition",
    "EloReport",
    "GradeReport",
    "LeaderboardRound",
    "grade_submission",
    "infer_lower_is_better",
    "load_competition",
    "medal_thresholds",
    "pass_at_k",
    "place_on_leaderboard",
    "rate_against_leaderboards",
    "stage_success_rates",
]
