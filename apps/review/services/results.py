"""The result of a review: a new immutable dataset version made from the decisions.

- `task_snapshot` (the task stays open) and `task_finish` (owner or admin) make, in one short transaction, an
  `importing` DatasetVersion of the task's dataset (parent: the task's version), a ReviewSnapshot linking it
  to the task (the counts as of the click), and the version's job "review.result" (apps/review/jobs.py: its
  hooks keep the version, the snapshot and the task in step). Up to INLINE_MAX accepted examples (with the
  tokenizer already loaded) are built inside the request; more go to the `default` worker queue
  (workers.review.review_result), with progress and cancel on the task page (its websocket group hears the
  job's events) and on the Jobs page. The answer is the snapshot: its version is `ready` (built inline, or
  built before), or `importing` while the worker builds it.
- `result_build(snapshot_id)` (the worker's, or inline; idempotent: a version no longer importing, or a job
  another live process holds, is left alone, and a re-run starts over) writes the version through the
  datasets' derive path (apps.datasets.services.versions: validated again, rows written in batches, ready in
  one write at the end, the version's job finished exactly once): the items whose final decision is accept, in
  example order, with their edited turns applied, rejected assistant turns kept as context only (weight 0),
  the task's tags added to the example's, and `meta["review"] = {"task", "item", "decision", "edited"}`;
  rejected and undecided items are left out. Items accepted as they are (no edit, no rejected turn) go as
  `Unchanged(example)` references: the datasets side reads them from the parent, reuses their stored figures
  and copies their rows in the database; only edited items are built here. The snapshot's counts are the
  version's. Lineage: version.parent is the task's version; the ReviewSnapshot links the version to the task
  (and so to every decision); the task's `result_version` is the finished one.
- `task_finish` is idempotent: a task being finished, or finished, answers with its one final snapshot (the
  same version and job). It refuses (409) while disputed items wait for adjudication, and 422 when nothing is
  accepted. The task is `finishing` (closed to decisions) from the click until the job ends: `finished` when
  the version is ready, `open` again when it failed or was cancelled. No transaction is held open while the
  version is written.
The JSONL export of the decisions is in apps.review.services.export."""
from __future__ import annotations

import json
import logging

from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from apps.core.exceptions import Conflict, ValidationFailed
from apps.core.jobs import services as job_services
from apps.core.liveness import worker_id
from apps.datasets.models import DatasetVersion
from apps.review.jobs import CANCELLED
from apps.review.models import ReviewItem, ReviewResponse, ReviewSnapshot, ReviewTask
from apps.review.realtime import finished_on_commit, progress_on_commit
from apps.review.services.common import task_for

log = logging.getLogger(__name__)

PAGE = 2000
INLINE_MAX = 1000  # accepted examples built inside the web request; more go to the worker
PROGRESS_EVERY = 200  # examples between progress reports (each throttled to one write a second)
State = ReviewItem.State


ITEM_FIELDS = ("pk", "example_index", "messages", "tags", "final_decision", "turn_decisions", "example__messages",
               "example__tools", "example__source_file", "example__source_line", "example__category",
               "example__tags", "example__meta")
# what a result page reads of every accepted item (the example's content only for the edited ones); the two
# JSON columns, null on nearly every item, as text (no per-row JSON converters)
RESULT_FIELDS = ("pk", "example_id", "example_index", "messages_text", "tags", "final_decision", "turns_text")


def _value_pages(task: ReviewTask, qs, size: int, fields=ITEM_FIELDS):
    """Rows (dicts of `fields`) of `qs` in example order, `size` at a time (keyset; no model objects)."""
    last = -1
    while True:
        page = list(qs.filter(example_index__gt=last).order_by("example_index").values(*fields)[:size])
        if not page:
            return
        yield page
        last = page[-1]["example_index"]


def _rejected_turns(task: ReviewTask, page: list[dict], any_turns: bool) -> dict[int, set[int]]:
    """Turns to keep as context only, per item: the adjudicator's turn decisions when given, else any turn
    rejected by a reviewer who accepted the item."""
    out: dict[int, set[int]] = {}
    need = []
    for row in page:
        if row["turn_decisions"] is not None:
            out[row["pk"]] = {int(k) for k, v in row["turn_decisions"].items() if v == "reject"}
        else:
            need.append(row["pk"])
    if need and any_turns:
        rows = (ReviewResponse.objects.filter(item_id__in=need, status=ReviewResponse.Status.DONE, decision="accept")
                .exclude(turn_decisions={}).values_list("item_id", "turn_decisions"))
        for item_id, turns in rows:
            out.setdefault(item_id, set()).update(int(k) for k, v in (turns or {}).items() if v == "reject")
    return out


def _item_tags(row: dict) -> list[str]:
    return [t for t in (row["tags"] or "").strip("|").split("|") if t]


def _review_meta(task: ReviewTask, row: dict) -> dict:
    return {"task": task.pk, "item": row["pk"], "decision": row["final_decision"], "edited": row["messages"] is not None}


def _result_example(task: ReviewTask, row: dict, rejected: set[int]) -> dict:
    edited = row["messages"] is not None
    messages = [dict(m) for m in (row["messages"] if edited else row["example__messages"])]
    for i in rejected:
        if i < len(messages) and messages[i].get("role") == "assistant":
            messages[i]["weight"] = 0
    tags = list(row["example__tags"] or [])
    tags += [t for t in _item_tags(row) if t not in tags]
    meta = dict(row["example__meta"] or {"kind": "chat"})
    meta["review"] = _review_meta(task, row)
    return {"messages": messages, "tools": row["example__tools"], "source_file": row["example__source_file"],
            "source_line": row["example__source_line"], "category": row["example__category"], "tags": tags,
            "meta": meta}


def _accepted(task: ReviewTask):
    return ReviewItem.objects.filter(task_id=task.pk, final_decision="accept")


def _counts(task: ReviewTask) -> dict:
    items = ReviewItem.objects.filter(task_id=task.pk)
    return {"accepted": items.filter(final_decision="accept").count(),
            "rejected": items.filter(final_decision="reject").count(),
            "edited": items.filter(final_decision="accept", messages__isnull=False).count()}


def _examples(task: ReviewTask, counts: dict, report):
    """The result version's examples: dicts for the changed items, `Unchanged` references for the rest."""
    from apps.datasets.services.versions import Unchanged

    any_turns = ReviewResponse.objects.filter(task_id=task.pk, status=ReviewResponse.Status.DONE).exclude(
        turn_decisions={}).exists()
    accepted = _accepted(task).annotate(messages_text=Cast("messages", TextField()),
                                        turns_text=Cast("turn_decisions", TextField()))
    for page in _value_pages(task, accepted, PAGE, RESULT_FIELDS):
        for row in page:
            row["messages"] = row.pop("messages_text")  # only tested for None here
            turns = row.pop("turns_text")
            row["turn_decisions"] = None if turns is None else json.loads(turns)
        rejected = _rejected_turns(task, page, any_turns)
        changed = [row["pk"] for row in page if row["messages"] is not None or rejected.get(row["pk"])]
        full = {row["pk"]: row for row in _accepted(task).filter(pk__in=changed).values(*ITEM_FIELDS)
                } if changed else {}
        for row in page:
            counts["accepted"] += 1
            counts["edited"] += row["messages"] is not None
            if counts["accepted"] % PROGRESS_EVERY == 0:
                report(counts["accepted"])
            if row["pk"] in full:
                yield _result_example(task, full[row["pk"]], rejected.get(row["pk"], set()))
            else:
                yield Unchanged(row["example_id"], add_tags=tuple(_item_tags(row)),
                                meta={"review": _review_meta(task, row)})


class _Cancelled(Exception):
    pass


def _build(snap: ReviewSnapshot, version: DatasetVersion) -> None:
    """Validate and write the version's examples; finishes its job exactly once (the hooks move the task)."""
    from apps.datasets.services.versions import _finish, _writer, delete_examples, resolve_unchanged
    from apps.datasets.validation.pipeline import validate_examples
    from apps.datasets.validation.tokens import counter_for_base_model

    task, parent, job_id = snap.task, version.parent, version.job_id
    stage = {"stage": "reviewing", "review_task": task.pk}
    try:
        delete_examples(version)  # a re-run starts over
        total = _accepted(task).count()
        counts = {"accepted": 0, "edited": 0}

        def report(n: int) -> None:
            if job_services.job_progress(job_id=job_id, current=n, total=total, unit="examples"):
                DatasetVersion.objects.filter(pk=version.pk).update(progress={**stage, "examples": n, "total": total})
                if job_services.job_should_stop(job_id=job_id):
                    raise _Cancelled()

        counter = counter_for_base_model(version.base_model_id or None)
        on_batch, flush = _writer(version)
        examples = resolve_unchanged(parent, _examples(task, counts, report), counter=counter, target=version.target)
        # rows are committed in batches (no transaction around the whole version); the version stays
        # `importing` until `_finish` marks it ready in one write, through its job
        result = validate_examples(examples, fmt=parent.format, target=version.target, counter=counter,
                                   split_ratio=version.split_ratio, base_model_id=version.base_model_id or None,
                                   on_batch=on_batch)
        flush()
        ReviewSnapshot.objects.filter(pk=snap.pk).update(
            accepted=counts["accepted"], edited=counts["edited"],
            rejected=ReviewItem.objects.filter(task_id=task.pk, final_decision="reject").count())
        _finish(version, result)
    except _Cancelled:
        delete_examples(version)
        job_services.job_finish(job_id=job_id, status="cancelled", result={"message": CANCELLED})
    except Exception as exc:  # never leave half-written examples or a version stuck in `importing`
        log.exception("review task %s: making version %s failed", task.pk, version.pk)
        delete_examples(version)
        job_services.job_finish(job_id=job_id, status="failed", error_code="E_REVIEW_RESULT",
                                error=f"The reviewed version could not be made: {type(exc).__name__}: {exc}",
                                result={"message": f"The reviewed version could not be made: {exc}"})


def result_build(*, snapshot_id: int) -> ReviewSnapshot | None:
    """Build a snapshot's version (the worker's actor, or inline; see the module docstring)."""
    snap = (ReviewSnapshot.objects.select_related("task", "version", "version__parent", "version__dataset")
            .filter(pk=snapshot_id).first())
    if snap is None:
        return None
    version = snap.version
    if version.status != DatasetVersion.Status.IMPORTING or version.job_id is None:
        return snap
    holder = worker_id()
    if job_services.job_claim(job_id=version.job_id, holder=holder) is None:
        return snap
    with job_services.job_heartbeat_thread(job_id=version.job_id, holder=holder):
        _build(snap, version)
    snap.refresh_from_db()
    version.refresh_from_db()
    progress_on_commit(snap.task_id)  # the task's status and counts, for everyone watching
    if snap.final and version.status == DatasetVersion.Status.READY:
        finished_on_commit(snap.task_id, version.pk)
    return snap


def _start(*, user, task: ReviewTask, final: bool, counts: dict) -> tuple[ReviewSnapshot, bool]:
    """The importing version, its snapshot and its job (inside the caller's transaction). Returns
    (snapshot, inline): whether to build it in this request."""
    from apps.datasets.services.versions import _new_version
    from apps.datasets.validation.tokens import counter_loaded

    parent = task.version
    note = f"{'Reviewed' if final else 'Review snapshot'}: task #{task.pk} {task.name}"[:500]
    version = _new_version(user=user, dataset=parent.dataset, parent=parent, status=DatasetVersion.Status.IMPORTING,
                           format=parent.format, source_file=parent.source_file, source_name=parent.source_name,
                           target=parent.target, split_ratio=parent.split_ratio, base_model_id=parent.base_model_id,
                           note=note, progress={"stage": "reviewing", "review_task": task.pk, "examples": 0,
                                                "total": counts["accepted"]})
    snap = ReviewSnapshot.objects.create(task=task, version=version, final=final, created_by=user, **counts)
    inline = counts["accepted"] <= INLINE_MAX and counter_loaded(parent.base_model_id or None)
    version.job = job_services.job_create(kind="review.result", owner=user, target=version, args=[snap.pk],
                                          send=not inline)
    version.save(update_fields=["job"])
    return snap, inline


def _run(snap: ReviewSnapshot, inline: bool) -> ReviewSnapshot:
    if not inline:
        return snap
    result_build(snapshot_id=snap.pk)
    snap = ReviewSnapshot.objects.select_related("version", "version__job").get(pk=snap.pk)
    if snap.version.status == DatasetVersion.Status.FAILED:
        raise Conflict(f"The reviewed version could not be made: {snap.version.error or 'validation failed'}",
                       code="version_failed")
    return snap


def _checked_counts(task: ReviewTask) -> dict:
    counts = _counts(task)
    if counts["accepted"] == 0:
        raise ValidationFailed("No example is accepted yet: there is nothing to make a version of.",
                               code="nothing_accepted")
    return counts


def task_snapshot(*, user, task_id: int) -> ReviewSnapshot:
    """A version from the decisions so far; the task stays open (owner or admin)."""
    task = task_for(user, task_id, need="manage", open_only=True)
    with transaction.atomic():
        snap, inline = _start(user=user, task=task, final=False, counts=_checked_counts(task))
    return _run(snap, inline)


def final_snapshot(task: ReviewTask) -> ReviewSnapshot | None:
    """The final snapshot of a task being finished or finished (its version importing or ready)."""
    return (task.snapshots.filter(final=True).exclude(version__status=DatasetVersion.Status.FAILED)
            .select_related("version", "version__job").order_by("-created_at").first())


def task_finish(*, user, task_id: int) -> ReviewSnapshot:
    """Close the task and make its reviewed version (owner or admin). A task being finished or finished
    answers with the same snapshot every time."""
    task = task_for(user, task_id, need="manage")
    with transaction.atomic():
        task = ReviewTask.objects.select_for_update(no_key=True).select_related("version__dataset").get(pk=task.pk)
        if task.status != ReviewTask.Status.OPEN:
            snap = final_snapshot(task)
            if snap is not None:
                return snap
            # `finishing` without a final version (interrupted before result jobs existed): finish again
        disputed = task.items.filter(state=State.DISPUTED).count()
        if disputed:
            raise Conflict(f"{disputed} item{'s' if disputed != 1 else ''} still wait{'s' if disputed == 1 else ''} "
                           f"for adjudication; decide them first.", code="disputed_items")
        counts = _checked_counts(task)
        task.status, task.finishing_since = ReviewTask.Status.FINISHING, timezone.now()
        task.save(update_fields=["status", "finishing_since"])
        progress_on_commit(task.pk)
        snap, inline = _start(user=user, task=task, final=True, counts=counts)
    return _run(snap, inline)
