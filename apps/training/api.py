"""/api for training runs: create (validated, 422 with field messages), list, detail, metrics, cancel,
checkpoints, relaunch, promote, estimate, pipelines. Parses input, calls a selector or a service, renders;
every status an operation returns is declared (apps.core.schemas), ids are bounded, methods, backends and
statuses are enums, and no string with a NUL byte reaches a service."""
from __future__ import annotations

from typing import Optional

from ninja import Field, Query, Router, Schema
from pydantic import create_model

from apps.core.exceptions import ValidationFailed
from apps.core.inputs import MAX_ID, Id, Text, has_nul, parse_id_list
from apps.core.schemas import responses
from apps.training import selectors, services
from apps.training.hyperparameters import HyperparametersIn, api_hyperparameters, top_level_fields
from apps.training.schemas import (
    STATUS_FILTER_PATTERN, Backend, CheckpointOut, CompareOut, MetricKind, Method, PromotedOut, RunDetailOut, RunOut,
)

router = Router(tags=["training"])


class StageIn(Schema):
    dataset_version_id: Optional[Id] = None
    dataset_id: Optional[Id] = None
    epochs: Optional[float] = None
    max_steps: Optional[int] = None


class RunInBase(Schema):
    name: Text = Field("", max_length=200)
    dataset_id: Optional[Id] = None
    dataset_version_id: Optional[Id] = None
    base_model: Optional[Text] = Field(None, max_length=100)
    method: Method = "lora"
    backend: Backend = "local"
    parent_version_id: Optional[Id] = Field(None, description="continue training this model version")
    allow_truncation: bool = False
    stages: Optional[list[StageIn]] = Field(None, description="multi-stage pipeline: ordered stages")
    hyperparameters: HyperparametersIn = Field(default_factory=HyperparametersIn)


# the hyperparameters may also be given at the top level: the same typed, documented fields
RunIn = create_model("RunIn", __base__=RunInBase, **top_level_fields())


def _create_kwargs(payload: RunIn) -> dict:
    hyperparameters = api_hyperparameters(payload)
    if has_nul(hyperparameters):
        raise ValidationFailed("Hyperparameters must not contain NUL bytes.", field="hyperparameters")
    return dict(
        dataset_version_id=payload.dataset_version_id, dataset_id=payload.dataset_id, base_model=payload.base_model,
        method=payload.method, backend=payload.backend, hyperparameters=hyperparameters,
        name=payload.name, parent_version_id=payload.parent_version_id, allow_truncation=payload.allow_truncation,
        stages=[s.dict() for s in payload.stages] if payload.stages else None,
    )


@router.post("/runs", response=responses({201: RunOut}, body=True))
def run_create(request, payload: RunIn):
    run = services.run_create(user=request.auth, **_create_kwargs(payload))
    return 201, selectors.run_as_dict(run)


@router.post("/runs/estimate", response=responses({200: dict}, body=True))
def run_estimate(request, payload: RunIn):
    """Validate a run without creating it: estimated tokens, steps, time (and cost for remote runs)."""
    return services.run_create(user=request.auth, dry_run=True, **_create_kwargs(payload))


@router.post("/pipelines", response=responses({201: RunOut}, body=True))
def pipeline_create(request, payload: RunIn):
    """A multi-stage pipeline: one run whose ordered `stages` each have their own dataset version and epochs."""
    if not payload.stages or len(payload.stages) < 2:
        raise ValidationFailed("A pipeline needs at least two stages.", field="stages")
    run = services.run_create(user=request.auth, **_create_kwargs(payload))
    return 201, selectors.run_as_dict(run)


@router.get("/runs", response=responses({200: list[RunOut]}))
def run_list(request, status: Optional[str] = Query(None, pattern=STATUS_FILTER_PATTERN,
                                                    description="a status, or several comma-separated"),
             limit: int = Query(100, ge=1, le=500)):
    runs = selectors.run_list(user=request.auth, status=status)[:limit]
    return [selectors.run_as_dict(r) for r in runs]


@router.get("/runs/{run_id}", response=responses({200: RunDetailOut}, 404))
def run_detail(request, run_id: Id):
    return selectors.run_as_dict(selectors.run_get(user=request.auth, run_id=run_id), with_metrics=True)


@router.get("/runs/{run_id}/metrics", response=responses({200: list[dict]}, 404))
def run_metrics(request, run_id: Id, kind: Optional[MetricKind] = None,
                after_step: Optional[int] = Query(None, ge=0, le=MAX_ID)):
    run = selectors.run_get(user=request.auth, run_id=run_id)
    return selectors.run_metrics(run=run, kind=kind, after_step=after_step)


@router.post("/runs/{run_id}/cancel", response=responses({200: RunOut}, 404, 409, write=True))
def run_cancel(request, run_id: Id):
    run = services.run_request_cancel(user=request.auth, run_id=run_id)
    return selectors.run_as_dict(run)


@router.get("/runs/{run_id}/checkpoints", response=responses({200: list[CheckpointOut]}, 404))
def run_checkpoints(request, run_id: Id):
    run = selectors.run_get(user=request.auth, run_id=run_id)
    return [selectors.checkpoint_as_dict(c) for c in selectors.run_checkpoints(run=run)]


class RelaunchIn(Schema):
    checkpoint_id: Id
    hyperparameters: HyperparametersIn = Field(default_factory=HyperparametersIn)


@router.post("/runs/{run_id}/relaunch", response=responses({201: RunOut}, 404, body=True))
def run_relaunch(request, run_id: Id, payload: RelaunchIn):
    run = services.run_relaunch(user=request.auth, run_id=run_id, checkpoint_id=payload.checkpoint_id,
                                hyperparameters=payload.hyperparameters.model_dump(exclude_none=True))
    return 201, selectors.run_as_dict(run)


class PromoteIn(Schema):
    checkpoint_id: Optional[Id] = Field(None, description="default: the best checkpoint by validation loss")


@router.post("/runs/{run_id}/promote", response=responses({201: PromotedOut}, 404, 409, body=True))
def run_promote(request, run_id: Id, payload: PromoteIn):
    if payload.checkpoint_id:
        ckpt = selectors.checkpoint_get(user=request.auth, checkpoint_id=payload.checkpoint_id)
        if ckpt.run_id != run_id:
            raise ValidationFailed(f"Checkpoint {payload.checkpoint_id} does not belong to run {run_id}.",
                                   field="checkpoint_id")
    version = services.checkpoint_promote(user=request.auth, checkpoint_id=payload.checkpoint_id, run_id=run_id)
    return 201, {"id": version.pk, "model_version_id": version.pk, "name": version.name, "kind": version.kind,
                 "metrics": version.metrics}


@router.get("/compare", response=responses({200: CompareOut}))
def runs_compare(request, ids: str = Query(..., pattern=r"^[0-9, ]*$", description="run ids: 1,2,3")):
    """Loss curves and config differences of several runs (ids=1,2,3; unknown ids are left out)."""
    from apps.training.charts import compare_runs

    return compare_runs(user=request.auth, run_ids=parse_id_list(ids))
