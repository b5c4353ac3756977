"""Statistics of online experiments that stay valid however often the results are looked at. Pure Python (math
only), no Django: used by the verdict (apps.experiments.verdict), the canary monitor and the tests.

Contract:
- `msprt(a, b, alpha=)` compares two arms' means (`Sample(n, mean, var)`) with the mixture sequential
  probability ratio test (Robbins' normal mixture; Johari, Pekelis & Walsh, "Always valid inference", 2017):
  the difference d = mean_b - mean_a is estimated with variance V = var_a/n_a + var_b/n_b, the mixing prior on
  d is N(0, tau^2) with tau = TAU_SD x the pooled standard deviation (an effect of a tenth of a standard
  deviation is what the test is tuned to find fastest), and
      Lambda = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2))).
  The always-valid p-value is min(1, 1/Lambda); its running minimum over every look is still valid, so the
  monitor keeps that minimum (Experiment.stats) and a verdict never flips back. `ci_low`/`ci_high` are the
  always-valid (1 - alpha) confidence sequence for d at this look. Below MIN_N observations in either arm
  the test does not run (p = 1): plug-in variances of a handful of points are not to be trusted.
- `rate_sample(successes, n)` is a 0/1 metric as a Sample (variance p(1-p) with p smoothed by +0.5/+1, so an
  arm with no event yet still has a variance).
- `chi2_sf(x, df)` is the chi-square survival function (closed forms for integer df), `srm(counts, weights)`
  the sample-ratio-mismatch test: chi-square goodness of fit of the units each arm got against the weights;
  `mismatch` when p < SRM_ALPHA (0.001, the usual threshold: a real mismatch is rarely subtle).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

TAU_SD = 0.1
MIN_N = 30
ALPHA = 0.05
SRM_ALPHA = 0.001
SRM_MIN_UNITS = 20


@dataclass(frozen=True)
class Sample:
    n: int
    mean: float
    var: float


def rate_sample(successes: int, n: int) -> Sample:
    if n <= 0:
        return Sample(0, 0.0, 0.0)
    p = successes / n
    smoothed = (successes + 0.5) / (n + 1)
    return Sample(n, p, smoothed * (1 - smoothed))


def msprt(a: Sample, b: Sample, *, alpha: float = ALPHA, tau_sd: float = TAU_SD) -> dict:
    """{diff, p, ci_low, ci_high, lam, ran}: mean_b - mean_a with its always-valid p-value and interval."""
    diff = b.mean - a.mean
    if a.n < MIN_N or b.n < MIN_N:
        return {"diff": diff, "p": 1.0, "ci_low": None, "ci_high": None, "lam": 1.0, "ran": False}
    pooled = max((a.var + b.var) / 2, 1e-12)
    tau2 = (tau_sd * tau_sd) * pooled
    v = max(a.var / a.n + b.var / b.n, 1e-18)
    log_lam = 0.5 * math.log(v / (v + tau2)) + diff * diff * tau2 / (2 * v * (v + tau2))
    p = 1.0 if log_lam <= 0 else math.exp(-min(log_lam, 700.0))
    half = math.sqrt((2 * v * (v + tau2) / tau2) * (math.log(1 / alpha) + 0.5 * math.log((v + tau2) / v)))
    return {"diff": diff, "p": min(1.0, p), "ci_low": diff - half, "ci_high": diff + half,
            "lam": math.exp(min(log_lam, 700.0)), "ran": True}


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X ~ chi-square(df), integer df >= 1 (exact series)."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if x <= 0:
        return 1.0
    half = x / 2.0
    if df % 2 == 0:  # exp(-x/2) * sum_{i < df/2} (x/2)^i / i!
        term = total = 1.0
        for i in range(1, df // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    # odd: erfc(sqrt(x/2)) + exp(-x/2) * sum_{i=1}^{(df-1)/2} (x/2)^(i-1/2) / Gamma(i + 1/2)
    root = math.sqrt(half)
    total = math.erfc(root)
    term = root / math.gamma(1.5)
    for i in range(1, (df - 1) // 2 + 1):
        if i > 1:
            term *= half / (i - 0.5)
        total += math.exp(-half) * term
    return min(1.0, total)


def srm(counts: list[int], weights: list[float]) -> dict:
    """{chi2, p, mismatch, expected, ran}: do the units per arm match the weights? (arms of weight 0 that got no
    unit are left out; one that got units counts against an expectation of ~0)."""
    pairs = [(c, w) for c, w in zip(counts, weights) if w > 0 or c > 0]
    total, wsum = sum(c for c, _ in pairs), sum(w for _, w in pairs)
    expected = [total * w / wsum if wsum else 0.0 for _, w in pairs]
    if len(pairs) < 2 or total < SRM_MIN_UNITS or wsum <= 0:
        return {"chi2": None, "p": None, "mismatch": False, "expected": expected, "ran": False}
    if any(e <= 0 for e in expected):  # units in an arm that should get none
        return {"chi2": math.inf, "p": 0.0, "mismatch": True, "expected": expected, "ran": True}
    chi2 = sum((c - e) ** 2 / e for (c, _), e in zip(pairs, expected))
    p = chi2_sf(chi2, len(pairs) - 1)
    return {"chi2": chi2, "p": p, "mismatch": p < SRM_ALPHA, "expected": expected, "ran": True}
