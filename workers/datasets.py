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
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def import_dataset_version(version_id: int) -> None:
    from apps.datasets.services import version_process

    version_process(version_id=version_id, atomic=False)


class ImportReconciler(Middleware):
    """On worker boot: imports left `importing` by a dead worker are queued again or failed."""

    def after_worker_boot(self, broker, worker):
        try:
            import django
            from django.apps import apps as django_apps

            if not django_apps.ready:  # pragma: no cover
                django.setup()
            from apps.datasets.services import version_reconcile_imports

            for version_id, action in version_reconcile_imports():
                log.warning("dataset version %s left importing by a dead worker: %s", version_id, action)
        except Exception:  # never keep a worker from starting
            log.exception("import reconciliation failed")


def _install_reconciler() -> None:
    broker = dramatiq.get_broker()
    if not any(isinstance(m, ImportReconciler) for m in broker.middleware):
        broker.add_middleware(ImportReconciler())


_install_reconciler()
