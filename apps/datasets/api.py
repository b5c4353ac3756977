"""/api/datasets: upload (multipart), list, detail, versions, examples (paginated, filterable), export,
fixes and diffs. Parses input, calls a selector or a service, renders; no ORM here. Every status an
operation returns is declared (apps.core.schemas); parameters are typed with their bounds and enums."""
from __future__ import annotations

import math

from django.conf import settings
from django.http import StreamingHttpResponse
from ninja import Query, Router

from apps.core.exceptions import PayloadTooLarge, ValidationFailed
from apps.core.inputs import Id, Index, has_nul, is_id
from apps.core.schemas import responses
from apps.datasets import selectors, services
from apps.datasets.schemas import (
    UPLOAD_FORM, DatasetDetailOut, DatasetOut, DiffOut, EditIn, ExampleFilters, ExamplePageOut, ExportFormat, FixIn,
    PinIn, Split, TogetherFormat, VersionOut, VersionSummaryOut, dataset_out, example_out, version_out, version_summary,
)

router = Router(tags=["datasets"])

_UPLOAD_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": UPLOAD_FORM}}}}


def upload_too_large(request) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > settings.HUB_MAX_UPLOAD_MB * 1024 * 1024 + 64 * 1024


@router.post("", response=responses({201: VersionOut, 202: VersionOut}, 404, 413, body=True),
             openapi_extra=_UPLOAD_DOC,
             summary="Upload a dataset (multipart: file, name) — returns the version with its validation report")
def upload(request):
    # Refused from the Content-Length header, before the body is read.
    if upload_too_large(request):
        raise PayloadTooLarge(f"The upload is larger than the {settings.HUB_MAX_UPLOAD_MB} MB limit.", field="file")
    f = request.FILES.get("file")
    if f is None:
        raise ValidationFailed("Send the dataset as a multipart field named `file`.", field="file")
    post = request.POST
    for key, values in post.lists():
        if has_nul(values) or has_nul(key):
            raise ValidationFailed(f"`{key}` must not contain NUL bytes.", field=key)
    dataset_id = post.get("dataset_id") or None
    if dataset_id is not None and not is_id(dataset_id):
        raise ValidationFailed("dataset_id must be a dataset id (a whole number from 1).", field="dataset_id")
    dataset_id = int(dataset_id) if dataset_id else None
    try:
        split_ratio = float(post["split_ratio"]) if post.get("split_ratio") else None
    except ValueError:
        raise ValidationFailed("split_ratio must be a number between 0 and 0.5.", field="split_ratio") from None
    background = (post.get("background") or "").lower() in ("1", "true", "yes", "on")
    version = services.dataset_import(
        user=request.auth, name=post.get("name", ""), file=f, filename=f.name, format=post.get("format") or None,
        dataset=dataset_id, target=post.get("target") or "local", base_model=post.get("base_model") or None,
        split_ratio=split_ratio, background=True if background else None, columns=post.get("columns") or None,
    )
    version = selectors.version_get(user=request.auth, version_id=version.pk)
    return (202 if version.status == "importing" else 201), version_out(version)


@router.get("", response=responses({200: list[DatasetOut]}, inputs=False))
def list_datasets(request):
    return [dataset_out(d) for d in selectors.dataset_list(user=request.auth)]


@router.get("/versions/{version_id}", response=responses({200: VersionOut}, 404))
def get_version(request, version_id: Id):
    return version_out(selectors.version_get(user=request.auth, version_id=version_id))


@router.post("/versions/{version_id}/fixes", response=responses({201: VersionOut}, 404, 409, body=True))
def apply_fix(request, version_id: Id, payload: FixIn):
    v = services.version_fix(user=request.auth, version_id=version_id, fix=payload.fix)
    return 201, version_out(selectors.version_get(user=request.auth, version_id=v.pk))


@router.post("/versions/{version_id}/examples/{index}", response=responses({201: VersionOut}, 404, 409, body=True),
             summary="Edit or delete one example (index as in the example list): creates a new version")
def edit_example(request, version_id: Id, index: Index, payload: EditIn):
    v = services.example_edit(user=request.auth, version_id=version_id, index=index, messages=payload.messages,
                              tools=payload.tools, delete=payload.delete)
    return 201, version_out(selectors.version_get(user=request.auth, version_id=v.pk))


@router.get("/{dataset_id}", response=responses({200: DatasetDetailOut}, 404))
def get_dataset(request, dataset_id: Id):
    return dataset_out(selectors.dataset_get(user=request.auth, dataset_id=dataset_id), detail=True)


@router.post("/{dataset_id}/pin", response=responses({200: DatasetOut}, 404, 409, body=True),
             summary="Pin a ready version as the dataset's current one (version_id null: unpin)")
def pin_version(request, dataset_id: Id, payload: PinIn):
    services.dataset_pin(user=request.auth, dataset_id=dataset_id, version_id=payload.version_id)
    return dataset_out(selectors.dataset_get(user=request.auth, dataset_id=dataset_id))


@router.get("/{dataset_id}/versions", response=responses({200: list[VersionSummaryOut]}, 404))
def list_versions(request, dataset_id: Id):
    ds = selectors.dataset_get(user=request.auth, dataset_id=dataset_id)
    return [version_summary(v) for v in selectors.dataset_versions(dataset=ds)]


@router.get("/{dataset_id}/examples", response=responses({200: ExamplePageOut}, 404))
def list_examples(request, dataset_id: Id, filters: Query[ExampleFilters]):
    ds = selectors.dataset_get(user=request.auth, dataset_id=dataset_id)
    version = selectors.version_for_dataset(dataset=ds, version_id=filters.version)
    qs = selectors.example_list(version=version, split=filters.split, category=filters.category,
                                code=filters.code, q=filters.q, role=filters.role)
    count = qs.count()
    start = (filters.page - 1) * filters.page_size
    # A page past the end is empty: the database is never asked for an offset beyond the rows it has.
    results = [example_out(e) for e in qs[start:start + filters.page_size]] if start < count else []
    return {"count": count, "page": filters.page, "page_size": filters.page_size,
            "pages": max(1, math.ceil(count / filters.page_size)), "version_id": version.pk, "results": results}


@router.get("/{dataset_id}/diff", response=responses({200: DiffOut}, 404))
def diff(request, dataset_id: Id, a: Id, b: Id):
    ds = selectors.dataset_get(user=request.auth, dataset_id=dataset_id)
    va = selectors.version_for_dataset(dataset=ds, version_id=a)
    vb = selectors.version_for_dataset(dataset=ds, version_id=b)
    d = selectors.version_diff(a=va, b=vb)
    return {"a": va.pk, "b": vb.pk, "added_count": d["added_count"], "removed_count": d["removed_count"],
            "changed_count": d["changed_count"], "added": [example_out(e) for e in d["added"]],
            "removed": [example_out(e) for e in d["removed"]],
            "changed": [{"before": example_out(x), "after": example_out(y)} for x, y in d["changed"]]}


@router.get("/{dataset_id}/export", response=responses({200: None}, 404))
def export(request, dataset_id: Id, format: ExportFormat = "openai", version: Id | None = None,
           split: Split | None = None, together_format: TogetherFormat = "messages"):
    ds = selectors.dataset_get(user=request.auth, dataset_id=dataset_id)
    v = selectors.version_for_dataset(dataset=ds, version_id=version)
    lines = services.version_export_lines(version=v, fmt=format, split=split or None, together_format=together_format)
    first = next(lines, None)  # surfaces a bad parameter as a 422 before streaming starts

    def body():
        if first is not None:
            yield first
        yield from lines

    resp = StreamingHttpResponse(body(), content_type="application/jsonl")
    suffix = f"-{split}" if split else ""
    resp["Content-Disposition"] = f'attachment; filename="dataset-{ds.pk}-v{v.number}-{format}{suffix}.jsonl"'
    return resp
