"""API shapes of the registry (django-ninja). Slugs, paths and names carry the rules the services enforce
(apps.core.inputs), so the OpenAPI schema states them and a bad value is a 422 before any service runs."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import Field

from apps.core.inputs import PathText, Slug, Text
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


class DeployIn(Schema):
    alias: Slug = Field(..., description="e.g. production, staging")


class AliasOut(Schema):
    id: int
    name: str
    model_version_id: int
    model_version_name: str
    served_name: str
    updated_by: str | None
    updated_at: datetime
    can_rollback: bool
