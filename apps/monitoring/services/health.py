"""Worker health: heartbeats of worker processes and the once-a-minute samples of hosts and the broker.

Contract:
- `worker_heartbeat_record(worker_id=..., sample=...)`: each Dramatiq worker process calls it every REPORT_S
  seconds from its reporting thread (workers/monitoring.py, WorkerHealthReporter) with `probes.Meter().sample()`;
  `worker_stopped` when it shuts down. A process is live while its last report is younger than STALE_S and it
  has not stopped.
- `health_sample(now=...)`: once a minute (the `monitoring_watch` actor) writes the minute's BrokerSample (queue
  depths and live consumers read from the Redis broker, apps.monitoring.broker) and one HostSample per host
  with a live worker (its latest report; this process's own host measured now). Re-running it for the same
  minute replaces that minute's rows.
"""
from __future__ import annotations

import datetime as dt
import socket

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.monitoring import broker, probes
from apps.monitoring.models import BrokerSample, HostSample, WorkerProcess
from apps.monitoring.services.aggregation import floor_minute

REPORT_S = 15
STALE_S = 60
_meter: probes.Meter | None = None


def hostname() -> str:
    return socket.gethostname()[:200]


def _gpu_max(gpus: list[dict], key: str) -> float | None:
    values = [g.get(key) for g in gpus or [] if isinstance(g, dict) and g.get(key) is not None]
    return max(values) if values else None


def worker_heartbeat_record(*, worker_id: str, host: str, pid: int, queues: list[str], started_at: dt.datetime,
                            sample: dict, now: dt.datetime | None = None) -> WorkerProcess:
    now = now or timezone.now()
    row, _ = WorkerProcess.objects.update_or_create(worker_id=worker_id[:200], defaults={
        "hostname": host[:200], "pid": pid, "queues": sorted(queues), "started_at": started_at, "seen_at": now,
        "stopped_at": None, "cpu_percent": sample.get("cpu_percent"), "rss_mb": sample.get("rss_mb"),
        "host_cpu_percent": sample.get("host_cpu_percent"), "host_memory_percent": sample.get("host_memory_percent"),
        "gpus": sample.get("gpus") or []})
    return row


def worker_stopped(*, worker_id: str, now: dt.datetime | None = None) -> None:
    WorkerProcess.objects.filter(worker_id=worker_id).update(stopped_at=now or timezone.now())


def live_workers(*, now: dt.datetime | None = None):
    now = now or timezone.now()
    return WorkerProcess.objects.filter(stopped_at__isnull=True, seen_at__gte=now - dt.timedelta(seconds=STALE_S))


def _own_host_sample() -> dict:
    global _meter
    if _meter is None:
        _meter = probes.Meter()
    return _meter.sample()


def health_sample(*, now: dt.datetime | None = None, broker_url: str | None = None,
                  own_sample: dict | None = None) -> dict:
    """Write this minute's broker and host samples; returns {"broker": {...}, "hosts": [hostname, ...]}."""
    now = now or timezone.now()
    minute = floor_minute(now)
    snap = broker.broker_snapshot(broker_url or settings.REDIS_URL)
    hosts: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for w in live_workers(now=now).order_by("seen_at"):  # the latest report of a host wins
        counts[w.hostname] = counts.get(w.hostname, 0) + 1
        hosts[w.hostname] = {"cpu_percent": w.host_cpu_percent, "memory_percent": w.host_memory_percent,
                             "gpu_util_percent": _gpu_max(w.gpus, "util_percent"),
                             "gpu_memory_percent": _gpu_max(w.gpus, "memory_percent")}
    own = own_sample if own_sample is not None else _own_host_sample()
    me = hostname()
    hosts[me] = {"cpu_percent": own.get("host_cpu_percent"), "memory_percent": own.get("host_memory_percent"),
                 "gpu_util_percent": _gpu_max(own.get("gpus"), "util_percent"),
                 "gpu_memory_percent": _gpu_max(own.get("gpus"), "memory_percent")}
    with transaction.atomic():
        BrokerSample.objects.update_or_create(minute=minute, defaults={
            "reachable": snap["reachable"], "live_consumers": snap["live_consumers"], "queues": snap["queues"]})
        for host, values in hosts.items():
            HostSample.objects.update_or_create(minute=minute, hostname=host,
                                                defaults={**values, "workers": counts.get(host, 0)})
    return {"broker": snap, "hosts": sorted(hosts)}
