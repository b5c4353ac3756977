"""/api routes of upstream providers and alias chains (admins only, except reading a chain). Parses input,
calls a selector or a service (apps.proxy.providers), renders; a provider's key is never in an answer."""
from __future__ import annotations

from ninja import Router

from apps.accounts.services import require_admin
from apps.core.inputs import Id, Slug
from apps.core.schemas import responses
from apps.proxy import providers, selectors
from apps.proxy.schemas import ChainIn, ChainOut, ProviderIn, ProviderModelsOut, ProviderOut, ProviderPatch

router = Router(tags=["proxy"])


def provider_out(p) -> dict:
    return {"id": p.pk, "name": p.name, "kind": p.kind, "base_url": p.base_url, "has_key": p.has_key,
            "timeouts": {"connect_s": p.connect_timeout_s, "first_byte_s": p.first_byte_timeout_s,
                         "total_s": p.total_timeout_s},
            "max_concurrency": p.max_concurrency, "context_length": p.context_length, "enabled": p.enabled,
            "models": list(p.model_ids or []), "models_fetched_at": p.models_fetched_at,
            "used_by": sorted({t.chain.name for t in p.targets.all()}),
            "created_at": p.created_at, "updated_at": p.updated_at}


def _provider(provider_id: int):
    return selectors.provider_list().prefetch_related("targets__chain").get(pk=selectors.provider_get(provider_id).pk)


@router.get("/providers", response=responses({200: list[ProviderOut]}, 403, inputs=False))
def provider_list(request):
    """Upstream providers (admins only)."""
    require_admin(request.auth)
    return [provider_out(p) for p in selectors.provider_list().prefetch_related("targets__chain")]


@router.post("/providers", response=responses({201: ProviderOut}, body=True))
def provider_create(request, payload: ProviderIn):
    """Add an OpenAI-compatible or Anthropic provider (admins only). The key is stored encrypted."""
    data = payload.dict()
    p = providers.provider_create(actor=request.auth, **data)
    return 201, provider_out(_provider(p.pk))


@router.get("/providers/{provider_id}", response=responses({200: ProviderOut}, 403, 404))
def provider_detail(request, provider_id: Id):
    require_admin(request.auth)
    return provider_out(_provider(provider_id))


@router.patch("/providers/{provider_id}", response=responses({200: ProviderOut}, 404, body=True))
def provider_update(request, provider_id: Id, payload: ProviderPatch):
    """Change the fields sent (admins only); `api_key: null` removes the key."""
    changes = payload.dict(exclude_unset=True)
    for field in ("name", "kind", "base_url", "enabled"):
        if field in changes and changes[field] is None:
            changes.pop(field)
    providers.provider_update(actor=request.auth, provider_id=provider_id, **changes)
    return provider_out(_provider(provider_id))


@router.delete("/providers/{provider_id}", response=responses({204: None}, 404, 409, write=True))
def provider_delete(request, provider_id: Id):
    """Remove a provider (admins only); 409 while a chain uses it."""
    providers.provider_delete(actor=request.auth, provider_id=provider_id)
    return 204, None


@router.get("/providers/{provider_id}/models", response=responses({200: ProviderModelsOut}, 403, 404, 502))
def provider_models(request, provider_id: Id):
    """Fetch the provider's model list now (`GET {base}/models`, 10 s timeout) and keep it (admins only)."""
    p = providers.provider_models_fetch(actor=request.auth, provider_id=provider_id)
    return {"provider_id": p.pk, "models": list(p.model_ids or []), "fetched_at": p.models_fetched_at}


@router.get("/aliases/{name}/chain", response=responses({200: ChainOut}, 404))
def chain_detail(request, name: Slug):
    """An alias's fallback chain and settings (an alias without a chain: its deployed version)."""
    return selectors.chain_get(name)


@router.put("/aliases/{name}/chain", response=responses({200: ChainOut}, body=True))
def chain_put(request, name: Slug, payload: ChainIn):
    """Replace an alias's chain (admins only), creating the alias's chain if needed. Targets are
    `{model_version_id}` or `{provider, model}`; settings, when sent, replace the alias's settings."""
    data = payload.dict(exclude_unset=True)
    targets = [{k: v for k, v in t.items() if v is not None} for t in data.get("targets") or []]
    settings = data.get("settings") if "settings" in data and data["settings"] is not None else None
    providers.chain_set(actor=request.auth, name=name, targets=targets, settings=settings)
    return selectors.chain_get(name)


@router.delete("/aliases/{name}/chain", response=responses({204: None}, 404, write=True))
def chain_delete(request, name: Slug):
    """Forget an alias's chain (admins only): it serves its deployed version again."""
    providers.chain_delete(actor=request.auth, name=name)
    return 204, None
