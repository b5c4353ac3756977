"""/api routes of the registry: base models, model versions (with lineage), aliases. Parses input, calls a
selector or a service, renders; every status an operation returns is declared (apps.core.schemas)."""
from __future__ import annotations

from django.db import transaction
from ninja import Router

from apps.core.inputs import Id, Slug
from apps.core.schemas import responses
from apps.registry import selectors, services
from apps.registry.schemas import (AliasOut, BaseModelIn, BaseModelOut, DeployIn, ModelVersionDetail,
                                   ModelVersionOut)

router = Router(tags=["registry"])


def version_out(v) -> dict:
    return {
        "id": v.pk, "name": v.name, "served_name": v.served_name, "kind": v.kind,
        "base_model_id": v.base_model_id, "parent_id": v.parent_id, "run_id": v.run_id,
        "dataset_version_id": v.dataset_version_id, "remote_model_id": v.remote_model_id,
        "final_loss": v.final_loss, "created_at": v.created_at,
        "aliases": [{"id": a.pk, "name": a.name} for a in v.aliases.all()],
    }


def alias_out(a) -> dict:
    return {"id": a.pk, "name": a.name, "model_version_id": a.model_version_id,
            "model_version_name": a.model_version.name, "served_name": a.model_version.served_name,
            "updated_by": a.updated_by.username if a.updated_by else None, "updated_at": a.updated_at,
            "can_rollback": selectors.alias_can_rollback(a.name)}


@router.get("/base-models", response=responses({200: list[BaseModelOut]}, inputs=False))
def base_models(request):
    return list(selectors.base_model_list())


@router.post("/base-models", response=responses({201: BaseModelOut}, body=True))
def base_model_create(request, payload: BaseModelIn):
    """Register a local Hugging Face model folder as a base model (admins only)."""
    with transaction.atomic():
        obj = services.base_model_register(actor=request.auth, model_id=payload.id, path=payload.path,
                                           name=payload.name)
    return 201, obj


@router.get("/models", response=responses({200: list[ModelVersionOut]}, inputs=False))
def models(request):
    return [version_out(v) for v in selectors.model_version_list()]


@router.get("/models/{version_id}", response=responses({200: ModelVersionDetail}, 404))
def model_detail(request, version_id: Id):
    v = selectors.model_version_get(version_id)
    history = [{"id": d.pk, "alias": d.alias_name, "action": d.action, "model_version_id": d.model_version_id,
                "previous_version_id": d.previous_version_id,
                "actor": d.actor.username if d.actor else None, "created_at": d.created_at.isoformat()}
               for d in selectors.deployment_history(version_id=v.pk)]
    return {**version_out(v), "artifact_path": v.artifact_path, "hyperparameters": v.hyperparameters,
            "metrics": v.metrics, "lineage": selectors.model_version_lineage(v), "deployments": history}


@router.post("/models/{version_id}/deploy", response=responses({200: AliasOut}, 404, body=True))
def model_deploy(request, version_id: Id, payload: DeployIn):
    """Point an alias (e.g. `production`) at this version (admins only)."""
    alias = services.alias_deploy(actor=request.auth, version_id=version_id, alias=payload.alias)
    return alias_out(selectors.alias_get(alias.name))


@router.get("/aliases", response=responses({200: list[AliasOut]}, inputs=False))
def aliases(request):
    return [alias_out(a) for a in selectors.alias_list()]


@router.post("/aliases/{name}/rollback", response=responses({200: AliasOut}, 404, write=True))
def alias_rollback(request, name: Slug):
    """Point the alias back at what it served before its latest deployment (admins only)."""
    alias = services.alias_rollback(actor=request.auth, alias=name)
    return alias_out(selectors.alias_get(alias.name))
