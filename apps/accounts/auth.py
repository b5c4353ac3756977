"""Authentication for /api: `Authorization: Bearer <API key>` or the dashboard session (with CSRF).

An anonymous request (no key, no logged-in session) fails authentication and gets 401 from the API's
handler; only a request that *is* logged in by its session cookie is held to the CSRF check (403), so an
anonymous write is told to authenticate, not that its CSRF token is missing. Failed keys are throttled
before they get here (training_hub/asgi_guard.py, apps/accounts/throttle.py).
"""
from __future__ import annotations

from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from apps.accounts.services import api_key_authenticate
from apps.core.exceptions import PermissionDenied


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request, token):
        user = api_key_authenticate(token)
        if user is not None:
            request.user = user
        return user


class SessionAuth(APIKeyCookie):
    """Django session login; CSRF enforced for unsafe methods of logged-in sessions."""

    param_name = "sessionid"

    def _get_key(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None  # not logged in: authentication fails (401), whatever the CSRF token
        if self.csrf and not getattr(request, "_ninja_csrf_exempt", False) and check_csrf(request):
            raise PermissionDenied("CSRF check failed: session-authenticated writes need the X-CSRFToken header.",
                                   code="csrf_failed")
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request, key):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return user
        return None


def bearer_token(request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return None
