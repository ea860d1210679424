"""Pass@k against its closed form and brute force; stage success; Elo-MMR sanity and closed-form checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from medalist.bench.elo import (
    EloMMR,
    EloParams,
    LeaderboardRound,
    performances,
    rate_against_leaderboards,
)
from medalist.bench.passk import (
    pass_at_k,
    pass_at_k_exact,
    pass_at_k_table,
    setup_passed,
    stage_outcomes,
    stage_success_rates,
)


# ---------------------------------------------------------------- Pass@k
def test_pass_at_k_hand_case():
    # 5 seeds, 2 passed: pass@1 = 2/5; pass@3 = 1 - C(3,3)/C(5,3) = 1 - 1/10
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)
    assert pass_at_k(5, 2, 4) == 1.0  # every 4-subset holds a pass
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(10, 10, 10) == 1.0


@pytest.mark.parametrize("outcomes", [[1, 0, 0, 1, 0], [0, 0, 0, 0, 1, 0, 0], [1, 1, 0, 1, 1, 0, 0, 1, 0, 0]])
def test_pass_at_k_equals_brute_force_over_k_subsets(outcomes):
    n, c = len(outcomes), sum(outcomes)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(outcomes, k))
        brute = sum(any(s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)
        assert pass_at_k_exact(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    for n, c, k in [(10_000, 5_000, 10), (2_000, 3, 10), (500, 499, 3)]:
        assert pass_at_k(n, c, k) == pytest.approx(pass_at_k_exact(n, c, k), rel=1e-9)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 10)  # pass@10 needs 10 seeds
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


# ---------------------------------------------------------------- stage records
RUN_A = [
    {"stage": "summarise", "attempt": 1, "ok": True},
    {"stage": "metric", "attempt": 1, "ok": False, "error": "no metric"},
    {"stage": "metric", "attempt": 2, "ok": True},
    {"stage": "formatter", "attempt": 1, "ok": True},
]
RUN_B = [
    {"stage": "summarise", "attempt": 1, "ok": True},
    {"stage": "metric", "attempt": 1, "ok": True},
    {"stage": "metric", "attempt": 2, "ok": False, "error": "rolled back and failed"},
]


def test_a_stage_passes_when_its_last_attempt_is_ok():
    assert stage_outcomes(RUN_A) == {"summarise": True, "metric": True, "formatter": True}
    assert stage_outcomes(RUN_B) == {"summarise": True, "metric": False}
    assert setup_passed(RUN_A) and not setup_passed(RUN_B) and not setup_passed([])
    # the attempt number decides, not the line order
    assert stage_outcomes(list(reversed(RUN_A)))["metric"] is True


def test_stage_success_rates():
    rates = {r.stage: r for r in stage_success_rates([RUN_A, RUN_B, RUN_A])}
    assert list(rates) == ["summarise", "metric", "formatter"]
    assert (rates["metric"].attempted, rates["metric"].passed) == (3, 2)
    assert rates["metric"].rate == pytest.approx(2 / 3) and rates["metric"].mean_attempts == 2.0
    assert (rates["formatter"].attempted, rates["formatter"].rate) == (2, 1.0)


def test_pass_at_k_table_by_modality():
    successes = {"a": [True, False, False], "b": [False, False, False], "c": [True, True, False]}
    groups = {"a": "tabular", "b": "tabular", "c": "text"}
    table = pass_at_k_table(successes, groups, ks=(1, 3, 10))
    assert table["tabular"]["pass@1"] == pytest.approx((1 / 3 + 0) / 2)
    assert table["tabular"]["pass@3"] == pytest.approx(0.5)
    assert table["text"]["pass@1"] == pytest.approx(2 / 3)
    assert table["all"]["tasks"] == 3 and table["all"]["pass@10"] is None


# ---------------------------------------------------------------- Elo-MMR
def test_winner_rises_loser_falls_symmetrically():
    elo = EloMMR()
    elo.round({"a": 1, "b": 2, "c": 3})
    a, b, c = (elo.players[x] for x in "abc")
    assert a.mu > b.mu > c.mu
    assert b.mu == pytest.approx(1500.0, abs=1e-6)  # the middle of a symmetric field does not move
    assert a.mu - 1500 == pytest.approx(1500 - c.mu, abs=1e-6)
    assert a.sigma == b.sigma == c.sigma < 350.0  # one round of evidence narrows the belief
    elo2 = EloMMR()
    elo2.round({"x": 1, "y": 2})
    assert elo2.players["x"].mu - 1500 == pytest.approx(1500 - elo2.players["y"].mu, abs=1e-6)


def test_ties_share_a_rating():
    elo = EloMMR()
    elo.round({"a": 1, "b": 2, "c": 2, "d": 4})
    assert elo.players["b"].mu == pytest.approx(elo.players["c"].mu, abs=1e-9)
    assert elo.players["a"].mu > elo.players["b"].mu > elo.players["d"].mu


def test_newcomer_performances_match_the_closed_form():
    # equal priors: sum_j (tanh(z)+1)[j at/above] + (tanh(z)-1)[j at/below] = 0 gives
    # tanh(z) = (n_le - n_ge) / (n_le + n_ge), p = mu + 2 d atanh(.)
    n, mu, sigma, beta = 40, 1500.0, 350.0, 400.0
    delta = math.sqrt(sigma**2 + beta**2)
    d = math.sqrt(3) / math.pi * delta
    place = np.arange(1, n + 1, dtype=float)
    perf = performances(np.full(n, mu), np.full(n, delta), place)
    n_ge, n_le = place, n - place + 1
    expected = mu + 2 * d * np.arctanh((n_le - n_ge) / (n_le + n_ge))
    assert np.allclose(perf, expected, atol=1e-6)
    assert np.all(np.diff(perf) < 0)  # monotone in rank


def test_rating_update_solves_the_papers_equation():
    prm = EloParams()
    elo = EloMMR(prm)
    perf = elo.round({f"p{i}": i for i in range(1, 31)})
    b = math.sqrt(3) / math.pi * prm.beta
    w0 = 1 / (prm.sigma_init**2 + prm.gamma**2)  # the newcomer's prior after one diffusion

    def deriv(x: float, p: float) -> float:
        return w0 * (x - prm.mu_init) + (1 / b) * math.tanh((x - p) / (2 * b))

    for name in ("p1", "p7", "p30"):
        expected = brentq(deriv, -1e5, 1e5, args=(perf[name],), xtol=1e-10)
        assert elo.players[name].mu == pytest.approx(expected, abs=1e-6)
        assert elo.players[name].sigma == pytest.approx(1 / math.sqrt(w0 + 1 / prm.beta**2))


def test_one_round_moves_a_rating_by_a_bounded_amount():
    # robustness (the logistic factor's derivative is at most 1/b): |mu - mu0| <= sigma'^2 / b
    prm = EloParams()
    elo = EloMMR(prm)
    elo.round({f"p{i}": i for i in range(1, 3001)})
    bound = (prm.sigma_init**2 + prm.gamma**2) / (math.sqrt(3) / math.pi * prm.beta)
    assert 0 < elo.players["p1"].mu - prm.mu_init < bound
    assert 0 < prm.mu_init - elo.players["p3000"].mu < bound


def test_a_better_place_never_lowers_the_rating():
    # incentive compatibility: medalist's rating after the same rounds is monotone in its place
    rng = np.random.default_rng(0)
    boards = [rng.normal(size=60) for _ in range(3)]
    mus = []
    for q in (0.02, 0.2, 0.5, 0.8, 0.98):
        rounds = [
            LeaderboardRound(f"c{i}", s, False, float(np.quantile(s, 1 - q))) for i, s in enumerate(boards)
        ]
        mus.append(rate_against_leaderboards(rounds).mu)
    assert all(a > b for a, b in itertools.pairwise(mus))


def test_medalist_against_anonymous_leaderboards():
    rng = np.random.default_rng(1)
    boards = [np.sort(rng.random(200))[::-1] for _ in range(4)]  # higher is better

    def rate(pick):
        return rate_against_leaderboards(
            [LeaderboardRound(f"c{i}", s, False, pick(s)) for i, s in enumerate(boards)]
        )

    best = rate(lambda s: float(s.max()) + 1)
    middle = rate(lambda s: float(np.median(s)))
    worst = rate(lambda s: None)  # no valid submission: ranked below every team
    assert best.percentile > 95 and 35 < middle.percentile < 65 and worst.percentile < 5
    assert best.mu > middle.mu > worst.mu and best.n_rounds == 4
    assert [r["place"] for r in best.rounds] == [1.0] * 4 and [r["place"] for r in worst.rounds] == [
        201.0
    ] * 4
    assert "no team ids" in " ".join(best.assumptions) and best.percentile_basis.startswith("all human")
    assert best.rating == pytest.approx(best.mu - 2 * best.sigma, abs=0.02)


def test_medalist_ties_share_a_place_and_empty_rounds_are_skipped():
    rounds = [
        LeaderboardRound("c1", [0.9, 0.8, 0.8, 0.7], False, 0.8),
        LeaderboardRound("empty", [], True, 0.5),
    ]
    report = rate_against_leaderboards(rounds)
    assert report.rounds[0]["place"] == 2.0 and report.n_rounds == 1
    assert any("empty" in a for a in report.assumptions)


def test_team_ids_make_one_player_across_competitions():
    teams = [f"t{i}" for i in range(30)]
    rounds = [
        LeaderboardRound(
            f"c{k}", np.linspace(1.0, 0.1, 30), False, 1.5, teams
        )  # t0 best; medalist ahead of all
        for k in range(3)
    ]
    rounds.append(LeaderboardRound("c3", np.linspace(1.0, 0.1, 10), False, 1.5, teams[:10]))
    system_report = rate_against_leaderboards(rounds, min_rounds=3)
    assert system_report.percentile_basis == "teams with at least 3 competitions, by mu"
    assert system_report.n_compared == 30 and system_report.percentile == 100.0
    assert any("team ids" in a for a in system_report.assumptions)
    # with rounds of anonymous positions instead, nobody is compared by mu
    anon = rate_against_leaderboards([LeaderboardRound(r.slug, r.scores, False, r.score) for r in rounds])
    assert anon.percentile_basis.startswith("all human") and anon.n_compared == 30 * 3 + 10
