"""Work a Dramatiq worker does once when it boots: reconcile jobs left behind by a dead worker."""
from __future__ import annotations

import logging
from typing import Callable, Iterable

import dramatiq
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


class BootReconciler(Middleware):
    """On worker boot, runs `reconcile()` (imported lazily: Django is set up by then) and logs each
    (id, action) it returns. Never keeps a worker from starting."""

    def __init__(self, label: str, reconcile: Callable[[], Iterable[tuple[int, str]]]):
        self.label = label
        self.reconcile = reconcile

    def after_worker_boot(self, broker, worker):
        try:
            import django
            from django.apps import apps as django_apps

            if not django_apps.ready:  # pragma: no cover
                django.setup()
            for obj_id, action in self.reconcile():
                log.warning("%s %s left behind by a dead worker: %s", self.label, obj_id, action)
        except Exception:
            log.exception("%s reconciliation failed", self.label)


def install(middleware_cls: type[BootReconciler]) -> None:
    """Add one instance of `middleware_cls` to the broker (idempotent across imports)."""
    broker = dramatiq.get_broker()
    if not any(isinstance(m, middleware_cls) for m in broker.middleware):
        broker.add_middleware(middleware_cls())
