"""apps/arena/stats.py against known values: Wilson intervals (published values), Bradley–Terry (the exact
two-player solution; a synthetic tournament with a known order), bootstrap intervals, Cohen's κ."""
from __future__ import annotations

import math

import numpy as np
import pytest

from apps.arena import stats


@pytest.mark.parametrize("k,n,low,high", [
    (8, 10, 0.4902, 0.9433),   # Wilson (1927) / Newcombe (1998) table values
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (50, 100, 0.4038, 0.5962),
    (1, 2, 0.0945, 0.9055),
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998), example (h)
])
def test_wilson_known_values(k, n, low, high):
    lo, hi = stats.wilson(k, n)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


def test_wilson_edges():
    assert stats.wilson(0, 0) == (None, None)
    lo, hi = stats.wilson(3, 7, z=1.0)  # a 68 % interval is narrower than the 95 % one
    lo95, hi95 = stats.wilson(3, 7)
    assert lo95 < lo < 3 / 7 < hi < hi95
    with pytest.raises(ValueError):
        stats.wilson(4, 3)


def test_bradley_terry_two_players_exact():
    # 3 wins to 1: the maximum-likelihood strengths are in ratio 3, i.e. 400·log10(3) = 190.85 Elo points apart
    a, b = stats.bradley_terry(2, [(0, 1, 1)] * 3 + [(0, 1, 0)], prior=0)
    assert a - b == pytest.approx(400 * math.log10(3), abs=1e-6)
    assert (a + b) / 2 == pytest.approx(1000.0)
    assert stats.win_probability(a, b) == pytest.approx(0.75, abs=1e-9)
    # ties count half a win each: 2 wins, 2 ties, 0 losses = 3 to 1 again
    a2, b2 = stats.bradley_terry(2, [(0, 1, 1)] * 2 + [(0, 1, 0.5)] * 2, prior=0)
    assert a2 - b2 == pytest.approx(a - b, abs=1e-6)


def test_bradley_terry_three_players_exact():
    # a cycle with equal records: every player is as strong as the others
    games = [(0, 1, 1), (1, 2, 1), (2, 0, 1)] * 4
    scores = stats.bradley_terry(3, games, prior=0)
    assert scores == pytest.approx([1000.0] * 3, abs=1e-6)
    # the prior only shrinks towards the mean; it never changes a symmetric result
    assert stats.bradley_terry(3, games) == pytest.approx([1000.0] * 3, abs=1e-6)


def _tournament(strengths, games, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(games):
        i, j = rng.choice(len(strengths), 2, replace=False)
        p = strengths[i] / (strengths[i] + strengths[j])
        out.append((int(i), int(j), 1.0 if rng.random() < p else 0.0))
    return out


def test_bradley_terry_recovers_a_known_order():
    strengths = [8.0, 4.0, 2.0, 1.0, 0.5]  # a known order, each twice as strong as the next (120 Elo points)
    games = _tournament(strengths, 4000, seed=7)
    scores = stats.bradley_terry(5, games)
    assert scores == sorted(scores, reverse=True)
    true = [400 * math.log10(s) for s in strengths]
    true = [t - sum(true) / len(true) + 1000 for t in true]
    for got, want in zip(scores, true):
        assert got == pytest.approx(want, abs=25)
    intervals = stats.bootstrap_bt(5, games, rounds=200, seed=3)
    for (lo, hi), got, want in zip(intervals, scores, true):
        assert lo < got < hi
        assert lo - 10 < want < hi + 10
        assert hi - lo < 80
    # non-overlapping neighbours: the order is told apart with confidence
    assert all(intervals[k][0] > intervals[k + 1][1] for k in range(4))


def test_bootstrap_is_reproducible_and_widens_with_fewer_games():
    games = _tournament([3.0, 1.0, 1.0], 300, seed=1)
    a = stats.bootstrap_bt(3, games, seed=5)
    assert a == stats.bootstrap_bt(3, games, seed=5)
    few = stats.bootstrap_bt(3, games[:40], seed=5)
    assert (few[0][1] - few[0][0]) > (a[0][1] - a[0][0])


def test_player_without_games_has_no_score():
    scores = stats.bradley_terry(3, [(0, 1, 1), (0, 1, 0), (0, 1, 1)])
    assert scores[2] is None and scores[0] > scores[1]
    assert stats.bootstrap_bt(3, [(0, 1, 1)] * 5)[2] == (None, None)
    assert stats.bradley_terry(2, []) == [None, None]


def test_unbeaten_player_stays_finite_with_the_prior():
    scores = stats.bradley_terry(2, [(0, 1, 1)] * 20)
    assert all(math.isfinite(s) for s in scores) and scores[0] > scores[1]


def test_cohen_kappa_known_value():
    # the textbook 2×2 table: 20 yes-yes, 5 yes-no, 10 no-yes, 15 no-no -> p_o 0.7, p_e 0.5, κ 0.4
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert stats.cohen_kappa(pairs) == pytest.approx(0.4)
    assert stats.cohen_kappa([("a", "a")] * 3) is None  # no variation: chance agreement is 1
    assert stats.cohen_kappa([]) is None


def test_plurality():
    assert stats.plurality({"a": 2, "b": 1}) == "a"
    assert stats.plurality({"a": 1, "tie": 1}) is None
    assert stats.plurality({"b": 1}) == "b"
    assert stats.plurality({}) is None
