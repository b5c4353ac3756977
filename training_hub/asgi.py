"""The ASGI application: Django behind the request guard (sizes and credentials checked before a body
is read, training_hub/asgi_guard.py) for HTTP, channels for websockets behind an Origin check that
compares host and port. API-key calls under /v1 skip Django's middleware chain (training_hub/asgi_lean.py).
The lifespan protocol's shutdown sends the request logs still buffered (apps.proxy.services batches them).
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "training_hub.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from training_hub.asgi_guard import HostPortOriginValidator, RequestGuard  # noqa: E402
from training_hub.asgi_lean import LeanV1, OneSegmentHead  # noqa: E402
from training_hub.routing import websocket_urlpatterns  # noqa: E402



async def lifespan(scope, receive, send):
    """ASGI lifespan: nothing to start; at shutdown, the buffered /v1 request logs go out before exit."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            from apps.proxy.services import request_log_flush

            try:
                await request_log_flush()
            finally:
                await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": OneSegmentHead(RequestGuard(LeanV1(django_asgi_app))),
        "websocket": HostPortOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "lifespan": lifespan,
    }
)
