"""Circuit breaker per /v1 target (`version:12`, `provider:openrouter/gpt-4o`), shared by every web process.

Contract:
- `await allow(target) -> bool`: closed → True; open → False until HUB_BREAKER_COOLDOWN_S has passed since it
  opened, then one request (per cooldown, across processes) is let through as the half-open probe.
- `await record_success(target)` closes it (and forgets its failures); `await record_failure(target)` counts a
  failure: HUB_BREAKER_FAILURES in a row open it; a failed probe opens it again for another cooldown.
- `snapshot() -> [{target, state: "closed"|"open"|"half_open", failures, opened_at}]` (sync; the health page).
- `reset(target=None)` closes one or all (tests, an admin who fixed a provider).

State lives in Redis (settings.REDIS_URL: hash `hub:breaker:<target>`, set `hub:breaker:targets`, probe lock
`hub:breaker:probe:<target>`), and transitions are announced over apps.core.invalidation (topic `breaker`), so
every process knows at once without asking Redis on the request path: a warm, healthy request costs a dict
lookup. Redis is touched only on a failure, a transition, and once per target after this process's
invalidation listener (re)connects. With Redis down every process keeps its own breakers (local fallback) and
Redis is not retried for 5 s after an error. "In a row" is per target across processes, approximately: a
success in a process that saw no failure does not reset the shared count (it would cost a Redis write per
request); a success anywhere after a failure there does.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from apps.core import invalidation

log = logging.getLogger(__name__)
TOPIC = "breaker"
_PREFIX = "hub:breaker:"
_INDEX = "hub:breaker:targets"
_REDIS_RETRY_S = 5.0


@dataclass
class _State:
    state: str = "closed"
    failures: int = 0
    opened_at: float | None = None
    probe_started: float | None = None


_lock = threading.Lock()
_local: dict[str, _State] = {}
_generation = 0  # bumped when this process may have missed announcements (listener (re)connected)
_checked: dict[str, int] = {}  # target -> generation at which it was last read from Redis
_redis: tuple[str, redis.Redis] | None = None
_redis_down_until = 0.0


def failures_to_open() -> int:
    return int(getattr(settings, "HUB_BREAKER_FAILURES", 5))


def cooldown_s() -> float:
    return float(getattr(settings, "HUB_BREAKER_COOLDOWN_S", 30.0))


# --- Redis, best effort -----------------------------------------------------------------------------
def _client() -> redis.Redis | None:
    global _redis, _redis_down_until
    url = settings.REDIS_URL
    if _redis is None or _redis[0] != url:  # a new URL (settings changed): forget the old one's back-off
        _redis = (url, redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.25))
        _redis_down_until = 0.0
    if time.monotonic() < _redis_down_until:
        return None
    return _redis[1]


def _redis_call(fn, default=None):
    global _redis_down_until
    client = _client()
    if client is None:
        return default
    try:
        return fn(client)
    except (redis.RedisError, OSError) as exc:
        if time.monotonic() >= _redis_down_until:
            log.warning("circuit breaker: Redis unavailable (%s); breakers are per process for now", exc)
        _redis_down_until = time.monotonic() + _REDIS_RETRY_S
        return default


def _parse(raw: dict) -> _State | None:
    if not raw:
        return None
    d = {(k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
         for k, v in raw.items()}
    try:
        return _State(state=d.get("state") or "closed", failures=int(d.get("failures") or 0),
                      opened_at=float(d["opened_at"]) if d.get("opened_at") else None)
    except ValueError:
        return None


def _store(client: redis.Redis, target: str, st: _State) -> None:
    pipe = client.pipeline()
    pipe.hset(_PREFIX + target, mapping={"state": st.state, "failures": st.failures,
                                         "opened_at": "" if st.opened_at is None else repr(st.opened_at)})
    pipe.sadd(_INDEX, target)
    pipe.execute()


def _announce(target: str, st: _State) -> None:
    """Tell every process (this one's handler runs at once)."""
    invalidation.publish(TOPIC, json.dumps({"target": target, "state": st.state, "failures": st.failures,
                                            "opened_at": st.opened_at}))


def _on_message(topic: str, payload: str) -> None:
    global _generation
    if topic != TOPIC:  # "*": announcements may have been missed; re-read each target from Redis once
        with _lock:
            _generation += 1
        return
    try:
        msg = json.loads(payload)
        target = str(msg["target"])
        st = _State(state=str(msg["state"]), failures=int(msg.get("failures") or 0),
                    opened_at=float(msg["opened_at"]) if msg.get("opened_at") is not None else None)
    except (ValueError, KeyError, TypeError):
        return
    with _lock:
        cur = _local.get(target)
        if cur is not None and cur.probe_started and st.state != "closed":
            st.probe_started = cur.probe_started
        _local[target] = st


invalidation.on(TOPIC, _on_message)
invalidation.on("*", _on_message)


def _refresh(target: str) -> None:
    """Read `target` from Redis once per listener generation (sync; called in a thread)."""
    gen = _generation
    stored = _redis_call(lambda c: _parse(c.hgetall(_PREFIX + target)))
    with _lock:
        _checked[target] = gen
        if stored is not None:
            cur = _local.get(target)
            if cur is not None:
                stored.probe_started = cur.probe_started
            _local[target] = stored


# --- the request path -----------------------------------------------------------------------------
async def allow(target: str) -> bool:
    if _checked.get(target) != _generation and (time.monotonic() >= _redis_down_until
                                                 or (_redis is not None and _redis[0] != settings.REDIS_URL)):
        await asyncio.to_thread(_refresh, target)
    st = _local.get(target)
    if st is None or st.state == "closed":
        return True
    now = time.time()
    cool = cooldown_s()
    if st.state == "open" and st.opened_at is not None and now - st.opened_at < cool:
        return False
    if st.probe_started is not None and now - st.probe_started < cool:
        return False  # a probe is out (this process); wait for its outcome
    ttl = max(1, int(cool + 0.999))
    took = await asyncio.to_thread(
        _redis_call, lambda c: bool(c.set(_PREFIX + "probe:" + target, "1", nx=True, ex=ttl)), True)
    if not took:
        return False  # another process is probing
    with _lock:
        st.state, st.probe_started = "half_open", now
    return True


async def record_success(target: str) -> None:
    st = _local.get(target)
    if st is None or (st.state == "closed" and st.failures == 0):
        return  # the warm path: nothing to write
    await asyncio.to_thread(_close, target, st.state != "closed")


def _close(target: str, announce: bool) -> None:
    st = _State()
    with _lock:
        _local[target] = st

    def write(c):
        _store(c, target, st)
        c.delete(_PREFIX + "probe:" + target)

    _redis_call(write)
    if announce:
        log.info("circuit breaker for %s closed", target)
        _announce(target, st)


async def record_failure(target: str) -> None:
    await asyncio.to_thread(_fail, target)


def _fail(target: str) -> None:
    now = time.time()
    with _lock:
        st = _local.setdefault(target, _State())
        probing = st.state == "half_open" or st.probe_started is not None
    if probing or st.state == "open":
        new = _State(state="open", failures=max(st.failures, failures_to_open()), opened_at=now)
        with _lock:
            _local[target] = new

        def reopen(c):
            _store(c, target, new)
            c.delete(_PREFIX + "probe:" + target)

        _redis_call(reopen)
        log.warning("circuit breaker for %s: the half-open probe failed; open for another %.0f s", target,
                    cooldown_s())
        _announce(target, new)
        return

    def incr(c):
        pipe = c.pipeline()
        pipe.hincrby(_PREFIX + target, "failures", 1)
        pipe.hsetnx(_PREFIX + target, "state", "closed")
        pipe.sadd(_INDEX, target)
        return int(pipe.execute()[0])

    shared = _redis_call(incr)
    with _lock:
        st.failures = shared if shared is not None else st.failures + 1
        opening = st.failures >= failures_to_open() and st.state == "closed"
        if opening:
            st.state, st.opened_at, st.probe_started = "open", now, None
    if opening:
        _redis_call(lambda c: _store(c, target, st))
        log.warning("circuit breaker for %s opened after %d failures in a row", target, st.failures)
        _announce(target, st)


# --- reads and admin ------------------------------------------------------------------------------
def _display(st: _State) -> str:
    if st.state == "open" and st.opened_at is not None and time.time() - st.opened_at >= cooldown_s():
        return "half_open"  # the next request is the probe
    return st.state


def snapshot() -> list[dict]:
    """Every target this process or Redis knows, sorted by name."""
    states: dict[str, _State] = {}

    def read(c):
        names = sorted(n.decode() if isinstance(n, bytes) else str(n) for n in c.smembers(_INDEX))
        pipe = c.pipeline()
        for n in names:
            pipe.hgetall(_PREFIX + n)
        return dict(zip(names, pipe.execute()))

    for name, raw in (_redis_call(read) or {}).items():
        parsed = _parse(raw)
        if parsed is not None:
            states[name] = parsed
    with _lock:
        for name, st in _local.items():
            states.setdefault(name, st)
    return [{"target": n, "state": _display(st), "failures": st.failures, "opened_at": st.opened_at}
            for n, st in sorted(states.items())]


def state_of(target: str) -> str:
    st = _local.get(target)
    return _display(st) if st is not None else "closed"


def reset(target: str | None = None) -> None:
    """Close one breaker (or all of them) here and in Redis."""
    with _lock:
        names = [target] if target else list(_local)
        for n in names:
            _local.pop(n, None)
            _checked.pop(n, None)

    def clear(c):
        keys = names if target else [n.decode() if isinstance(n, bytes) else n for n in c.smembers(_INDEX)]
        if keys:
            c.delete(*[_PREFIX + n for n in keys], *[_PREFIX + "probe:" + n for n in keys])
            c.srem(_INDEX, *keys)

    _redis_call(clear)
    for n in names:
        invalidation.publish(TOPIC, json.dumps({"target": n, "state": "closed", "failures": 0, "opened_at": None}))


def seconds_until_probe(target: str) -> int:
    """When an open breaker lets its next probe through (for retry-after), in whole seconds."""
    st = _local.get(target)
    if st is None or st.opened_at is None:
        return 1
    return max(1, int(st.opened_at + cooldown_s() - time.time() + 0.999))


def forget_local() -> None:
    """Drop this process's breaker state without touching Redis (tests start clean)."""
    global _generation
    with _lock:
        _local.clear()
        _checked.clear()
        _generation += 1
