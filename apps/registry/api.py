"""/api routes of the registry: base models, model versions (with lineage), aliases (deploy, canary deploy,
history, rollback to any earlier deployment). Parses input, calls a selector or a service, renders; every status an
operation returns is declared (apps.core.schemas)."""
from __future__ import annotations

from django.db import transaction
from ninja import Body, Router

from apps.core.exceptions import ValidationFailed
from apps.core.inputs import Id, Slug
from apps.core.schemas import responses
from apps.registry import selectors, services
from apps.registry.schemas import (AliasHistoryOut, AliasOut, BaseModelIn, BaseModelOut, DeployIn,
                                   ModelVersionDetail, ModelVersionOut, RollbackIn)
from apps.registry.vllm import reason_split

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
    exp = selectors.alias_experiment(a.name)
    return {"id": a.pk, "name": a.name, "model_version_id": a.model_version_id,
            "model_version_name": a.model_version.name, "served_name": a.model_version.served_name,
            "updated_by": a.updated_by.username if a.updated_by else None, "updated_at": a.updated_at,
            "can_rollback": selectors.alias_can_rollback(a.name),
            "experiment_id": exp.pk if exp else None, "experiment_kind": exp.kind if exp else None}


def deployment_out(d) -> dict:
    reason, warning = reason_split(d.reason)
    return {"id": d.pk, "alias": d.alias_name, "action": d.action, "model_version_id": d.model_version_id,
            "model_version_name": d.model_version.name, "previous_version_id": d.previous_version_id,
            "actor": d.actor.username if d.actor else None, "reason": reason, "warning": warning,
            "created_at": d.created_at}


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
                "actor": d.actor.username if d.actor else None, "reason": reason_split(d.reason)[0],
                "warning": reason_split(d.reason)[1], "created_at": d.created_at.isoformat()}
               for d in selectors.deployment_history(version_id=v.pk)]
    return {**version_out(v), "artifact_path": v.artifact_path, "hyperparameters": v.hyperparameters,
            "metrics": v.metrics, "lineage": selectors.model_version_lineage(v), "deployments": history}


@router.post("/models/{version_id}/deploy", response=responses({200: AliasOut}, 404, 409, body=True))
def model_deploy(request, version_id: Id, payload: DeployIn):
    """Point an alias (e.g. `production`) at this version (admins only), with a reason. With `canary_percent`,
    a canary instead: that share of the alias's requests goes to this version, watched every minute against
    `thresholds` (rolled back automatically on a breach, promoted after `hold_minutes`; see /api/experiments)."""
    if payload.canary_percent is None:
        extra = [f for f in ("thresholds", "webhook_url") if getattr(payload, f) is not None]
        if payload.auto_promote:
            extra.append("auto_promote")
        if extra:
            raise ValidationFailed("Canary options need canary_percent.", errors=[
                {"field": f, "message": "Only for a canary: set canary_percent too."} for f in extra])
        alias = services.alias_deploy(actor=request.auth, version_id=version_id, alias=payload.alias,
                                      reason=payload.reason or "")
        return alias_out(selectors.alias_get(alias.name))
    from apps.experiments.canary import canary_start

    thresholds = payload.thresholds.model_dump(exclude_none=True) if payload.thresholds is not None else None
    canary_start(actor=request.auth, version_id=version_id, alias=payload.alias, percent=payload.canary_percent,
                 thresholds=thresholds, window_minutes=payload.window_minutes, min_requests=payload.min_requests,
                 hold_minutes=payload.hold_minutes, auto_promote=payload.auto_promote, sticky_by=payload.sticky_by,
                 webhook_url=payload.webhook_url or "", reason=payload.reason or "")
    return alias_out(selectors.alias_get(payload.alias))


@router.get("/aliases", response=responses({200: list[AliasOut]}, inputs=False))
def aliases(request):
    return [alias_out(a) for a in selectors.alias_list()]


@router.get("/aliases/{name}/deployments", response=responses({200: AliasHistoryOut}, 404))
def alias_history(request, name: Slug):
    """The alias's deployments (who, when, why), newest first, and the versions it can roll back to."""
    a = selectors.alias_get(name)
    exp = selectors.alias_experiment(name)
    return {"alias": a.name, "model_version_id": a.model_version_id, "experiment_id": exp.pk if exp else None,
            "deployments": [deployment_out(d) for d in selectors.deployment_history(alias=name, limit=200)],
            "rollback_targets": [deployment_out(d) for d in selectors.alias_rollback_targets(name)]}


@router.post("/aliases/{name}/rollback", response=responses({200: AliasOut}, 404, 409, body=True))
def alias_rollback(request, name: Slug, payload: RollbackIn = Body(None)):
    """Point the alias back at a version it served before (admins only): `to_deployment_id` (any earlier
    deployment), `to_version_id`, or by default the most recent other version; with a `reason`. A rollback
    that would change nothing is a 422."""
    p = payload or RollbackIn()
    alias = services.alias_rollback(actor=request.auth, alias=name, to_deployment_id=p.to_deployment_id,
                                    to_version_id=p.to_version_id, reason=p.reason or "")
    return alias_out(selectors.alias_get(alias.name))
