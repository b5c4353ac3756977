from ninja import Router, Schema

from apps.accounts import services
from apps.core.exceptions import ApplicationError

router = Router(tags=["accounts"])


class MeOut(Schema):
    id: int
    username: str
    role: str


class KeyIn(Schema):
    name: str = "default"


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


@router.get("/me", response=MeOut)
def me(request):
    u = request.auth
    return {"id": u.pk, "username": u.username, "role": u.role}


@router.get("/api-keys", response=list[KeyOut])
def list_keys(request):
    return [
        {"id": k.pk, "name": k.name, "prefix": k.prefix, "created_at": k.created_at.isoformat(),
         "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None, "revoked": k.revoked_at is not None}
        for k in request.auth.api_keys.all()
    ]


@router.post("/api-keys", response={201: KeyCreatedOut})
def create_key(request, payload: KeyIn):
    created = services.api_key_create(user=request.auth, name=payload.name)
    return 201, {"id": created.api_key.pk, "name": created.api_key.name, "key": created.plaintext,
                 "prefix": created.api_key.prefix}


@router.delete("/api-keys/{key_id}", response={204: None})
def revoke_key(request, key_id: int):
    services.api_key_revoke(actor=request.auth, key_id=key_id)
    return 204, None


__all__ = ["router", "ApplicationError"]
