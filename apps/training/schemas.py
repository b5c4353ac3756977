"""API shapes of training runs that /api answers with (django-ninja).

Contract: the fields below are what `selectors.run_as_dict` / `checkpoint_as_dict` promise; statuses,
methods and backends are the model's choices. `RunOut` allows more keys than it lists, so a field added to
`run_as_dict` reaches clients before it is documented here (document it here too). The request bodies
(run create, relaunch, promote) live in apps/training/api.py beside the hyperparameter table's schema."""
from __future__ import annotations

from typing import Any, Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from apps.registry.models import ModelVersion
from apps.training.models import TrainingRun

RunStatus = Literal[tuple(TrainingRun.Status.values)]
Method = Literal[tuple(TrainingRun.Method.values)]
Backend = Literal[tuple(TrainingRun.Backend.values)]
MetricKind = Literal["train", "eval"]
# `status=` of GET /api/runs: one status or several, comma-separated (`queued,running`)
STATUS_FILTER_PATTERN = "^(?:{0})(?:,(?:{0}))*$".format("|".join(TrainingRun.Status.values))


class CheckpointOut(Schema):
    id: int
    run_id: int
    step: int
    stage: int
    eval_loss: float | None
    model_version_id: int | None
    created_at: str


class RunOut(Schema):
    model_config = ConfigDict(extra="allow")

    id: int
    name: str
    status: RunStatus
    method: Method
    backend: Backend
    owner: str
    dataset_version_id: int
    dataset_id: int
    base_model: str | None
    parent_version_id: int | None
    hyperparameters: dict[str, Any]
    current_step: int
    total_steps: int
    summary: dict[str, Any]
    error: str
    error_code: str = Field("", description="E_... code of a failure (one-line error; tracebacks only in logs)")
    phase: str = Field("", description="while active: queued, loading, training, evaluating, saving, registering")
    elapsed_s: float | None = Field(None, description="seconds running so far (active runs)")
    duration_s: float | None = Field(None, description="seconds it ran (finished runs)")
    job_id: int | None = Field(None, description="its background job (/api/jobs/{id})")
    cancel_requested: bool
    model_version_id: int | None
    queue_position: int | None
    remote_job_id: str
    created_at: str
    started_at: str | None
    finished_at: str | None


class RunDetailOut(RunOut):
    metrics: list[dict[str, Any]]
    checkpoints: list[CheckpointOut]


class PromotedOut(Schema):
    id: int
    model_version_id: int
    name: str
    kind: Literal[tuple(ModelVersion.Kind.values)]
    metrics: dict[str, Any]


class CurveOut(Schema):
    x: list[float]
    y: list[float]


class CompareRunOut(Schema):
    id: int
    name: str
    status: RunStatus
    final_loss: float | None
    eval_loss: float | None
    curves: dict[str, CurveOut]


class CompareRowOut(Schema):
    key: str
    values: list[Any]
    differs: bool


class CompareOut(Schema):
    runs: list[CompareRunOut]
    config: list[CompareRowOut]
