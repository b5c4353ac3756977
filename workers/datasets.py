"""Dramatiq actors for datasets: big imports run on the default queue (the `worker` process).

Thin and idempotent: the actor takes a version id; `version_process` claims the version (recording this
process and a heartbeat), returns at once for a version that is no longer `importing` or that a live
process holds, and starts over (deleting partial rows) when re-run.

An import whose worker died is handled by :class:`ImportReconciler` when a worker boots (and by
`python manage.py reconcile_imports`): it is queued again while its raw upload is on disk, else failed.
"""
from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 30.0


class ImportHeartbeat:
    """Beats every `every_s` seconds in a thread while an import works, so a silent phase (reading a
    big file, loading a tokenizer) is never taken for a dead worker by a reconciler on another machine."""

    def __init__(self, version_id: int, every_s: float = HEARTBEAT_EVERY_S):
        from apps.datasets.services import worker_id

        self.version_id = version_id
        self.worker = worker_id()
        self.every_s = every_s
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"heartbeat-import-{version_id}", daemon=True)

    def _loop(self) -> None:
        from django.db import close_old_connections

        from apps.datasets.services import version_heartbeat

        try:
            while not self.stop.wait(self.every_s):
                try:
                    version_heartbeat(version_id=self.version_id, worker=self.worker)
                except Exception:  # pragma: no cover - a missed beat is not fatal
                    log.warning("heartbeat for dataset version %s failed", self.version_id, exc_info=True)
        finally:
            close_old_connections()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)


@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 60 * 1000)
def import_dataset_version(version_id: int) -> None:
    from apps.datasets.services import version_process

    with ImportHeartbeat(version_id):
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
