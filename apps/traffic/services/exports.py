"""Requests become a new immutable dataset version ("Add to dataset", and capture-rule batches).

Contract: `traffic_export(user=, ids= | filters=, dataset_id= | new_dataset=)` checks the input (field
errors: `dataset`, `new_dataset`, `ids`; an empty selection is an error, never an empty version), freezes
the selection (ids, or the filter plus the newest log id at the click), and makes an `importing` version
of the dataset whose job is "traffic.export" (apps/traffic/jobs.py). At most INLINE_MAX requests (and the
tokenizer already loaded) are converted inside the request; more go to the worker (`traffic_export` actor),
with progress and cancel on the Jobs page. `export_process` (idempotent: a re-run starts over; a finished
version is returned untouched) takes the dataset's latest ready version as parent, copies its examples and
appends the requests, newest first, as chat examples (apps/traffic/convert.py), then validates and stores
them through the datasets' version path (batches of INSERT_BATCH rows; ready in one write at the end):

- failed requests (status >= 400, or no status) are skipped and counted (`failed`);
- retries are de-duplicated: the same (user, Idempotency-Key), or the same content (the conversation up to
  the answer and the tools: convert.prompt_hash) — the newest successful attempt is kept
  (`duplicates`); an example already in the parent version is not added twice (`in_parent`);
- tool calls and tool results are kept; requests the logs hold only cut (`truncated`), with images or files
  (`unsupported`), or with no answer (`no_answer`), or legacy completions (`not_chat`) are skipped, counted;
- a response served by a fallback target gets `meta.fallback = true` and the tag `fallback`;
- every example carries its provenance in `meta`: request_id, endpoint, model, alias, served_by, time.

Versions of one dataset are built one at a time (a PostgreSQL advisory lock per dataset), so a capture batch
and a manual export never both build on the same parent and lose each other's examples.
Permissions: the dataset's owner or an admin may add to it; a member exports only their own requests.
"""
from __future__ import annotations

import contextlib
import logging

from django.conf import settings
from django.db import connection, transaction

from apps.core.exceptions import NotFound, PermissionDenied, ValidationFailed
from apps.core.jobs import services as job_services
from apps.core.liveness import worker_id
from apps.datasets.formats import Report
from apps.datasets.formats.rows import RowChecker
from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.services import can_write
from apps.datasets.services.versions import _finish, _new_version, _writer, delete_examples
from apps.datasets.validation.pipeline import content_hash, validate_examples
from apps.datasets.validation.tokens import counter_for_base_model, counter_loaded
from apps.proxy.models import RequestLog
from apps.traffic import convert, selectors
from apps.traffic.models import CaptureItem, CaptureRule, TrafficExport
from apps.traffic.services.captures import log_field, served_by_of

log = logging.getLogger(__name__)

INLINE_MAX = 200  # requests converted inside the web request; more go to the worker
MAX_IDS = 5000  # a selection of checkboxes (a filter has no limit)
CAPTURE_MAX_BATCH = 50_000
FORMAT = "proxy-traffic"
COUNT_KEYS = ("selected", "exported", "failed", "duplicates", "in_parent", "invalid", "truncated", "unsupported",
              "no_answer", "not_chat", "fallback")
_LOCK_SPACE = 0x7472  # "tr": the advisory-lock namespace of traffic exports


class ExportCancelled(Exception):
    pass


# -- create ------------------------------------------------------------------------------------------
def _target_dataset(*, user, dataset_id, new_dataset: str) -> tuple[Dataset | None, str]:
    new_dataset = (new_dataset or "").strip()
    if dataset_id in (None, ""):
        if not new_dataset:
            raise ValidationFailed("Choose a dataset or name a new one.", field="dataset")
        if len(new_dataset) > 200:
            raise ValidationFailed("The name must be at most 200 characters.", field="new_dataset")
        if "\x00" in new_dataset:
            raise ValidationFailed("The name must not contain NUL bytes.", field="new_dataset")
        return None, new_dataset
    try:
        pk = int(dataset_id)
    except (TypeError, ValueError):
        raise ValidationFailed("Choose a dataset from the list.", field="dataset") from None
    dataset = Dataset.objects.filter(pk=pk).first() if 0 < pk < 2**63 else None
    if dataset is None:
        raise ValidationFailed(f"Dataset {dataset_id} does not exist.", field="dataset")
    if not can_write(user, dataset):
        raise PermissionDenied("Only the dataset's owner or an admin can add versions to it.", field="dataset")
    return dataset, ""


def _version_options(dataset: Dataset | None) -> dict:
    parent = (dataset.versions.filter(status=DatasetVersion.Status.READY).order_by("-number").first()
              if dataset is not None else None)
    if parent is None:
        return {"target": "local", "split_ratio": settings.HUB_VALIDATION_SPLIT, "base_model_id": ""}
    return {"target": parent.target, "split_ratio": parent.split_ratio, "base_model_id": parent.base_model_id}


def _create(*, user, dataset: Dataset | None, new_name: str, source: str, spec: dict, selected: int,
            rule: CaptureRule | None = None, send: bool) -> TrafficExport:
    with transaction.atomic():
        if dataset is None:
            dataset = Dataset.objects.create(name=new_name, owner=user,
                                             description="Requests captured from the /v1 proxy.")
        what = {"selection": "selected requests", "filter": "requests matching a filter",
                "capture": f"capture rule #{rule.pk if rule else '?'}"}[source]
        version = _new_version(user=user, dataset=dataset, status=DatasetVersion.Status.IMPORTING, format=FORMAT,
                               source_name="proxy traffic", note=f"From proxy traffic: {selected} {what}"[:500],
                               progress={"stage": "queued", "examples": 0, "total": selected},
                               **_version_options(dataset))
        export = TrafficExport.objects.create(owner=user, source=source, dataset=dataset, version=version,
                                              rule=rule, spec=spec, counts={"selected": selected})
        version.job = job_services.job_create(kind="traffic.export", owner=user, target=version, args=[export.pk],
                                              send=send)
        version.save(update_fields=["job"])
    return export


def traffic_export(*, user, dataset_id=None, new_dataset: str = "", ids: list[int] | None = None,
                   filters: dict | None = None, background: bool | None = None) -> TrafficExport:
    """"Add to dataset" on a selection (`ids`) or on a filter (`filters`, as selectors.FILTER_KEYS)."""
    if user is None or not getattr(user, "is_authenticated", False):
        raise PermissionDenied("Sign in first.")
    if ids is not None and filters is not None:
        raise ValidationFailed("Export either a selection or a filter, not both.", field="ids")
    dataset, new_name = _target_dataset(user=user, dataset_id=dataset_id, new_dataset=new_dataset)
    visible = selectors.visible_entries(user=user)
    if filters is not None:
        clean = {k: v for k, v in filters.items() if k in selectors.FILTER_KEYS and v not in (None, "")}
        matching = selectors.apply_filters(visible, clean)
        until_id = matching.order_by("-log_id").values_list("log_id", flat=True).first()
        if until_id is None:
            raise ValidationFailed("No requests match this filter.", field="ids")
        selected = matching.filter(log_id__lte=until_id).count()
        spec = {"filters": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in clean.items()},
                "until_id": until_id}
        source = TrafficExport.Source.FILTER
    else:
        ids = [int(i) for i in (ids or [])]
        if not ids:
            raise ValidationFailed("Select at least one request.", field="ids")
        if len(ids) > MAX_IDS:
            raise ValidationFailed(f"Select at most {MAX_IDS} requests, or add the whole filter.", field="ids")
        found = list(visible.filter(log_id__in=ids).values_list("log_id", flat=True))
        if len(found) != len(set(ids)):
            raise ValidationFailed("Some of the selected requests do not exist (or are not yours).", field="ids")
        selected, spec, source = len(found), {"ids": sorted(found)}, TrafficExport.Source.SELECTION
    opts = _version_options(dataset)
    if background is None:
        background = selected > INLINE_MAX or not counter_loaded(opts["base_model_id"] or None)
    export = _create(user=user, dataset=dataset, new_name=new_name, source=source, spec=spec, selected=selected,
                     send=background)
    if background:
        return export
    return export_process(export_id=export.pk, wait=False)


def capture_export_create(*, rule_id: int) -> TrafficExport | None:
    """Take a rule's waiting items (all of them, up to CAPTURE_MAX_BATCH) into a new export; None when
    another flush took them first. The rule row is locked while the items are taken."""
    with transaction.atomic():
        rule = CaptureRule.objects.select_for_update().select_related("dataset", "owner").filter(pk=rule_id).first()
        if rule is None:
            return None
        ids = list(CaptureItem.objects.filter(rule=rule, export__isnull=True).order_by("created_at")
                   .values_list("pk", flat=True)[:CAPTURE_MAX_BATCH])
        if not ids:
            return None
        export = _create(user=rule.owner, dataset=rule.dataset, new_name="", source=TrafficExport.Source.CAPTURE,
                         spec={"capture": True}, selected=len(ids), rule=rule, send=False)
        CaptureItem.objects.filter(pk__in=ids, export__isnull=True).update(export=export)
        rule.last_cut_at = export.created_at
        rule.save(update_fields=["last_cut_at"])
    return export


# -- process -----------------------------------------------------------------------------------------
def _selected_logs(export: TrafficExport):
    """The export's request logs, newest first, bodies included, streamed."""
    spec = export.spec or {}
    if spec.get("capture"):
        log_ids = CaptureItem.objects.filter(export=export).values("log_id")
    else:
        visible = selectors.visible_entries(user=export.owner)
        if "filters" in spec:
            entries = selectors.apply_filters(visible, spec["filters"]).filter(log_id__lte=spec.get("until_id") or 0)
        else:
            entries = visible.filter(log_id__in=spec.get("ids") or [])
        log_ids = entries.values("log_id")
    return RequestLog.objects.filter(pk__in=log_ids).order_by("-created_at", "-pk").iterator(chunk_size=500)


def _meta(row, fallback: bool) -> dict:
    return {"kind": "chat", "source": "proxy", "request_id": row.request_id, "endpoint": row.endpoint,
            "model": row.model_requested, "alias": log_field(row, None, "alias", "") or None,
            "served_by": served_by_of(row) or None, "fallback": fallback,
            "created_at": row.created_at.isoformat() if row.created_at else None}


def request_examples(logs, *, counts: dict, target: str = "local", skip_hashes: set | None = None,
                     on_row=None):
    """Chat examples from request logs (newest first), skipping and counting as the module docstring says.
    `skip_hashes`: content hashes already in the parent version."""
    checker = RowChecker(Report(), target=target, file="proxy")
    seen_keys: set = set()
    seen_prompts: set = set()
    for row in logs:
        if on_row is not None:
            on_row()
        if row.status_code >= 400 or not row.status_code:
            counts["failed"] += 1
            continue
        conv = convert.conversation(row.endpoint, row.request, row.response)
        problem = next((p for p in ("not_chat", "truncated", "unsupported", "no_answer") if p in conv.problems), None)
        if problem is None and conv.problems:
            problem = "invalid"
        if problem:
            counts[problem] += 1
            continue
        if row.idempotency_key:
            key = (row.user_id, row.idempotency_key)
            if key in seen_keys:
                counts["duplicates"] += 1
                continue
            seen_keys.add(key)
        prompt = bytes.fromhex(convert.prompt_hash(conv)[:32])
        if prompt in seen_prompts:
            counts["duplicates"] += 1
            continue
        seen_prompts.add(prompt)
        fallback = bool(log_field(row, None, "fallback", False))
        ex = {**conv.example(), "source_file": "proxy", "source_line": None, "category": "",
              "tags": ["proxy"] + (["fallback"] if fallback else []), "meta": _meta(row, fallback)}
        ex["meta"] = {k: v for k, v in ex["meta"].items() if v is not None}
        normalized = checker.check_example(ex)
        if normalized is None:
            counts["invalid"] += 1
            continue
        if skip_hashes is not None and content_hash(normalized) in skip_hashes:
            counts["in_parent"] += 1
            continue
        counts["exported"] += 1
        if fallback:
            counts["fallback"] += 1
        yield normalized


@contextlib.contextmanager
def _dataset_lock(dataset_id: int, *, wait: bool = True):
    """One traffic version build at a time per dataset (a PostgreSQL advisory lock held by the session, not
    by a transaction: no transaction spans the build). Yields whether it holds the lock: with wait=False it
    does not queue behind another build. SQLite has a single writer anyway: always True."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = [_LOCK_SPACE, dataset_id % 2**31]
    with connection.cursor() as cur:
        if wait:
            cur.execute("SELECT pg_advisory_lock(%s, %s)", key)
            held = True
        else:
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
            held = bool(cur.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", key)


def _parent_examples(parent: DatasetVersion | None):
    if parent is None:
        return
    for e in parent.examples.order_by("index").iterator(chunk_size=2000):
        yield {"messages": e.messages, "tools": e.tools, "source_file": e.source_file, "source_line": e.source_line,
               "category": e.category, "tags": list(e.tags or []), "meta": dict(e.meta or {"kind": "chat"})}


def _summary(counts: dict) -> str:
    parts = [f"{counts.get('exported', 0)} added"]
    for key, label in (("failed", "failed"), ("duplicates", "duplicates"), ("in_parent", "already in the dataset"),
                       ("truncated", "cut in the log"), ("unsupported", "with images or files"),
                       ("no_answer", "without an answer"), ("not_chat", "text completions"), ("invalid", "invalid")):
        if counts.get(key):
            parts.append(f"{counts[key]} {label}")
    return ", ".join(parts)


def export_process(*, export_id: int, wait: bool = True) -> TrafficExport:
    """Build the export's version (idempotent; see the module docstring). Returns the export, refreshed.
    wait=False (inline, in a web request): when another build of the same dataset is running, the export
    goes to the worker instead of waiting for it."""
    export = TrafficExport.objects.select_related("dataset", "version", "owner").filter(pk=export_id).first()
    if export is None:
        raise NotFound("No such traffic export.")
    version = export.version
    if version is None or version.status != DatasetVersion.Status.IMPORTING:
        return export
    with _dataset_lock(export.dataset_id, wait=wait) as held:
        if not held:
            job_services.job_send(job_id=version.job_id)
            return export
        holder = worker_id()
        if job_services.job_claim(job_id=version.job_id, holder=holder) is None:
            return export
        with job_services.job_heartbeat_thread(job_id=version.job_id, holder=holder):
            _build(export, version)
    if (export.spec or {}).get("capture"):
        version.refresh_from_db()
        if version.status != DatasetVersion.Status.IMPORTING:  # consumed, even when failed: never retried forever
            CaptureItem.objects.filter(export=export).delete()
            CaptureRule.objects.filter(pk=export.rule_id).update(last_error=(version.error or "")[:500])
    export.refresh_from_db()
    return export


def _build(export: TrafficExport, version: DatasetVersion) -> None:
    """The parent's examples plus the requests', validated and stored; finishes the version's job exactly once."""
    counts = {k: 0 for k in COUNT_KEYS}
    counts["selected"] = (export.counts or {}).get("selected", 0)
    try:
        delete_examples(version)  # a re-run starts over
        parent = (export.dataset.versions.filter(status=DatasetVersion.Status.READY).exclude(pk=version.pk)
                  .order_by("-number").first())
        if parent is not None:
            version.parent, version.target = parent, parent.target
            version.split_ratio, version.base_model_id = parent.split_ratio, parent.base_model_id
            version.save(update_fields=["parent", "target", "split_ratio", "base_model_id"])
        skip = set(parent.examples.values_list("content_hash", flat=True)) if parent is not None else None
        done = [0]

        def on_row():
            done[0] += 1
            if done[0] % 200 == 0:
                job_services.job_progress(job_id=version.job_id, current=done[0], total=counts["selected"],
                                          unit="requests")
                DatasetVersion.objects.filter(pk=version.pk).update(progress={
                    "stage": "converting requests", "examples": done[0], "total": counts["selected"]})
                if job_services.job_should_stop(job_id=version.job_id):
                    raise ExportCancelled()

        on_batch, flush = _writer(version)

        def examples():
            yield from _parent_examples(parent)
            yield from request_examples(_selected_logs(export), counts=counts, target=version.target,
                                        skip_hashes=skip, on_row=on_row)

        counter = counter_for_base_model(version.base_model_id or None)
        result = validate_examples(examples(), fmt=FORMAT, target=version.target, counter=counter,
                                   split_ratio=version.split_ratio, base_model_id=version.base_model_id or None,
                                   on_batch=on_batch)
        flush()
        export.counts = counts
        export.save(update_fields=["counts"])
        if not counts["exported"]:
            raise _NothingToAdd(f"None of the {counts['selected']} requests became an example: {_summary(counts)}.")
        version.note = f"From proxy traffic: {_summary(counts)}"[:500]
        version.save(update_fields=["note"])
        _finish(version, result)
    except ExportCancelled:
        delete_examples(version)
        job_services.job_finish(job_id=version.job_id, status="cancelled",
                                result={"message": "The export was cancelled."})
    except _NothingToAdd as exc:
        delete_examples(version)
        job_services.job_finish(job_id=version.job_id, status="failed", error=str(exc), error_code="E_NO_EXAMPLES",
                                result={"message": str(exc)})
    except Exception as exc:  # never leave half-written examples or a version stuck in `importing`
        log.exception("traffic export %s failed", export.pk)
        delete_examples(version)
        job_services.job_finish(job_id=version.job_id, status="failed", error_code="E_EXPORT_FAILED",
                                error=f"Export failed: {type(exc).__name__}: {exc}",
                                result={"message": f"Export failed: {exc}"})


class _NothingToAdd(Exception):
    pass

