"""Authentication for /api: `Authorization: Bearer <API key>` or the dashboard session (with CSRF)."""
from __future__ import annotations

from ninja.security import APIKeyCookie, HttpBearer

from apps.accounts.services import api_key_authenticate


class ApiKeyAuth(HttpBearer):
    def authenticate(self, request, token):
        user = api_key_authenticate(token)
        if user is not None:
            request.user = user
        return user


class SessionAuth(APIKeyCookie):
    """Django session login; CSRF enforced for unsafe methods (ninja's APIKeyCookie does it)."""

    param_name = "sessionid"

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
