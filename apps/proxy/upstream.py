"""One shared httpx.AsyncClient per event loop (in production: one), with pooled keep-alive
connections and timeouts. Tests may inject a transport."""
from __future__ import annotations

import asyncio
import weakref

import httpx
from django.conf import settings

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()
_transport: httpx.AsyncBaseTransport | None = None


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    c = _clients.get(loop)
    if c is None or c.is_closed:
        timeout = httpx.Timeout(settings.HUB_PROXY_TIMEOUT_S, connect=5.0)
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)
        c = httpx.AsyncClient(timeout=timeout, limits=limits, transport=_transport, trust_env=False)
        _clients[loop] = c
    return c


def set_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Route every upstream call through `transport` (tests); None restores real HTTP."""
    global _transport
    _transport = transport
    _clients.clear()
