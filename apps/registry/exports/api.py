"""/api routes of exports (issue 12): start an export of a model version (a job), list a version's exports, read one
(status, absolute path, size, round-trip checks, timings, llama.cpp version, error, job id, download URL), download
it (a file as it is, a folder as a zip), delete it. Parses input, calls a selector or a service, renders; every
status is declared (apps.core.schemas)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.db import transaction
from django.http import FileResponse, StreamingHttpResponse
from ninja import Router, Schema

from apps.core.inputs import Id
from apps.core.schemas import responses
from apps.registry import selectors as registry_selectors
from apps.registry.exports import selectors, services
from apps.registry.exports.formats import FORMATS, OFFERED_QUANTIZATIONS

router = Router(tags=["exports"])

FormatName = Literal[tuple(FORMATS)]  # type: ignore[valid-type]
QuantizationName = Literal[tuple(OFFERED_QUANTIZATIONS)]  # type: ignore[valid-type]


class ExportIn(Schema):
    format: FormatName
    quantization: QuantizationName | None = None  # gguf only (default q8_0)


class ExportProgress(Schema):
    current: float | None = None
    total: float | None = None
    unit: str | None = None
    message: str | None = None


class ExportOut(Schema):
    id: int
    model_version_id: int
    model_version_name: str
    status: Literal["queued", "running", "succeeded", "degraded", "failed", "cancelled"]
    format: FormatName
    quantization: str | None = None
    path: str | None = None  # absolute: the file or folder
    size_bytes: int | None = None
    checks: dict[str, Any]
    checks_summary: str
    timings: dict[str, Any]
    llama_cpp_version: str | None = None
    error: str | None = None
    job_id: int | None = None
    phase: str | None = None
    progress: ExportProgress | None = None
    download_url: str | None = None
    created_by: str | None = None
    created_at: datetime
    finished_at: datetime | None = None


def _out(export) -> dict:
    return selectors.export_as_dict(export, job=services.export_job(export))


@router.post("/models/{version_id}/exports", response=responses({202: ExportOut}, 404, 409, body=True))
def export_create(request, version_id: Id, payload: ExportIn):
    """Export this version as its LoRA adapter, merged full weights or a GGUF file (`quantization`: f16, q8_0,
    q4_k_m, ...; default q8_0). A job on the gpu worker writes it and checks it against the version; poll
    `GET /api/exports/{id}` (or the job). 422 for a remote version or a format it does not have."""
    with transaction.atomic():
        export = services.export_create(actor=request.auth, model_version_id=version_id, format=payload.format,
                                        quantization=payload.quantization)
    return 202, _out(export)


@router.get("/models/{version_id}/exports", response=responses({200: list[ExportOut]}, 404))
def export_list(request, version_id: Id):
    registry_selectors.model_version_get(version_id)  # 404 for a version that does not exist
    exports = list(selectors.export_list(version_id=version_id))
    jobs = selectors.export_jobs(exports)
    return [selectors.export_as_dict(e, job=jobs.get(e.pk)) for e in exports]


@router.get("/exports/{export_id}", response=responses({200: ExportOut}, 404))
def export_detail(request, export_id: Id):
    return _out(selectors.export_get(export_id))


@router.get("/exports/{export_id}/download", response=responses({200: None}, 404, 409), url_name="export_download")
def export_download(request, export_id: Id):
    """The export's file (a .gguf), or its folder (adapter, merged) as a zip made while it is sent."""
    body, filename, content_type = selectors.export_download(selectors.export_get(export_id))
    if hasattr(body, "read"):
        return FileResponse(body, as_attachment=True, filename=filename, content_type=content_type)
    resp = StreamingHttpResponse(body, content_type=content_type)
    resp["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


@router.delete("/exports/{export_id}", response=responses({204: None}, 404, 409, write=True))
def export_delete(request, export_id: Id):
    """Delete the export's files and its row (its creator or an admin; 409 while it runs: cancel its job first)."""
    services.export_delete(actor=request.auth, export_id=export_id)
    return 204, None
