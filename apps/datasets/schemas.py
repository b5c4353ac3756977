"""API shapes for datasets (django-ninja). Every object for a created resource carries `id`."""
from __future__ import annotations

from ninja import Schema

from apps.datasets.models import Dataset, DatasetVersion, Example


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
    status: str
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
    status: str
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


class ExamplePageOut(Schema):
    count: int
    page: int
    page_size: int
    pages: int
    version_id: int
    results: list[ExampleOut]


class FixIn(Schema):
    fix: str


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
    versions = list(d.versions.order_by("-number"))
    latest = versions[0] if versions else None
    out = {"id": d.pk, "dataset_id": d.pk, "name": d.name, "description": d.description, "owner": d.owner.username,
           "created_at": d.created_at.isoformat(), "version_count": len(versions),
           "latest_version": version_summary(latest) if latest else None}
    if detail:
        out["versions"] = [version_summary(v) for v in versions]
        out["latest"] = version_out(latest) if latest else None
    return out


def example_out(e: Example) -> dict:
    return {"id": e.pk, "index": e.index, "version_id": e.version_id, "messages": e.messages, "tools": e.tools,
            "split": e.split, "category": e.category, "tags": e.tags or [], "source_file": e.source_file,
            "source_line": e.source_line, "token_count": e.token_count,
            "issues": [c for c in (e.issues or "").split("|") if c], "content_hash": e.content_hash,
            "kind": (e.meta or {}).get("kind", "chat")}
