"""Per-arm metrics of an experiment, read from the request logs (apps.proxy.models.RequestLog, written by the
worker) and the feedback rows. Read by the verdict, the canary monitor, the API and the pages; never on the
request path.

Contract: `arm_metrics(experiment_id, arms, since=None, until=None) -> {arm: {...}}` with, for each arm named
in `arms` (present even without traffic):
    requests, errors, error_rate          an error: status >= 400 (or none), or an answer by a fallback
                                          target instead of the arm's version (the arm did not answer)
    p50_ms, p95_ms, latency_mean, latency_var    latency of the successful requests
    ttft_p50_ms, ttft_p95_ms              time to first token of the successful streamed requests
    prompt_tokens, completion_tokens      sums
    tool_calls, tool_calls_valid, tool_call_validity   (apps.experiments.toolcalls; over at most
                                          TOOL_ROWS_MAX of the newest requests that offered tools)
    feedback_n, feedback_mean, feedback_var   (Feedback.value: the score, else thumbs up 1 / down 0)
Percentiles run in PostgreSQL (percentile_cont, as apps.traffic.health) or in Python on SQLite.
`series(experiment_id, arms, bucket_s)` is the same per time bucket (requests, errors, p95) for the plots.
"""
from __future__ import annotations

import datetime as dt
import math

from django.db.models import Avg, Count, F, Q, Sum, Variance

from apps.experiments.models import Feedback
from apps.experiments.toolcalls import tool_call_counts
from apps.proxy.models import RequestLog
from apps.traffic.health import Bucket, Percentile
from apps.traffic.selectors import uses_postgres

TOOL_ROWS_MAX = 5000
ERROR = Q(status_code__gte=400) | Q(status_code=0) | Q(fallback=True)
OK = Q(status_code__gt=0, status_code__lt=400, fallback=False, latency_ms__isnull=False)


def _pct(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont (the SQLite path)."""
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _empty() -> dict:
    return {"requests": 0, "errors": 0, "error_rate": None, "p50_ms": None, "p95_ms": None, "latency_mean": None,
            "latency_var": None, "ttft_p50_ms": None, "ttft_p95_ms": None, "prompt_tokens": 0,
            "completion_tokens": 0, "tool_calls": 0, "tool_calls_valid": 0, "tool_call_validity": None,
            "feedback_n": 0, "feedback_mean": None, "feedback_var": None}


def _r(v, nd=1):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(float(v), nd)


def _logs(experiment_id: int, since, until):
    qs = RequestLog.objects.filter(experiment_id=experiment_id)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def _aggregates_pg(qs) -> dict[str, dict]:
    rows = qs.order_by().values("arm").annotate(
        n=Count("pk"), errors=Count("pk", filter=ERROR),
        p50=Percentile("latency_ms", 0.5, filter=OK), p95=Percentile("latency_ms", 0.95, filter=OK),
        lmean=Avg("latency_ms", filter=OK), lvar=Variance("latency_ms", filter=OK, sample=True),
        t50=Percentile("ttft_ms", 0.5, filter=OK & Q(ttft_ms__isnull=False)),
        t95=Percentile("ttft_ms", 0.95, filter=OK & Q(ttft_ms__isnull=False)),
        pt=Sum("prompt_tokens"), ct=Sum("completion_tokens"))
    return {r["arm"]: r for r in rows}


def _aggregates_py(qs) -> dict[str, dict]:
    acc: dict[str, dict] = {}
    for arm, status, fallback, lat, ttft, pt, ct in qs.values_list(
            "arm", "status_code", "fallback", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens"):
        a = acc.setdefault(arm, {"n": 0, "errors": 0, "lat": [], "ttft": [], "pt": 0, "ct": 0})
        a["n"] += 1
        ok = 0 < status < 400 and not fallback
        a["errors"] += not ok
        if ok and lat is not None:
            a["lat"].append(lat)
            if ttft is not None:
                a["ttft"].append(ttft)
        a["pt"] += pt or 0
        a["ct"] += ct or 0
    out = {}
    for arm, a in acc.items():
        lat = a["lat"]
        mean = sum(lat) / len(lat) if lat else None
        var = sum((x - mean) ** 2 for x in lat) / (len(lat) - 1) if len(lat) > 1 else None
        out[arm] = {"n": a["n"], "errors": a["errors"], "p50": _pct(lat, 0.5), "p95": _pct(lat, 0.95),
                    "lmean": mean, "lvar": var, "t50": _pct(a["ttft"], 0.5), "t95": _pct(a["ttft"], 0.95),
                    "pt": a["pt"], "ct": a["ct"]}
    return out


def arm_metrics(experiment_id: int, arms: list[str], *, since: dt.datetime | None = None,
                until: dt.datetime | None = None) -> dict[str, dict]:
    out = {arm: _empty() for arm in arms}
    qs = _logs(experiment_id, since, until)
    agg = _aggregates_pg(qs) if uses_postgres() else _aggregates_py(qs)
    for arm, r in agg.items():
        m = out.setdefault(arm, _empty())
        m.update(requests=r["n"], errors=r["errors"], error_rate=round(r["errors"] / r["n"], 4) if r["n"] else None,
                 p50_ms=_r(r["p50"]), p95_ms=_r(r["p95"]), latency_mean=_r(r["lmean"], 3),
                 latency_var=_r(r["lvar"], 3), ttft_p50_ms=_r(r["t50"]), ttft_p95_ms=_r(r["t95"]),
                 prompt_tokens=int(r["pt"] or 0), completion_tokens=int(r["ct"] or 0))
    tool_rows = (qs.filter(request__has_key="tools").order_by("-created_at")
                 .values_list("arm", "request", "response")[:TOOL_ROWS_MAX])
    registry = None
    for arm, request, response in tool_rows:
        if registry is None:  # the tool registry's schemas check calls the request offered no schema for
            from apps.registry.tools.selectors import tool_registry_schemas

            registry = tool_registry_schemas()
        calls, valid = tool_call_counts(request or {}, response or {}, registry=registry)
        if calls and arm in out:
            out[arm]["tool_calls"] += calls
            out[arm]["tool_calls_valid"] += valid
    for m in out.values():
        if m["tool_calls"]:
            m["tool_call_validity"] = round(m["tool_calls_valid"] / m["tool_calls"], 4)
    fb = Feedback.objects.filter(experiment_id=experiment_id)
    if since is not None:
        fb = fb.filter(created_at__gte=since)
    if until is not None:
        fb = fb.filter(created_at__lt=until)
    for r in fb.order_by().values("arm").annotate(n=Count("pk"), mean=Avg("value"),
                                                  var=Variance("value", sample=True)):
        if r["arm"] in out:
            out[r["arm"]].update(feedback_n=r["n"], feedback_mean=_r(r["mean"], 4), feedback_var=_r(r["var"], 6))
    return out


def series(experiment_id: int, arms: list[str], *, since: dt.datetime, until: dt.datetime,
           bucket_s: int) -> dict:
    """{"buckets": [iso, ...], "arms": {arm: {"requests": [...], "errors": [...], "p95_ms": [...]}}}, every
    bucket of [since, until) present (an empty one: 0 requests, no latency)."""
    start = dt.datetime.fromtimestamp(math.floor(since.timestamp() / bucket_s) * bucket_s, tz=dt.timezone.utc)
    count = max(1, math.ceil((until - start).total_seconds() / bucket_s))
    stamps = [start + dt.timedelta(seconds=i * bucket_s) for i in range(count)]
    index = {s.timestamp(): i for i, s in enumerate(stamps)}
    out = {arm: {"requests": [0] * count, "errors": [0] * count, "p95_ms": [None] * count} for arm in arms}
    qs = _logs(experiment_id, start, until)
    if uses_postgres():
        rows = (qs.annotate(bucket=Bucket(F("created_at"), bucket_s)).order_by().values("arm", "bucket")
                .annotate(n=Count("pk"), errors=Count("pk", filter=ERROR),
                          p95=Percentile("latency_ms", 0.95, filter=OK)))
        items = [(r["arm"], r["bucket"].timestamp(), r["n"], r["errors"], r["p95"]) for r in rows]
    else:
        acc: dict = {}
        for arm, created, status, fallback, lat in qs.values_list("arm", "created_at", "status_code", "fallback",
                                                                  "latency_ms"):
            b = math.floor(created.timestamp() / bucket_s) * bucket_s
            a = acc.setdefault((arm, b), [0, 0, []])
            ok = 0 < status < 400 and not fallback
            a[0] += 1
            a[1] += not ok
            if ok and lat is not None:
                a[2].append(lat)
        items = [(arm, b, a[0], a[1], _pct(a[2], 0.95)) for (arm, b), a in acc.items()]
    for arm, stamp, n, errors, p95 in items:
        i = index.get(float(stamp))
        if arm in out and i is not None:
            out[arm]["requests"][i] = n
            out[arm]["errors"][i] = errors
            out[arm]["p95_ms"][i] = _r(p95)
    return {"buckets": [s.isoformat() for s in stamps], "bucket_s": bucket_s, "arms": out}
