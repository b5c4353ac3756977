"""Job reconciliation, at every worker boot and every 30 s (apps.core.jobs.reconcile).

- :class:`JobReconciler` (a BootReconciler middleware): when a worker process boots, jobs left behind by
  a dead worker are resumed, queued again or failed, lost messages are sent again, stalled remote polls
  are re-sent.
- :func:`jobs_reconcile`: the same, every 30 s, sent by the `scheduler` process (Procfile:
  `python manage.py crontab`, dramatiq-crontab). dramatiq-crontab's Redis lock keeps one scheduler
  running among replicas, and job_reconcile itself is safe to run from several processes at once.
"""
from __future__ import annotations

import logging

import dramatiq
from dramatiq_crontab import interval

from workers.boot import BootReconciler, install

log = logging.getLogger(__name__)

RECONCILE_EVERY_S = 30


def _reconcile():
    from apps.core.jobs.reconcile import job_reconcile

    return [(f"{job.kind} #{job.pk} ({job.target_id})", action) for job, action in job_reconcile()]


@interval(seconds=RECONCILE_EVERY_S)
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=5 * 60 * 1000, max_age=2 * 60 * 1000)
def jobs_reconcile() -> None:
    """Dead holders, lost messages, stalled remote polls (max_age: a backlog of these is worth one)."""
    for label, action in _reconcile():
        log.warning("job %s: %s", label, action)


class JobReconciler(BootReconciler):
    """On worker boot: every kind of job left behind by a dead worker (apps.core.jobs.reconcile)."""

    def __init__(self):
        super().__init__("job", _reconcile)


install(JobReconciler)
