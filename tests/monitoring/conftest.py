"""Monitoring fixtures: request-log rows written straight to the table (as the proxy's log worker leaves them),
a fixed clock, the default alert rules (present in every test, even after a transactional test elsewhere has
flushed what the data migration wrote), a private Redis, and a page's worth of data."""
from __future__ import annotations

import datetime as dt
import itertools

import pytest

_ids = itertools.count(1)


def log_rows(*rows: dict):
    """RequestLog rows from dicts; `at` (a datetime) is created_at, the rest are RequestLog fields. Defaults: a
    200 answer in 100 ms on alias `prod`, served by `version:1`, not streamed."""
    from apps.proxy.models import RequestLog

    objs = []
    for r in rows:
        r = dict(r)
        at = r.pop("at")
        objs.append(RequestLog(**{"request_id": f"req-{next(_ids)}", "endpoint": "chat.completions",
                                  "model_requested": r.get("alias") or "m", "alias": "prod", "served_by": "version:1",
                                  "status_code": 200, "latency_ms": 100.0, **r, "created_at": at}))
    return RequestLog.objects.bulk_create(objs)


@pytest.fixture
def now():
    """A fixed 'now', on a minute boundary plus 30 s (so the current minute is a partial one)."""
    return dt.datetime(2026, 5, 4, 12, 0, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private Redis (the embedded redis-server on a unix socket) for the broker tests."""
    from training_hub import embedded_redis

    proc, url = embedded_redis.start(tmp_path_factory.mktemp("monitoring-redis"))
    yield url
    embedded_redis.stop(proc)


@pytest.fixture
def redis_broker(redis_url):
    """A real Dramatiq RedisBroker on the private Redis, emptied (not the suite's global stub broker)."""
    import redis
    from dramatiq.brokers.redis import RedisBroker

    redis.Redis.from_url(redis_url).flushall()
    broker = RedisBroker(url=redis_url)
    yield broker
    broker.close()


@pytest.fixture(autouse=True)
def _default_rules(request):
    """The data migration's default rules, written again when a flush (a transactional test) removed them."""
    if not (request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)):
        return
    import importlib

    from django.apps import apps as django_apps

    request.getfixturevalue("_django_db_helper")
    importlib.import_module("apps.monitoring.migrations.0002_default_alert_rules").add_defaults(django_apps, None)


@pytest.fixture
def monitoring_data(admin_user):
    """39 minutes of traffic on `prod` (two versions, 5xx in the last three minutes), a GPU worker's report, ten
    minutes of its host's and the broker's samples, and the alerts they fire (error rate, GPU memory)."""
    from django.utils import timezone

    from apps.monitoring.models import BrokerSample, HostSample
    from apps.monitoring.services import alerts_evaluate, rollup_run, worker_heartbeat_record

    now = timezone.now()
    base = now.replace(second=0, microsecond=0)
    minute = dt.timedelta(minutes=1)
    rows = []
    for k in range(1, 40):
        for i in range(6):
            rows.append({"at": base - k * minute + i * dt.timedelta(seconds=7), "latency_ms": 200.0 + 40 * i + k,
                         "served_by": "version:1" if i % 3 else "version:2", "completion_tokens": 30,
                         "status_code": 500 if (k < 4 and i == 0) else 200, "stream": True, "ttft_ms": 50.0 + i})
    log_rows(*rows)
    rollup_run()
    worker_heartbeat_record(worker_id="gpu-box:42", host="gpu-box", pid=42, queues=["gpu"], started_at=now,
                            sample={"cpu_percent": 97.0, "rss_mb": 2048.0, "host_cpu_percent": 55.0,
                                    "host_memory_percent": 61.0,
                                    "gpus": [{"index": 0, "name": "NVIDIA H200", "util_percent": 88.0,
                                              "memory_used_mb": 120000.0, "memory_total_mb": 143771.0,
                                              "memory_percent": 83.5}]})
    for k in range(10):
        HostSample.objects.create(minute=base - k * minute, hostname="gpu-box", cpu_percent=50 + k, memory_percent=60,
                                  gpu_memory_percent=83.5, gpu_util_percent=88, workers=1)
        BrokerSample.objects.create(minute=base - k * minute, live_consumers=2, queues={
            "default": {"waiting": k % 3, "running": 1, "delayed": 0, "dead": 0},
            "gpu": {"waiting": 4 if k < 5 else 0, "running": 1, "delayed": 0, "dead": 1}})
    alerts_evaluate()
    return now
