"""The sequential test, the chi-square survival function and the SRM check (apps/experiments/stats.py) against
known values and by simulation: A/A experiments looked at every few observations stay under 5 % false
positives, and a real difference is found."""
from __future__ import annotations

import math

import numpy as np
import pytest

from apps.experiments import stats


@pytest.mark.parametrize("x,df,p", [
    (3.841458820694124, 1, 0.05), (5.991464547107979, 2, 0.05), (7.814727903251178, 3, 0.05),
    (9.487729036781154, 4, 0.05), (11.070497693516351, 5, 0.05), (10.827566170662733, 1, 0.001),
    (13.815510557964274, 2, 0.001), (1.0, 1, 0.31731050786291415), (2.0, 3, 0.5724067044708798), (0.0, 2, 1.0),
])
def test_chi2_sf_known_values(x, df, p):
    assert stats.chi2_sf(x, df) == pytest.approx(p, rel=1e-9, abs=1e-12)


def _looks(rng, n_max, step, draw_a, draw_b):
    """Cumulative (n, mean, var) of both arms at every look."""
    a, b = draw_a(rng, n_max), draw_b(rng, n_max)
    out = []
    for n in range(step, n_max + 1, step):
        xa, xb = a[:n], b[:n]
        out.append((stats.Sample(n, float(xa.mean()), float(xa.var(ddof=1))),
                    stats.Sample(n, float(xb.mean()), float(xb.var(ddof=1)))))
    return out


def _rejects(rng, *, n_max, step, draw_a, draw_b, rate=False) -> bool:
    for sa, sb in _looks(rng, n_max, step, draw_a, draw_b):
        if rate:
            sa, sb = stats.rate_sample(round(sa.mean * sa.n), sa.n), stats.rate_sample(round(sb.mean * sb.n), sb.n)
        if stats.msprt(sa, sb)["p"] <= 0.05:
            return True
    return False


@pytest.mark.parametrize("p", [0.5, 0.1, 0.02])
def test_aa_false_positive_rate_with_peeking_binary(p):
    rng = np.random.default_rng(11)
    draw = lambda r, n: (r.random(n) < p).astype(float)  # noqa: E731
    sims = 300
    fp = sum(_rejects(rng, n_max=2000, step=20, draw_a=draw, draw_b=draw, rate=True) for _ in range(sims))
    assert fp / sims <= 0.05, fp / sims


def test_aa_false_positive_rate_with_peeking_skewed_continuous():
    rng = np.random.default_rng(12)
    draw = lambda r, n: r.lognormal(0, 1, n)  # noqa: E731  latency-like
    sims = 200
    fp = sum(_rejects(rng, n_max=2000, step=25, draw_a=draw, draw_b=draw) for _ in range(sims))
    assert fp / sims <= 0.05, fp / sims


def test_a_real_difference_is_found():
    rng = np.random.default_rng(13)
    sims = 100
    hits = sum(_rejects(rng, n_max=3000, step=50, draw_a=lambda r, n: (r.random(n) < 0.10).astype(float),
                        draw_b=lambda r, n: (r.random(n) < 0.15).astype(float), rate=True) for _ in range(sims))
    assert hits / sims >= 0.8, hits / sims


def test_msprt_shape():
    a, b = stats.rate_sample(100, 1000), stats.rate_sample(160, 1000)
    r = stats.msprt(a, b)
    assert r["ran"] and r["diff"] == pytest.approx(0.06) and r["p"] < 0.05
    assert r["ci_low"] > 0 and r["ci_low"] < 0.06 < r["ci_high"]
    same = stats.msprt(a, stats.rate_sample(100, 1000))
    assert same["p"] == 1.0 and same["ci_low"] < 0 < same["ci_high"]
    small = stats.msprt(stats.rate_sample(0, 10), stats.rate_sample(10, 10))  # too few to test
    assert not small["ran"] and small["p"] == 1.0
    zero = stats.msprt(stats.Sample(100, 0.0, 0.0), stats.Sample(100, 0.0, 0.0))  # no variance at all
    assert zero["p"] == 1.0 and math.isfinite(zero["ci_high"])


def test_srm():
    ok = stats.srm([5030, 4970], [50, 50])
    assert ok["ran"] and not ok["mismatch"] and ok["p"] > 0.5
    bad = stats.srm([5300, 4700], [50, 50])
    assert bad["mismatch"] and bad["p"] < 1e-6
    assert stats.srm([9050, 950], [90, 10])["mismatch"] is False
    assert stats.srm([3, 2], [1, 1])["ran"] is False  # too few units to say
    assert stats.srm([50, 10], [1, 0])["mismatch"] is True  # units in an arm of weight 0
