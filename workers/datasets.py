"""Dramatiq actors for datasets: big imports run on the default queue (the `worker` process).

Thin and idempotent: the actor takes a version id; `version_process` claims the version (recording this
process and a heartbeat), returns at once for a version that is no longer `importing` or that a live
process holds, beats a heartbeat from a thread while it works, and starts over (deleting partial
rows) when re-run.

An import whose worker died is handled by the job reconciler (workers/periodic.py: at worker boot and
every 30 s; `python manage.py reconcile_imports` by hand): it is queued again while its raw upload is on
disk, else failed.
"""
from __future__ import annotations

import logging

import dramatiq

from apps.datasets.services import version_process

log = logging.getLogger(__name__)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def import_dataset_version(version_id: int) -> None:
    version_process(version_id=version_id)
