"""Fixtures of the experiments tests: the proxy's real servers (tests/proxy/conftest.py) and helpers that play
the worker process (request logs, the canary monitor, webhooks) on the test's stub broker."""
from __future__ import annotations

import time

import pytest

from tests.proxy.conftest import (fake_upstream, fault_upstream, hub_server, limits_redis,  # noqa: F401
                                  limits_redis_url, wired)


def drain(timeout: float = 8.0) -> None:
    """Run the queued actors (request logs, webhooks) with a real Dramatiq worker on the stub broker until the
    request-log count settles (sends come from the server's executor a little after the answers)."""
    import dramatiq

    from apps.proxy.models import RequestLog
    from workers import experiments, proxy  # noqa: F401  - this test plays the worker process

    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_timeout=50, worker_threads=1)
    worker.start()
    try:
        deadline, last, stable = time.time() + timeout, -1, 0
        while time.time() < deadline:
            broker.join("default", timeout=int(timeout * 1000))
            n = RequestLog.objects.count()
            stable = stable + 1 if n == last else 0
            last = n
            if stable >= 4:
                break
            time.sleep(0.05)
    finally:
        worker.stop()


@pytest.fixture
def two_local_versions(wired, admin_user):
    """Two local versions served by the fake upstream; `production` serves the first."""
    from apps.registry.services import alias_deploy, model_version_register

    v1 = model_version_register(name="control one", kind="adapter", base_model=None)
    v2 = model_version_register(name="challenger", kind="adapter", base_model=None)
    alias_deploy(actor=admin_user, version_id=v1.pk, alias="production")
    return v1, v2
