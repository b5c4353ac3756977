"""Writes for exports: create one (and its job), delete one (files and row), and keep a version's serving manifest's
`gguf_path` in step. The job's body is `apps.registry.exports.run.export_run`.

Contract:
- `export_create(*, actor, model_version_id, format, quantization=None, inline=False) -> Export`: any signed-in
  user who can see the version may export it (every version is visible to every member, like the registry's
  pages; deploying stays admin-only). 422 (ValidationFailed with `field`) for a remote version (no weights here), a
  version whose weights are missing, a format it does not have (an adapter of full weights), an unknown format or
  quantization (the message lists the choices) or a quantization on a non-GGUF export; 409 while the same export
  (version, format, quantization) is queued or running. A GGUF export with no quantization is q8_0. The Export and
  its job ("registry.export", queue `gpu`) are created in one transaction; the message is sent after commit, or,
  with inline=True (the command line), nothing is sent and the job runs here at once (`listener`: see run.py).
- `export_delete(*, actor, export_id)`: its creator or an admin; 409 while it runs; removes its folder, its row,
  and its file from the version's manifest.
- `manifest_record_gguf(version_id, path)` / `manifest_forget_gguf(version_id, path)`: add `gguf_path` (absolute)
  to ARTIFACT_ROOT/models/mv-<id>/hub_model.json when it has none / remove it when it is that file (atomic writes).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from apps.core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.jobs import services as job_services
from apps.core.models import Job
from apps.registry.exports.formats import DEFAULT_QUANTIZATION, FORMATS, OFFERED_QUANTIZATIONS, SERVING_QUANTIZATIONS
from apps.registry.models import Export, ModelVersion
from workers.engine.export import Source

KIND = "registry.export"
MANIFEST = "hub_model.json"
ACTIVE = (Export.Status.QUEUED, Export.Status.RUNNING)


def exports_root() -> Path:
    return Path(settings.ARTIFACT_ROOT) / "exports"


def export_dir(export_id: int) -> Path:
    return exports_root() / f"ex-{export_id}"


def export_abspath(export: Export) -> Path | None:
    return (Path(settings.ARTIFACT_ROOT) / export.path) if export.path else None


def source_of(version: ModelVersion) -> Source:
    """Where the version's weights are (kind adapter: base + adapter folder; full: its folder)."""
    artifact = str(Path(settings.ARTIFACT_ROOT) / version.artifact_path) if version.artifact_path else None
    base = version.base_model.path if version.base_model_id else None
    if version.kind == ModelVersion.Kind.FULL:
        return Source(kind="full", model_path=artifact, base_model_path=base)
    return Source(kind="adapter", base_model_path=base, adapter_path=artifact)


def weights_problem(version: ModelVersion, source: Source) -> str | None:
    if source.kind == "full":
        if not source.model_path or not Path(source.model_path).is_dir():
            return f"The weights of {version.name} are not on this machine (no model folder)."
        return None
    if not source.base_model_path or not Path(source.base_model_path).is_dir():
        return f"The base model of {version.name} is not on this machine."
    if source.adapter_path and not Path(source.adapter_path).is_dir():
        return f"The adapter of {version.name} is not on this machine."
    return None


def export_job(export: Export | int) -> Job | None:
    export_id = export if isinstance(export, int) else export.pk
    ct = ContentType.objects.get_for_model(Export)
    return Job.objects.filter(kind=KIND, target_type=ct, target_id=export_id).order_by("-id").first()


def _validate(version: ModelVersion, fmt: str, quantization: str | None) -> str:
    """The quantization to store ("" for adapter / merged); raises ValidationFailed with every field error."""
    errors = []
    q = (quantization or "").strip().lower()
    if fmt not in FORMATS:
        errors.append({"field": "format", "message": f"Unknown format {fmt!r}: choose one of {', '.join(FORMATS)}."})
    elif version.kind not in FORMATS[fmt]["kinds"]:
        errors.append({"field": "format", "message": (
            f"{version.name} has full weights, not a LoRA adapter: export it as merged or gguf."
            if fmt == "adapter" else f"A {version.kind} version cannot be exported as {fmt}.")})
    elif fmt == "adapter" and not version.artifact_path:
        errors.append({"field": "format", "message": f"{version.name} has no adapter (it serves its base model): "
                                                     f"export it as merged or gguf."})
    if fmt == "gguf":
        q = q or DEFAULT_QUANTIZATION
        if q not in OFFERED_QUANTIZATIONS:
            errors.append({"field": "quantization", "message": f"Unknown GGUF quantization {quantization!r}: choose "
                                                               f"one of {', '.join(OFFERED_QUANTIZATIONS)}."})
    elif q and fmt in FORMATS:
        errors.append({"field": "quantization", "message": f"Only GGUF exports are quantized; leave quantization "
                                                           f"empty for {fmt} (GGUF: {', '.join(OFFERED_QUANTIZATIONS)})."})
    if errors:
        raise ValidationFailed(errors[0]["message"] if len(errors) == 1 else "Invalid export.", errors=errors)
    return q if fmt == "gguf" else ""


def export_create(*, actor, model_version_id: int, format: str, quantization: str | None = None,
                  inline: bool = False, listener=None) -> Export:
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise PermissionDenied("Log in to export a model version.")
    with transaction.atomic():
        version = (ModelVersion.objects.select_for_update(of=("self",)).select_related("base_model")
                   .filter(pk=model_version_id).first())
        if version is None:
            raise NotFound(f"Model version {model_version_id} does not exist.")
        if version.kind == ModelVersion.Kind.REMOTE:
            raise ValidationFailed(f"{version.name} was trained and is served elsewhere (remote model "
                                   f"{version.remote_model_id or 'unknown'}); its weights are not on this machine, so "
                                   f"it cannot be exported.", field="version_id")
        q = _validate(version, format, quantization)
        problem = weights_problem(version, source_of(version))
        if problem:
            raise ValidationFailed(problem, field="version_id")
        busy = Export.objects.filter(model_version=version, format=format, quantization=q, status__in=ACTIVE).first()
        if busy is not None:
            raise Conflict(f"Export {busy.pk} of {version.name} as {format}{' ' + q if q else ''} is already "
                           f"{busy.status}.", extra={"export_id": busy.pk})
        export = Export.objects.create(model_version=version, format=format, quantization=q, created_by=actor)
        job_services.job_create(kind=KIND, owner=actor, target=export, args=[export.pk], send=not inline)
    if inline:
        from apps.registry.exports.run import export_run

        export_run(export_id=export.pk, listener=listener)
        export.refresh_from_db()
    return export


def can_manage(user, export: Export) -> bool:
    return bool(user and user.is_authenticated and (export.created_by_id == user.pk or user.is_hub_admin))


def export_delete(*, actor, export_id: int) -> None:
    with transaction.atomic():
        export = Export.objects.select_for_update().filter(pk=export_id).first()
        if export is None:
            raise NotFound(f"Export {export_id} does not exist.")
        if not can_manage(actor, export):
            raise PermissionDenied("Only the export's creator or an admin can delete it.")
        if export.status in ACTIVE:
            raise Conflict(f"Export {export_id} is still {export.status}: cancel it first.")
        path = export_abspath(export)
        version_id = export.model_version_id
        export.delete()
    shutil.rmtree(export_dir(export_id), ignore_errors=True)
    if path is not None:
        manifest_forget_gguf(version_id, path)


# -- the serving manifest ------------------------------------------------------------------------------------
def _manifest_path(version_id: int) -> Path:
    return Path(settings.ARTIFACT_ROOT) / "models" / f"mv-{version_id}" / MANIFEST


def _write_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".export.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def manifest_record_gguf(version_id: int, gguf_path: Path) -> bool:
    """Add `gguf_path` to the version's manifest when it has none. Returns whether it wrote."""
    path = _manifest_path(version_id)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("gguf_path"):
        return False
    data["gguf_path"] = str(Path(gguf_path).resolve())
    _write_atomic(path, data)
    return True


def manifest_forget_gguf(version_id: int, gguf_path: Path) -> None:
    """Remove `gguf_path` from the manifest when it names this file; another finished q8_0/f16 export of the
    version takes its place when there is one."""
    path = _manifest_path(version_id)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(data, dict) or data.get("gguf_path") != str(Path(gguf_path).resolve()):
        return
    data.pop("gguf_path", None)
    for other in Export.objects.filter(model_version_id=version_id, format=Export.Format.GGUF,
                                       quantization__in=SERVING_QUANTIZATIONS, status=Export.Status.SUCCEEDED):
        p = export_abspath(other)
        if p is not None and p.is_file():
            data["gguf_path"] = str(p.resolve())
            break
    _write_atomic(path, data)
