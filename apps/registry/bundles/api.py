"""/api routes of deploy bundles (registered in training_hub/api.py):

- `POST /api/exports/{export_id}/bundles` {config?} -> 202, the queued bundle with its `job_id`;
- `GET /api/bundles/{bundle_id}` -> the bundle (status, settings, size, error, progress, download_url);
- `GET /api/bundles/{bundle_id}/download` -> the zip (application/zip); 409 until it has succeeded.
Parses input, calls a selector or a service, renders."""
from __future__ import annotations

from django.http import FileResponse
from ninja import Body, Router

from apps.core.exceptions import Conflict, NotFound
from apps.core.inputs import Id
from apps.core.schemas import responses
from apps.registry.bundles import selectors, services
from apps.registry.bundles.schemas import BundleIn, BundleOut

router = Router(tags=["bundles"])


@router.post("/exports/{export_id}/bundles", response=responses({202: BundleOut}, 404, body=True))
def bundle_create(request, export_id: Id, payload: BundleIn = Body(None)):
    """Build a deploy bundle of a succeeded (or degraded) export: a zip with the model files,
    deployment_config.json, tools.json / TOOLS.md from the tool registry, integration examples,
    test_results.json and a model card. Settings left out come from the generation config and the training
    data's most common system prompt. Admins and members."""
    config = payload.config.model_dump(exclude_none=True) if payload is not None and payload.config else None
    bundle = services.bundle_create(actor=request.auth, export_id=export_id, config=config,
                                    base_url=request.build_absolute_uri("/v1"))
    return 202, selectors.bundle_as_dict(selectors.bundle_get(bundle.pk))


@router.get("/bundles/{bundle_id}", response=responses({200: BundleOut}, 404))
def bundle_detail(request, bundle_id: Id):
    return selectors.bundle_as_dict(selectors.bundle_get(bundle_id))


@router.get("/bundles/{bundle_id}/download", response=responses({200: None}, 403, 404, 409),
            url_name="bundle_download")
def bundle_download(request, bundle_id: Id):
    """The bundle's zip (admins and members). 409 while it is not built; 404 when its file is gone."""
    services.require_builder(request.auth)
    bundle = selectors.bundle_get(bundle_id)
    if bundle.status != bundle.Status.SUCCEEDED:
        raise Conflict(f"Bundle {bundle_id} is {bundle.status}; only a succeeded bundle can be downloaded.")
    path = selectors.bundle_zip_path(bundle)
    if path is None:
        raise NotFound(f"Bundle {bundle_id}'s file is no longer on disk; build it again.")
    return FileResponse(open(path, "rb"), as_attachment=True,  # noqa: SIM115 - FileResponse closes it
                        filename=selectors.bundle_filename(bundle), content_type="application/zip")
