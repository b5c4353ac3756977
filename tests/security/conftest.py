"""Fixtures for the security tests: a raw ASGI caller that records whether the body was read, and the
cache-invalidation bus on the real local Redis (127.0.0.1:6379)."""
from __future__ import annotations

import asyncio
import socket
import uuid
from dataclasses import dataclass, field

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class AsgiResult:
    status: int | None = None
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    body_messages_read: int = 0  # http.request messages the app pulled with receive()

    def json(self):
        import json

        return json.loads(self.body)


async def asgi_call(app, method: str, path: str, *, headers: dict | None = None, chunks=(), client="127.0.0.1",
                    query: str = "") -> AsgiResult:
    """Call an ASGI app with the body in `chunks` (each one http.request message). After the last chunk
    receive() blocks like an open connection would, so a test sees exactly how much was read."""
    hdrs = {"host": "testserver", **(headers or {})}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
             "root_path": "", "headers": [(k.lower().encode(), str(v).encode()) for k, v in hdrs.items()],
             "client": (client, 50000), "server": ("testserver", 80)}
    chunks = list(chunks) or [b""]
    result = AsgiResult()

    async def receive():
        if result.body_messages_read < len(chunks):
            i = result.body_messages_read
            result.body_messages_read += 1
            return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}
        await asyncio.Future()  # the client is still connected and sends nothing more

    async def send(message):
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")

    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    return result


@pytest.fixture
def hub_app():
    from training_hub.asgi import application

    return application


def redis_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def live_bus(settings):
    """This process's invalidation listener, subscribed on the real local Redis to a channel of this
    test alone. Skips when no Redis listens on 127.0.0.1:6379."""
    from apps.core import invalidation

    if not redis_available():
        pytest.skip("no Redis on 127.0.0.1:6379")
    settings.REDIS_URL = REDIS_URL
    settings.HUB_INVALIDATION_CHANNEL = f"hub:test:{uuid.uuid4().hex}"
    invalidation.reset()
    assert invalidation.wait_live(5), "the invalidation listener did not subscribe"
    yield settings.HUB_INVALIDATION_CHANNEL
    invalidation.reset()


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Throttle counters (locmem) and the in-process key/route caches start empty in every test."""
    from django.core.cache import cache

    from apps.proxy.gateway import caches_clear

    cache.clear()
    caches_clear()
    yield
    cache.clear()
    caches_clear()
