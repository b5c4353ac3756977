"""The numbers of an evaluation's result page, from its answers (pure functions over plain dicts).

- Per side (the version "a", the one compared with "b"): the mean total, per component the mean score over the
  answers it applied to (skipped ones left out; errors count as 0, as in the total), per category the mean of
  each answer's weighted category score (the components of that category it applied to).
- Comparison (a − b, over the tasks both answered): the mean paired difference of totals, components and
  categories, each with a percentile bootstrap 95 % interval (resampling tasks, 2000 draws, a fixed seed, so a
  page shows the same interval each time), and wins / ties / losses per task.
"""
from __future__ import annotations

import random
from statistics import fmean

from workers.engine.rewards import CATEGORIES, COMPONENTS

BOOTSTRAP_DRAWS = 2000
TIE_EPS = 1e-9


def bootstrap_ci(diffs: list[float], *, draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> tuple[float, float] | None:
    """95 % percentile interval of the mean of ``diffs`` (None for no data)."""
    if not diffs:
        return None
    if len(diffs) == 1:
        return diffs[0], diffs[0]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(fmean(rng.choices(diffs, k=n)) for _ in range(draws))
    return means[int(0.025 * draws)], means[min(draws - 1, int(0.975 * draws))]


def category_scores(components: dict) -> dict[str, float]:
    """One answer's weighted score per category (components not skipped)."""
    num: dict[str, float] = {}
    den: dict[str, float] = {}
    for name, c in components.items():
        if c.get("skipped"):
            continue
        cat = COMPONENTS[name].category if name in COMPONENTS else "custom"
        w = float(c.get("weight") or 0)
        num[cat] = num.get(cat, 0.0) + w * float(c.get("score") or 0)
        den[cat] = den.get(cat, 0.0) + w
    return {cat: num[cat] / den[cat] for cat in num if den[cat] > 0}


def _label(name: str) -> str:
    return COMPONENTS[name].label if name in COMPONENTS else name


def side_summary(answers: list[dict], weights: dict) -> dict:
    """answers: [{"total", "components", "error"}] of one side."""
    scored = [a for a in answers if a.get("total") is not None]
    comps = {}
    for name, w in weights.items():
        if not w:
            continue
        vals = [a["components"][name]["score"] for a in scored
                if name in a["components"] and not a["components"][name].get("skipped")]
        errs = sum(1 for a in scored if (a["components"].get(name) or {}).get("error"))
        comps[name] = {"label": _label(name), "weight": w,
                       "category": COMPONENTS[name].category if name in COMPONENTS else "custom",
                       "mean": fmean(vals) if vals else None, "n": len(vals), "errors": errs,
                       "skipped": len(scored) - len(vals)}
    cats: dict[str, list[float]] = {}
    for a in scored:
        for cat, v in category_scores(a["components"]).items():
            cats.setdefault(cat, []).append(v)
    categories = {cat: {"label": CATEGORIES.get(cat, cat), "mean": fmean(v), "n": len(v)}
                  for cat, v in sorted(cats.items(), key=lambda kv: list(CATEGORIES).index(kv[0])
                                       if kv[0] in CATEGORIES else 99)}
    return {"n": len(scored), "failed": len(answers) - len(scored),
            "total": fmean(a["total"] for a in scored) if scored else None,
            "components": comps, "categories": categories}


def _paired(diffs: list[float]) -> dict:
    ci = bootstrap_ci(diffs)
    return {"diff": fmean(diffs) if diffs else None, "low": ci[0] if ci else None, "high": ci[1] if ci else None,
            "n": len(diffs)}


def comparison(pairs: list[tuple[dict, dict]], weights: dict) -> dict:
    """pairs: [(answer a, answer b)] of the tasks both sides answered (scored)."""
    totals = [a["total"] - b["total"] for a, b in pairs]
    out = {"total": {**_paired(totals), "wins": sum(1 for d in totals if d > TIE_EPS),
                     "losses": sum(1 for d in totals if d < -TIE_EPS),
                     "ties": sum(1 for d in totals if abs(d) <= TIE_EPS)},
           "components": {}, "categories": {}}
    for name, w in weights.items():
        if not w:
            continue
        d = [a["components"][name]["score"] - b["components"][name]["score"] for a, b in pairs
             if name in a["components"] and name in b["components"]
             and not a["components"][name].get("skipped") and not b["components"][name].get("skipped")]
        out["components"][name] = {"label": _label(name), **_paired(d)}
    cat_diffs: dict[str, list[float]] = {}
    for a, b in pairs:
        ca, cb = category_scores(a["components"]), category_scores(b["components"])
        for cat in ca.keys() & cb.keys():
            cat_diffs.setdefault(cat, []).append(ca[cat] - cb[cat])
    out["categories"] = {cat: {"label": CATEGORIES.get(cat, cat), **_paired(d)} for cat, d in cat_diffs.items()}
    return out


def summarize(rows: list[dict], weights: dict, *, compare: bool) -> dict:
    """rows: [{"task_id", "side", "total", "components", "error"}]."""
    by_side: dict[str, list[dict]] = {"a": [], "b": []}
    by_task: dict[int, dict[str, dict]] = {}
    for r in rows:
        by_side.setdefault(r["side"], []).append(r)
        by_task.setdefault(r["task_id"], {})[r["side"]] = r
    out = {"sides": {"a": side_summary(by_side["a"], weights)}, "weights": weights}
    if compare:
        out["sides"]["b"] = side_summary(by_side["b"], weights)
        pairs = [(t["a"], t["b"]) for t in by_task.values() if "a" in t and "b" in t
                 and t["a"].get("total") is not None and t["b"].get("total") is not None]
        out["comparison"] = comparison(pairs, weights)
    return out
