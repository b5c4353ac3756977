"""Dramatiq actors of online experiments and guarded rollouts (apps.experiments), thin: they call services.

- `experiments_monitor`: every MONITOR_EVERY_S (60 s), sent by the `scheduler` process (dramatiq-crontab, as
  workers/periodic.py): each running canary is evaluated over its window (rolled back on a breach, promoted
  or marked ready after it held) and each experiment's always-valid p-values are brought up to date. Safe
  to run twice at once (rows are locked with SKIP LOCKED); never on the request path.
- `rollout_webhook_send(event_id)`: POST a rollout event to its experiment's webhook (queued after commit).
"""
from __future__ import annotations

import logging

import dramatiq
from dramatiq_crontab import interval

from apps.experiments.canary import MONITOR_EVERY_S

log = logging.getLogger(__name__)


@interval(seconds=MONITOR_EVERY_S)
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 1000, max_age=2 * 60 * 1000)
def experiments_monitor() -> None:
    from apps.experiments.canary import monitor_tick

    for experiment_id, outcome in monitor_tick().items():
        if outcome in ("rolled_back", "promoted"):
            log.warning("experiment %s: %s", experiment_id, outcome)


@dramatiq.actor(queue_name="default", max_retries=3, time_limit=60_000)
def rollout_webhook_send(event_id: int) -> None:
    from apps.experiments.services import rollout_webhook_send as send

    send(event_id=event_id)
