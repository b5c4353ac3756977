"""Worker health: queue depths and live consumers read from a real Redis broker, the minute's host and broker
samples, the probes (psutil and /proc agree; nvidia-smi's output parsed), and the reporting middleware in a real
Dramatiq worker."""
from __future__ import annotations

import datetime as dt
import os
import time

import dramatiq
import pytest
from django.utils import timezone

from apps.monitoring import broker as broker_reader
from apps.monitoring import probes
from apps.monitoring.models import BrokerSample, HostSample, WorkerProcess
from apps.monitoring.services import health_sample, worker_heartbeat_record
from apps.monitoring.services.health import hostname

OWN = {"cpu_percent": 3.0, "rss_mb": 100.0, "host_cpu_percent": 12.5, "host_memory_percent": 40.0, "gpus": []}


def message(queue="default"):
    return dramatiq.Message(queue_name=queue, actor_name="noop", args=(), kwargs={}, options={})


def test_queue_depths_and_live_consumers_from_the_redis_broker(redis_broker, redis_url):
    redis_broker.declare_queue("default")
    redis_broker.declare_queue("gpu")
    for _ in range(3):
        redis_broker.enqueue(message())
    redis_broker.enqueue(message(), delay=60_000)  # a retry waiting for its back-off
    redis_broker.enqueue(message("gpu"))
    consumer = redis_broker.consume("default", prefetch=1, timeout=1000)
    fetched = next(consumer)  # a worker takes one: running, and a live consumer (its heartbeat)
    assert fetched is not None
    import redis

    client = redis.Redis.from_url(redis_url)
    client.zadd("dramatiq:default.XQ", {"dead-1": time.time() * 1000})
    client.zadd("dramatiq:__heartbeats__", {"long-gone": time.time() * 1000 - 600_000})
    snap = broker_reader.broker_snapshot(redis_url, queues={"default", "default.DQ", "training"})
    assert snap["reachable"] is True and snap["live_consumers"] == 1
    assert snap["queues"] == {
        "default": {"waiting": 2, "running": 1, "delayed": 1, "dead": 1},
        "gpu": {"waiting": 1, "running": 0, "delayed": 0, "dead": 0},
        "training": {"waiting": 0, "running": 0, "delayed": 0, "dead": 0},  # declared, idle
    }
    consumer.ack(fetched)
    consumer.close()
    assert broker_reader.broker_snapshot(redis_url, queues=set())["queues"]["default"]["running"] == 0


def test_an_unreachable_broker_is_reported_not_raised(tmp_path):
    snap = broker_reader.broker_snapshot(f"unix://{tmp_path}/no-redis.sock", queues={"default"})
    assert snap == {"reachable": False, "live_consumers": 0,
                    "queues": {"default": {"waiting": 0, "running": 0, "delayed": 0, "dead": 0}}}


@pytest.mark.django_db
def test_the_minute_sample_covers_live_hosts_and_is_replaced_on_a_rerun(redis_broker, redis_url):
    now = timezone.now()
    redis_broker.declare_queue("default")
    redis_broker.enqueue(message())
    gpu = {"index": 0, "name": "H200", "util_percent": 35.0, "memory_used_mb": 100_000.0,
           "memory_total_mb": 140_000.0, "memory_percent": 71.4}
    worker_heartbeat_record(worker_id="gpu-box:11", host="gpu-box", pid=11, queues=["gpu"], started_at=now,
                            sample={**OWN, "host_cpu_percent": 90.0, "gpus": [gpu]}, now=now)
    worker_heartbeat_record(worker_id="gpu-box:12", host="gpu-box", pid=12, queues=["default"], started_at=now,
                            sample={**OWN, "host_cpu_percent": 91.0}, now=now - dt.timedelta(seconds=10))
    worker_heartbeat_record(worker_id="old-box:9", host="old-box", pid=9, queues=["default"], started_at=now,
                            sample=OWN, now=now - dt.timedelta(minutes=5))  # stale: not a live host
    out = health_sample(now=now, broker_url=redis_url, own_sample=OWN)
    assert out["hosts"] == sorted(["gpu-box", hostname()])
    b = BrokerSample.objects.get()
    assert (b.reachable, b.queues["default"]["waiting"]) == (True, 1)
    box = HostSample.objects.get(hostname="gpu-box")
    # the latest report of the host wins (pid 11's, 10 s newer); GPU figures from its fullest / busiest GPU
    assert (box.workers, box.cpu_percent, box.gpu_memory_percent, box.gpu_util_percent) == (2, 90.0, 71.4, 35.0)
    me = HostSample.objects.get(hostname=hostname())
    assert (me.cpu_percent, me.memory_percent, me.gpu_memory_percent) == (12.5, 40.0, None)
    health_sample(now=now, broker_url=redis_url, own_sample={**OWN, "host_cpu_percent": 50.0})
    assert HostSample.objects.count() == 2 and BrokerSample.objects.count() == 1
    assert HostSample.objects.get(hostname=hostname()).cpu_percent == 50.0


@pytest.mark.skipif(probes.psutil is None, reason="psutil is not installed")
def test_psutil_and_proc_agree():
    a = probes.Meter(use_psutil=True, gpu=False)
    b = probes.Meter(use_psutil=False, gpu=False)
    x, y = a.sample(), b.sample()
    for s in (x, y):
        assert set(s) == {"cpu_percent", "rss_mb", "host_cpu_percent", "host_memory_percent", "gpus"}
        assert 0 <= s["host_cpu_percent"] <= 100 and 0 < s["host_memory_percent"] < 100
        assert s["rss_mb"] > 10 and s["cpu_percent"] >= 0
    assert abs(x["host_memory_percent"] - y["host_memory_percent"]) < 10
    assert abs(x["rss_mb"] - y["rss_mb"]) / x["rss_mb"] < 0.2
    # a busy loop shows as this process's CPU: its share of the wall time since the last sample
    b.sample()
    w0, c0 = time.monotonic(), time.process_time()
    while time.process_time() - c0 < 0.5:
        pass
    share = (time.process_time() - c0) / (time.monotonic() - w0) * 100
    assert b.sample()["cpu_percent"] == pytest.approx(share, abs=15)
    assert share > 10


def test_nvidia_smi_output_is_parsed():
    text = ("0, NVIDIA H200, 35, 100000, 143771\n"
            "1, NVIDIA A100-SXM4-80GB, [N/A], 0, 81920\n"
            "2, Tesla T4, with, a comma, 7, 512, 15360\n")
    gpus = probes.parse_nvidia_smi(text)
    assert gpus[0] == {"index": 0, "name": "NVIDIA H200", "util_percent": 35.0, "memory_used_mb": 100000.0,
                       "memory_total_mb": 143771.0, "memory_percent": 69.6}
    assert gpus[1]["util_percent"] is None and gpus[1]["memory_percent"] == 0.0
    assert gpus[2]["name"] == "Tesla T4, with, a comma" and gpus[2]["util_percent"] == 7.0


@pytest.mark.django_db(transaction=True)
def test_a_booted_worker_reports_itself_and_says_when_it_stops():
    """The middleware in a real Dramatiq worker (on a stub broker): a report at boot, `stopped` at shutdown."""
    from dramatiq.brokers.stub import StubBroker
    from dramatiq.worker import Worker

    from workers.monitoring import WorkerHealthReporter

    stub = StubBroker()
    stub.add_middleware(WorkerHealthReporter())
    stub.declare_queue("default")
    worker = Worker(stub, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 15
        row = None
        while time.monotonic() < deadline and row is None:
            row = WorkerProcess.objects.filter(pid=os.getpid()).first()
            time.sleep(0.1)
        assert row is not None, "the worker did not report within 15 s"
        assert row.worker_id == f"{hostname()}:{os.getpid()}" and row.queues == ["default"]
        assert row.rss_mb > 10 and row.host_memory_percent > 0 and row.stopped_at is None
    finally:
        worker.stop()
    row.refresh_from_db()
    assert row.stopped_at is not None
