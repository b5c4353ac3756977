"""Cache invalidation across web processes, over Redis pub/sub.

Contract:
- `on(topic, handler)` registers a process-wide handler `handler(topic, payload)`. The topic `"*"`
  means "forget everything" and reaches every handler (it is sent when this process's listener
  connects or loses its connection, because messages sent meanwhile were missed).
- `publish(topic, payload)` runs this process's handlers at once (in the caller's thread), then
  publishes `{"o": origin, "t": topic, "p": payload}` on the Redis channel
  `settings.HUB_INVALIDATION_CHANNEL` at `settings.REDIS_URL`. `publish_on_commit` runs this
  process's handlers at once and publishes after the current transaction commits (at once outside a
  transaction). Services call it for a change that a cache depends on: a key revoked, an alias
  deployed or rolled back.
- `is_live()` starts this process's listener thread on first use and says whether it is subscribed
  right now. In-process caches store an entry only while it is live: a process that cannot hear
  invalidations does not cache, so nothing here relies on a TTL. Each cache also keeps a generation
  counter (see `Generation`) so that a lookup that raced an invalidation does not store a stale entry.
- Redis errors never propagate to the caller: a failed publish is logged; the listener reconnects
  with a back-off of up to 5 s and stays not-live meanwhile.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Callable

import redis
from django.db import transaction

log = logging.getLogger(__name__)

Handler = Callable[[str, str], None]

# The topics, in one place (publishers and caches live in different apps).
API_KEY = "api_key"  # payload: a key's prefix (revoked, deleted, edited in the admin)
API_KEY_USER = "api_key_user"  # payload: a user id (deactivated or deleted): forget all their keys
THROTTLE = "throttle"  # payload: a throttle lock key (apps.accounts.throttle): forget "not locked" answers
ROUTES = "routes"  # the registry's aliases or versions changed: forget resolved /v1 model names
ORIGIN = uuid.uuid4().hex  # this process; its own messages come back and are skipped

_handlers: dict[str, list[Handler]] = {}
_handlers_lock = threading.Lock()


def on(topic: str, handler: Handler) -> None:
    with _handlers_lock:
        if handler not in _handlers.setdefault(topic, []):
            _handlers[topic].append(handler)


def dispatch(topic: str, payload: str) -> None:
    """Run this process's handlers for `topic` ("*": every handler, once each)."""
    with _handlers_lock:
        if topic == "*":
            seen: list[Handler] = []
            for hs in _handlers.values():
                seen.extend(h for h in hs if h not in seen)
        else:
            seen = list(_handlers.get(topic, ()))
    for handler in seen:
        try:
            handler(topic, payload)
        except Exception:  # one broken handler must not keep the others stale
            log.exception("invalidation handler %r failed for %s", handler, topic)


class Generation:
    """A counter a cache bumps on every invalidation. Read it before a slow lookup and store the
    result only if it has not moved (and the listener is live): otherwise the lookup may have read
    the database before an invalidation that it would then overwrite."""

    def __init__(self):
        self.value = 0
        self.lock = threading.Lock()

    def bump(self) -> None:
        with self.lock:
            self.value += 1


class Subscriber:
    """A daemon thread subscribed to `channel` at `url` that calls `dispatch(topic, payload)` for
    every message not sent by `origin`. One per process (see `is_live`); tests make more to play
    other processes."""

    def __init__(self, url: str, channel: str, dispatch: Callable[[str, str], None] = dispatch,
                 origin: str | None = ORIGIN):
        self.url, self.channel, self.dispatch, self.origin = url, channel, dispatch, origin
        self._live = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @property
    def live(self) -> bool:
        return self._live.is_set()

    def start(self) -> "Subscriber":
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="hub-invalidation", daemon=True)
                self._thread.start()
        return self

    def wait_live(self, timeout: float) -> bool:
        self.start()
        return self._live.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)

    def _set_down(self) -> None:
        if self._live.is_set():
            self._live.clear()
        self.dispatch("*", "")  # whatever was cached may have missed a message

    def _run(self) -> None:
        backoff, warned = 0.1, False
        while not self._stop.is_set():
            client = pubsub = None
            try:
                # (no socket_keepalive: unix-socket connections, the embedded Redis, refuse it; the
                # health check pings an idle connection instead)
                client = redis.Redis.from_url(self.url, socket_connect_timeout=2, health_check_interval=10)
                pubsub = client.pubsub()
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.5)
                    if msg is None:
                        continue
                    if msg["type"] == "subscribe":
                        self.dispatch("*", "")  # messages sent before we listened were missed
                        self._live.set()
                        backoff, warned = 0.1, False
                    elif msg["type"] == "message":
                        self._handle(msg["data"])
            except Exception as exc:  # connection refused, dropped, timed out
                self._set_down()
                if not warned:
                    log.warning("cache invalidation listener: %s at %s (%s); in-process caches are off "
                                "until it reconnects", type(exc).__name__, self.url, exc)
                    warned = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                for closable in (pubsub, client):
                    try:
                        if closable is not None:
                            closable.close()
                    except Exception:
                        pass
        self._set_down()

    def _handle(self, data) -> None:
        try:
            msg = json.loads(data)
            topic, payload, origin = str(msg["t"]), str(msg.get("p", "")), msg.get("o")
        except (ValueError, KeyError, TypeError):
            log.warning("cache invalidation: ignoring a malformed message %r", data[:200])
            return
        if self.origin is not None and origin == self.origin:
            return  # published here: the handlers already ran in publish()
        self.dispatch(topic, payload)


# --- this process's listener and publisher --------------------------------------------------------
_state_lock = threading.Lock()
_subscriber: Subscriber | None = None
_publisher: tuple[str, redis.Redis] | None = None
_last_publish_error = -1e9


def _settings() -> tuple[str, str]:
    from django.conf import settings

    return settings.REDIS_URL, settings.HUB_INVALIDATION_CHANNEL


def is_live() -> bool:
    """Start this process's listener (once) and say whether it is subscribed now."""
    global _subscriber
    url, channel = _settings()
    sub = _subscriber
    if sub is None or (sub.url, sub.channel) != (url, channel):
        with _state_lock:
            if _subscriber is None or (_subscriber.url, _subscriber.channel) != (url, channel):
                old, _subscriber = _subscriber, Subscriber(url, channel).start()
                if old is not None:  # settings changed (tests): the old one stops listening
                    old._stop.set()
            sub = _subscriber
    return sub.live


def wait_live(timeout: float = 5.0) -> bool:
    is_live()
    return _subscriber.wait_live(timeout) if _subscriber else False


def reset() -> None:
    """Stop this process's listener and publisher (tests that point REDIS_URL elsewhere)."""
    global _subscriber, _publisher
    with _state_lock:
        sub, _subscriber, _publisher = _subscriber, None, None
    if sub is not None:
        sub.stop()


def _publish_remote(topic: str, payload: str) -> None:
    global _publisher
    url, channel = _settings()
    pub = _publisher
    if pub is None or pub[0] != url:
        pub = _publisher = (url, redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2))
    try:
        pub[1].publish(channel, json.dumps({"o": ORIGIN, "t": topic, "p": payload}))
    except redis.RedisError as exc:
        global _last_publish_error
        now = time.monotonic()
        if now - _last_publish_error > 60:  # once a minute, not once per revoke
            _last_publish_error = now
            log.error("cache invalidation: could not publish %s to %s (%s); a process whose listener is "
                      "still connected keeps its entry", topic, url, exc)


def publish(topic: str, payload: str = "") -> None:
    dispatch(topic, payload)
    _publish_remote(topic, payload)


def publish_on_commit(topic: str, payload: str = "") -> None:
    """Forget in this process now (so a later lookup in the same transaction misses too), and
    everywhere once the transaction commits (this process again: a lookup that ran meanwhile may have
    read the old row)."""
    dispatch(topic, payload)
    transaction.on_commit(lambda: publish(topic, payload))
