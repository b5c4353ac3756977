"""/api for accounts: who am I, my API keys (list, create — the secret is shown once —, revoke).
Parses input, calls a selector or a service, renders; every status an operation returns is declared."""
from __future__ import annotations

from typing import Literal

from ninja import Field, Router, Schema

from apps.accounts import selectors, services
from apps.accounts.models import User
from apps.core.inputs import Id, Text
from apps.core.schemas import responses

router = Router(tags=["accounts"])

Role = Literal[tuple(User.Role.values)]


class MeOut(Schema):
    id: int
    username: str
    role: Role


class KeyIn(Schema):
    name: Text = Field("default", max_length=100)


class KeyCreatedOut(Schema):
    id: int
    name: str
    key: str
    prefix: str


class KeyOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None
    revoked: bool


@router.get("/me", response=responses({200: MeOut}, inputs=False))
def me(request):
    u = request.auth
    return {"id": u.pk, "username": u.username, "role": u.role}


@router.get("/api-keys", response=responses({200: list[KeyOut]}, inputs=False))
def list_keys(request):
    return [
        {"id": k.pk, "name": k.name, "prefix": k.prefix, "created_at": k.created_at.isoformat(),
         "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None, "revoked": k.revoked_at is not None}
        for k in selectors.api_key_list(user=request.auth)
    ]


@router.post("/api-keys", response=responses({201: KeyCreatedOut}, body=True))
def create_key(request, payload: KeyIn):
    created = services.api_key_create(user=request.auth, name=payload.name)
    return 201, {"id": created.api_key.pk, "name": created.api_key.name, "key": created.plaintext,
                 "prefix": created.api_key.prefix}


@router.delete("/api-keys/{key_id}", response=responses({204: None}, 404, write=True))
def revoke_key(request, key_id: Id):
    services.api_key_revoke(actor=request.auth, key_id=key_id)
    return 204, None
