"""/api/datasets: upload (multipart), list, detail, versions, examples (paginated, filterable), export,
fixes and diffs. Parses input, calls a selector or a service, renders; no ORM writes here."""
from __future__ import annotations

import math

from django.conf import settings
from django.http import StreamingHttpResponse
from ninja import Query, Router, Schema

from apps.core.exceptions import PayloadTooLarge, ValidationFailed
from apps.datasets import selectors, services
from apps.datasets.schemas import (
    DatasetDetailOut, DatasetOut, ExamplePageOut, FixIn, VersionOut, VersionSummaryOut, dataset_out, example_out,
    version_out, version_summary,
)

router = Router(tags=["datasets"])

_UPLOAD_DOC = {
    "requestBody": {"content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "JSONL, Parquet, CSV, text, markdown or zip"},
            "name": {"type": "string", "description": "Dataset name (required unless dataset_id is given)"},
            "dataset_id": {"type": "integer", "description": "Add a new version to this dataset"},
            "format": {"type": "string", "description": "Force a format (default: auto-detected)"},
            "target": {"type": "string", "enum": ["local", "openai", "together"]},
            "base_model": {"type": "string", "description": "Base model for token counts"},
            "split_ratio": {"type": "number", "description": "Validation split ratio (0-0.5)"},
            "background": {"type": "boolean", "description": "Import on the worker queue (returns at once)"},
            "columns": {"type": "string", "description": "CSV/Parquet column mapping, e.g. prompt=question, completion=answer"},
        }}}}},
}


def upload_too_large(request) -> bool:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return length > settings.HUB_MAX_UPLOAD_MB * 1024 * 1024 + 64 * 1024


@router.post("", response={201: VersionOut, 202: VersionOut}, openapi_extra=_UPLOAD_DOC,
             summary="Upload a dataset (multipart: file, name) — returns the version with its validation report")
def upload(request):
    # Refused from the Content-Length header, before the body is read.
    if upload_too_large(request):
        raise PayloadTooLarge(f"The upload is larger than the {settings.HUB_MAX_UPLOAD_MB} MB limit.", field="file")
    f = request.FILES.get("file")
    if f is None:
        raise ValidationFailed("Send the dataset as a multipart field named `file`.", field="file")
    post = request.POST
    dataset_id = post.get("dataset_id") or None
    try:
        dataset_id = int(dataset_id) if dataset_id else None
    except ValueError:
        raise ValidationFailed("dataset_id must be an integer.", field="dataset_id") from None
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


@router.get("", response=list[DatasetOut])
def list_datasets(request):
    return [dataset_out(d) for d in selectors.dataset_list(user=request.auth)]


@router.get("/versions/{version_id}", response=VersionOut)
def get_version(request, version_id: int):
    return version_out(selectors.version_get(user=request.auth, version_id=version_id))


@router.post("/versions/{version_id}/fixes", response={201: VersionOut})
def apply_fix(request, version_id: int, payload: FixIn):
    v = services.version_fix(user=request.auth, version_id=version_id, fix=payload.fix)
    return 201, version_out(selectors.version_get(user=request.auth, version_id=v.pk))


class EditIn(Schema):
    messages: list | None = None
    tools: list | None = None
    delete: bool = False


@router.post("/versions/{version_id}/examples/{index}", response={201: VersionOut},
             summary="Edit or delete one example (index as in the example list): creates a new version")
def edit_example(request, version_id: int, index: int, payload: EditIn):
    v = services.example_edit(user=request.auth, version_id=version_id, index=index, messages=payload.messages,
                              tools=payload.tools, delete=payload.delete)
    return 201, version_out(selectors.version_get(user=request.auth, version_id=v.pk))


@router.get("/{dataset_id}", response=DatasetDetailOut)
def get_dataset(request, dataset_id: int):
    return dataset_out(selectors.dataset_get(user=request.auth, dataset_id=dataset_id), detail=True)


@router.get("/{dataset_id}/versions", response=list[VersionSummaryOut])
def list_versions(request, dataset_id: int):
    ds = selectors.dataset_get(user=request.auth, dataset_id=dataset_id)
    return [version_summary(v) for v in selectors.dataset_versions(dataset=ds)]


class ExampleFilters(Schema):
    version: int | None = None
    split: str | None = None
    category: str | None = None
    code: str | None = None
    q: str | None = None
    role: str | None = None
    page: int = 1
    page_size: int = 20


@router.get("/{dataset_id}/examples", response=ExamplePageOut)
def list_examples(request, dataset_id: int, filters: Query[ExampleFilters]):
    ds = selectors.dataset_get(user=request.auth, dataset_id=dataset_id)
    version = selectors.version_for_dataset(dataset=ds, version_id=filters.version)
    if filters.split not in (None, "", "train", "validation"):
        raise ValidationFailed("split must be train or validation.", field="split")
    if not 1 <= filters.page_size <= 200:
        raise ValidationFailed("page_size must be between 1 and 200.", field="page_size")
    if filters.page < 1:
        raise ValidationFailed("page starts at 1.", field="page")
    qs = selectors.example_list(version=version, split=filters.split or None, category=filters.category,
                                code=filters.code, q=filters.q, role=filters.role)
    count = qs.count()
    start = (filters.page - 1) * filters.page_size
    return {"count": count, "page": filters.page, "page_size": filters.page_size,
            "pages": max(1, math.ceil(count / filters.page_size)), "version_id": version.pk,
            "results": [example_out(e) for e in qs[start:start + filters.page_size]]}


@router.get("/{dataset_id}/diff")
def diff(request, dataset_id: int, a: int, b: int):
    ds = selectors.dataset_get(user=request.auth, dataset_id=dataset_id)
    va = selectors.version_for_dataset(dataset=ds, version_id=a)
    vb = selectors.version_for_dataset(dataset=ds, version_id=b)
    d = selectors.version_diff(a=va, b=vb)
    return {"a": va.pk, "b": vb.pk, "added_count": d["added_count"], "removed_count": d["removed_count"],
            "changed_count": d["changed_count"], "added": [example_out(e) for e in d["added"]],
            "removed": [example_out(e) for e in d["removed"]],
            "changed": [{"before": example_out(x), "after": example_out(y)} for x, y in d["changed"]]}


@router.get("/{dataset_id}/export", response={200: None})
def export(request, dataset_id: int, format: str = "openai", version: int | None = None, split: str | None = None,
           together_format: str = "messages"):
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
