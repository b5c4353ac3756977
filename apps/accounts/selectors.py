"""Reads for accounts, shared by the pages and /api: API keys (a user's, or everyone's for admins), their
usage this month, the user list."""
from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts.models import ApiKey, User
from apps.core.exceptions import NotFound, PermissionDenied


def api_key_list(*, user: User, everyone: bool = False) -> QuerySet[ApiKey]:
    """The user's own keys (admins with `everyone`: every user's), newest first (revoked ones included,
    marked by `revoked_at`)."""
    if everyone and not user.is_hub_admin:
        raise PermissionDenied("Only admins can list every user's keys.")
    keys = ApiKey.objects.all() if everyone else ApiKey.objects.filter(user=user)
    return keys.select_related("user").order_by("-created_at")


def api_key_get(*, user: User, key_id: int) -> ApiKey:
    """A key its owner or an admin may see and change (NotFound otherwise)."""
    key = ApiKey.objects.select_related("user").filter(pk=key_id).first()
    if key is None or (key.user_id != user.pk and not user.is_hub_admin):
        raise NotFound("No such API key.")
    return key


def api_key_expired(key: ApiKey) -> bool:
    return key.expires_at is not None and key.expires_at <= timezone.now()


def api_key_month_usage(keys) -> dict[int, int]:
    """Tokens used this month (UTC) by the keys that have a monthly budget (apps.proxy.limits)."""
    ids = [k.pk for k in keys if k.monthly_tokens]
    if not ids:
        return {}
    from apps.proxy import limits

    return limits.month_usage(ids)


def user_list() -> QuerySet[User]:
    return User.objects.order_by("username")
