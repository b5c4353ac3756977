from __future__ import annotations

from datetime import datetime

from ninja import Schema
from pydantic import Field


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
    id: str = Field(..., min_length=1, max_length=100, description="slug, e.g. qwen2-0.5b")
    path: str = Field(..., min_length=1, max_length=1000, description="a Hugging Face model folder on this machine")
    name: str | None = Field(None, max_length=200)


class AliasRef(Schema):
    id: int
    name: str


class ModelVersionOut(Schema):
    id: int
    name: str
    served_name: str
    kind: str
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


class DeployIn(Schema):
    alias: str = Field(..., min_length=1, max_length=100)


class AliasOut(Schema):
    id: int
    name: str
    model_version_id: int
    model_version_name: str
    served_name: str
    updated_by: str | None
    updated_at: datetime
    can_rollback: bool
