"""/api for training runs: create (validated, 422 with field messages), list, detail, metrics, cancel,
checkpoints, relaunch, promote, estimate, pipelines."""
from __future__ import annotations

from typing import Any, Optional

from ninja import Field, Router, Schema

from apps.training import selectors, services

router = Router(tags=["training"])

_HP_FIELDS = ("max_steps", "epochs", "learning_rate", "batch_size", "grad_accum", "max_seq_len", "lora_r",
              "lora_alpha", "lora_dropout", "target_modules", "warmup_ratio", "weight_decay", "max_grad_norm",
              "lr_scheduler", "gradient_checkpointing", "save_steps", "save_total_limit", "eval_steps", "seed",
              "eval_prompts", "size", "vocab_size")


class StageIn(Schema):
    dataset_version_id: Optional[int] = None
    dataset_id: Optional[int] = None
    epochs: Optional[float] = None
    max_steps: Optional[int] = None


class RunIn(Schema):
    name: str = ""
    dataset_id: Optional[int] = None
    dataset_version_id: Optional[int] = None
    base_model: Optional[str] = None
    method: str = "lora"
    backend: str = "local"
    parent_version_id: Optional[int] = Field(None, description="continue training this model version")
    allow_truncation: bool = False
    stages: Optional[list[StageIn]] = Field(None, description="multi-stage pipeline: ordered stages")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    # hyperparameters may also be given at the top level
    max_steps: Optional[int] = None
    epochs: Optional[float] = None
    learning_rate: Optional[float] = None
    batch_size: Optional[int] = None
    grad_accum: Optional[int] = None
    max_seq_len: Optional[int] = None
    lora_r: Optional[int] = None
    lora_alpha: Optional[int] = None
    lora_dropout: Optional[float] = None
    target_modules: Optional[Any] = None
    warmup_ratio: Optional[float] = None
    weight_decay: Optional[float] = None
    max_grad_norm: Optional[float] = None
    lr_scheduler: Optional[str] = None
    gradient_checkpointing: Optional[bool] = None
    save_steps: Optional[int] = None
    save_total_limit: Optional[int] = None
    eval_steps: Optional[int] = None
    seed: Optional[int] = None
    eval_prompts: Optional[list[str]] = None
    size: Optional[str] = None
    vocab_size: Optional[int] = None


def _create_kwargs(payload: RunIn) -> dict:
    hp = dict(payload.hyperparameters or {})
    for key in _HP_FIELDS:
        value = getattr(payload, key)
        if value is not None:
            hp[key] = value
    return dict(
        dataset_version_id=payload.dataset_version_id, dataset_id=payload.dataset_id, base_model=payload.base_model,
        method=payload.method, backend=payload.backend, hyperparameters=hp, name=payload.name,
        parent_version_id=payload.parent_version_id, allow_truncation=payload.allow_truncation,
        stages=[s.dict() for s in payload.stages] if payload.stages else None,
    )


@router.post("/runs", response={201: dict})
def run_create(request, payload: RunIn):
    run = services.run_create(user=request.auth, **_create_kwargs(payload))
    return 201, selectors.run_as_dict(run)


@router.post("/runs/estimate", response=dict)
def run_estimate(request, payload: RunIn):
    """Validate a run without creating it: estimated tokens, steps, time (and cost for remote runs)."""
    return services.run_create(user=request.auth, dry_run=True, **_create_kwargs(payload))


@router.post("/pipelines", response={201: dict})
def pipeline_create(request, payload: RunIn):
    """A multi-stage pipeline: one run whose ordered `stages` each have their own dataset version and epochs."""
    if not payload.stages or len(payload.stages) < 2:
        from apps.core.exceptions import ValidationFailed

        raise ValidationFailed("A pipeline needs at least two stages.", field="stages")
    run = services.run_create(user=request.auth, **_create_kwargs(payload))
    return 201, selectors.run_as_dict(run)


@router.get("/runs", response=list[dict])
def run_list(request, status: Optional[str] = None, limit: int = 100):
    runs = selectors.run_list(user=request.auth, status=status)[: max(1, min(limit, 500))]
    return [selectors.run_as_dict(r) for r in runs]


@router.get("/runs/{run_id}", response=dict)
def run_detail(request, run_id: int):
    return selectors.run_as_dict(selectors.run_get(user=request.auth, run_id=run_id), with_metrics=True)


@router.get("/runs/{run_id}/metrics", response=list[dict])
def run_metrics(request, run_id: int, kind: Optional[str] = None, after_step: Optional[int] = None):
    run = selectors.run_get(user=request.auth, run_id=run_id)
    return selectors.run_metrics(run=run, kind=kind, after_step=after_step)


@router.post("/runs/{run_id}/cancel", response=dict)
def run_cancel(request, run_id: int):
    run = services.run_request_cancel(user=request.auth, run_id=run_id)
    return selectors.run_as_dict(run)


@router.get("/runs/{run_id}/checkpoints", response=list[dict])
def run_checkpoints(request, run_id: int):
    run = selectors.run_get(user=request.auth, run_id=run_id)
    return [selectors.checkpoint_as_dict(c) for c in selectors.run_checkpoints(run=run)]


class RelaunchIn(Schema):
    checkpoint_id: int
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


@router.post("/runs/{run_id}/relaunch", response={201: dict})
def run_relaunch(request, run_id: int, payload: RelaunchIn):
    run = services.run_relaunch(user=request.auth, run_id=run_id, checkpoint_id=payload.checkpoint_id,
                                hyperparameters=payload.hyperparameters)
    return 201, selectors.run_as_dict(run)


class PromoteIn(Schema):
    checkpoint_id: Optional[int] = Field(None, description="default: the best checkpoint by validation loss")


@router.post("/runs/{run_id}/promote", response={201: dict})
def run_promote(request, run_id: int, payload: PromoteIn):
    if payload.checkpoint_id:
        ckpt = selectors.checkpoint_get(user=request.auth, checkpoint_id=payload.checkpoint_id)
        if ckpt.run_id != run_id:
            from apps.core.exceptions import ValidationFailed

            raise ValidationFailed(f"Checkpoint {payload.checkpoint_id} does not belong to run {run_id}.",
                                   field="checkpoint_id")
    version = services.checkpoint_promote(user=request.auth, checkpoint_id=payload.checkpoint_id, run_id=run_id)
    return 201, {"id": version.pk, "model_version_id": version.pk, "name": version.name, "kind": version.kind,
                 "metrics": version.metrics}


@router.get("/compare", response=dict)
def runs_compare(request, ids: str):
    """Loss curves and config differences of several runs (ids=1,2,3)."""
    from apps.training.charts import compare_runs

    id_list = [int(x) for x in ids.split(",") if x.strip().isdigit()]
    return compare_runs(user=request.auth, run_ids=id_list)
