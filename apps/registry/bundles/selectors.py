"""Reads for deploy bundles, shared by /api and the fragment view: an export and its bundles, a bundle's job, the
default settings of a new bundle, and the API shape of a bundle. Any signed-in user may read them (the registry's
reads are not scoped per user); building and downloading are checked in services."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from apps.core.exceptions import NotFound
from apps.core.models import Job
from apps.registry.bundles.config import dataset_system_prompt, generation_defaults
from apps.registry.bundles.kind import KIND
from apps.registry.models import Bundle, Export

BUNDLABLE = (Export.Status.SUCCEEDED, Export.Status.DEGRADED)


def export_get(export_id: int) -> Export:
    export = (Export.objects.select_related("model_version__base_model", "model_version__dataset_version__dataset",
                                            "model_version__run").filter(pk=export_id).first())
    if export is None:
        raise NotFound(f"Export {export_id} does not exist.")
    return export


def bundle_get(bundle_id: int) -> Bundle:
    bundle = Bundle.objects.select_related("export__model_version__base_model", "created_by").filter(
        pk=bundle_id).first()
    if bundle is None:
        raise NotFound(f"Bundle {bundle_id} does not exist.")
    return bundle


def bundle_list(*, export_id: int, limit: int = 50) -> list[Bundle]:
    return list(Bundle.objects.filter(export_id=export_id).select_related("created_by").order_by("-created_at", "-id")
                [:limit])


def bundle_jobs(bundle_ids: list[int]) -> dict[int, Job]:
    """bundle id -> its (newest) job."""
    if not bundle_ids:
        return {}
    ct = ContentType.objects.get_for_model(Bundle)
    out: dict[int, Job] = {}
    for job in Job.objects.filter(kind=KIND, target_type=ct, target_id__in=bundle_ids).order_by("id"):
        out[job.target_id] = job
    return out


def bundle_job_id(bundle_id: int) -> int | None:
    job = bundle_jobs([bundle_id]).get(bundle_id)
    return job.pk if job else None


def context_length(export: Export) -> int:
    base = export.model_version.base_model
    return base.context_length if base is not None and base.context_length else 2048


def bundle_defaults(export: Export) -> dict:
    """A new bundle's settings when nothing is said: the generation config of the export, the version or the base
    (in that order), and the training data's most common system prompt."""
    version = export.model_version
    folders: list[Path] = []
    if export.path and (settings.ARTIFACT_ROOT / export.path).is_dir():
        folders.append(settings.ARTIFACT_ROOT / export.path)
    if version.artifact_path:
        folders.append(settings.ARTIFACT_ROOT / version.artifact_path)
    if version.base_model is not None and version.base_model.path:
        folders.append(Path(version.base_model.path))
    out = generation_defaults(folders)
    out["system_prompt"] = dataset_system_prompt(version.dataset_version)
    return out


def bundle_zip_path(bundle: Bundle) -> Path | None:
    """The finished zip on disk, or None (not succeeded, or its file is gone)."""
    if bundle.status != Bundle.Status.SUCCEEDED or not bundle.path:
        return None
    path = Path(settings.ARTIFACT_ROOT) / bundle.path
    return path if path.is_file() else None


def bundle_filename(bundle: Bundle) -> str:
    return Path(bundle.path).name if bundle.path else f"bundle-{bundle.pk}.zip"


def bundle_as_dict(bundle: Bundle, job: Job | None = None) -> dict:
    job = job if job is not None else bundle_jobs([bundle.pk]).get(bundle.pk)
    ready = bundle.status == Bundle.Status.SUCCEEDED and bool(bundle.path)
    return {
        "id": bundle.pk, "export_id": bundle.export_id, "model_version_id": bundle.export.model_version_id,
        "status": bundle.status, "config": {k: v for k, v in (bundle.config or {}).items() if k != "hub_base_url"},
        "path": bundle.path, "filename": bundle_filename(bundle) if ready else None, "size_bytes": bundle.size_bytes,
        "error": bundle.error, "created_by": bundle.created_by.username if bundle.created_by else None,
        "created_at": bundle.created_at, "finished_at": bundle.finished_at,
        "job_id": job.pk if job else None, "progress": (job.progress or {}) if job else {},
        "download_url": reverse("api:bundle_download", args=[bundle.pk]) if ready else None,
    }
