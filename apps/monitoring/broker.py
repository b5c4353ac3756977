"""Queue depths and live consumers, read straight from Dramatiq's Redis broker keys (no message is touched).

Dramatiq's RedisBroker keeps, under its namespace (`dramatiq`), for each queue Q:
- `Q` a list of the ids waiting to be fetched, `Q.msgs` a hash of every message not yet acknowledged
  (waiting + fetched by a worker), `Q.DQ.msgs` the delayed messages (retries with back-off, `send_with_options
  (delay=...)`), `Q.XQ` a sorted set of the dead-lettered ones;
- `__heartbeats__` a sorted set of consumer ids (one per worker process) by the time of their last fetch; a
  consumer is live while it is younger than the broker's heartbeat timeout (60 s by default).

`broker_snapshot()` -> {"reachable": bool, "live_consumers": int, "queues": {name: {waiting, running, delayed,
dead}}}; an unreachable Redis gives reachable False and empty counts, never an exception. Queues are those the
broker declared in this process plus any found in Redis, so an idle queue shows as zeros.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

NAMESPACE = "dramatiq"
HEARTBEAT_TIMEOUT_MS = 60_000
SOCKET_TIMEOUT_S = 2.0


def _declared_queues() -> set[str]:
    try:
        import dramatiq

        return set(dramatiq.get_broker().get_declared_queues())
    except Exception:
        return set()


def _base(name: str) -> str | None:
    """The queue a Redis key or a declared name belongs to; None for keys that are not queues."""
    if name.startswith("__"):
        return None
    for suffix in (".msgs", ".DQ", ".XQ"):
        while name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or None


def broker_snapshot(url: str, *, namespace: str = NAMESPACE, queues: set[str] | None = None,
                    now_ms: int | None = None) -> dict:
    import redis

    names = {q for q in (_base(n) for n in (queues if queues is not None else _declared_queues())) if q}
    empty = {"reachable": False, "live_consumers": 0,
             "queues": {q: {"waiting": 0, "running": 0, "delayed": 0, "dead": 0} for q in sorted(names)}}
    try:
        client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S)
        try:
            for key in client.scan_iter(match=f"{namespace}:*", count=500):
                base = _base(key.decode("utf-8", "replace")[len(namespace) + 1:])
                if base:
                    names.add(base)
            names = sorted(names)
            pipe = client.pipeline(transaction=False)
            for q in names:
                full = f"{namespace}:{q}"
                pipe.llen(full)
                pipe.hlen(f"{full}.msgs")
                pipe.hlen(f"{full}.DQ.msgs")
                pipe.zcard(f"{full}.XQ")
            now_ms = int(time.time() * 1000) if now_ms is None else now_ms
            pipe.zcount(f"{namespace}:__heartbeats__", now_ms - HEARTBEAT_TIMEOUT_MS, "+inf")
            res = pipe.execute()
        finally:
            client.close()
    except Exception as exc:  # redis.RedisError, OSError: the page says "unreachable"
        log.warning("the broker could not be read: %s", exc)
        return empty
    out = {}
    for i, q in enumerate(names):
        waiting, total, delayed, dead = (int(v) for v in res[4 * i: 4 * i + 4])
        out[q] = {"waiting": waiting, "running": max(total - waiting, 0), "delayed": delayed, "dead": dead}
    return {"reachable": True, "live_consumers": int(res[-1]), "queues": out}
