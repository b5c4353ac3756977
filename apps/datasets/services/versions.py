"""Dataset versions and their examples: the shared write path every import, fix and edit goes through.

Contract: a version is immutable once `ready`; every change makes a NEW version (`_new_version` numbers
it under a lock on its dataset) whose examples are validated again (`_derive_version`) and written in
batches of INSERT_BATCH rows, each batch committed on its own (`_writer`, one `example_row` per annotated
example: no transaction spans a whole version, so other writers never wait on one); `_finish` records the
validation report and stats and marks the version ready (or failed when nothing survived) in one short
write through the version's job (apps.core.jobs; hooks in apps/datasets/jobs.py), so readers never see
half a version as ready. `delete_examples` removes a version's rows in
batches too. Public:
`version_revalidate` (the same examples for another target or tokenizer), `example_edit` (edit or delete
one example), `can_write` (the dataset's owner or a hub admin), `version_source_path` (the raw upload
on disk). Permissions: every signed-in user may read every dataset; only the owner or an admin may add
versions to it."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from apps.core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.jobs.services import job_claim, job_create, job_finish
from apps.core.liveness import worker_id
from apps.datasets.formats import FORMATS, TARGETS
from apps.datasets.jobs import version_job_id
from apps.datasets.models import Dataset, DatasetVersion, Example
from apps.datasets.validation.pipeline import validate_examples
from apps.datasets.validation.tokens import counter_for_base_model

log = logging.getLogger(__name__)

INSERT_BATCH = 1000
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def can_write(user, dataset: Dataset) -> bool:
    """May `user` add versions to `dataset`? Its owner or a hub admin."""
    return user is not None and (dataset.owner_id == user.pk or getattr(user, "is_hub_admin", False))


def safe_filename(name: str) -> str:
    name = Path(str(name).replace("\\", "/")).name or "upload"
    name = _SAFE_NAME.sub("_", name).strip("._") or "upload"
    return name[:120]


def version_source_path(version: DatasetVersion) -> Path | None:
    if not version.source_file:
        return None
    p = Path(version.source_file)
    return p if p.is_absolute() else Path(settings.ARTIFACT_ROOT) / p

def _next_number(dataset: Dataset) -> int:
    return (dataset.versions.aggregate(m=Max("number"))["m"] or 0) + 1


def _check_options(*, target: str, format: str | None, base_model: str | None):
    if target not in TARGETS:
        raise ValidationFailed(f"Unknown target `{target}` (choose {', '.join(TARGETS)}).", field="target")
    if format and format not in FORMATS:
        raise ValidationFailed(f"Unknown format `{format}` (choose {', '.join(FORMATS)}).", field="format")
    if base_model:
        from apps.registry.models import BaseModel

        if not BaseModel.objects.filter(pk=base_model).exists():
            raise ValidationFailed(f"Unknown base model `{base_model}`.", field="base_model")


def _new_version(*, user, dataset: Dataset, **fields) -> DatasetVersion:
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        return DatasetVersion.objects.create(dataset=dataset, number=_next_number(dataset), created_by=user, **fields)


def example_row(version: DatasetVersion, a) -> Example:
    ex = a.example
    return Example(version=version, index=a.index, messages=ex["messages"], tools=ex.get("tools"),
                   source_file=(ex.get("source_file") or "")[:500], source_line=ex.get("source_line"),
                   category=(ex.get("category") or "")[:100], tags=ex.get("tags") or [], content_hash=a.hash,
                   split=a.split, token_count=a.tokens, issues=("|" + "|".join(sorted(a.codes)) + "|")[:400] if a.codes else "",
                   meta=ex.get("meta") or {})


DELETE_BATCH = 5000


def delete_examples(version: DatasetVersion | int) -> int:
    """Delete a version's examples DELETE_BATCH rows per statement (each its own short transaction, so a
    failed 100k-row import never holds the database while it is cleaned up). Returns the count deleted."""
    version_id = version if isinstance(version, int) else version.pk
    deleted = 0
    while True:
        pks = list(Example.objects.filter(version_id=version_id).order_by().values_list("pk", flat=True)[:DELETE_BATCH])
        if not pks:
            return deleted
        deleted += Example.objects.filter(pk__in=pks).delete()[0]


def _writer(version: DatasetVersion):
    """(on_batch, flush): rows are inserted INSERT_BATCH at a time, each insert committed on its own (a
    short transaction) unless the caller holds one open — callers must not: see `version_process`."""
    pending: list[Example] = []

    def on_batch(batch):
        pending.extend(example_row(version, a) for a in batch)
        while len(pending) >= INSERT_BATCH:
            Example.objects.bulk_create(pending[:INSERT_BATCH])
            del pending[:INSERT_BATCH]

    def flush():
        if pending:
            Example.objects.bulk_create(pending)
            pending.clear()
    return on_batch, flush


def _finish(version: DatasetVersion, result, *, source_examples=None) -> DatasetVersion:
    rep = result.as_dict()
    version.validation = {k: rep[k] for k in ("errors", "warnings", "counts", "error_total", "warning_total",
                                               "truncated")}
    version.stats = result.stats
    version.format = version.format or result.format
    if version.format != result.format and result.format != "unknown":
        version.format = result.format
    version.example_count = result.examples
    version.content_hash = result.content_hash
    error = ""
    if result.examples == 0:
        first = rep["errors"][0] if rep["errors"] else None
        error = (f"{first.get('file') or version.source_name}"
                 f"{':' + str(first['line']) if first and first.get('line') else ''}: {first['message']}"
                 if first else "No examples found.")
    version.progress = {**(version.progress or {}), "examples": result.examples}
    version.save(update_fields=["validation", "stats", "format", "example_count", "content_hash", "progress"])
    # ready or failed through the version's job (its hook sets status, error and progress in one write)
    job_finish(job_id=version_job_id(version), status="failed" if error else "succeeded", error=error,
               error_code="E_NO_EXAMPLES" if error else "", result={"message": error})
    version.refresh_from_db()
    return version


def _example_dict(e: Example) -> dict:
    return {"messages": e.messages, "tools": e.tools, "source_file": e.source_file, "source_line": e.source_line,
            "category": e.category, "tags": list(e.tags or []), "meta": dict(e.meta or {"kind": "chat"})}


def _writable_ready_version(user, version_id: int, verb: str) -> DatasetVersion:
    parent = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if parent is None:
        raise NotFound("No such dataset version.")
    if not can_write(user, parent.dataset):
        raise PermissionDenied(f"Only the dataset's owner or an admin can {verb} it.")
    if parent.status != DatasetVersion.Status.READY:
        raise Conflict(f"Only a ready version can be {verb}ed.")
    return parent


def _derive_version(*, user, parent: DatasetVersion, note: str, examples, stage: dict, target: str | None = None,
                    base_model: str | None = None) -> DatasetVersion:
    """A new version from `examples` (normalized dicts), validated again; the parent is never changed."""
    target = target or parent.target
    base_model = parent.base_model_id if base_model is None else base_model
    version = _new_version(user=user, dataset=parent.dataset, parent=parent, status=DatasetVersion.Status.IMPORTING,
                           format=parent.format, source_file=parent.source_file, source_name=parent.source_name,
                           target=target, split_ratio=parent.split_ratio, base_model_id=base_model,
                           note=note[:500], progress=stage)
    version.job = job_create(kind="dataset.derive", owner=user, target=version, send=False)
    version.save(update_fields=["job"])
    job_claim(job_id=version.job_id, holder=worker_id())  # this process holds it (inline, no message)
    counter = counter_for_base_model(base_model or None)
    on_batch, flush = _writer(version)
    try:
        # Rows are committed in batches (no transaction around the whole version: other writers never
        # wait on it); the version stays `importing` until `_finish` marks it ready in one write.
        result = validate_examples(examples, fmt=parent.format, target=target, counter=counter,
                                   split_ratio=parent.split_ratio, base_model_id=base_model or None,
                                   on_batch=on_batch)
        flush()
        _finish(version, result)
    except Exception as exc:
        log.exception("deriving a version from %s failed", parent.pk)
        delete_examples(version)
        job_finish(job_id=version.job_id, status="failed", error=f"{note} failed: {type(exc).__name__}: {exc}",
                   error_code="E_DERIVE_FAILED", result={"message": f"{note} failed: {exc}"})
        version.refresh_from_db()
    return version


def version_revalidate(*, user, version_id: int, target: str, base_model: str | None = None) -> DatasetVersion:
    """The same examples validated for another target (local / openai / together) or counted with another
    base model's tokenizer: a new version (a version's report always matches its target)."""
    _check_options(target=target, format=None, base_model=base_model)
    parent = _writable_ready_version(user, version_id, "revalidat")

    def examples():
        for e in parent.examples.order_by("index").iterator(chunk_size=2000):
            yield _example_dict(e)

    note = f"Validated for {target}" + (f" with {base_model}" if base_model else "")
    return _derive_version(user=user, parent=parent, note=note, examples=examples(), target=target,
                           base_model=base_model if base_model else parent.base_model_id,
                           stage={"stage": "revalidating", "target": target})


def example_edit(*, user, version_id: int, index: int, messages, tools=None, delete: bool = False) -> DatasetVersion:
    """Edit (or delete) one example, imported ones too: a NEW version with that change; the edited
    messages must pass the version's structural rules first (field errors otherwise)."""
    from apps.datasets.formats import Report
    from apps.datasets.formats.rows import RowChecker

    parent = _writable_ready_version(user, version_id, "edit")
    target = parent.examples.filter(index=index).first()
    if target is None:
        raise NotFound(f"Version {parent.number} has no example #{index + 1}.", field="index")
    new_ex = None
    if not delete:
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except ValueError as exc:
                raise ValidationFailed(f"The messages are not valid JSON: {exc}", field="messages") from None
        if not isinstance(messages, list) or not messages:
            raise ValidationFailed("Give a non-empty list of messages.", field="messages")
        rep = Report()
        checker = RowChecker(rep, target=parent.target, file=target.source_file)
        old = _example_dict(target)
        new_ex = checker.check_example({**old, "messages": messages, "tools": tools if tools is not None else old["tools"]})
        if rep.errors or new_ex is None:
            msgs = "; ".join(e["message"] for e in rep.errors) or "The example is not valid."
            raise ValidationFailed(msgs, field="messages")
        new_ex["source_line"] = target.source_line
        new_ex["meta"] = {**(old.get("meta") or {}), "edited_from": target.content_hash[:12]}

    def examples():
        for e in parent.examples.order_by("index").iterator(chunk_size=2000):
            if e.index == index:
                if new_ex is not None:
                    yield new_ex
            else:
                yield _example_dict(e)

    note = f"{'Deleted' if delete else 'Edited'} example #{index + 1}"
    return _derive_version(user=user, parent=parent, note=note, examples=examples(),
                           stage={"stage": "editing", "index": index})
