"""API shapes of the registry (django-ninja). Slugs, paths and names carry the rules the services enforce
(apps.core.inputs), so the OpenAPI schema states them and a bad value is a 422 before any service runs."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from apps.core.inputs import Id, PathText, Slug, Text
from apps.registry.models import ModelVersion

Kind = Literal[tuple(ModelVersion.Kind.values)]


class BaseModelOut(Schema):
    id: str
    name: str
    path: str
    source: str
    architecture: str
    parameters: int | None
    context_length: int
    hidden_size: int
    is_default: bool
    created_at: datetime


class BaseModelIn(Schema):
    id: Slug = Field(..., description="slug, e.g. qwen2-0-5b")
    path: PathText = Field(..., description="a Hugging Face model folder on this machine")
    name: Text | None = Field(None, max_length=200)


class AliasRef(Schema):
    id: int
    name: str


class ModelVersionOut(Schema):
    id: int
    name: str
    served_name: str
    kind: Kind
    base_model_id: str | None
    parent_id: int | None
    run_id: int | None
    dataset_version_id: int | None
    remote_model_id: str
    final_loss: float | None
    created_at: datetime
    aliases: list[AliasRef]


class ModelVersionDetail(ModelVersionOut):
    artifact_path: str
    hyperparameters: dict
    metrics: dict
    lineage: dict
    deployments: list[dict]


class ThresholdsIn(Schema):
    """A canary's limits on its own arm over the evaluation window (apps.experiments.canary.THRESHOLDS)."""

    model_config = ConfigDict(extra="forbid")
    error_rate: float | None = Field(None, ge=0, le=1, description="roll back above this error rate (0..1)")
    p95_ms: float | None = Field(None, ge=1, le=3_600_000, description="roll back above this p95 latency")
    ttft_ms: float | None = Field(None, ge=1, le=3_600_000, description="roll back above this p95 time to first token")
    tool_call_validity: float | None = Field(None, ge=0, le=1, description="roll back below this valid share")
    feedback: float | None = Field(None, ge=0, le=1, description="roll back below this mean feedback (0..1)")


class DeployIn(Schema):
    alias: Slug = Field(..., description="e.g. production, staging")
    reason: Text | None = Field(None, max_length=2000, description="why (kept in the alias's history)")
    canary_percent: int | None = Field(None, ge=1, le=99, description="deploy as a canary taking this share of "
                                       "requests; the alias keeps serving its current version to the rest")
    thresholds: ThresholdsIn | None = Field(None, description="canary only; default: error_rate 0.05")
    window_minutes: int = Field(5, ge=1, le=1440, description="canary: evaluation window")
    min_requests: int = Field(20, ge=1, le=1_000_000, description="canary: observations before a metric is judged")
    hold_minutes: int = Field(30, ge=0, le=43_200, description="canary: how long it must hold before promotion")
    auto_promote: bool = Field(False, description="canary: promote on its own once it held")
    sticky_by: Literal["request", "api_key", "user", "session"] = Field(
        "request", description="canary: how requests stick to an arm")
    webhook_url: Text | None = Field(None, max_length=500, pattern=r"^https?://\S+$",
                                     description="canary: POST its rollout events here")


class RollbackIn(Schema):
    to_deployment_id: Id | None = Field(None, description="the earlier deployment whose version to serve again")
    to_version_id: Id | None = Field(None, description="or a version the alias served before")
    reason: Text | None = Field(None, max_length=2000, description="why (kept in the alias's history)")


class DeploymentOut(Schema):
    id: int
    alias: str
    action: str
    model_version_id: int
    model_version_name: str
    previous_version_id: int | None
    actor: str | None
    reason: str
    # why this deployment's version may not be served (apps.registry.vllm: the vLLM server refused its adapter)
    warning: str | None = None
    created_at: datetime


class AliasHistoryOut(Schema):
    alias: str
    model_version_id: int
    experiment_id: int | None
    deployments: list[DeploymentOut]
    rollback_targets: list[DeploymentOut]


class AliasOut(Schema):
    id: int
    name: str
    model_version_id: int
    model_version_name: str
    served_name: str
    updated_by: str | None
    updated_at: datetime
    can_rollback: bool
    experiment_id: int | None = None  # an experiment or canary running on the alias
    experiment_kind: str | None = None
