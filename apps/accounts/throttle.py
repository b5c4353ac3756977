"""Throttling of failed authentication: the login form (per IP and per username) and API keys on
/api and /v1 (per IP and per key).

Contract:
- `record_failure(scope, ip=..., account=...)` counts one failed attempt against the client IP and
  against the account (a username, or an API key's prefix). When either count reaches its limit
  within the window, that IP or account is locked for HUB_THROTTLE_WINDOW_S.
- `retry_after(scope, ip=..., account=...)` is 0 when the attempt may go ahead, else the seconds
  until the lock ends. Callers check it *before* they check the credential, so a locked IP or
  account is refused even with the right password; successful attempts are never counted, so they
  lock no one out.
- Scopes ("login", "api_key") count separately. Limits: HUB_THROTTLE_FAILURES_PER_IP and
  HUB_THROTTLE_FAILURES_PER_ACCOUNT (0 turns that check off).
- Counters live in Django's default cache (Redis in production, so every web process shares them;
  locmem in tests). A cache outage fails open, with a warning: throttling must never block logins.
- `aretry_after` / `arecord_failure` are the async forms (the ASGI guard); they run the cache calls
  on a worker thread. `aretry_after` answers from memory when this process checked the same identities
  less than CLEAR_FOR_S ago and found no lock (every /v1 call checks its key and IP: a cache round trip
  and a thread hop each time cost the proxy ~0.5 ms a call). A lock set here or in another process
  (published on apps.core.invalidation's THROTTLE topic) forgets those answers at once; a process that
  cannot hear invalidations keeps them no longer than CLEAR_FOR_S.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

LOGIN = "login"
API_KEY = "api_key"
CLEAR_FOR_S = 1.0
_clear_until: dict[tuple[str, ...], float] = {}  # lock keys checked and found unlocked -> until when to trust it
_subscribed = False


def _forget_clear(topic: str = "*", payload: str = "") -> None:
    _clear_until.clear()


def _subscribe() -> None:
    global _subscribed
    if not _subscribed:
        from apps.core import invalidation

        invalidation.on(invalidation.THROTTLE, _forget_clear)
        _subscribed = True


def _checks(scope: str, ip: str | None, account: str | None) -> list[tuple[str, str, int]]:
    """(counter key, lock key, limit) for each identity that has a limit."""
    out = []
    for kind, ident, limit in (("ip", ip, settings.HUB_THROTTLE_FAILURES_PER_IP),
                               ("account", account, settings.HUB_THROTTLE_FAILURES_PER_ACCOUNT)):
        if ident and limit > 0:
            h = hashlib.sha256(ident.strip().lower().encode("utf-8", "replace")).hexdigest()[:40]
            out.append((f"throttle:{scope}:{kind}:{h}:n", f"throttle:{scope}:{kind}:{h}:lock", limit))
    return out


def retry_after(scope: str, *, ip: str | None, account: str | None = None) -> int:
    checks = _checks(scope, ip, account)
    if not checks:
        return 0
    try:
        locks = cache.get_many([lock for _, lock, _ in checks])
    except Exception as exc:
        log.warning("throttle: the cache is unavailable (%s); not throttling", exc)
        return 0
    until = max((float(v) for v in locks.values()), default=0.0)
    remaining = until - time.time()
    return max(1, math.ceil(remaining)) if remaining > 0 else 0


def record_failure(scope: str, *, ip: str | None, account: str | None = None) -> None:
    window = settings.HUB_THROTTLE_WINDOW_S
    try:
        for counter, lock, limit in _checks(scope, ip, account):
            cache.add(counter, 0, timeout=window)
            try:
                n = cache.incr(counter)
            except ValueError:  # expired between add and incr
                cache.set(counter, 1, timeout=window)
                n = 1
            if n >= limit:
                cache.set(lock, time.time() + window, timeout=window)
                cache.delete(counter)
                _publish_lock(lock)
                log.warning("throttle: %s locked for %ss after %s failed attempts (%s)", scope, window, n,
                            "ip" if counter.split(":")[2] == "ip" else "account")
    except Exception as exc:
        log.warning("throttle: the cache is unavailable (%s); failure not counted", exc)


def _publish_lock(lock: str) -> None:
    from apps.core import invalidation

    invalidation.publish(invalidation.THROTTLE, lock)  # runs _forget_clear here at once, then tells the others


async def aretry_after(scope: str, *, ip: str | None, account: str | None = None) -> int:
    _subscribe()
    keys = tuple(lock for _, lock, _ in _checks(scope, ip, account))
    if not keys:
        return 0
    now = time.monotonic()
    if _clear_until.get(keys, 0.0) > now:
        return 0
    wait = await sync_to_async(retry_after, thread_sensitive=False)(scope, ip=ip, account=account)
    if wait == 0:
        if len(_clear_until) > 10_000:
            _clear_until.clear()
        _clear_until[keys] = now + CLEAR_FOR_S
    return wait


async def arecord_failure(scope: str, *, ip: str | None, account: str | None = None) -> None:
    await sync_to_async(record_failure, thread_sensitive=False)(scope, ip=ip, account=account)
