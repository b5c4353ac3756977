"""The two periodic actors of workers/monitoring.py, called as the worker calls them (synchronously here), and
their place in dramatiq-crontab's schedule: every 60 s."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.monitoring.models import Alert, BrokerSample, HostSample, MinuteStat, RollupState
from apps.monitoring.services.health import hostname
from tests.monitoring.conftest import log_rows

pytestmark = pytest.mark.django_db


def test_the_actors_are_scheduled_every_minute():
    from dramatiq_crontab import scheduler

    import workers.tasks  # noqa: F401 - registers every actor and the schedule

    jobs = {j.name: j for j in scheduler.get_jobs()}
    for name in ("monitoring_aggregate", "monitoring_watch"):
        assert jobs[name].trigger.interval == dt.timedelta(seconds=60)


def test_aggregate_then_watch(settings, tmp_path):
    from workers.monitoring import monitoring_aggregate, monitoring_watch

    settings.REDIS_URL = f"unix://{tmp_path}/no-redis.sock"  # the broker is down: the sample says so
    now = timezone.now()
    log_rows(*[{"at": now - dt.timedelta(seconds=30 + i), "status_code": 503 if i < 6 else 200} for i in range(20)])
    monitoring_aggregate()
    assert MinuteStat.objects.filter(alias="*", target="*").exists()
    assert RollupState.objects.get().last_run_at is not None
    monitoring_watch()
    assert BrokerSample.objects.get().reachable is False
    own = HostSample.objects.get(hostname=hostname())
    assert 0 < own.memory_percent < 100 and own.cpu_percent is not None  # measured by this process now
    fired = set(Alert.objects.values_list("rule__metric", "subject"))
    assert ("error_rate", "prod") in fired  # 6 of 20
    # and this very host, should it be busy now (a shared test machine often is): its real CPU / memory
    assert all(subject == hostname() for metric, subject in fired - {("error_rate", "prod")})
