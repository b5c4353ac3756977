"""Writes for accounts: users and roles, API keys (create, look up, touch, revoke).

Keys look like `th_<prefix>_<secret>`; only a SHA-256 digest of the secret is stored. Revoking a key
publishes an invalidation after commit, so every web process's key cache forgets it
(apps.accounts.key_cache, apps.core.invalidation).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiKey, User
from apps.core import invalidation
from apps.core.exceptions import NotFound, PermissionDenied, ValidationFailed

KEY_PREFIX = "th_"
KEY_TOPIC = invalidation.API_KEY
USER_TOPIC = invalidation.API_KEY_USER


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    plaintext: str  # shown once, never stored


def api_key_create(*, user: User, name: str = "default") -> CreatedKey:
    name = (name or "").strip() or "default"
    if len(name) > 100:
        raise ValidationFailed("Name must be at most 100 characters.", field="name")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name, prefix=prefix, digest=_digest(secret))
    return CreatedKey(api_key=key, plaintext=f"{KEY_PREFIX}{prefix}_{secret}")


def api_key_parse(raw: str | None) -> tuple[str, str] | None:
    """`th_<prefix>_<secret>` -> (prefix, secret), or None when it is not shaped like a key."""
    if not raw or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
        return None
    prefix, sep, secret = raw[len(KEY_PREFIX):].partition("_")
    if not sep or not prefix or not secret:
        return None
    return prefix, secret


def api_key_lookup(raw: str | None) -> ApiKey | None:
    """The active key (with its user) that `raw` is, or None. Constant-time comparison of digests.
    Reads the database every time; apps.accounts.key_cache remembers the answers."""
    parsed = api_key_parse(raw)
    if parsed is None:
        return None
    prefix, secret = parsed
    key = ApiKey.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.digest, _digest(secret)) or not key.user.is_active:
        return None
    return key


def api_key_touch(*, key_id: int, last_used_at=None) -> None:
    """Record that a key was used (callers do it at most about once a minute per key)."""
    now = timezone.now()
    if last_used_at is None or (now - last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key_id).update(last_used_at=now)


def api_key_authenticate(raw: str | None) -> User | None:
    """Return the key's active user, or None (reads the database; see api_key_lookup)."""
    key = api_key_lookup(raw)
    if key is None:
        return None
    api_key_touch(key_id=key.pk, last_used_at=key.last_used_at)
    return key.user


def api_key_revoke(*, actor: User, key_id: int) -> None:
    """Revoke a key. Every web process forgets it once this commits (apps.accounts.key_cache)."""
    key = ApiKey.objects.filter(pk=key_id).first()
    if key is None or (key.user_id != actor.pk and not actor.is_hub_admin):
        raise NotFound("No such API key.")
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    invalidation.publish_on_commit(KEY_TOPIC, key.prefix)


def require_admin(user: User) -> None:
    if not getattr(user, "is_authenticated", False) or not user.is_hub_admin:
        raise PermissionDenied("Only admins can do this.")


@transaction.atomic
def user_create(*, actor: User | None, username: str, password: str, role: str = User.Role.MEMBER,
                email: str = "") -> User:
    if actor is not None:
        require_admin(actor)
    errors = []
    username = (username or "").strip()
    if not username:
        errors.append({"field": "username", "message": "Username is required."})
    elif get_user_model().objects.filter(username=username).exists():
        errors.append({"field": "username", "message": f"User {username!r} already exists."})
    if len(password or "") < 8:
        errors.append({"field": "password", "message": "Password must be at least 8 characters."})
    if role not in User.Role.values:
        errors.append({"field": "role", "message": f"Role must be one of {', '.join(User.Role.values)}."})
    if errors:
        raise ValidationFailed("Invalid user.", errors=errors)
    user = User.objects.create_user(username=username, password=password, email=email, role=role)
    if role == User.Role.ADMIN:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def user_set_role(*, actor: User, user_id: int, role: str) -> User:
    require_admin(actor)
    if role not in User.Role.values:
        raise ValidationFailed(f"Role must be one of {', '.join(User.Role.values)}.", field="role")
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("No such user.")
    if user.pk == actor.pk and role != User.Role.ADMIN:
        raise ValidationFailed("You cannot remove your own admin role.", field="role")
    user.role = role
    user.is_staff = role == User.Role.ADMIN
    user.save(update_fields=["role", "is_staff"])
    return user
