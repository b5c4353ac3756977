"""Proxy health per target (`served_by`): up or down, p50/p95 latency, error rate, fallbacks, request
counts over the last hour and day, and time series for the plots. Read by `GET /v1/health` and the Proxy
health page; aggregated over all traffic (a target's health is the hub's, not one member's).

State: from the circuit breaker when `apps.proxy.breaker` exists (`snapshot()`: closed -> up, open -> down,
half_open -> half_open); otherwise derived from the target's recent requests (RECENT_S): none -> idle, the
last RECENT_FAILS all failed with 5xx -> down, at least half failed -> degraded, else up.

Aggregates run in the database on PostgreSQL (percentile_cont, one grouped query per window); on SQLite
they are computed in Python (small deployments). Latency percentiles count successful requests only (a
fast 502 is not a fast answer). Results are cached in this process for CACHE_S seconds.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time

from django.db.models import Aggregate, Count, F, FloatField, Func, Q
from django.db.models import DateTimeField as _DateTimeField
from django.utils import timezone

from apps.traffic.models import RequestEntry
from apps.traffic.selectors import uses_postgres

log = logging.getLogger(__name__)

RECENT_S = 300
RECENT_FAILS = 3
CACHE_S = 5.0
WINDOWS = {"1h": (3600, 60), "24h": (86400, 1800), "7d": (7 * 86400, 3 * 3600)}  # span, bucket seconds
_cache: dict = {}
_cache_lock = threading.Lock()


class Percentile(Aggregate):
    function = "PERCENTILE_CONT"
    name = "Percentile"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, percentile: float, **extra):
        super().__init__(expression, percentile=f"{float(percentile):.4f}", **extra)


class Bucket(Func):
    """created_at floored to a multiple of `seconds` since the epoch (PostgreSQL)."""

    output_field = _DateTimeField()

    def __init__(self, expression, seconds: int):
        n = int(seconds)
        super().__init__(expression, template=f"to_timestamp(floor(extract(epoch from %(expressions)s) / {n}) * {n})")


def _pct(values: list[float], q: float) -> float | None:
    """Linear interpolation, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _round(v):
    return None if v is None else round(float(v), 1)


def _stats(n, errors, fallbacks, p50, p95) -> dict:
    return {"requests": n, "errors": errors, "error_rate": round(errors / n, 4) if n else 0.0,
            "fallbacks": fallbacks, "p50_ms": _round(p50), "p95_ms": _round(p95)}


def window_stats(since: dt.datetime) -> dict[str, dict]:
    """{target: {requests, errors, error_rate, fallbacks, p50_ms, p95_ms}} since `since`."""
    qs = RequestEntry.objects.filter(created_at__gte=since).exclude(served_by="")
    ok = Q(status_code__lt=400, status_code__gt=0, latency_ms__isnull=False)
    if uses_postgres():
        rows = qs.order_by().values("served_by").annotate(
            n=Count("pk"), errors=Count("pk", filter=Q(status_code__gte=400) | Q(status_code=0)),
            fallbacks=Count("pk", filter=Q(fallback=True)),
            p50=Percentile("latency_ms", 0.5, filter=ok), p95=Percentile("latency_ms", 0.95, filter=ok))
        return {r["served_by"]: _stats(r["n"], r["errors"], r["fallbacks"], r["p50"], r["p95"]) for r in rows}
    acc: dict[str, list] = {}
    for target, status, latency, fallback in qs.values_list("served_by", "status_code", "latency_ms", "fallback"):
        a = acc.setdefault(target, [0, 0, 0, []])
        a[0] += 1
        a[1] += status >= 400 or status == 0
        a[2] += bool(fallback)
        if 0 < status < 400 and latency is not None:
            a[3].append(latency)
    return {t: _stats(a[0], a[1], a[2], _pct(a[3], 0.5), _pct(a[3], 0.95)) for t, a in acc.items()}


def breaker_states() -> dict[str, dict] | None:
    """{target: breaker row} from apps.proxy.breaker.snapshot(), or None when there is no breaker."""
    try:
        from apps.proxy import breaker
    except ImportError:
        return None
    try:
        return {str(s.get("target")): dict(s) for s in breaker.snapshot() if isinstance(s, dict)}
    except Exception:
        log.warning("the circuit breaker's snapshot failed; health is derived from recent errors", exc_info=True)
        return None


def _derived_state(target: str, now: dt.datetime) -> str:
    recent = list(RequestEntry.objects.filter(served_by=target, created_at__gte=now - dt.timedelta(seconds=RECENT_S))
                  .order_by("-created_at").values_list("status_code", flat=True)[:50])
    if not recent:
        return "idle"
    if len(recent) >= RECENT_FAILS and all(s >= 500 or s == 0 for s in recent[:RECENT_FAILS]):
        return "down"
    if sum(1 for s in recent if s >= 500 or s == 0) * 2 >= len(recent):
        return "degraded"
    return "up"


_BREAKER_STATE = {"closed": "up", "open": "down", "half_open": "half_open"}


def targets(now: dt.datetime | None = None) -> list[dict]:
    """Every target seen in the last day or known to the breaker, with state and the two windows."""
    now = now or timezone.now()
    hour = window_stats(now - dt.timedelta(hours=1))
    day = window_stats(now - dt.timedelta(days=1))
    breakers = breaker_states()
    names = sorted(set(day) | set(hour) | set(breakers or {}))
    out = []
    empty = _stats(0, 0, 0, None, None)
    for name in names:
        b = (breakers or {}).get(name)
        if b is not None:
            state, source = _BREAKER_STATE.get(str(b.get("state")), str(b.get("state") or "unknown")), "breaker"
        else:
            state, source = _derived_state(name, now), "recent_requests"
        out.append({"target": name, "state": state, "state_source": source,
                    "breaker": ({k: b.get(k) for k in ("state", "failures", "opened_at")} if b is not None else None),
                    "last_hour": hour.get(name, empty), "last_day": day.get(name, empty)})
    return out


def overall(rows: list[dict]) -> str:
    active = [r for r in rows if r["state"] != "idle"]
    down = [r for r in active if r["state"] == "down"]
    if active and len(down) == len(active):
        return "down"
    if down or any(r["state"] in ("degraded", "half_open") for r in active):
        return "degraded"
    return "ok"


def health(now: dt.datetime | None = None) -> dict:
    """The body of GET /v1/health (authenticated callers) and the page's table; cached CACHE_S seconds."""
    if now is None:
        with _cache_lock:
            hit = _cache.get("health")
            if hit is not None and time.monotonic() - hit[0] < CACHE_S:
                return hit[1]
    rows = targets(now)
    body = {"status": overall(rows), "time": (now or timezone.now()).isoformat(),
            "breaker": breaker_states() is not None, "targets": rows}
    if now is None:
        with _cache_lock:
            _cache["health"] = (time.monotonic(), body)
    return body


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def series(window: str = "1h", now: dt.datetime | None = None) -> dict:
    """Per target and time bucket: requests, errors, fallbacks, p50/p95 latency (the plots)."""
    span, step = WINDOWS.get(window, WINDOWS["1h"])
    now = now or timezone.now()
    since = now - dt.timedelta(seconds=span)
    qs = RequestEntry.objects.filter(created_at__gte=since).exclude(served_by="")
    ok = Q(status_code__lt=400, status_code__gt=0, latency_ms__isnull=False)
    points: dict[str, list] = {}
    if uses_postgres():
        rows = (qs.order_by().annotate(bucket=Bucket(F("created_at"), step)).values("served_by", "bucket")
                .annotate(n=Count("pk"), errors=Count("pk", filter=Q(status_code__gte=400) | Q(status_code=0)),
                          fallbacks=Count("pk", filter=Q(fallback=True)),
                          p50=Percentile("latency_ms", 0.5, filter=ok), p95=Percentile("latency_ms", 0.95, filter=ok))
                .order_by("served_by", "bucket"))
        for r in rows:
            points.setdefault(r["served_by"], []).append(
                {"t": r["bucket"].isoformat(), "requests": r["n"], "errors": r["errors"], "fallbacks": r["fallbacks"],
                 "p50_ms": _round(r["p50"]), "p95_ms": _round(r["p95"])})
    else:
        acc: dict[tuple, list] = {}
        for target, created, status, latency, fallback in qs.values_list("served_by", "created_at", "status_code",
                                                                          "latency_ms", "fallback"):
            b = int(created.timestamp()) // step * step
            a = acc.setdefault((target, b), [0, 0, 0, []])
            a[0] += 1
            a[1] += status >= 400 or status == 0
            a[2] += bool(fallback)
            if 0 < status < 400 and latency is not None:
                a[3].append(latency)
        for (target, b), a in sorted(acc.items()):
            points.setdefault(target, []).append(
                {"t": dt.datetime.fromtimestamp(b, tz=dt.timezone.utc).isoformat(), "requests": a[0], "errors": a[1],
                 "fallbacks": a[2], "p50_ms": _round(_pct(a[3], 0.5)), "p95_ms": _round(_pct(a[3], 0.95))})
    return {"window": window if window in WINDOWS else "1h", "since": since.isoformat(), "until": now.isoformat(),
            "bucket_s": step, "targets": {t: _filled(pts, since, now, step) for t, pts in points.items()}}


def _filled(points: list[dict], since: dt.datetime, now: dt.datetime, step: int) -> list[dict]:
    """Every bucket of the window, empty ones as zero requests and no latency, so a plot shows gaps as gaps."""
    have = {p["t"]: p for p in points}
    first = int(since.timestamp()) // step * step
    out = []
    for b in range(first, int(now.timestamp()) + 1, step):
        t = dt.datetime.fromtimestamp(b, tz=dt.timezone.utc).isoformat()
        out.append(have.pop(t, None) or {"t": t, "requests": 0, "errors": 0, "fallbacks": 0, "p50_ms": None,
                                          "p95_ms": None})
    return out + list(have.values())
