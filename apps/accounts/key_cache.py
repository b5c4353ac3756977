"""Which user an API key belongs to, and its limits, remembered in this process until an invalidation
says otherwise.

Contract:
- `aresolve(raw)` (async: a hit costs no thread hop; a miss runs one indexed query through
  sync_to_async) and `resolve(raw)` (sync) return the `KeyInfo` of the active key `raw` of an active
  user, else None. KeyInfo carries the key's limits (apps.accounts.key_limits); an expired key still
  resolves (`expired()` says so) so that /v1 can answer 401 `key_expired` rather than "incorrect key".
  `user_id_for(raw)` / `auser_id_for(raw)` return just the user id. A hit is a dict lookup plus a
  SHA-256 of the secret, compared in constant time.
- Entries are forgotten on the invalidation topics KEY_TOPIC (a key revoked, deleted, or its name or
  limits changed: payload its prefix), USER_TOPIC (a user deactivated or deleted: payload the user id) and "*" (the listener
  reconnected). apps.core.invalidation delivers them to every web process within milliseconds and
  runs them in this process at once, so a revoked key stops working here immediately and elsewhere
  within a second. There is no TTL: an entry is stored only while the listener is live, and only if
  no invalidation happened during the lookup (the generation check).
- `last_used_at` is written at most about once a minute per key and process.
- `connect_signals()` (AccountsConfig.ready) publishes the invalidations for writes that bypass the
  services: the admin site saving or deleting a key, a user deactivated or deleted.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from apps.accounts import services
from apps.core import invalidation

TOUCH_EVERY_S = 60.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class KeyInfo:
    """An API key as the /v1 hot path sees it (interfaces §1). None = unlimited / every name allowed."""

    id: int
    user_id: int
    name: str
    allowed_aliases: tuple[str, ...] | None = None
    allowed_models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    monthly_tokens: int | None = None
    expires_at: float | None = None  # epoch seconds

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at

    @property
    def limited(self) -> bool:
        """Whether anything is counted in Redis for this key."""
        return bool(self.rpm or self.tpm or self.monthly_tokens)


def key_info(key) -> KeyInfo:
    return KeyInfo(
        id=key.pk, user_id=key.user_id, name=key.name,
        allowed_aliases=tuple(key.allowed_aliases) if key.allowed_aliases else None,
        allowed_models=tuple(key.allowed_models) if key.allowed_models else None,
        rpm=key.rpm or None, tpm=key.tpm or None, monthly_tokens=key.monthly_tokens or None,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
    )


@dataclass
class _Entry:
    digest: str
    key_id: int
    user_id: int
    touched: float  # monotonic time of the last last_used_at write
    info: KeyInfo | None = None  # always set by _lookup_db

    def __post_init__(self):
        if self.info is None:
            self.info = KeyInfo(id=self.key_id, user_id=self.user_id, name="")


_entries: dict[str, _Entry] = {}  # key prefix -> entry
_generation = invalidation.Generation()
_lock = threading.Lock()


def _forget(topic: str, payload: str) -> None:
    with _lock:
        _generation.bump()
        if topic == services.KEY_TOPIC:
            _entries.pop(payload, None)
        elif topic == services.USER_TOPIC:
            for prefix in [p for p, e in _entries.items() if str(e.user_id) == payload]:
                _entries.pop(prefix, None)
        else:
            _entries.clear()


invalidation.on(services.KEY_TOPIC, _forget)
invalidation.on(services.USER_TOPIC, _forget)
invalidation.on("*", _forget)


def clear() -> None:
    _forget("*", "")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _hit(prefix: str, secret: str) -> tuple[bool, _Entry | None]:
    """(known, entry): known=True means the cache can answer (entry None: wrong secret)."""
    entry = _entries.get(prefix)
    if entry is None:
        return False, None
    return True, (entry if hmac.compare_digest(entry.digest, _digest(secret)) else None)


def _needs_touch(entry: _Entry) -> bool:
    now = time.monotonic()
    if now - entry.touched < TOUCH_EVERY_S:
        return False
    entry.touched = now
    return True


def _lookup_db(raw: str, prefix: str) -> KeyInfo | None:
    """The database path: look the key up, record its use, remember it if that is safe."""
    generation = _generation.value
    live = invalidation.is_live()
    key = services.api_key_lookup(raw)
    if key is None:
        return None
    services.api_key_touch(key_id=key.pk, last_used_at=key.last_used_at)
    info = key_info(key)
    if live:
        with _lock:
            if _generation.value == generation:
                if len(_entries) >= MAX_ENTRIES:
                    _entries.clear()
                _entries[prefix] = _Entry(key.digest, key.pk, key.user_id, time.monotonic(), info)
    return info


def resolve(raw: str | None) -> KeyInfo | None:
    parsed = services.api_key_parse(raw)
    if parsed is None:
        return None
    known, entry = _hit(*parsed)
    if known:
        if entry is not None and _needs_touch(entry):
            services.api_key_touch(key_id=entry.key_id)
        return entry.info if entry else None
    return _lookup_db(raw, parsed[0])


async def aresolve(raw: str | None) -> KeyInfo | None:
    parsed = services.api_key_parse(raw)
    if parsed is None:
        return None
    known, entry = _hit(*parsed)
    if known:
        if entry is not None and _needs_touch(entry):
            await sync_to_async(services.api_key_touch)(key_id=entry.key_id)
        return entry.info if entry else None
    return await sync_to_async(_lookup_db)(raw, parsed[0])


def user_id_for(raw: str | None) -> int | None:
    info = resolve(raw)
    return info.user_id if info else None


async def auser_id_for(raw: str | None) -> int | None:
    info = await aresolve(raw)
    return info.user_id if info else None


def is_cached(raw: str | None) -> bool:
    """Whether `raw` is answered without the database (a malformed key needs none either)."""
    parsed = services.api_key_parse(raw)
    return parsed is None or parsed[0] in _entries


def cached_prefixes() -> set[str]:
    return set(_entries)


# --- writes that bypass the services ----------------------------------------------------------------
def _key_saved(sender, instance, created=False, update_fields=None, **kwargs):
    if not created and update_fields is None:  # the admin site; services publish their own
        invalidation.publish_on_commit(services.KEY_TOPIC, instance.prefix)


def _key_deleted(sender, instance, **kwargs):
    invalidation.publish_on_commit(services.KEY_TOPIC, instance.prefix)


def _user_saved(sender, instance, created=False, update_fields=None, **kwargs):
    if not created and (update_fields is None or "is_active" in update_fields):
        invalidation.publish_on_commit(services.USER_TOPIC, str(instance.pk))


def _user_deleted(sender, instance, **kwargs):
    invalidation.publish_on_commit(services.USER_TOPIC, str(instance.pk))


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    from apps.accounts.models import ApiKey, User

    post_save.connect(_key_saved, sender=ApiKey, dispatch_uid="key_cache.key_saved")
    post_delete.connect(_key_deleted, sender=ApiKey, dispatch_uid="key_cache.key_deleted")
    post_save.connect(_user_saved, sender=User, dispatch_uid="key_cache.user_saved")
    post_delete.connect(_user_deleted, sender=User, dispatch_uid="key_cache.user_deleted")
