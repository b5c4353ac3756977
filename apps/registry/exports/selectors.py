"""Reads for exports, shared by /api and the pages: lists, one export with its job, the API's shape, and downloads
(a file as it is, a folder as a zip streamed while it is made).

Contract: every signed-in user sees every export (like model versions). `export_as_dict(export, job=)` is the one
shape of /api (`path` absolute, `download_url` set once the export is finished and its files are here).
`export_download(export)` -> (iterable of bytes or an open file, filename, content type); NotFound when there is
nothing to download, Conflict while it is being made."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.urls import reverse

from apps.core.exceptions import Conflict, NotFound
from apps.core.models import Job
from apps.registry.exports import checks as checks_mod
from apps.registry.exports.services import ACTIVE, KIND, export_abspath
from apps.registry.models import Export

FINISHED_OK = (Export.Status.SUCCEEDED, Export.Status.DEGRADED)
ZIP_CHUNK = 1 << 20


def export_list(*, version_id: int | None = None) -> QuerySet[Export]:
    qs = Export.objects.select_related("model_version", "created_by")
    return qs.filter(model_version_id=version_id) if version_id is not None else qs


def export_get(export_id: int) -> Export:
    export = export_list().filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"Export {export_id} does not exist.")
    return export


def export_jobs(exports) -> dict[int, Job]:
    """The newest job of each export (one query)."""
    ids = [e.pk for e in exports]
    if not ids:
        return {}
    ct = ContentType.objects.get_for_model(Export)
    out: dict[int, Job] = {}
    for job in Job.objects.filter(kind=KIND, target_type=ct, target_id__in=ids).order_by("id"):
        out[job.target_id] = job
    return out


def export_file(export: Export) -> Path | None:
    """The export's file or folder when it is finished and still on disk."""
    path = export_abspath(export)
    if export.status not in FINISHED_OK or path is None or not path.exists():
        return None
    return path


def export_as_dict(export: Export, *, job: Job | None = None) -> dict:
    path = export_abspath(export)
    progress = (job.progress or {}) if job is not None else {}
    total = progress.get("total")
    return {
        "id": export.pk, "model_version_id": export.model_version_id, "model_version_name": export.model_version.name,
        "status": export.status, "format": export.format, "quantization": export.quantization or None,
        "path": str(path) if path is not None else None, "size_bytes": export.size_bytes,
        "checks": export.checks or {}, "checks_summary": checks_mod.summary(export.checks or {}),
        "timings": export.timings or {}, "llama_cpp_version": export.llama_cpp_version or None,
        "error": export.error or None, "job_id": job.pk if job is not None else None,
        "phase": job.phase if job is not None and export.status in ACTIVE else None,
        "progress": ({"current": progress.get("current"), "total": total, "unit": progress.get("unit"),
                      "message": progress.get("message")} if job is not None and export.status in ACTIVE else None),
        "download_url": (reverse("api:export_download", kwargs={"export_id": export.pk})
                         if export_file(export) is not None else None),
        "created_by": export.created_by.username if export.created_by_id else None,
        "created_at": export.created_at, "finished_at": export.finished_at,
    }


# -- downloads ----------------------------------------------------------------------------------------------
class _Sink:
    """A write-only, unseekable file: zipfile writes into it, the stream takes what it wrote."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def zip_stream(folder: Path, root_name: str) -> Iterator[bytes]:
    """A zip of `folder` (entries under `root_name/`), made while it is sent: stored (weights do not compress), zip64
    for large files, memory bounded by one chunk."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo.from_file(path, arcname=f"{root_name}/{path.relative_to(folder).as_posix()}")
            info.compress_type = zipfile.ZIP_STORED
            with open(path, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                while chunk := src.read(ZIP_CHUNK):
                    dst.write(chunk)
                    data = sink.take()
                    if data:
                        yield data
            data = sink.take()
            if data:
                yield data
    yield sink.take()


def export_download(export: Export):
    if export.status in ACTIVE:
        raise Conflict(f"Export {export.pk} is still {export.status}; download it when it has finished.")
    path = export_file(export)
    if path is None:
        raise NotFound(f"Export {export.pk} has no files to download ({export.status}).")
    if path.is_file():
        return open(path, "rb"), path.name, "application/octet-stream"  # noqa: SIM115 - the response closes it
    name = f"ex-{export.pk}-{export.format}"
    return zip_stream(path, name), f"{name}.zip", "application/zip"
