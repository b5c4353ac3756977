"""Dataset versions and their examples: the shared write path every import, fix and edit goes through.

Contract: a version is immutable once `ready`; every change makes a NEW version (`_new_version` numbers
it under a lock on its dataset) whose examples are validated again (`_derive_version`) and written in
batches of INSERT_BATCH rows, each batch committed on its own (`_writer`, one `example_row` per annotated
example: no transaction spans a whole version, so other writers never wait on one); `_finish` records the
validation report and stats and marks the version ready (or failed when nothing survived) in one short
write through the version's job (apps.core.jobs; hooks in apps/datasets/jobs.py), so readers never see
half a version as ready. `delete_examples` removes a version's rows in
batches too.

Derived versions (a review's result, an edit, a revalidation) carry most examples over unchanged: the
caller yields `Unchanged(example_id, add_tags, meta)` for those. Their content is read from the parent's
rows (a batch at a time), checked again like every example (structural rules, duplicates and near
duplicates among the new version's examples, statistics), but the figures stored with them are reused
when the parent was validated by this pipeline (token counts with the same tokenizer; content checks that
raised nothing are not run again), and their stored MinHash signatures whenever there are some (all only
where the stored content hash is the content's hash; a revalidation reuses nothing); their rows are copied in the database (`_copy_rows`: INSERT … SELECT
from the parent's rows with the new index, tags, meta and figures) instead of being rebuilt in Python.
`carried_where` reads a parent's examples chosen by a filter straight into that form (a generation's kept
examples). Public:
`version_revalidate` (the same examples for another target or tokenizer), `example_edit` (edit or delete
one example), `can_write` (the dataset's owner or a hub admin), `version_source_path` (the raw upload
on disk). Permissions: every signed-in user may read every dataset; only the owner or an admin may add
versions to it."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, TextField
from django.db.models.functions import Cast

from apps.core.exceptions import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.jobs.services import job_claim, job_create, job_finish
from apps.core.liveness import worker_id
from apps.datasets.formats import FORMATS, TARGETS
from apps.datasets.jobs import version_job_id
from apps.datasets.models import Dataset, DatasetVersion, Example
from apps.datasets.validation.pipeline import (
    SET_CODES, VALIDATION_CODES, Carried, batched, issue_codes, validate_examples,
)
from apps.datasets.validation.tokens import COUNTING, counter_for_base_model

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


def _issues(codes) -> str:
    return ("|" + "|".join(sorted(codes)) + "|")[:400] if codes else ""


def example_row(version: DatasetVersion, a) -> Example:
    ex = a.example
    return Example(version=version, index=a.index, messages=ex["messages"], tools=ex.get("tools"),
                   source_file=(ex.get("source_file") or "")[:500], source_line=ex.get("source_line"),
                   category=(ex.get("category") or "")[:100], tags=ex.get("tags") or [], content_hash=a.hash,
                   split=a.split, token_count=a.tokens, role_tokens=getattr(a, "role_tokens", None),
                   issues=_issues(a.codes), meta=ex.get("meta") or {}, minhash=getattr(a, "minhash", None))


_COPY_SQL = """
INSERT INTO {table} (version_id, index, messages, tools, source_file, source_line, category, tags, content_hash,
                     split, token_count, role_tokens, issues, meta, minhash)
SELECT %s, r.idx, e.messages, e.tools, e.source_file, e.source_line, e.category, r.tags, r.hash,
       r.split, r.tokens, r.role_tokens, r.issues, r.meta, COALESCE(decode(r.minhash, 'hex'), e.minhash)
FROM jsonb_to_recordset(%s::jsonb) AS r(src bigint, idx integer, tags jsonb, hash text, split text, tokens integer,
                                        role_tokens jsonb, issues text, meta jsonb, minhash text)
JOIN {table} e ON e.id = r.src"""


def _copy_rows(version: DatasetVersion, batch) -> None:
    """Write annotated examples whose content is a stored row's (`a.source`): on PostgreSQL one
    INSERT … SELECT copies the messages, tools, source and category (and the MinHash signature, when the
    validation used that row's) from that row in the database, with the new index, tags, meta and figures
    (handed over as one JSON document, no per-row objects); elsewhere
    (SQLite) the rows are built from the annotated examples."""
    if connection.vendor != "postgresql":
        Example.objects.bulk_create([example_row(version, a) for a in batch])
        return
    doc = orjson.dumps([{"src": a.source, "idx": a.index, "tags": a.example.get("tags") or [], "hash": a.hash,
                         "split": a.split, "tokens": a.tokens, "role_tokens": a.role_tokens,
                         "issues": _issues(a.codes), "meta": a.example.get("meta") or {},
                         "minhash": None if a.minhash_reused or a.minhash is None else a.minhash.hex()}
                        for a in batch])
    with connection.cursor() as cur:
        cur.execute(_COPY_SQL.format(table=connection.ops.quote_name(Example._meta.db_table)),
                    [version.pk, doc.decode()])
        if cur.rowcount != len(batch):
            raise RuntimeError(f"copied {cur.rowcount} of {len(batch)} example rows: the source rows are gone")


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
    short transaction) unless the caller holds one open — callers must not: see `version_process`.
    Examples whose content is a stored row's (`a.source`, a derived version's unchanged ones) are copied
    from that row in the database, a batch per statement (`_copy_rows`)."""
    pending: list[Example] = []

    def on_batch(batch):
        copies = [a for a in batch if getattr(a, "source", None) is not None]
        if copies:
            _copy_rows(version, copies)
        pending.extend(example_row(version, a) for a in batch if getattr(a, "source", None) is None)
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


@dataclass(frozen=True)
class Unchanged:
    """For `_derive_version`'s examples: the parent's example `example_id` (its pk), carried over with its
    content (messages, tools, source, category) unchanged; `add_tags` are appended to its tags (those it
    lacks) and the `meta` keys set on its meta."""
    example_id: int
    add_tags: tuple = ()
    meta: dict | None = None


RESOLVE_BATCH = 1000
_JSON = ("messages", "tools", "tags", "meta", "role_tokens")
_STORED = ("pk", "messages", "tools", "source_file", "source_line", "category", "tags", "meta", "content_hash",
           "token_count", "role_tokens", "issues", "minhash")


def _loads(text):
    """A JSON column read as text, decoded by orjson (several times faster than the json module that the
    JSONField would use); the json module for what orjson refuses (integers beyond 64 bits)."""
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _stored_rows(qs) -> dict[int, tuple]:
    """The rows of `qs` (Examples) as tuples of _STORED (JSON columns decoded), by pk, in the order of `qs`."""
    qs = (qs.annotate(**{f"{f}_text": Cast(f, TextField()) for f in _JSON})
          .values_list(*(f"{f}_text" if f in _JSON else f for f in _STORED)))
    json_at = [i for i, f in enumerate(_STORED) if f in _JSON]
    out = {}
    for r in qs:
        r = list(r)
        for i in json_at:
            r[i] = _loads(r[i])
        out[r[0]] = tuple(r)
    return out


@dataclass(frozen=True)
class _Reuse:
    """Which of a parent's stored figures a derived version may use (see `resolve_unchanged`)."""
    tokens: bool
    codes: bool
    structure_clean: bool
    signatures: bool


def _carried(row: tuple, reuse: _Reuse, add_tags=(), meta_update=None) -> Carried:
    (pk, messages, tools, source_file, source_line, category, tags, meta, h, tokens, role_tokens, issues,
     minhash) = row
    tags = list(tags or [])
    tags += [t for t in add_tags if t and t not in tags]
    meta = dict(meta or {"kind": "chat"})
    meta.update(meta_update or {})
    ex = {"messages": messages, "tools": tools, "source_file": source_file, "source_line": source_line,
          "category": category, "tags": tags, "meta": meta}
    c = Carried(ex, pk, hash=h or "", structure_clean=reuse.structure_clean)
    if reuse.tokens and tokens is not None and role_tokens is not None:
        c.tokens, c.role_tokens = tokens, role_tokens
    if reuse.codes:
        c.content_clean = not (issue_codes(issues) - SET_CODES)
    if reuse.signatures and minhash is not None:
        c.signature = bytes(minhash)
    return c


def _resolve(parent: DatasetVersion, items, reuse: _Reuse):
    """`items` with each `Unchanged` replaced by a `Carried` example read from the parent's rows (one read per
    RESOLVE_BATCH items, in order; memory stays flat), with the stored figures the validation may reuse."""
    for chunk in batched(items, RESOLVE_BATCH):
        ids = [it.example_id for it in chunk if isinstance(it, Unchanged)]
        rows = _stored_rows(Example.objects.filter(version_id=parent.pk, pk__in=ids).order_by()) if ids else {}
        for it in chunk:
            if not isinstance(it, Unchanged):
                yield it
                continue
            r = rows.get(it.example_id)
            if r is None:
                raise ValueError(f"Example {it.example_id} is not one of version {parent.number}'s examples.")
            yield _carried(r, reuse, it.add_tags, it.meta)


def _reuse(parent: DatasetVersion, *, counter_name: str | None, target: str, reuse: bool) -> _Reuse:
    counts = (parent.validation or {}).get("counts")
    validated = reuse and counts is not None
    tokens = (parent.stats or {}).get("tokens") or {}
    return _Reuse(
        tokens=validated and counter_name is not None and tokens.get("base_model") == counter_name and
        tokens.get("counting") == COUNTING,
        codes=validated,
        structure_clean=validated and target == parent.target and
        all(key.partition(":")[2] in VALIDATION_CODES for key in counts),
        signatures=reuse)


def resolve_unchanged(parent: DatasetVersion, items, *, counter, target: str, reuse: bool = True):
    """`items` (example dicts and `Unchanged` references to `parent`'s examples) ready for `validate_examples`:
    each `Unchanged` becomes a `Carried` example with the figures of the parent that may be reused. They count
    only when this pipeline made them: the parent's report has counts (written by `_finish` alone); token counts
    were made with this tokenizer, counted the way they are now (`tokens.COUNTING`); the structural rules are
    skipped when that report holds no finding of theirs and the target is the same (the examples are stored
    as those rules normalize them). A stored MinHash signature depends on the content alone (and says how it
    was made): it is used whenever present. Every figure is used only where the stored content hash is the
    content's. `reuse=False`: nothing is reused, the rows are still copied."""
    name = counter.name if counter is not None else None
    return _resolve(parent, items, _reuse(parent, counter_name=name, target=target, reuse=reuse))


def carried_where(parent: DatasetVersion, *, counter_name: str | None, target: str, **lookups):
    """The parent's examples matching `lookups` (Example field lookups), in index order, as `Carried` examples
    ready for `validate_examples` (the figures that may be reused as in `resolve_unchanged`; `counter_name`: the
    name of the token counter they will be validated with, tokens.counter_name — no need to load it first):
    each row is read once, RESOLVE_BATCH rows per query."""
    reuse = _reuse(parent, counter_name=counter_name, target=target, reuse=True)
    qs = Example.objects.filter(version_id=parent.pk, **lookups).order_by("index")
    last = -1
    while page := list(qs.filter(index__gt=last).values_list("pk", "index")[:RESOLVE_BATCH]):
        rows = _stored_rows(Example.objects.filter(pk__in=[pk for pk, _i in page]).order_by())
        for pk, _i in page:
            yield _carried(rows[pk], reuse)
        last = page[-1][1]


def _derive_version(*, user, parent: DatasetVersion, note: str, examples, stage: dict, target: str | None = None,
                    base_model: str | None = None, reuse: bool = True) -> DatasetVersion:
    """A new version from `examples` (normalized dicts, or `Unchanged` references to the parent's
    examples), validated again; the parent is never changed. `reuse=False` (a revalidation): every figure
    is computed again, unchanged examples' rows are still copied."""
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
    examples = resolve_unchanged(parent, examples, counter=counter, target=target, reuse=reuse)
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

    def examples():  # every figure is computed again (reuse=False); the rows are copied in the database
        for pk in parent.examples.order_by("index").values_list("pk", flat=True).iterator(chunk_size=2000):
            yield Unchanged(pk)

    note = f"Validated for {target}" + (f" with {base_model}" if base_model else "")
    return _derive_version(user=user, parent=parent, note=note, examples=examples(), target=target,
                           base_model=base_model if base_model else parent.base_model_id,
                           stage={"stage": "revalidating", "target": target}, reuse=False)


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
        for pk, i in parent.examples.order_by("index").values_list("pk", "index").iterator(chunk_size=2000):
            if i == index:
                if new_ex is not None:
                    yield new_ex
            else:
                yield Unchanged(pk)

    note = f"{'Deleted' if delete else 'Edited'} example #{index + 1}"
    return _derive_version(user=user, parent=parent, note=note, examples=examples(),
                           stage={"stage": "editing", "index": index})
