"""Elo-MMR (Ebtekar & Liu, WWW 2021): a Bayesian rating for contests with many ranked players.

Each round, for every player in it:

1. diffuse: the belief widens by a drift ``gamma`` per round (the paper's pseudodiffusion, Elo-MMR(rho):
   a share of the old performance factors' weight moves to the Gaussian prior factor, centred at the
   current rating);
2. performance: ``p_i`` is the zero of ``sum_{j ranked at or above i} (tanh((x-mu_j)/(2 d_j)) + 1)/d_j +
   sum_{j ranked at or below i} (tanh((x-mu_j)/(2 d_j)) - 1)/d_j`` with ``d_j = sqrt(3)/pi *
   sqrt(sigma_j^2 + beta^2)`` (logistic performances; a tie counts as a win plus a loss);
3. update: ``p_i`` joins the player's history as a logistic factor of weight ``1/beta^2``; the rating
   ``mu`` is the zero of ``w_0 (x - p_0) + sum_k w_k beta^2 / b * tanh((x - p_k) / (2 b))``
   (``b = sqrt(3)/pi * beta``) — a robust average of past performances — and ``1/sigma^2 = sum_k w_k``.

Only ranks are used. ``rate_against_leaderboards`` plays one round per competition: the leaderboard's
teams plus medalist, inserted at its rank. Which assumptions that needs is returned with the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from medalist.metrics import Direction

_LOGISTIC = math.sqrt(3.0) / math.pi  # logistic scale per unit of standard deviation
_BISECT_STEPS = 64
_CHUNK = 2_000_000  # matrix cells evaluated at once when solving performances


@dataclass(frozen=True)
class EloParams:
    """Rating scale and noise. ``sigma_limit`` is the uncertainty a player who plays every round settles
    at; it fixes the drift per round ``gamma`` (with ``beta``)."""

    mu_init: float = 1500.0
    sigma_init: float = 350.0
    beta: float = 400.0
    sigma_limit: float = 80.0
    rho: float = 1.0

    @property
    def gamma(self) -> float:
        """Drift per round whose fixed point of diffuse-then-update is ``sigma_limit``."""
        inv = 1.0 / self.sigma_limit**2 - 1.0 / self.beta**2
        if inv <= 0:
            return 0.0
        return math.sqrt(max(1.0 / inv - self.sigma_limit**2, 0.0))


@dataclass
class Player:
    """A player's belief: Gaussian prior factor (p[0], w[0]) and one logistic factor per round played."""

    mu: float
    sigma: float
    p: list[float] = field(default_factory=list)
    w: list[float] = field(default_factory=list)
    n_rounds: int = 0
    performances: list[float] = field(default_factory=list)


class EloMMR:
    """Elo-MMR(rho) with logistic performances. Players are created at their first round."""

    def __init__(self, params: EloParams | None = None) -> None:
        self.params = params or EloParams()
        self.players: dict[str, Player] = {}

    def round(self, ranks: Mapping[str, float]) -> dict[str, float]:
        """Play one round; ``ranks`` maps player -> place (lower is better, equal places are ties).
        Returns each player's performance in the round."""
        if len(ranks) < 2:
            raise ValueError("a round needs at least two players")
        prm = self.params
        names = list(ranks)
        for name in names:
            if name not in self.players:
                self.players[name] = Player(
                    prm.mu_init, prm.sigma_init, [prm.mu_init], [1 / prm.sigma_init**2]
                )
            self._diffuse(self.players[name])
        mu = np.array([self.players[n].mu for n in names])
        sig = np.array([self.players[n].sigma for n in names])
        place = np.asarray([float(ranks[n]) for n in names])
        perf = performances(mu, np.sqrt(sig**2 + prm.beta**2), place)
        for name, p in zip(names, perf):
            pl = self.players[name]
            pl.p.append(float(p))
            pl.w.append(1.0 / prm.beta**2)
            pl.performances.append(float(p))
            pl.n_rounds += 1
        self._update([self.players[n] for n in names])
        return dict(zip(names, map(float, perf)))

    def _diffuse(self, pl: Player) -> None:
        gamma, rho = self.params.gamma, self.params.rho
        if gamma <= 0:
            return
        kappa = 1.0 / (1.0 + gamma**2 / pl.sigma**2)
        w_g = kappa**rho * pl.w[0]
        w_l = (1.0 - kappa**rho) * sum(pl.w)
        pl.p[0] = (w_g * pl.p[0] + w_l * pl.mu) / (w_g + w_l)
        pl.w[0] = kappa * (w_g + w_l)
        decay = kappa ** (1.0 + rho)
        pl.w[1:] = [w * decay for w in pl.w[1:]]
        pl.sigma /= math.sqrt(kappa)

    def _update(self, players: Sequence[Player]) -> None:
        """New rating of each player: the zero of the posterior's derivative, by vectorised bisection."""
        beta = self.params.beta
        b = _LOGISTIC * beta
        k = max(len(pl.p) for pl in players)
        p = np.zeros((len(players), k))
        w = np.zeros((len(players), k))
        for i, pl in enumerate(players):
            p[i, : len(pl.p)] = pl.p
            p[i, len(pl.p) :] = pl.p[0]
            w[i, : len(pl.w)] = pl.w
        mask = np.zeros_like(w, dtype=bool)
        for i, pl in enumerate(players):
            mask[i, : len(pl.p)] = True

        def deriv(x: np.ndarray) -> np.ndarray:
            prior = w[:, 0] * (x - p[:, 0])
            logistic = w[:, 1:] * beta**2 / b * np.tanh((x[:, None] - p[:, 1:]) / (2 * b))
            return prior + logistic.sum(axis=1)

        lo = np.where(mask, p, np.inf).min(axis=1)
        hi = np.where(mask, p, -np.inf).max(axis=1)
        x = _bisect(deriv, lo, hi)
        for i, pl in enumerate(players):
            pl.mu = float(x[i])
            pl.sigma = float(1.0 / math.sqrt(sum(pl.w)))


def performances(mu: np.ndarray, delta: np.ndarray, place: np.ndarray) -> np.ndarray:
    """Each player's performance from everyone's prior ``mu``, spread ``delta = sqrt(sigma^2 + beta^2)``
    and place (lower is better; ties equal). Players of equal (mu, delta) are counted together, so a field
    of newcomers costs O(distinct places) per step."""
    mu, delta, place = (np.asarray(a, dtype=float) for a in (mu, delta, place))
    pairs, group = np.unique(np.column_stack([mu, delta]), axis=0, return_inverse=True)
    group = group.ravel()
    g_mu, g_d = pairs[:, 0], _LOGISTIC * pairs[:, 1]
    levels, level_of = np.unique(place, return_inverse=True)
    # c_ge[u, g]: players of group g placed at or above level u; c_le: at or below
    counts = np.zeros((len(levels), len(pairs)))
    np.add.at(counts, (level_of.ravel(), group), 1.0)
    c_ge = np.cumsum(counts, axis=0)
    c_le = np.cumsum(counts[::-1], axis=0)[::-1]
    out = np.empty(len(levels))
    step = max(1, _CHUNK // max(1, len(pairs)))
    lo_all = g_mu.min() - 40 * g_d.max()
    hi_all = g_mu.max() + 40 * g_d.max()
    for start in range(0, len(levels), step):
        ge, le = c_ge[start : start + step], c_le[start : start + step]

        def q(x: np.ndarray, ge: np.ndarray = ge, le: np.ndarray = le) -> np.ndarray:
            t = np.tanh((x[:, None] - g_mu[None, :]) / (2 * g_d[None, :]))
            return (((ge + le) * t + ge - le) / g_d[None, :]).sum(axis=1)

        n = len(ge)
        out[start : start + n] = _bisect(q, np.full(n, lo_all), np.full(n, hi_all))
    return out[level_of.ravel()]


def _bisect(f, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Zeros of an increasing function, elementwise, with f(lo) <= 0 <= f(hi)."""
    lo, hi = lo.astype(float).copy(), hi.astype(float).copy()
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        pos = f(mid) > 0
        hi = np.where(pos, mid, hi)
        lo = np.where(pos, lo, mid)
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------- medalist against leaderboards
@dataclass(frozen=True)
class LeaderboardRound:
    """One competition as a round: the leaderboard's scores (any order), medalist's score (None when it
    has no valid submission) and, when the leaderboard has them, team ids aligned with ``scores``."""

    slug: str
    scores: Sequence[float]
    lower_is_better: bool
    score: float | None
    teams: Sequence[str] | None = None


@dataclass
class EloReport:
    """Medalist's Elo-MMR rating after the rounds, and how it compares with the human teams."""

    mu: float
    sigma: float
    rating: float  # conservative display rating: mu - 2 sigma
    n_rounds: int
    percentile: float | None  # % of the compared humans strictly below medalist's mu
    percentile_basis: str
    n_compared: int
    rounds: list[dict] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


ME = "medalist"


def _places(scores: np.ndarray, mine: float | None, lower_is_better: bool) -> tuple[np.ndarray, float]:
    """Competition places (1 + number strictly better; ties share) of the teams and of medalist."""
    direction = Direction(lower_is_better)
    s = direction.sort_key(scores)  # ascending best first
    order = np.sort(s)
    team_place = np.searchsorted(order, s, side="left") + 1.0
    if mine is None or not np.isfinite(mine):
        return team_place, float(len(s) + 1)
    m = direction.sort_key(mine)
    my_place = float(np.searchsorted(order, m, side="left") + 1)
    team_place = team_place + (s > m)  # medalist is strictly ahead of these teams
    return team_place, my_place


def rate_against_leaderboards(
    rounds: Sequence[LeaderboardRound], params: EloParams | None = None, min_rounds: int = 3
) -> EloReport:
    """Rate medalist by Elo-MMR, one round per competition, from ranks only (see module doc)."""
    prm = params or EloParams()
    system = EloMMR(prm)
    with_teams = any(r.teams is not None for r in rounds)
    played: list[dict] = []
    human_perf: list[float] = []
    skipped: list[str] = []
    for rnd in rounds:
        scores = np.asarray(rnd.scores, dtype=float)
        keep = np.isfinite(scores)
        scores = scores[keep]
        if len(scores) == 0:
            skipped.append(rnd.slug)
            continue
        if rnd.teams is not None:
            teams = [t for t, k in zip(rnd.teams, keep) if k]
            ids = _unique_ids([f"team:{t}" for t in teams])
        else:
            ids = [f"{rnd.slug}#{i + 1}" for i in range(len(scores))]
        team_place, my_place = _places(scores, rnd.score, rnd.lower_is_better)
        ranks = dict(zip(ids, team_place.tolist()))
        ranks[ME] = my_place
        perf = system.round(ranks)
        humans = np.array([perf[i] for i in ids])
        human_perf.extend(humans.tolist())
        played.append(
            {
                "competition": rnd.slug,
                "n_teams": len(scores),
                "place": my_place,
                "valid": rnd.score is not None,
                "performance": round(perf[ME], 2),
                "performance_percentile": round(100.0 * float(np.mean(humans < perf[ME])), 4),
                "mu_after": round(system.players[ME].mu, 2),
            }
        )
    assumptions = [
        "one round per competition, ranks only; medalist is one extra player at 1 + the number of teams "
        "with a strictly better score (equal scores tie)",
        "a competition without a valid medalist submission ranks medalist below every team",
        f"Elo-MMR(rho={prm.rho}) with logistic performances; mu0={prm.mu_init}, sigma0={prm.sigma_init}, "
        f"beta={prm.beta}, drift gamma={prm.gamma:.2f} per round (sigma settles at {prm.sigma_limit})",
    ]
    if skipped:
        assumptions.append(f"skipped (empty leaderboard): {', '.join(skipped)}")
    if ME not in system.players:
        return EloReport(
            prm.mu_init,
            prm.sigma_init,
            prm.mu_init - 2 * prm.sigma_init,
            0,
            None,
            "no rounds",
            0,
            played,
            assumptions,
            asdict(prm),
        )
    me = system.players[ME]
    percentile, basis, n_compared = None, "", 0
    if with_teams:
        pool = [
            pl.mu
            for name, pl in system.players.items()
            if name.startswith("team:") and pl.n_rounds >= min_rounds
        ]
        if pool:
            arr = np.array(pool)
            percentile, n_compared = 100.0 * float(np.mean(arr < me.mu)), len(arr)
            basis = f"teams with at least {min_rounds} competitions, by mu"
        assumptions.append(
            "leaderboards carry team ids: a team is the same player in every competition it is in"
        )
    if percentile is None and human_perf:
        arr = np.array(human_perf)
        percentile, n_compared = 100.0 * float(np.mean(arr < me.mu)), len(arr)
        basis = "all human performances (one per team per competition), against medalist's mu"
        if not with_teams:
            assumptions.append(
                "leaderboards have no team ids: every leaderboard position is a distinct player who plays one "
                "round, so no human has a multi-round rating; medalist's mu is compared with the pooled "
                "one-round performances of all teams instead"
            )
        else:
            assumptions.append(
                f"no team played {min_rounds}+ competitions: compared with pooled performances"
            )
    return EloReport(
        mu=round(me.mu, 2),
        sigma=round(me.sigma, 2),
        rating=round(me.mu - 2 * me.sigma, 2),
        n_rounds=me.n_rounds,
        percentile=None if percentile is None else round(percentile, 4),
        percentile_basis=basis,
        n_compared=n_compared,
        rounds=played,
        assumptions=assumptions,
        params={**asdict(prm), "gamma": prm.gamma},
    )


def _unique_ids(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        n = seen.get(i, 0)
        seen[i] = n + 1
        out.append(i if n == 0 else f"{i}~{n}")
    return out
