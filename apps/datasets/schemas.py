"""API shapes for datasets (django-ninja). Every object for a created resource carries `id`.

Inputs carry the rules the services enforce — the fixes, formats, targets and splits are `Literal`s built
from the services' own tables, ids and pages are bounded, free text has no NUL byte (apps.core.inputs) —
so the OpenAPI schema states them and a bad value is a 422 before any service runs."""
from __future__ import annotations

from typing import Literal

from ninja import Field, Schema

from apps.core.inputs import MAX_ID, NO_NUL_PATTERN, Id, JSONList, PageNumber, Text
from apps.datasets import services
from apps.datasets.formats import FORMATS, TARGETS
from apps.datasets.models import Dataset, DatasetVersion, Example

Split = Literal["train", "validation"]
FixName = Literal[tuple(services.FIXES)]
ExportFormat = Literal[tuple(services.EXPORT_FORMATS)]
TogetherFormat = Literal[tuple(services.TOGETHER_FORMATS)]
Status = Literal[tuple(DatasetVersion.Status.values)]


class IssueOut(Schema):
    line: int | None
    code: str
    message: str
    file: str | None = None
    severity: str | None = None
    example: int | None = None


class ValidationOut(Schema):
    errors: list[IssueOut] = []
    warnings: list[IssueOut] = []
    counts: dict = {}
    error_total: int = 0
    warning_total: int = 0


class VersionOut(Schema):
    id: int
    version_id: int
    dataset_id: int
    dataset_name: str
    number: int
    status: Status
    format: str
    target: str
    source_name: str
    example_count: int
    content_hash: str
    parent_id: int | None
    note: str
    error: str
    has_errors: bool
    validation: ValidationOut
    stats: dict
    progress: dict
    created_at: str


class VersionSummaryOut(Schema):
    id: int
    version_id: int
    dataset_id: int
    number: int
    status: Status
    format: str
    example_count: int
    content_hash: str
    parent_id: int | None
    note: str
    error_count: int
    warning_count: int
    created_at: str


class DatasetOut(Schema):
    id: int
    dataset_id: int
    name: str
    description: str
    owner: str
    created_at: str
    version_count: int
    latest_version: VersionSummaryOut | None
    # the version the dataset stands for: the pinned one when it is ready, else the newest ready one
    current_version: VersionSummaryOut | None = None
    pinned_version_id: int | None = None


class PinIn(Schema):
    version_id: Id | None = Field(None, description="The ready version to pin as current; null unpins it "
                                                      "(the newest ready version is current again)")


class DatasetDetailOut(DatasetOut):
    versions: list[VersionSummaryOut]
    latest: VersionOut | None


class ExampleOut(Schema):
    id: int
    index: int
    version_id: int
    messages: list
    tools: list | None
    split: str
    category: str
    tags: list
    source_file: str
    source_line: int | None
    token_count: int | None
    issues: list[str]
    content_hash: str
    kind: str
    meta: dict = Field(default_factory=dict, description="where it came from: `kind`, and e.g. `provenance` "
                                                         "{repo, commit, path, start_line, end_line, generator, ...}")


class ExamplePageOut(Schema):
    count: int
    page: int
    page_size: int
    pages: int
    version_id: int
    results: list[ExampleOut]


class FixIn(Schema):
    fix: FixName


class EditIn(Schema):
    messages: JSONList | None = Field(None, description="the new messages (omit to keep them)")
    tools: JSONList | None = None
    delete: bool = False


class ExampleFilters(Schema):
    version: Id | None = Field(None, description="a version id (default: the latest ready version)")
    split: Split | None = None
    category: Text | None = None
    code: Text | None = Field(None, description="an issue code, e.g. empty_turn")
    q: Text | None = Field(None, description="text to look for in the messages or the source file name")
    role: Text | None = Field(None, description="only examples with a message of this role")
    page: PageNumber = 1
    page_size: int = Field(20, ge=1, le=200)


class ChangedOut(Schema):
    before: ExampleOut
    after: ExampleOut


class DiffOut(Schema):
    a: int
    b: int
    added_count: int
    removed_count: int
    changed_count: int
    added: list[ExampleOut]
    removed: list[ExampleOut]
    changed: list[ChangedOut]


UPLOAD_FORM = {
    "type": "object",
    "required": ["file"],
    "anyOf": [{"required": ["name"]}, {"required": ["dataset_id"]}],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "JSONL, Parquet, CSV, text, markdown or zip"},
        "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": NO_NUL_PATTERN,
                 "description": "Dataset name (required unless dataset_id is given)"},
        "dataset_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID,
                       "description": "Add a new version to this dataset"},
        "format": {"type": "string", "enum": list(FORMATS), "description": "Force a format (default: auto-detected)"},
        "target": {"type": "string", "enum": list(TARGETS), "default": "local"},
        "base_model": {"type": "string", "maxLength": 100, "pattern": NO_NUL_PATTERN,
                       "description": "Base model for token counts"},
        "split_ratio": {"type": "number", "minimum": 0, "maximum": 0.5, "description": "Validation split ratio"},
        "background": {"type": "boolean", "description": "Import on the worker queue (returns at once)"},
        "columns": {"type": "string", "pattern": NO_NUL_PATTERN,
                    "description": "CSV/Parquet column mapping, e.g. prompt=question, completion=answer"},
    },
}


def version_out(v: DatasetVersion) -> dict:
    from apps.datasets.selectors import version_has_errors

    val = v.validation or {}
    return {
        "id": v.pk, "version_id": v.pk, "dataset_id": v.dataset_id, "dataset_name": v.dataset.name,
        "number": v.number, "status": v.status, "format": v.format, "target": v.target, "source_name": v.source_name,
        "example_count": v.example_count, "content_hash": v.content_hash, "parent_id": v.parent_id, "note": v.note,
        "error": v.error, "has_errors": version_has_errors(v),
        "validation": {"errors": val.get("errors", []), "warnings": val.get("warnings", []),
                       "counts": val.get("counts", {}), "error_total": val.get("error_total", len(val.get("errors", []))),
                       "warning_total": val.get("warning_total", len(val.get("warnings", [])))},
        "stats": v.stats or {}, "progress": v.progress or {}, "created_at": v.created_at.isoformat(),
    }


def version_summary(v: DatasetVersion) -> dict:
    val = v.validation or {}
    return {"id": v.pk, "version_id": v.pk, "dataset_id": v.dataset_id, "number": v.number, "status": v.status,
            "format": v.format, "example_count": v.example_count, "content_hash": v.content_hash,
            "parent_id": v.parent_id, "note": v.note,
            "error_count": val.get("error_total", len(val.get("errors", []))),
            "warning_count": val.get("warning_total", len(val.get("warnings", []))),
            "created_at": v.created_at.isoformat()}


def dataset_out(d: Dataset, *, detail: bool = False) -> dict:
    from apps.datasets.selectors import pick_current

    versions = list(d.versions.order_by("-number"))
    latest = versions[0] if versions else None
    current = pick_current(versions, d.pinned_version_id)
    out = {"id": d.pk, "dataset_id": d.pk, "name": d.name, "description": d.description, "owner": d.owner.username,
           "created_at": d.created_at.isoformat(), "version_count": len(versions),
           "latest_version": version_summary(latest) if latest else None,
           "current_version": version_summary(current) if current else None,
           "pinned_version_id": current.pk if current is not None and current.pk == d.pinned_version_id else None}
    if detail:
        out["versions"] = [version_summary(v) for v in versions]
        out["latest"] = version_out(latest) if latest else None
    return out


def example_out(e: Example) -> dict:
    return {"id": e.pk, "index": e.index, "version_id": e.version_id, "messages": e.messages, "tools": e.tools,
            "split": e.split, "category": e.category, "tags": e.tags or [], "source_file": e.source_file,
            "source_line": e.source_line, "token_count": e.token_count,
            "issues": [c for c in (e.issues or "").split("|") if c], "content_hash": e.content_hash,
            "kind": (e.meta or {}).get("kind", "chat"), "meta": e.meta or {}}
