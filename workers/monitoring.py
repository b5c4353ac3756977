"""Monitoring's periodic actors and each worker process's health reporter (apps.monitoring).

- `monitoring_aggregate` (every 60 s, sent by the `scheduler` process): rolls new request logs up into
  per-minute rows (apps.monitoring.services.rollup_run: watermark, idempotent) and drops rows past retention.
- `monitoring_watch` (every 60 s): writes the minute's broker and host samples (queue depths, live consumers,
  CPU / memory / GPU), then evaluates the alert rules (fires and resolves alerts).
- `WorkerHealthReporter` (a Dramatiq middleware, installed in every process that imports workers.tasks): once
  the worker process has booted, a daemon thread reports the process's and its host's resource use every
  REPORT_S seconds (apps.monitoring.services.worker_heartbeat_record); on shutdown it marks the process stopped.
Each step logs and swallows its own failure, so one broken step never stops the others or the worker.
"""
from __future__ import annotations

import logging
import os
import threading

import dramatiq
from dramatiq.middleware import Middleware
from dramatiq_crontab import interval

log = logging.getLogger(__name__)

EVERY_S = 60


@interval(seconds=EVERY_S)
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=5 * 60 * 1000, max_age=2 * 60 * 1000)
def monitoring_aggregate() -> None:
    """Request logs -> per-minute roll-ups (max_age: a backlog of these is worth one; the next catches up)."""
    from apps.monitoring import services

    result = services.rollup_run()
    if result["duration_ms"] > 10_000:
        log.warning("monitoring roll-up took %.1f s (%s minutes)", result["duration_ms"] / 1000, result["minutes"])
    try:
        services.monitoring_purge()
    except Exception:
        log.exception("monitoring purge failed")


@interval(seconds=EVERY_S)
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 1000, max_age=2 * 60 * 1000)
def monitoring_watch() -> None:
    """The minute's worker health sample, then the alert rules."""
    from apps.monitoring import services

    try:
        services.health_sample()
    except Exception:
        log.exception("worker health sample failed")
    services.alerts_evaluate()


class WorkerHealthReporter(Middleware):
    """Reports this worker process's health every REPORT_S seconds from a daemon thread."""

    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.worker_id = ""

    def after_worker_boot(self, broker, worker):
        from apps.monitoring.services.health import hostname

        self.worker_id = f"{hostname()}:{os.getpid()}"
        queues = sorted(q for q in (getattr(worker, "consumer_whitelist", None) or broker.get_declared_queues())
                        if not q.endswith((".DQ", ".XQ")))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(queues,), name="hub-health-reporter", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        try:
            from django.db import connection

            from apps.monitoring.services import worker_stopped

            worker_stopped(worker_id=self.worker_id)
            connection.close()
        except Exception:
            log.debug("could not mark worker %s stopped", self.worker_id, exc_info=True)

    def _run(self, queues: list[str]) -> None:
        from django.db import connection
        from django.utils import timezone

        from apps.monitoring.probes import Meter
        from apps.monitoring.services import worker_heartbeat_record
        from apps.monitoring.services.health import REPORT_S, hostname

        meter, started = Meter(), timezone.now()
        while not self._stop.is_set():
            try:
                worker_heartbeat_record(worker_id=self.worker_id, host=hostname(), pid=os.getpid(), queues=queues,
                                        started_at=started, sample=meter.sample())
            except Exception:
                log.warning("worker health report failed", exc_info=True)
            finally:
                connection.close()  # this thread's own connection: never left open between reports
            self._stop.wait(REPORT_S)


def install() -> None:
    broker = dramatiq.get_broker()
    if not any(isinstance(m, WorkerHealthReporter) for m in broker.middleware):
        broker.add_middleware(WorkerHealthReporter())


install()
