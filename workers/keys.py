"""Per-key limits: the monthly token counters live in Redis (apps.proxy.limits); this copies them to the
database every minute, so a Redis restart does not reset a key's monthly budget (the hot path seeds a
missing counter from the copy). Sent by the `scheduler` process (dramatiq-crontab, one among replicas)."""
from __future__ import annotations

import logging

import dramatiq
from dramatiq_crontab import interval

log = logging.getLogger(__name__)

PERSIST_EVERY_S = 60


@interval(seconds=PERSIST_EVERY_S)
@dramatiq.actor(queue_name="default", max_retries=0, time_limit=2 * 60 * 1000, max_age=2 * 60 * 1000)
def key_usage_persist() -> None:
    """Copy the month counters charged since the last run to ApiKeyUsage (never lowering one). Safe to run
    from several processes at once; a failed run leaves its counters marked for the next one."""
    from apps.proxy.limits import usage_persist

    n = usage_persist()
    if n:
        log.info("key usage: persisted %s monthly counters", n)
