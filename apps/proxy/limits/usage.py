"""Reads of apps.proxy.limits' Redis counters outside the hot path (sync): this month's usage for the
API-keys page and /api, and the periodic copy of the month counters to the database."""
from __future__ import annotations

import logging

import redis
from django.conf import settings

from apps.proxy.limits import _month, _month_date, dirty_key, month_key

log = logging.getLogger(__name__)


def _sync_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def month_usage(key_ids: list[int]) -> dict[int, int]:
    """Tokens used this month by each key (Redis; the database's copy when Redis cannot say)."""
    from apps.accounts.models import ApiKeyUsage

    month = _month()
    out = {row.api_key_id: row.tokens for row in
           ApiKeyUsage.objects.filter(api_key_id__in=key_ids, month=_month_date(month))}
    if not key_ids:
        return out
    try:
        with _sync_client() as client:
            values = client.mget([month_key(i, month) for i in key_ids])
    except redis.RedisError as exc:
        log.warning("key limits: cannot read usage from Redis (%s); showing the last persisted counts", exc)
        return out
    for key_id, value in zip(key_ids, values):
        if value is not None:
            out[key_id] = max(out.get(key_id, 0), int(value))
    return out


def usage_persist(batch: int = 500) -> int:
    """Copy the month counters that changed since the last run to ApiKeyUsage. Returns how many."""
    from apps.accounts import services

    done = 0
    with _sync_client() as client:
        while True:
            members = [m.decode() for m in (client.spop(dirty_key(), batch) or [])]
            if not members:
                return done
            try:
                pairs = [(int(m.split(":")[0]), m.split(":")[1]) for m in members]
                values = client.mget([month_key(key_id, month) for key_id, month in pairs])
                for (key_id, month), value in zip(pairs, values):
                    if value is not None:
                        services.api_key_usage_record(key_id=key_id, month=_month_date(month), tokens=int(value))
                        done += 1
            except Exception:
                client.sadd(dirty_key(), *members)  # try these again next time
                raise
