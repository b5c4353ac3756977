"""Live events: group names, typed payloads, broadcast only after the transaction commits."""
from __future__ import annotations

import logging
import os
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from redis.exceptions import ConnectionError as RedisUnreachable

log = logging.getLogger(__name__)


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


JOBS_GROUP = "jobs"  # every job's events (the Jobs page)


def job_group(job_id: int) -> str:
    return f"job-{job_id}"


_unreachable_logged_at = -1e9


def _stack_not_started(layer) -> bool:
    """A Redis channel layer on the embedded Redis, whose socket is absent: the launcher has not started the
    stack (`make run` loads its demo data first), so no page can be listening and there is nothing to warn
    about."""
    return (settings.REDIS_IS_EMBEDDED and type(layer).__module__.startswith("channels_redis")
            and not os.path.exists(settings.EMBEDDED_REDIS_SOCKET))


def broadcast(group: str, event: str, payload: dict[str, Any]) -> None:
    """Send now (use from workers outside a transaction)."""
    layer = get_channel_layer()
    if layer is None or _stack_not_started(layer):
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "hub.event", "event": event, "payload": payload})
    except (RedisUnreachable, OSError) as exc:  # no Redis (e.g. a manage.py command before the stack starts)
        global _unreachable_logged_at
        if time.monotonic() - _unreachable_logged_at > 60:  # one line a minute, not a traceback per event
            _unreachable_logged_at = time.monotonic()
            log.warning("live events are not delivered: the channel layer is unreachable (%s)", exc)
    except Exception:  # a broken channel layer must never break training
        log.warning("broadcast to %s failed", group, exc_info=True)


def broadcast_on_commit(group: str, event: str, payload: dict[str, Any]) -> None:
    transaction.on_commit(lambda: broadcast(group, event, payload))
