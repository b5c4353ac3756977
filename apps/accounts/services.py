"""Writes for accounts: users and roles, API keys (create, look up, touch, revoke).

Keys look like `th_<prefix>_<secret>`; only a SHA-256 digest of the secret is stored. Revoking a key
publishes an invalidation after commit, so every web process's key cache forgets it
(apps.accounts.key_cache, apps.core.invalidation).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.accounts import key_limits
from apps.accounts.models import ApiKey, ApiKeyUsage, User
from apps.core import invalidation
from apps.core.exceptions import ApplicationError, NotFound, PermissionDenied, ValidationFailed

KEY_PREFIX = "th_"
KEY_TOPIC = invalidation.API_KEY
USER_TOPIC = invalidation.API_KEY_USER


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    plaintext: str  # shown once, never stored


def _limit_errors(values: dict) -> tuple[dict, list[dict]]:
    return key_limits.clean(values, now=timezone.now())


def api_key_create(*, user: User, name: str = "default", **limits) -> CreatedKey:
    """A new key for `user` with optional limits (apps.accounts.key_limits.FIELDS). Anyone may create
    their own keys with any limits: a limit only ever narrows what a key can do."""
    name = (name or "").strip() or "default"
    errors = []
    if len(name) > 100:
        errors.append({"field": "name", "message": "Name must be at most 100 characters."})
    unknown = set(limits) - set(key_limits.NAMES)
    if unknown:
        raise TypeError(f"api_key_create: unknown limits {sorted(unknown)}")
    cleaned, limit_errors = _limit_errors(limits)
    errors += limit_errors
    if errors:
        raise ValidationFailed(errors[0]["message"] if len(errors) == 1 else "Invalid API key.", errors=errors)
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(user=user, name=name, prefix=prefix, digest=_digest(secret), **cleaned)
    return CreatedKey(api_key=key, plaintext=f"{KEY_PREFIX}{prefix}_{secret}")


@transaction.atomic
def api_key_update(*, actor: User, key_id: int, changes: dict) -> ApiKey:
    """Change a key's name or limits (only the fields in `changes`; None clears a limit).

    Who may do what: an admin changes any key in any way. The key's owner (any role) may rename it and
    tighten its limits (lower a number, set one that was unlimited, narrow a list, bring the expiry
    forward) but not loosen them: a limit an admin set stays. Nobody else sees the key (404).
    Every web process forgets the key's cached limits once this commits."""
    key = ApiKey.objects.select_for_update().filter(pk=key_id).first()
    if key is None or (key.user_id != actor.pk and not actor.is_hub_admin):
        raise NotFound("No such API key.")
    if key.revoked_at is not None:
        raise ValidationFailed("This key is revoked: create a new one.", code="revoked")
    unknown = set(changes) - set(key_limits.NAMES) - {"name"}
    if unknown:
        raise TypeError(f"api_key_update: unknown fields {sorted(unknown)}")
    errors = []
    updates: dict = {}
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name or len(name) > 100:
            errors.append({"field": "name", "message": "Name must be 1 to 100 characters."})
        else:
            updates["name"] = name
    cleaned, limit_errors = _limit_errors({k: v for k, v in changes.items() if k != "name"})
    errors += limit_errors
    if not actor.is_hub_admin:
        for field, new in cleaned.items():
            if key_limits.looser(field, getattr(key, field), new):
                errors.append({"field": field, "message": f"Only an admin can raise or remove this limit "
                               f"({key_limits.BY_NAME[field].label.lower()})."})
    if errors:
        raise ValidationFailed(errors[0]["message"] if len(errors) == 1 else "Invalid API key.", errors=errors)
    updates.update(cleaned)
    for field, value in updates.items():
        setattr(key, field, value)
    if updates:
        key.save(update_fields=list(updates))
        invalidation.publish_on_commit(KEY_TOPIC, key.prefix)
    return key


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


class KeyExpired(ApplicationError):
    status_code = 401
    code = "key_expired"


def api_key_authenticate(raw: str | None) -> User | None:
    """Return the key's active user, or None (reads the database; see api_key_lookup). An expired key
    raises KeyExpired (401 `key_expired` on /api)."""
    key = api_key_lookup(raw)
    if key is None:
        return None
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise KeyExpired("This API key has expired. Create a new one on the API keys page.")
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


def api_key_usage_record(*, key_id: int, month: dt.date, tokens: int) -> None:
    """Persist a key's token count for `month` (from Redis, apps.proxy.limits). Never lowers it: a count
    from a Redis that restarted and was not seeded yet may be smaller than what is stored."""
    if not ApiKey.objects.filter(pk=key_id).exists():
        return  # deleted meanwhile
    with transaction.atomic():
        row, created = ApiKeyUsage.objects.select_for_update().get_or_create(
            api_key_id=key_id, month=month, defaults={"tokens": max(0, tokens)})
        if not created and tokens > row.tokens:
            row.tokens = tokens
            row.save(update_fields=["tokens", "updated_at"])


def api_key_usage_get(*, key_id: int, month: dt.date) -> int:
    row = ApiKeyUsage.objects.filter(api_key_id=key_id, month=month).only("tokens").first()
    return row.tokens if row else 0


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
