"""Agreement between reviewers: Cohen's kappa per pair, Krippendorff's alpha overall, per-reviewer stats.

Pure functions (`cohen_kappa`, `alpha`) plus `task_agreement(task)` and `reviewer_stats(task)`, which read
a task's decisions in chunks into numpy arrays (reviewers x items, NaN where a reviewer gave no answer).

- Cohen's kappa (Cohen 1960): (p_o - p_e) / (1 - p_e) over the items both reviewers decided; None when it is
  undefined (no shared item, or p_e = 1: both always gave the same single answer).
- Krippendorff's alpha from the `krippendorff` package: nominal for accept/reject; interval and ordinal for
  the 1-5 rating when the task asks for one. None when undefined (fewer than two answers on every item, or
  a single value in the whole data).
- Agreement with the consensus: the share of a reviewer's decisions equal to the item's consensus — its
  final decision (agreed, adjudicated or bulk) or else the strict majority of its answers; items with no
  consensus (a tie, not yet adjudicated) are not counted.
- Median time per item: the median of `duration_ms` (lease to decision), in seconds."""
from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np

CODES = {"accept": 1.0, "reject": 0.0}


def cohen_kappa(a, b) -> float | None:
    """Cohen's kappa of two equal-length sequences of labels (None where either is missing is dropped)."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None
             and not (isinstance(x, float) and math.isnan(x)) and not (isinstance(y, float) and math.isnan(y))]
    n = len(pairs)
    if n == 0:
        return None
    po = sum(1 for x, y in pairs if x == y) / n
    ca, cb = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def alpha(matrix, level: str = "nominal", value_domain=None) -> float | None:
    """Krippendorff's alpha of a reviewers x items matrix (NaN = no answer); None when undefined."""
    import krippendorff

    data = np.asarray(matrix, dtype=float)
    if data.ndim != 2 or data.shape[0] < 2 or data.shape[1] == 0:
        return None
    pairable = np.sum(~np.isnan(data), axis=0) >= 2
    data = data[:, pairable]
    if data.shape[1] == 0:
        return None
    values = np.unique(data[~np.isnan(data)])
    if len(values) < 2:
        return None
    try:
        value = krippendorff.alpha(reliability_data=data, level_of_measurement=level,
                                   value_domain=value_domain if value_domain is not None else None)
    except (ValueError, ZeroDivisionError):
        return None
    return None if value is None or math.isnan(value) else float(value)


def _load(task):
    """(usernames, decisions matrix, ratings matrix, item ids, durations per reviewer, final per item)."""
    from apps.review.models import ReviewItem, ReviewResponse

    reviewers = list(task.assignments.select_related("user").order_by("user__username").values_list(
        "user_id", "user__username"))
    extra = (ReviewResponse.objects.filter(task_id=task.pk, status=ReviewResponse.Status.DONE)
             .exclude(reviewer_id__in=[r[0] for r in reviewers]).values_list("reviewer_id", "reviewer__username")
             .distinct())
    reviewers += sorted(set(extra), key=lambda r: r[1])
    row = {uid: i for i, (uid, _) in enumerate(reviewers)}
    # only items with at least one decision have a column
    item_ids = list(ReviewItem.objects.filter(task_id=task.pk, done__gt=0).order_by("pk").values_list("pk", flat=True))
    col = {pk: j for j, pk in enumerate(item_ids)}
    dec = np.full((len(reviewers), len(item_ids)), np.nan)
    rat = np.full((len(reviewers), len(item_ids)), np.nan)
    durations: dict[int, list[int]] = {i: [] for i in range(len(reviewers))}
    rows = (ReviewResponse.objects.filter(task_id=task.pk, status=ReviewResponse.Status.DONE)
            .values_list("reviewer_id", "item_id", "decision", "rating", "duration_ms"))
    for uid, item_id, decision, rating, duration in rows.iterator(chunk_size=5000):
        i, j = row.get(uid), col.get(item_id)
        if i is None or j is None:
            continue
        dec[i, j] = CODES.get(decision, np.nan)
        if rating is not None:
            rat[i, j] = rating
        if duration is not None:
            durations[i].append(duration)
    final = np.full(len(item_ids), np.nan)
    for pk, decision in ReviewItem.objects.filter(task_id=task.pk, done__gt=0).exclude(final_decision="") \
            .values_list("pk", "final_decision").iterator(chunk_size=5000):
        final[col[pk]] = CODES[decision]
    return [name for _, name in reviewers], dec, rat, item_ids, durations, final


def _consensus(dec: np.ndarray, final: np.ndarray) -> np.ndarray:
    accepts = np.nansum(dec == 1.0, axis=0)
    rejects = np.nansum(dec == 0.0, axis=0)
    majority = np.where(accepts > rejects, 1.0, np.where(rejects > accepts, 0.0, np.nan))
    return np.where(np.isnan(final), majority, final)


def _stats(names, dec, durations, final) -> list[dict]:
    consensus = _consensus(dec, final) if dec.size else np.array([])
    out = []
    for i, name in enumerate(names):
        mine = dec[i] if dec.size else np.array([])
        decided = ~np.isnan(mine)
        done = int(decided.sum())
        compared = decided & ~np.isnan(consensus) if done else decided
        agree = float(np.mean(mine[compared] == consensus[compared])) if done and compared.any() else None
        d = durations.get(i) or []
        out.append({"username": name, "done": done,
                    "accept_rate": float(np.mean(mine[decided] == 1.0)) if done else None,
                    "median_seconds": float(np.median(d)) / 1000.0 if d else None,
                    "agreement_with_consensus": agree, "compared": int(compared.sum()) if done else 0})
    return out


def reviewer_stats(task) -> list[dict]:
    names, dec, _rat, _ids, durations, final = _load(task)
    return _stats(names, dec, durations, final)


def task_agreement(task) -> dict:
    """{krippendorff_alpha, rating_alpha_interval, rating_alpha_ordinal, pairs: [{a, b, cohen_kappa, n}],
    reviewers: [stats], items_compared}."""
    names, dec, rat, _ids, durations, final = _load(task)
    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        both = ~np.isnan(dec[i]) & ~np.isnan(dec[j]) if dec.size else np.array([], dtype=bool)
        n = int(both.sum())
        kappa = cohen_kappa(dec[i][both].tolist(), dec[j][both].tolist()) if n else None
        pairs.append({"a": a, "b": b, "cohen_kappa": kappa, "n": n})
    compared = int(np.sum(np.sum(~np.isnan(dec), axis=0) >= 2)) if dec.size else 0
    has_ratings = bool(task.rating) and rat.size and not np.all(np.isnan(rat))
    return {
        "krippendorff_alpha": alpha(dec, "nominal") if dec.size else None,
        "rating_alpha_interval": alpha(rat, "interval") if has_ratings else None,
        "rating_alpha_ordinal": alpha(rat, "ordinal", value_domain=[1, 2, 3, 4, 5]) if has_ratings else None,
        "pairs": pairs,
        "reviewers": _stats(names, dec, durations, final),
        "items_compared": compared,
    }
