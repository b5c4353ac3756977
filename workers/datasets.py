"""Dramatiq actors for datasets: big imports run on the default queue (the `worker` process).

Thin and idempotent: the actor takes a version id; `version_process` claims the version (recording this
process and a heartbeat), returns at once for a version that is no longer `importing` or that a live
process holds, beats a heartbeat from a thread while it works, and starts over (deleting partial
rows) when re-run.

An import whose worker died is handled by :class:`ImportReconciler` when a worker boots (and by
`python manage.py reconcile_imports`): it is queued again while its raw upload is on disk, else failed.
"""
from __future__ import annotations

import logging

import dramatiq

from workers.boot import BootReconciler, install

log = logging.getLogger(__name__)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def import_dataset_version(version_id: int) -> None:
    from apps.datasets.services import version_process

    version_process(version_id=version_id, atomic=False)


def _reconcile_imports():
    from apps.datasets.services import version_reconcile_imports

    return version_reconcile_imports()


class ImportReconciler(BootReconciler):
    """On worker boot: imports left `importing` by a dead worker are queued again or failed."""

    def __init__(self):
        super().__init__("dataset version", _reconcile_imports)


install(ImportReconciler)
