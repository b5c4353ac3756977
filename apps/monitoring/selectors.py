"""Reads of monitoring data shared by the API, the page and its charts. Nothing here touches the request logs or
Redis: the page and /api read the roll-ups and samples the workers wrote.

Contract:
- `series(alias, target, minutes)`: the window is the last `minutes` minutes up to and including the current
  (partial) minute, in buckets of `bucket_minutes(minutes)` (at most MAX_POINTS points). Every bucket is
  present: an empty one has 0 requests and null rates and latencies. Within a bucket of one minute the values
  are exact; in a wider bucket counts and tokens are sums, and each percentile is the mean of its minutes'
  percentiles weighted by their successful requests (an approximation; percentiles do not add up).
  `series[0]` is the selection's total; the rest break it down (an alias by served target, a target by alias,
  the whole hub by alias), the MAX_LINES busiest, `hidden` counting those left out.
- `workers_overview()`: every worker process seen in the last day (live / stale / stopped), the latest broker
  and host samples, and their series over the window.
- `rollout_events()`: apps.experiments' recent rollout events when that app is there, else None.
"""
from __future__ import annotations

import datetime as dt
import logging

from django.db.models import Q
from django.utils import timezone

from apps.core.exceptions import NotFound
from apps.monitoring.models import ALL, Alert, AlertRule, BrokerSample, HostSample, MinuteStat, WorkerProcess
from apps.monitoring.services.aggregation import MINUTE, RETENTION_DAYS, floor_minute
from apps.monitoring.services.health import STALE_S

log = logging.getLogger(__name__)

RANGES = {"15m": 15, "1h": 60, "6h": 360, "24h": 1440, "7d": 10080}
MIN_MINUTES, MAX_MINUTES = 5, 10080
BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360)
MAX_POINTS = 360
MAX_LINES = 6
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def bucket_minutes(minutes: int) -> int:
    return next((b for b in BUCKETS if minutes / b <= MAX_POINTS), BUCKETS[-1])


def window(minutes: int, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime, int]:
    """(first bucket start, end, bucket minutes) of the last `minutes` minutes, buckets aligned to the epoch."""
    now = now or timezone.now()
    b = bucket_minutes(minutes)
    until = floor_minute(now) + MINUTE
    since = until - minutes * MINUTE
    offset = int((since - EPOCH).total_seconds() // 60) % b
    return since - offset * MINUTE, until, b


def target_labels(targets) -> dict[str, str]:
    """Readable names of served targets: `version:12` -> `name (#12)`."""
    from apps.registry.models import ModelVersion

    ids = {int(t.split(":", 1)[1]) for t in targets if t.startswith("version:") and t.split(":", 1)[1].isdigit()}
    names = dict(ModelVersion.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    out = {}
    for t in targets:
        if t == ALL:
            out[t] = "all"
        elif t == "":
            out[t] = "(not served)"
        elif t.startswith("version:") and t[8:].isdigit():
            out[t] = f"{names.get(int(t[8:]), 'deleted version')} (#{t[8:]})"
        elif t.startswith("provider:"):
            out[t] = t[9:]
        else:
            out[t] = t
    return out


def alias_label(alias: str) -> str:
    return {"": "(direct model requests)", ALL: "all traffic"}.get(alias, alias)


def _point(t: dt.datetime, acc: dict | None, b: int) -> dict:
    if not acc or not acc["requests"]:
        return {"t": t.isoformat(), "requests": 0, "errors": 0, "client_errors": 0, "fallbacks": 0, "error_rate": None,
                "p50_ms": None, "p95_ms": None, "ttft_p50_ms": None, "prompt_tokens": 0, "completion_tokens": 0,
                "tokens_per_s": 0.0, "requests_per_min": 0.0}

    def wmean(key):
        w = acc[key + "_w"]
        return round(acc[key] / w, 1) if w else None

    n = acc["requests"]
    return {"t": t.isoformat(), "requests": n, "errors": acc["errors"], "client_errors": acc["client_errors"],
            "fallbacks": acc["fallbacks"], "error_rate": round(acc["errors"] / n, 4), "p50_ms": wmean("p50_ms"),
            "p95_ms": wmean("p95_ms"), "ttft_p50_ms": wmean("ttft_p50_ms"), "prompt_tokens": acc["prompt_tokens"],
            "completion_tokens": acc["completion_tokens"],
            "tokens_per_s": round(acc["completion_tokens"] / (b * 60), 2), "requests_per_min": round(n / b, 2)}


COUNTS = ("requests", "errors", "client_errors", "fallbacks", "ok", "prompt_tokens", "completion_tokens")
PERCENTILES = ("p50_ms", "p95_ms", "ttft_p50_ms")


def _add(acc: dict, row: dict) -> None:
    for f in COUNTS:
        acc[f] = acc.get(f, 0) + row[f]
    for f in PERCENTILES:
        v = row[f]
        w = max(row["ok"], 1)
        if v is not None:
            acc[f] = acc.get(f, 0.0) + v * w
            acc[f + "_w"] = acc.get(f + "_w", 0) + w
        else:
            acc.setdefault(f, 0.0)
            acc.setdefault(f + "_w", 0)


def series(*, alias: str | None = None, target: str | None = None, minutes: int = 60,
           now: dt.datetime | None = None) -> dict:
    start, until, b = window(minutes, now)
    if alias is not None and target is not None:
        cells, total, part = Q(alias=alias, target=target), (alias, target), None
    elif alias is not None:
        cells, total, part = Q(alias=alias), (alias, ALL), "target"
    elif target is not None:
        cells, total, part = Q(target=target), (ALL, target), "alias"
    else:
        cells, total, part = Q(target=ALL), (ALL, ALL), "alias"
    acc: dict[tuple, dict[dt.datetime, dict]] = {}
    rows = MinuteStat.objects.filter(cells, minute__gte=start, minute__lt=until).order_by()
    for row in rows.values("minute", "alias", "target", *COUNTS, *PERCENTILES).iterator(chunk_size=5000):
        key = (row["alias"], row["target"])
        bucket = row["minute"] - (int((row["minute"] - EPOCH).total_seconds() // 60) % b) * MINUTE
        _add(acc.setdefault(key, {}).setdefault(bucket, {}), row)
    times = []
    t = start
    while t < until:
        times.append(t)
        t += b * MINUTE
    parts = sorted((k for k in acc if k != total),
                   key=lambda k: (-sum(p["requests"] for p in acc[k].values()), k))
    shown = parts[:MAX_LINES]
    labels = target_labels({k[1] for k in [total, *shown]})

    def line(key, label):
        return {"key": f"{key[0]}|{key[1]}", "alias": key[0], "target": key[1], "label": label,
                "points": [_point(t, acc.get(key, {}).get(t), b) for t in times]}

    if alias is not None and target is not None:
        total_label = f"{alias_label(alias)} · {labels[target]}"
    elif alias is not None:
        total_label = f"{alias_label(alias)} (all versions)"
    elif target is not None:
        total_label = f"{labels[target]} (every alias)"
    else:
        total_label = "all traffic"
    lines = [line(total, total_label)]
    for k in shown:
        lines.append(line(k, labels[k[1]] if part == "target" else alias_label(k[0])))
    return {"alias": alias, "version": target, "minutes": minutes, "bucket_s": b * 60, "since": start.isoformat(),
            "until": until.isoformat(), "breakdown": part, "series": lines, "hidden": max(len(parts) - MAX_LINES, 0)}


def known_cells(*, alias: str | None = None) -> dict:
    """Aliases and served targets with traffic in the retention window (plus registry aliases and chains), for
    the page's selectors: {"aliases": [...], "targets": [(target, label)]} (targets of `alias` when given)."""
    since = timezone.now() - dt.timedelta(days=RETENTION_DAYS)
    seen = MinuteStat.objects.filter(minute__gte=since).order_by()
    aliases = set(seen.exclude(alias__in=[ALL, ""]).values_list("alias", flat=True).distinct())
    try:
        from apps.proxy.models import AliasChain
        from apps.registry.models import Alias

        aliases |= set(Alias.objects.values_list("name", flat=True)) | set(AliasChain.objects.values_list("name", flat=True))
    except Exception:  # pragma: no cover - both apps are always installed
        pass
    tq = seen.exclude(target=ALL)
    tq = tq.filter(alias=alias) if alias is not None else tq.filter(alias=ALL)
    targets = sorted(set(tq.values_list("target", flat=True).distinct()))
    labels = target_labels(targets)
    return {"aliases": sorted(aliases), "targets": [(t, labels[t]) for t in targets]}


def _worker_state(w: WorkerProcess, now: dt.datetime) -> str:
    if w.stopped_at:
        return "stopped"
    return "live" if w.seen_at >= now - dt.timedelta(seconds=STALE_S) else "stale"


def workers_overview(*, minutes: int = 60, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    start, until, b = window(minutes, now)
    workers = []
    for w in WorkerProcess.objects.filter(seen_at__gte=now - dt.timedelta(days=1)).order_by("hostname", "pid"):
        workers.append({"worker_id": w.worker_id, "hostname": w.hostname, "pid": w.pid, "queues": w.queues,
                        "state": _worker_state(w, now), "started_at": w.started_at, "seen_at": w.seen_at,
                        "seen_s_ago": max(int((now - w.seen_at).total_seconds()), 0),
                        "cpu_percent": w.cpu_percent, "rss_mb": w.rss_mb, "host_cpu_percent": w.host_cpu_percent,
                        "host_memory_percent": w.host_memory_percent, "gpus": w.gpus or []})
    broker = BrokerSample.objects.order_by("-minute").first()
    hosts_latest = {}
    for h in HostSample.objects.filter(minute__gte=now - dt.timedelta(minutes=5)).order_by("minute"):
        hosts_latest[h.hostname] = h
    broker_rows = list(BrokerSample.objects.filter(minute__gte=start, minute__lt=until))
    host_rows = list(HostSample.objects.filter(minute__gte=start, minute__lt=until))
    queues = sorted({q for r in broker_rows for q in (r.queues or {})})
    return {
        "live": sum(1 for w in workers if w["state"] == "live"),
        "workers": workers,
        "broker": None if broker is None else {
            "minute": broker.minute, "age_s": int((now - broker.minute).total_seconds()), "reachable": broker.reachable,
            "live_consumers": broker.live_consumers,
            "queues": [{"queue": q, **v} for q, v in sorted((broker.queues or {}).items())]},
        "hosts": [{"hostname": h.hostname, "minute": h.minute, "cpu_percent": h.cpu_percent,
                   "memory_percent": h.memory_percent, "gpu_util_percent": h.gpu_util_percent,
                   "gpu_memory_percent": h.gpu_memory_percent, "workers": h.workers}
                  for h in sorted(hosts_latest.values(), key=lambda h: h.hostname)],
        "series": {
            "since": start.isoformat(), "until": until.isoformat(),
            "broker": [{"t": r.minute.isoformat(), "live_consumers": r.live_consumers,
                        "waiting": {q: (r.queues or {}).get(q, {}).get("waiting", 0) for q in queues}}
                       for r in broker_rows if r.reachable],
            "hosts": [{"t": h.minute.isoformat(), "hostname": h.hostname, "cpu_percent": h.cpu_percent,
                       "memory_percent": h.memory_percent, "gpu_util_percent": h.gpu_util_percent,
                       "gpu_memory_percent": h.gpu_memory_percent, "workers": h.workers} for h in host_rows],
        },
    }


def alert_rules():
    return AlertRule.objects.all()


def alerts_list(*, state: str | None = None, limit: int = 100):
    qs = Alert.objects.select_related("rule", "acknowledged_by")
    if state:
        qs = qs.filter(state=state)
    return qs.order_by("-fired_at", "-pk")[:limit]


def alert_get(alert_id: int) -> Alert:
    alert = Alert.objects.select_related("rule", "acknowledged_by").filter(pk=alert_id).first()
    if alert is None:
        raise NotFound("No such alert.")
    return alert


def rollout_events(limit: int = 20, alias: str | None = None) -> list | None:
    """apps.experiments' `rollout_events_recent(limit=..., alias=...)` (dicts: created_at, alias, kind, metric,
    value, threshold, window_start, window_end, message, actor, url, ...), or None when that app (or the
    selector) is not there or fails: the page then leaves the section out."""
    from django.apps import apps as django_apps

    if not django_apps.is_installed("apps.experiments"):
        return None
    try:
        from apps.experiments.selectors import rollout_events_recent
    except ImportError:
        return None
    try:
        return list(rollout_events_recent(limit=limit, alias=alias) if alias else rollout_events_recent(limit=limit))
    except Exception:
        log.exception("rollout events could not be read")
        return None
