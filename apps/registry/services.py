"""Writes for the registry: base models, model versions, aliases (deploy / rollback).

A model version's artifacts live under ARTIFACT_ROOT/models/mv-<id>/ with a manifest,
`hub_model.json`, that the inference server (which knows nothing of Django) reads:
    {"name": "mv-12", "kind": "adapter"|"full", "base_model_path": "/abs/base",
     "adapter_path": "/abs/.../adapter" | null, "model_path": "/abs/..." | null}
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.accounts.services import require_admin
from apps.core import invalidation
from apps.core.exceptions import NotFound, ValidationFailed
from apps.registry.models import Alias, BaseModel, Deployment, ModelVersion
from workers.engine import base_models as engine_base_models

MANIFEST = "hub_model.json"


def model_version_dir(version_id: int) -> Path:
    return settings.ARTIFACT_ROOT / "models" / f"mv-{version_id}"


def base_model_prepare_default(*, on_step=None) -> BaseModel:
    """Convert the packaged SmolLM2 GGUF once (into HUB_MODEL_CACHE) and register it. `on_step(text)` is told
    each of the PREPARE_STEPS as it starts (manage.py prepare_base_model draws its progress bar from it)."""
    step = on_step or (lambda _text: None)
    folder = settings.HUB_MODEL_CACHE / engine_base_models.DEFAULT_BASE_MODEL_ID
    step("locating the packaged GGUF")
    gguf = engine_base_models.smollm2_gguf_path()
    step("already converted (cached)" if engine_base_models.is_prepared(folder) else
         f"loading {gguf.name} and saving safetensors")
    info = engine_base_models.prepare_from_gguf(gguf, folder, display_name=engine_base_models.DEFAULT_BASE_MODEL_NAME)
    step("registering")
    return _base_model_upsert(engine_base_models.DEFAULT_BASE_MODEL_ID, folder, info, is_default=True)


PREPARE_STEPS = 3  # base_model_prepare_default's steps, and base_model_register's


def base_model_register(*, actor=None, model_id: str, path: str | Path, name: str | None = None,
                        on_step=None) -> BaseModel:
    """Register any local Hugging Face model folder as a base model (admins only when an actor is given).
    `on_step(text)`: as base_model_prepare_default."""
    step = on_step or (lambda _text: None)
    if actor is not None:
        require_admin(actor)
    from django.utils.text import slugify

    slug = slugify(model_id or "")
    if not slug or slug != model_id:
        raise ValidationFailed("Use a slug: lower-case letters, digits and dashes.", field="id")
    step("checking the folder")
    try:  # the service checks its own input: a NUL byte or an over-long name is a field error, not a 500
        if "\x00" in str(path):
            raise ValueError("a path cannot contain a NUL byte")
        folder = Path(path).expanduser().resolve()
        is_dir = folder.is_dir()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValidationFailed(f"Not a usable path: {exc}", field="path") from exc
    if not is_dir:
        raise ValidationFailed(f"{folder} is not a folder on this machine.", field="path")
    step("reading its config and tokenizer")
    try:
        info = engine_base_models.describe_hf_folder(folder)
    except Exception as exc:
        raise ValidationFailed(f"Not a loadable Hugging Face model folder: {exc}", field="path") from exc
    if name:
        info["name"] = name
    step("registering")
    return _base_model_upsert(slug, folder, info, is_default=False)


def _base_model_upsert(model_id: str, folder: Path, info: dict, *, is_default: bool) -> BaseModel:
    obj, _ = BaseModel.objects.update_or_create(
        id=model_id,
        defaults=dict(
            name=info.get("name") or model_id,
            path=str(folder),
            source=str(info.get("source", "")),
            architecture=info.get("architecture", ""),
            parameters=info.get("parameters"),
            context_length=info.get("context_length") or 2048,
            hidden_size=info.get("hidden_size") or 0,
            is_default=is_default,
        ),
    )
    return obj


def _write_manifest(version: ModelVersion) -> None:
    folder = model_version_dir(version.pk)
    folder.mkdir(parents=True, exist_ok=True)
    artifact = (settings.ARTIFACT_ROOT / version.artifact_path) if version.artifact_path else None
    manifest = {
        "name": version.served_name,
        "kind": version.kind,
        "base_model_path": version.base_model.path if version.base_model else None,
        "adapter_path": str(artifact) if artifact and version.kind == ModelVersion.Kind.ADAPTER else None,
        "model_path": str(artifact) if artifact and version.kind == ModelVersion.Kind.FULL else None,
        "remote_model_id": version.remote_model_id or None,
    }
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(folder / MANIFEST)


@transaction.atomic
def model_version_register(*, name: str, kind: str, base_model: BaseModel | None, run=None,
                           dataset_version=None, parent: ModelVersion | None = None,
                           source_dir: str | Path | None = None, remote_model_id: str = "",
                           hyperparameters: dict | None = None, metrics: dict | None = None,
                           final_loss: float | None = None, created_by=None) -> ModelVersion:
    """Register a model version. `source_dir` (an adapter or full-model folder) is copied under
    ARTIFACT_ROOT/models/mv-<id>/weights so the version owns its files."""
    if kind not in ModelVersion.Kind.values:
        raise ValidationFailed(f"Unknown kind {kind!r}.", field="kind")
    version = ModelVersion.objects.create(
        name=name, kind=kind, base_model=base_model, run=run, dataset_version=dataset_version, parent=parent,
        remote_model_id=remote_model_id, hyperparameters=hyperparameters or {}, metrics=metrics or {},
        final_loss=final_loss, created_by=created_by,
    )
    if source_dir is not None:
        dest = model_version_dir(version.pk) / "weights"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source_dir, dest)
        version.artifact_path = str(dest.relative_to(settings.ARTIFACT_ROOT))
        version.save(update_fields=["artifact_path"])
    _write_manifest(version)
    return version


def _version_or_404(version_id: int) -> ModelVersion:
    version = ModelVersion.objects.select_related("base_model").filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"Model version {version_id} does not exist.")
    return version


SERVED_ACTIONS = ("deploy", "rollback", "promote")  # Deployment rows after which the alias served their version


def _no_running_experiment(alias: str) -> None:
    """Conflict while an experiment or canary splits the alias (its split would hide the change)."""
    from apps.experiments.services import ensure_no_running

    ensure_no_running(alias)


@transaction.atomic
def alias_deploy(*, actor, version_id: int, alias: str, reason: str = "", action: str = "deploy",
                 system: bool = False) -> Alias:
    """Point `alias` at a model version (admins only; `system`: the canary monitor promoting on its own); the
    previous target is kept for rollback, with who, when and why. Conflict while an experiment runs on it."""
    if not system:
        require_admin(actor)
    from django.utils.text import slugify

    if not alias or slugify(alias) != alias:
        raise ValidationFailed("Alias must be a slug (letters, digits, dashes).", field="alias")
    version = _version_or_404(version_id)
    current = Alias.objects.select_for_update().filter(name=alias).first()
    _no_running_experiment(alias)
    previous = current.model_version if current else None
    who = actor if getattr(actor, "is_authenticated", False) else None
    if current:
        current.model_version = version
        current.updated_by = who
        current.save(update_fields=["model_version", "updated_by", "updated_at"])
    else:
        current = Alias.objects.create(name=alias, model_version=version, updated_by=who)
    Deployment.objects.create(alias_name=alias, model_version=version, previous_version=previous,
                              action=action, actor=who, reason=(reason or "")[:2000])
    invalidation.publish_on_commit(invalidation.ROUTES)
    return current


@transaction.atomic
def alias_rollback(*, actor, alias: str, to_deployment_id: int | None = None, to_version_id: int | None = None,
                   reason: str = "") -> Alias:
    """Point `alias` back at a version it served before (admins only): the one a given earlier deployment put
    there (`to_deployment_id`), a given version (`to_version_id`), or by default the most recent version it
    served other than the current one (registry.selectors.alias_rollback_targets). A rollback that would
    change nothing is refused (a field error), as is one while an experiment or canary runs on the alias."""
    from apps.registry.selectors import alias_rollback_targets

    require_admin(actor)
    current = Alias.objects.select_for_update().filter(name=alias).first()
    if current is None:
        raise NotFound(f"Alias {alias!r} does not exist.")
    _no_running_experiment(alias)
    if to_deployment_id is not None:
        row = Deployment.objects.filter(pk=to_deployment_id, alias_name=alias, action__in=SERVED_ACTIONS).first()
        if row is None:
            raise ValidationFailed(f"Alias {alias!r} has no deployment {to_deployment_id} to roll back to.",
                                   field="to_deployment_id")
        target_id, field = row.model_version_id, "to_deployment_id"
    elif to_version_id is not None:
        target_id, field = to_version_id, "to_version_id"
    else:
        targets = alias_rollback_targets(alias, current_version_id=current.model_version_id)
        if not targets:
            raise ValidationFailed(f"Alias {alias!r} has no earlier version to roll back to.", field="alias")
        target_id, field = targets[0].model_version_id, "alias"
    if target_id == current.model_version_id:
        raise ValidationFailed(f"Alias {alias!r} already serves mv-{target_id}: that rollback would change nothing.",
                               field=field)
    if field == "to_version_id" and not Deployment.objects.filter(
            alias_name=alias, model_version_id=target_id, action__in=SERVED_ACTIONS).exists():
        raise ValidationFailed(f"Alias {alias!r} never served mv-{target_id}: deploy it instead.", field=field)
    target = _version_or_404(target_id)
    Deployment.objects.create(alias_name=alias, model_version=target, previous_version=current.model_version,
                              action="rollback", actor=actor, reason=(reason or "")[:2000])
    current.model_version = target
    current.updated_by = actor
    current.save(update_fields=["model_version", "updated_by", "updated_at"])
    invalidation.publish_on_commit(invalidation.ROUTES)
    return current


# Deploy and rollback publish invalidation.ROUTES: every web process's /v1 proxy forgets the routes it
# resolved, this one at once and the others within a second (the proxy's cache has no TTL).
def _route_source_written(sender, instance, created=False, update_fields=None, **kwargs):
    """An alias or version saved in full (the admin site) or deleted: resolved routes may be stale.
    A new row cannot be in a cache yet (failures are not cached)."""
    if not created and update_fields is None:  # the services' own saves name their fields and publish
        invalidation.publish_on_commit(invalidation.ROUTES)


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    for model in (Alias, ModelVersion):
        post_save.connect(_route_source_written, sender=model, dispatch_uid=f"routes.saved.{model.__name__}")
        post_delete.connect(_route_source_written, sender=model, dispatch_uid=f"routes.deleted.{model.__name__}")
    from apps.registry import vllm  # a new deployment loads its adapter on a vLLM inference server, after commit

    post_save.connect(vllm.deployment_saved, sender=Deployment, dispatch_uid="registry.vllm.deployment_saved")
    from apps.registry.exports import serving  # a deployed version gets a GGUF, so llama.cpp serves it

    post_save.connect(serving.deployment_saved, sender=Deployment, dispatch_uid="registry.serving.deployment_saved")
