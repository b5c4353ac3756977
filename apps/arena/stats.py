"""The arena's statistics, pure functions (numpy; no Django):

- `wilson(k, n)`: the Wilson score interval of a binomial proportion k/n (95 % by default); (None, None) for
  n = 0. Used for a pair's win rate, where ties and "both bad" votes are left out (n = decisive votes).
- `bradley_terry(n, games, prior=)`: Bradley–Terry strengths (maximum likelihood: Newton's method; with
  prior=0 Hunter's MM algorithm, 2004) from
  games `(i, j, result)` (result 1: i won, 0: j won, 0.5: a tie, each side half a win). `prior` adds that many
  virtual wins and as many virtual losses against a reference player of strength 1 for every player, which
  keeps an unbeaten or winless player's strength finite (0: the plain maximum-likelihood fit). Scores are on
  the Elo scale: 1000 + 400·log10(strength), centred so the mean score is 1000; then P(i beats j) =
  1 / (1 + 10^((s_j − s_i) / 400)). A player with no game gets None.
- `bootstrap_bt(n, games, rounds=, seed=)`: percentile intervals (2.5 %, 97.5 %) of each score over `rounds`
  resamples of the games with replacement (seeded: the same votes give the same interval).
- `cohen_kappa(pairs)`: Cohen's κ of two raters over the same items (None when chance agreement is 1).
- `plurality(counts)`: the outcome with strictly more votes than any other, or None.
"""
from __future__ import annotations

import math
from collections import Counter
from statistics import NormalDist
from typing import Iterable, Sequence

import numpy as np

Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054
ELO_BASE, ELO_SCALE = 1000.0, 400.0


def wilson(k: int, n: int, *, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of k successes in n trials."""
    if n <= 0:
        return None, None
    if not 0 <= k <= n:
        raise ValueError("k must be between 0 and n")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def _wins_matrix(n: int, games: np.ndarray) -> np.ndarray:
    """wins[i, j]: the (fractional) wins of i over j."""
    wins = np.zeros((n, n))
    if len(games):
        i, j, r = games[:, 0].astype(int), games[:, 1].astype(int), games[:, 2]
        np.add.at(wins, (i, j), r)
        np.add.at(wins, (j, i), 1.0 - r)
    return wins


def _fit_mm(wins: np.ndarray, *, iters: int = 10000, tol: float = 1e-12) -> np.ndarray:
    """prior = 0: natural-log strengths by Hunter's MM iteration (a winless player goes to -inf)."""
    n = wins.shape[0]
    games = wins + wins.T
    w = wins.sum(axis=1)
    p = np.ones(n)
    for _ in range(iters):
        pair = p[:, None] + p[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = np.where(pair > 0, games / np.where(pair > 0, pair, 1.0), 0.0).sum(axis=1)
            new = np.where(denom > 0, w / np.where(denom > 0, denom, 1.0), 0.0)
        alive = new > 0
        if alive.any():  # the scale is free: fix the geometric mean of the players who won something
            new = new / math.exp(np.log(new[alive]).mean())
        done = np.allclose(new, p, rtol=tol, atol=0)
        p = new
        if done:
            break
    with np.errstate(divide="ignore"):
        return np.log(p)


def _fit_newton(wins: np.ndarray, prior: float, *, iters: int = 50, tol: float = 1e-9) -> np.ndarray:
    """prior > 0: natural-log strengths of a batch of win matrices (B, n, n) by Newton's method on the
    (strictly concave) log-likelihood with the virtual games against the reference player (theta = 0)."""
    b, n, _ = wins.shape
    games = wins + np.transpose(wins, (0, 2, 1))
    w = wins.sum(axis=2) + prior
    theta = np.zeros((b, n))
    eye = np.eye(n)[None]
    for _ in range(iters):
        pi = 1.0 / (1.0 + np.exp(theta[:, None, :] - theta[:, :, None]))  # P(i beats j)
        sig = 1.0 / (1.0 + np.exp(-theta))  # P(i beats the reference)
        grad = w - (games * pi).sum(axis=2) - 2.0 * prior * sig
        curv = games * pi * (1.0 - pi)
        hess = curv - eye * (curv.sum(axis=2) + 2.0 * prior * sig * (1.0 - sig))[:, :, None]
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        step = np.clip(step, -2.0, 2.0)  # damped: never more than a factor e^2 per iteration
        theta = theta - step
        if np.abs(step).max() < tol:
            break
    return theta


def _fit(wins: np.ndarray, prior: float) -> np.ndarray:
    """log10 strengths (NaN for a player with no game) of one win matrix (n, n) or a batch (B, n, n)."""
    batch = wins if wins.ndim == 3 else wins[None]
    if prior > 0:
        logs = _fit_newton(batch, prior) / math.log(10)
    else:
        logs = np.stack([_fit_mm(m) for m in batch]) / math.log(10)
    played = (batch + np.transpose(batch, (0, 2, 1))).sum(axis=2) > 0
    logs[~played] = np.nan
    return logs if wins.ndim == 3 else logs[0]


def _scores(logs: np.ndarray) -> np.ndarray:
    """Elo-scale scores from log10 strengths (one vector, or one per row), centred on ELO_BASE."""
    out = np.full(logs.shape, np.nan)
    for row_in, row_out in zip(np.atleast_2d(logs), np.atleast_2d(out)):
        finite = np.isfinite(row_in)
        if finite.any():
            row_out[finite] = ELO_BASE + ELO_SCALE * (row_in[finite] - row_in[finite].mean())
    return out


def _as_games(games: Iterable[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(list(games), dtype=float)
    return arr.reshape(-1, 3) if arr.size else np.zeros((0, 3))


def bradley_terry(n: int, games: Iterable[Sequence[float]], *, prior: float = 1.0) -> list[float | None]:
    """Elo-scale Bradley–Terry scores of players 0..n-1 (None: no game)."""
    scores = _scores(_fit(_wins_matrix(n, _as_games(games)), prior))
    return [float(s) if math.isfinite(s) else None for s in scores]


def win_probability(score_i: float, score_j: float) -> float:
    return 1.0 / (1.0 + 10 ** ((score_j - score_i) / ELO_SCALE))


def bootstrap_bt(n: int, games: Iterable[Sequence[float]], *, prior: float = 1.0, rounds: int = 200,
                 seed: int = 0, level: float = 0.95) -> list[tuple[float | None, float | None]]:
    """(low, high) percentile interval of each player's score over `rounds` resamples of the games."""
    arr = _as_games(games)
    if not len(arr):
        return [(None, None)] * n
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(arr), size=(rounds, len(arr)))
    batch = np.stack([_wins_matrix(n, arr[pick]) for pick in picks])
    samples = _scores(_fit(batch, prior))
    tail = (1.0 - level) / 2 * 100
    out = []
    for k in range(n):
        col = samples[:, k]
        col = col[np.isfinite(col)]
        if len(col) < max(10, rounds // 2):  # the player is missing from most resamples: no honest interval
            out.append((None, None))
        else:
            out.append((float(np.percentile(col, tail)), float(np.percentile(col, 100 - tail))))
    return out


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's κ of two raters' labels on the same items."""
    pairs = list(pairs)
    n = len(pairs)
    if not n:
        return None
    observed = sum(1 for x, y in pairs if x == y) / n
    first, second = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    expected = sum(first[c] * second[c] for c in set(first) | set(second)) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def plurality(counts: dict[str, int]) -> str | None:
    """The key with strictly the most votes (None on a tie for first place or no votes)."""
    ranked = sorted(((v, k) for k, v in counts.items() if v > 0), reverse=True)
    if not ranked or (len(ranked) > 1 and ranked[0][0] == ranked[1][0]):
        return None
    return ranked[0][1]
