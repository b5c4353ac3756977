"""Grow runs (method "grow") before launch: which model versions can be grown, into what, and what the grown
model inherits. The rules are the engine's (workers/engine/grow/plan.py), applied here to the parent's config so
that a bad request is a 422 naming its field before anything is queued.

Contract: `grow_parent_problem(parent)` is None or the message for `parent_version_id` (a from-scratch
full-weights Llama version is required: adapters and versions fine-tuned from a base model are refused);
`grow_limits(parent)` the parent's limits the hyperparameters are capped by (context length, hidden size);
`grow_target(parent, target_size)` returns (the effective target_size a run stores: the named size it resolved
to, or every dim, and None) or (None, the message for `hyperparameters.target_size`). Nothing here writes."""
from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ModelLimits:
    """What `_clean_hyperparameters` reads of a base model, for a parent version that has none."""
    hidden_size: int | None
    context_length: int | None


def _config(parent) -> dict | None:
    try:
        return json.loads((settings.ARTIFACT_ROOT / parent.artifact_path / "config.json").read_text())
    except (OSError, ValueError):
        return None


def grow_parent_problem(parent) -> str | None:
    from apps.registry.models import ModelVersion

    if parent.kind == ModelVersion.Kind.ADAPTER:
        return (f"Grow needs a from-scratch full-weights version; version {parent.pk} is a LoRA adapter on "
                f"{parent.base_model_id or 'a base model'}.")
    if parent.kind != ModelVersion.Kind.FULL:
        return f"Grow needs a from-scratch full-weights version; version {parent.pk} is {parent.kind}."
    if parent.base_model_id:
        return (f"Version {parent.pk} was fine-tuned from the base model {parent.base_model_id}; grow starts from "
                f"models trained here from scratch (method scratch, or a version continued or grown from one).")
    config = _config(parent)
    if config is None:
        return f"Version {parent.pk} has no readable config.json in its folder."
    if config.get("model_type") != "llama":
        return (f"Grow works on Llama-architecture models (what method scratch builds); version {parent.pk} is "
                f"{config.get('model_type') or 'of an unknown type'}.")
    return None


def grow_limits(parent) -> ModelLimits | None:
    config = _config(parent) if parent is not None and parent.artifact_path else None
    if config is None:
        return None
    return ModelLimits(hidden_size=None, context_length=config.get("max_position_embeddings"))


def grow_target(parent, target_size) -> tuple[str | dict | None, str | None]:
    from workers.engine.grow import GrowError, grow_plan

    try:
        plan = grow_plan(_config(parent) or {}, target_size)
    except GrowError as exc:
        return None, str(exc)
    return plan.stored_target, None
