"""The ASGI application: Django behind the request guard (sizes and credentials checked before a body
is read, training_hub/asgi_guard.py) for HTTP, channels for websockets behind an Origin check that
compares host and port. API-key calls under /v1 skip Django's middleware chain (training_hub/asgi_lean.py).
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "training_hub.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from training_hub.asgi_guard import HostPortOriginValidator, RequestGuard  # noqa: E402
from training_hub.asgi_lean import LeanV1  # noqa: E402
from training_hub.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": RequestGuard(LeanV1(django_asgi_app)),
        "websocket": HostPortOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
