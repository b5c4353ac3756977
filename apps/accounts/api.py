"""/api for accounts: who am I, API keys (list, create — the secret is shown once —, change limits, revoke;
admins list and change every user's keys).
Parses input, calls a selector or a service, renders; every status an operation returns is declared."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from ninja import Field, Query, Router, Schema

from apps.accounts import key_limits, selectors, services
from apps.accounts.models import User
from apps.core.inputs import Id, Text
from apps.core.schemas import responses

router = Router(tags=["accounts"])

Role = Literal[tuple(User.Role.values)]


class MeOut(Schema):
    id: int
    username: str
    role: Role


_MAX = {f.name: f.max for f in key_limits.FIELDS if f.max}
Names = list[Annotated[Text, Field(max_length=key_limits.MAX_NAME_CHARS)]]


class KeyLimitsIn(Schema):
    """The limits of apps.accounts.key_limits.FIELDS; null or absent = unlimited / every name."""

    allowed_aliases: Names | None = Field(None, max_length=key_limits.MAX_NAMES,
                                          description=key_limits.BY_NAME["allowed_aliases"].help)
    allowed_models: Names | None = Field(None, max_length=key_limits.MAX_NAMES,
                                         description=key_limits.BY_NAME["allowed_models"].help)
    rpm: int | None = Field(None, ge=1, le=_MAX["rpm"], description=key_limits.BY_NAME["rpm"].help)
    tpm: int | None = Field(None, ge=1, le=_MAX["tpm"], description=key_limits.BY_NAME["tpm"].help)
    monthly_tokens: int | None = Field(None, ge=1, le=_MAX["monthly_tokens"],
                                       description=key_limits.BY_NAME["monthly_tokens"].help)
    expires_at: dt.datetime | None = Field(None, description="ISO 8601; without an offset, UTC. "
                                           + key_limits.BY_NAME["expires_at"].help)


class KeyIn(KeyLimitsIn):
    name: Text = Field("default", max_length=100)


class KeyPatchIn(KeyLimitsIn):
    """Only the fields sent change; null clears a limit. Owners may only tighten (see api_key_update)."""

    name: Text | None = Field(None, min_length=1, max_length=100)


class KeyOut(Schema):
    id: int
    name: str
    prefix: str
    owner: str
    created_at: str
    last_used_at: str | None
    revoked: bool
    allowed_aliases: list[str] | None
    allowed_models: list[str] | None
    rpm: int | None
    tpm: int | None
    monthly_tokens: int | None
    expires_at: str | None
    expired: bool
    month_tokens_used: int | None = Field(description="Tokens used this month (UTC); only for keys with a "
                                          "monthly budget.")


class KeyCreatedOut(KeyOut):
    key: str = Field(description="The full key: shown only in this answer.")


def _key_out(k, usage: dict[int, int]) -> dict:
    return {
        "id": k.pk, "name": k.name, "prefix": k.prefix, "owner": k.user.username,
        "created_at": k.created_at.isoformat(),
        "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None, "revoked": k.revoked_at is not None,
        "allowed_aliases": k.allowed_aliases, "allowed_models": k.allowed_models, "rpm": k.rpm, "tpm": k.tpm,
        "monthly_tokens": k.monthly_tokens, "expires_at": k.expires_at.isoformat() if k.expires_at else None,
        "expired": selectors.api_key_expired(k),
        "month_tokens_used": usage.get(k.pk, 0) if k.monthly_tokens else None,
    }


@router.get("/me", response=responses({200: MeOut}, inputs=False))
def me(request):
    u = request.auth
    return {"id": u.pk, "username": u.username, "role": u.role}


@router.get("/api-keys", response=responses({200: list[KeyOut]}, 403))
def list_keys(request, everyone: bool = Query(False, alias="all", description="Every user's keys (admins only).")):
    keys = list(selectors.api_key_list(user=request.auth, everyone=everyone).select_related("user"))
    usage = selectors.api_key_month_usage(keys)
    return [_key_out(k, usage) for k in keys]


@router.post("/api-keys", response=responses({201: KeyCreatedOut}, body=True))
def create_key(request, payload: KeyIn):
    created = services.api_key_create(user=request.auth, **payload.dict())
    return 201, {**_key_out(created.api_key, {}), "key": created.plaintext}


@router.patch("/api-keys/{key_id}", response=responses({200: KeyOut}, 404, body=True))
def update_key(request, key_id: Id, payload: KeyPatchIn):
    key = services.api_key_update(actor=request.auth, key_id=key_id, changes=payload.dict(exclude_unset=True))
    return _key_out(key, selectors.api_key_month_usage([key]))


@router.delete("/api-keys/{key_id}", response=responses({204: None}, 404, write=True))
def revoke_key(request, key_id: Id):
    services.api_key_revoke(actor=request.auth, key_id=key_id)
    return 204, None
