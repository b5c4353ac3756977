"""The websocket Origin check compares host *and* port with the request's Host (channels'
AllowedHostsOriginValidator ignores the port), and honours ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS."""
from __future__ import annotations

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.testing import WebsocketCommunicator

from training_hub.asgi_guard import HostPortOriginValidator

# channels' consumers close stale database connections on connect: let them reach the test database.
pytestmark = pytest.mark.django_db(transaction=True)


class _Accept(AsyncWebsocketConsumer):
    async def connect(self):
        await self.accept()


async def _connects(origin: str | None, host: str | None, app=None, scheme: str = "ws") -> bool:
    headers = [(b"origin", origin.encode())] if origin else []
    headers += [(b"host", host.encode())] if host else []
    comm = WebsocketCommunicator(app or HostPortOriginValidator(_Accept.as_asgi()), "/ws/x/", headers=headers)
    comm.scope["scheme"] = scheme
    connected, _ = await comm.connect()
    await comm.disconnect()
    return connected


@pytest.fixture
def hosts(settings):
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1", "hub.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = []
    return settings


async def test_another_port_on_the_same_host_is_refused(hosts):
    assert await _connects("http://localhost:8000", "localhost:8000")
    assert not await _connects("http://localhost:8001", "localhost:8000")
    assert not await _connects("http://127.0.0.1:3000", "127.0.0.1:8000")
    assert not await _connects("http://localhost", "localhost:8000")


async def test_default_ports_are_filled_in_from_the_origin_scheme(hosts):
    assert await _connects("http://localhost", "localhost")
    assert await _connects("http://localhost:80", "localhost")
    assert await _connects("https://hub.example.com", "hub.example.com", scheme="wss")
    assert await _connects("https://hub.example.com", "hub.example.com:443")
    assert not await _connects("https://hub.example.com", "hub.example.com:80")


async def test_host_must_be_allowed_and_origin_present(hosts):
    assert not await _connects("http://evil.test:8000", "evil.test:8000")  # not in ALLOWED_HOSTS
    assert not await _connects("http://evil.test:8000", "localhost:8000")
    assert not await _connects(None, "localhost:8000")
    assert not await _connects("null", "localhost:8000")
    assert not await _connects("http://localhost:8000", None)


async def test_csrf_trusted_origins_are_accepted(hosts):
    assert not await _connects("https://app.example.com", "localhost:8000")
    hosts.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.corp.example"]
    assert await _connects("https://app.example.com", "localhost:8000")
    assert await _connects("https://ui.corp.example", "localhost:8000")
    assert not await _connects("http://app.example.com", "localhost:8000")  # scheme differs
    assert not await _connects("https://app.example.com:8443", "localhost:8000")


async def test_the_real_application_checks_the_port(hosts):
    """Through training_hub.asgi: a cross-port origin is denied before the consumer (close 1000); a
    same-origin anonymous client reaches the consumer, which closes with 4401 (not logged in)."""
    from training_hub.asgi import application

    async def close_code(origin):
        comm = WebsocketCommunicator(application, "/ws/runs/1/",
                                     headers=[(b"origin", origin.encode()), (b"host", b"localhost:8000")])
        connected, code = await comm.connect()
        assert not connected
        return code

    assert await close_code("http://localhost:8001") == 1000
    assert await close_code("http://localhost:8000") == 4401
