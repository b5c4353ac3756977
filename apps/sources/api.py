"""/api/sources and /api/generations: register a source (path or URL as JSON, an archive as multipart),
discover repositories in a folder, the first-run demo source, analyses (re-scan + analyse), the estimate before
launch, generations (a job; live progress on /api/jobs/{job.id} and the generation page's websocket), the
bundle zip. Parses input, calls a selector or a service, renders; permissions are checked in the services
(a member manages their own sources, an admin all)."""
from __future__ import annotations

from django.http import FileResponse
from ninja import Router

from apps.core.exceptions import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from apps.core.inputs import Id, has_nul
from apps.core.jobs import services as job_services
from apps.core.schemas import responses
from apps.sources import conf, selectors, services
from apps.sources.schemas import (
    AnalysisOut, DiscoveredOut, DiscoverIn, EstimateOut, GenerationOut, OptionsIn, SourceIn, SourceOut, SourcePatch,
)

router = Router(tags=["sources"])

_ARCHIVE_FORM = {
    "type": "object", "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "a zip or tar(.gz/.bz2/.xz) of a working tree"},
        "name": {"type": "string", "maxLength": 200},
        "rules": {"type": "string", "description": "one per line: `name: glob PATTERN` or `name: regex PATTERN`"},
        "analyse": {"type": "boolean", "default": True},
    },
}


def _source_out(source, analysis=None) -> dict:
    latest = source.analyses.order_by("-created_at", "-id").values_list("pk", flat=True).first()
    return {**selectors.source_as_dict(source), "latest_analysis_id": latest,
            "analysis_id": analysis.pk if analysis is not None else None}


def _options(payload: OptionsIn | None) -> dict:
    if payload is None:
        return {}
    data = payload.dict(exclude_none=True)
    if payload.teacher is not None:
        data["teacher"] = payload.teacher.dict(exclude_none=True)
    return data


@router.get("/sources", response=responses({200: list[SourceOut]}, inputs=False))
def source_list(request):
    """The caller's sources (an admin: every source)."""
    return [_source_out(s) for s in selectors.source_list(user=request.auth).prefetch_related("repos",
                                                                                              "component_rules")]


@router.post("/sources", response=responses({201: SourceOut}, 404, body=True))
def source_create(request, payload: SourceIn):
    """Register a local path (one repository, or a folder of a core and its plugins) or a git URL (cloned now;
    a clear `location` error when the network is unreachable). Starts the analysis unless `analyse` is false."""
    source = services.source_create(
        user=request.auth, kind=payload.kind, location=payload.location, name=payload.name or "",
        repos=[r.dict(exclude_none=True) for r in payload.repos] if payload.repos else None,
        plugins=payload.plugins, rules=[r.dict(exclude_none=True) for r in payload.rules] if payload.rules else None)
    analysis = services.analysis_start(user=request.auth, source_id=source.pk) if payload.analyse else None
    return 201, _source_out(source, analysis)


@router.post("/sources/archive", response=responses({201: SourceOut}, 413, write=True),
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"multipart/form-data": {"schema": _ARCHIVE_FORM}}}},
             summary="Register an uploaded zip or tar of a working tree (multipart: file, name, rules)")
def source_upload(request):
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > conf.max_archive_bytes() + 64 * 1024:
        raise PayloadTooLarge(f"The archive is larger than the {conf.max_archive_bytes() >> 20} MB limit.",
                              field="archive")
    f = request.FILES.get("file")
    if f is None:
        raise ValidationFailed("Send the archive as a multipart field named `file`.", field="archive")
    post = request.POST
    for key, values in post.lists():
        if has_nul(values) or has_nul(key):
            raise ValidationFailed(f"`{key}` must not contain NUL bytes.", field=key)
    source = services.source_create(user=request.auth, kind="archive", archive=f, archive_name=f.name,
                                    name=post.get("name", ""), rules=post.get("rules") or None)
    analyse = (post.get("analyse") or "true").lower() not in ("0", "false", "no", "off")
    analysis = services.analysis_start(user=request.auth, source_id=source.pk) if analyse else None
    return 201, _source_out(source, analysis)


@router.post("/sources/discover", response=responses({200: list[DiscoveredOut]}, body=True))
def source_discover(request, payload: DiscoverIn):
    """The git repositories inside a local folder (the folder itself first when it is one)."""
    return services.source_discover(user=request.auth, path=payload.path)


@router.post("/sources/demo", response=responses({201: SourceOut}, 422, write=True, inputs=False))  # 422: no git checkout
def source_demo(request):
    """The hub's own git checkout as a sample source (created once per user) with its analysis started."""
    source = services.demo_source(user=request.auth)
    analysis = None
    if not source.analyses.exists():
        analysis = services.analysis_start(user=request.auth, source_id=source.pk)
    return 201, _source_out(source, analysis)


@router.get("/sources/analyses/{analysis_id}", response=responses({200: AnalysisOut}, 404))
def analysis_detail(request, analysis_id: Id):
    return selectors.analysis_as_dict(selectors.analysis_get(user=request.auth, analysis_id=analysis_id))


@router.get("/sources/{source_id}", response=responses({200: SourceOut}, 404))
def source_detail(request, source_id: Id):
    return _source_out(selectors.source_get(user=request.auth, source_id=source_id))


@router.patch("/sources/{source_id}", response=responses({200: SourceOut}, 404, body=True))
def source_update(request, source_id: Id, payload: SourcePatch):
    """Rename, or replace the component rules (they count at the next analysis)."""
    source = services.source_update(user=request.auth, source_id=source_id, name=payload.name,
                                    rules=[r.dict(exclude_none=True) for r in payload.rules]
                                    if payload.rules is not None else None)
    return _source_out(source)


@router.delete("/sources/{source_id}", response=responses({204: None}, 404, 409, write=True))
def source_delete(request, source_id: Id):
    """Delete the source, its analyses and generations, and its clones (its dataset stays)."""
    services.source_delete(user=request.auth, source_id=source_id)
    return 204, None


@router.get("/sources/{source_id}/analyses", response=responses({200: list[AnalysisOut]}, 404))
def analysis_list(request, source_id: Id):
    source = selectors.source_get(user=request.auth, source_id=source_id)
    return [selectors.analysis_as_dict(a, results=False) for a in source.analyses.select_related("job")]


@router.post("/sources/{source_id}/analyses", response=responses({202: AnalysisOut}, 404, 409, write=True))
def analysis_create(request, source_id: Id):
    """Re-scan (a clone fetches new commits) and analyse, on the worker."""
    a = services.analysis_start(user=request.auth, source_id=source_id)
    return 202, selectors.analysis_as_dict(selectors.analysis_get(user=request.auth, analysis_id=a.pk))


@router.post("/sources/{source_id}/estimate", response=responses({200: EstimateOut}, 404, body=True))
def estimate(request, source_id: Id, payload: OptionsIn):
    """Scenarios, tokens, time and costs (training; teacher) expected for these options, before launch."""
    return services.generation_estimate(user=request.auth, source_id=source_id, options=_options(payload))


@router.post("/sources/{source_id}/generations", response=responses({202: GenerationOut}, 404, 409, body=True))
def generation_create(request, source_id: Id, payload: OptionsIn):
    """Generate scenarios on the worker into a new version of the source's dataset (incrementally after the
    first run). Follow it on GET /api/generations/{id} or /api/jobs/{job.id}."""
    g = services.generation_start(user=request.auth, source_id=source_id, options=_options(payload))
    return 202, selectors.generation_as_dict(selectors.generation_get(user=request.auth, generation_id=g.pk))


# -- /api/generations ------------------------------------------------------------------------------------------
@router.get("/generations", response=responses({200: list[GenerationOut]}, 404))
def generation_list(request, source: Id | None = None):
    """The caller's generations, newest first (an admin: all); `source` filters by source id."""
    src = selectors.source_get(user=request.auth, source_id=source) if source else None
    return [selectors.generation_as_dict(g) for g in selectors.generation_list(user=request.auth, source=src)[:200]]


@router.get("/generations/{generation_id}", response=responses({200: GenerationOut}, 404))
def generation_detail(request, generation_id: Id):
    return selectors.generation_as_dict(selectors.generation_get(user=request.auth, generation_id=generation_id))


@router.post("/generations/{generation_id}/cancel", response=responses({200: GenerationOut}, 404, 409, write=True))
def generation_cancel(request, generation_id: Id):
    """Stop it (between items, in any phase); nothing of it is kept."""
    g = selectors.generation_get(user=request.auth, generation_id=generation_id)
    if g.job_id is None:
        raise Conflict("This generation has no job to cancel.")
    job_services.job_request_cancel(user=request.auth, job_id=g.job_id)
    return selectors.generation_as_dict(selectors.generation_get(user=request.auth, generation_id=generation_id))


@router.get("/generations/{generation_id}/bundle", response=responses({200: None}, 404))
def generation_bundle(request, generation_id: Id):
    """The bundle as a zip: together-ai-training.jsonl, training-scenarios.json, generation-statistics.json,
    generation-report.json, by-category/*.jsonl."""
    g = selectors.generation_get(user=request.auth, generation_id=generation_id)
    path = services.bundle_zip_path(g)
    if path is None:
        raise NotFound("This generation has no bundle (it has not succeeded).")
    return FileResponse(open(path, "rb"), as_attachment=True,  # noqa: SIM115 - FileResponse closes it
                        filename=f"scenarios-source{g.source_id}-gen{g.pk}.zip", content_type="application/zip")
