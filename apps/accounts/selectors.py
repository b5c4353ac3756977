"""Reads for accounts, shared by the pages and /api: a user's API keys, the user list."""
from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.models import ApiKey, User


def api_key_list(*, user: User) -> QuerySet[ApiKey]:
    """The user's own keys, newest first (revoked ones included, marked by `revoked_at`)."""
    return ApiKey.objects.filter(user=user).order_by("-created_at")


def user_list() -> QuerySet[User]:
    return User.objects.order_by("username")
