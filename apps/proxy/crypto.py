"""Provider keys at rest: Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

Contract: `encrypt(plain) -> token` and `decrypt(token) -> plain`. The key is HUB_SECRETS_KEY when set (a
Fernet key, or any passphrase, which is hashed into one), else derived from SECRET_KEY. Changing it makes
stored provider keys unreadable: `decrypt` then raises `KeyUnreadable` (the provider's calls fail with a
message asking an admin to enter the key again) — it never returns garbage. Nothing here logs a key.
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class KeyUnreadable(Exception):
    """A stored key could not be decrypted (the secret it was encrypted with changed)."""


@lru_cache(maxsize=4)
def _fernet(secret: str) -> Fernet:
    try:
        return Fernet(secret.encode())  # already a Fernet key
    except ValueError:
        digest = hashlib.sha256(b"training-hub/provider-keys\x00" + secret.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def _current() -> Fernet:
    return _fernet(getattr(settings, "HUB_SECRETS_KEY", None) or settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _current().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise KeyUnreadable("The stored key cannot be decrypted (HUB_SECRETS_KEY or SECRET_KEY changed); "
                            "enter it again.") from exc
