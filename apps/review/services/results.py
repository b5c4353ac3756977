"""The result of a review: a new immutable dataset version, and the decisions as JSONL.

- `task_snapshot` (task still open) and `task_finish` make a DatasetVersion through the datasets' derive
  path (apps.datasets.services.versions: validated again, written in batches, marked ready in one write,
  its job "dataset.derive" on the Jobs page): the items whose final decision is accept, in example order,
  with their edited turns applied, rejected assistant turns kept as context only (weight 0), the task's tags
  added to the example's, and `meta["review"] = {"task", "item", "decision", "edited"}`; rejected and
  undecided items are left out. Items accepted as they are (no edit, no rejected turn) go as
  `Unchanged(example)` references: the datasets side reads them from the parent, reuses their stored token
  counts and issue codes and copies their rows in the database; only edited items are built here. Lineage: version.parent is the task's version; a ReviewSnapshot row links
  the version to the task (and so to every decision); the task's `result_version` is the finished one.
- `task_finish` is idempotent: a finished task answers with the same snapshot. It refuses (409) while
  disputed items wait for adjudication or while another finish of the task is running; the task is marked
  `finishing` in one short transaction, so no transaction is held open while the version is written.
- `decisions_export_lines`: one JSON line per item with every reviewer's response (keyset pages of
  EXPORT_PAGE items: memory stays flat)."""
from __future__ import annotations

import json
from datetime import timedelta

from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from apps.core.exceptions import Conflict, ValidationFailed
from apps.datasets.models import DatasetVersion
from apps.review.models import (
    ReviewComment, ReviewFlag, ReviewItem, ReviewResponse, ReviewSnapshot, ReviewTask, TurnEdit,
)
from apps.review.realtime import finished_on_commit, progress_on_commit
from apps.review.services.common import task_for

PAGE = 2000
EXPORT_PAGE = 1000
FINISH_STALE = timedelta(minutes=30)  # a `finishing` task older than this was interrupted: finish again
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


def _make_version(*, user, task: ReviewTask, final: bool) -> ReviewSnapshot:
    from apps.datasets.services.versions import Unchanged, _derive_version

    counts = _counts(task)
    if counts["accepted"] == 0:
        raise ValidationFailed("No example is accepted yet: there is nothing to make a version of.",
                               code="nothing_accepted")

    any_turns = ReviewResponse.objects.filter(task_id=task.pk, status=ReviewResponse.Status.DONE).exclude(
        turn_decisions={}).exists()

    accepted = _accepted(task).annotate(messages_text=Cast("messages", TextField()),
                                        turns_text=Cast("turn_decisions", TextField()))

    def examples():
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
                if row["pk"] in full:
                    yield _result_example(task, full[row["pk"]], rejected.get(row["pk"], set()))
                else:
                    yield Unchanged(row["example_id"], add_tags=tuple(_item_tags(row)),
                                    meta={"review": _review_meta(task, row)})

    note = f"{'Reviewed' if final else 'Review snapshot'}: task #{task.pk} {task.name}"[:500]
    version = _derive_version(user=user, parent=task.version, note=note, examples=examples(),
                              stage={"stage": "reviewing", "review_task": task.pk})
    if version.status != DatasetVersion.Status.READY:
        raise Conflict(f"The reviewed version could not be made: {version.error or 'validation failed'}",
                       code="version_failed")
    return ReviewSnapshot.objects.create(task=task, version=version, final=final, created_by=user, **counts)


def task_snapshot(*, user, task_id: int) -> ReviewSnapshot:
    """A version from the decisions so far; the task stays open (owner or admin)."""
    task = task_for(user, task_id, need="manage", open_only=True)
    snap = _make_version(user=user, task=task, final=False)
    with transaction.atomic():
        progress_on_commit(task.pk)
    return snap


def task_finish(*, user, task_id: int) -> ReviewSnapshot:
    """Close the task and make its reviewed version (owner or admin). A finished task answers with the
    same snapshot every time."""
    task = task_for(user, task_id, need="manage")
    with transaction.atomic():
        task = ReviewTask.objects.select_for_update(no_key=True).get(pk=task.pk)
        if task.status == ReviewTask.Status.FINISHED:
            return task.snapshots.filter(final=True).select_related("version").first()
        if task.status == ReviewTask.Status.FINISHING and task.finishing_since and \
                timezone.now() - task.finishing_since < FINISH_STALE:
            raise Conflict("This task is being finished right now; ask again in a moment.", code="finishing")
        disputed = task.items.filter(state=State.DISPUTED).count()
        if disputed:
            raise Conflict(f"{disputed} item{'s' if disputed != 1 else ''} still wait{'s' if disputed == 1 else ''} "
                           f"for adjudication; decide them first.", code="disputed_items")
        task.status, task.finishing_since = ReviewTask.Status.FINISHING, timezone.now()
        task.save(update_fields=["status", "finishing_since"])
    try:
        snap = _make_version(user=user, task=task, final=True)
    except Exception:
        ReviewTask.objects.filter(pk=task.pk, status=ReviewTask.Status.FINISHING).update(
            status=ReviewTask.Status.OPEN, finishing_since=None)
        raise
    with transaction.atomic():
        ReviewTask.objects.filter(pk=task.pk).update(status=ReviewTask.Status.FINISHED, result_version=snap.version,
                                                     finished_at=timezone.now())
        # leases end with the task
        ReviewResponse.objects.filter(task_id=task.pk, status=ReviewResponse.Status.LEASED).update(lease_expires_at=None)
        progress_on_commit(task.pk)
        finished_on_commit(task.pk, snap.version_id)
    return snap


# -- JSONL export ---------------------------------------------------------------------------------------
EXPORT_FIELDS = ITEM_FIELDS + ("state", "decided_by__username", "example__content_hash")
RESPONSE_FIELDS = ("item_id", "reviewer__username", "status", "decision", "labels", "rating", "comment",
                   "turn_decisions", "edited_turns", "duration_ms", "decided_at")


def _iso(t):
    return t.isoformat() if t else None


def _record(row: dict, responses, comments, flags, edits) -> dict:
    edited = row["messages"] is not None
    return {
        "item_id": row["pk"], "example_index": row["example_index"], "content_hash": row["example__content_hash"],
        "messages": row["messages"] if edited else row["example__messages"],
        "original_messages": row["example__messages"] if edited else None,
        "tools": row["example__tools"], "category": row["example__category"],
        "source_file": row["example__source_file"], "source_line": row["example__source_line"],
        "state": row["state"], "final_decision": row["final_decision"] or None,
        "decided_by": row["decided_by__username"], "turn_decisions": row["turn_decisions"],
        "tags": [t for t in (row["tags"] or "").strip("|").split("|") if t],
        "responses": [{
            "reviewer": r[1], "status": r[2], "decision": r[3] or None, "labels": r[4], "rating": r[5],
            "comment": r[6], "turn_decisions": r[7], "edited_turns": r[8], "duration_ms": r[9],
            "decided_at": _iso(r[10]),
        } for r in responses],
        "edits": [{"turn_index": e[1], "revision": e[2], "author": e[3], "before": e[4], "after": e[5],
                   "created_at": _iso(e[6])} for e in edits],
        "comments": [{"author": c[1], "body": c[2], "created_at": _iso(c[3])} for c in comments],
        "flags": flags,
    }


def decisions_export_lines(*, user, task_id: int):
    """JSONL of every item with every reviewer's response (owner, lead or admin), EXPORT_PAGE items per
    page (five reads a page, no model objects: memory stays flat). A generator: call `export_check` first
    to fail before streaming starts."""
    task = export_check(user=user, task_id=task_id)
    last = -1
    qs = ReviewItem.objects.filter(task_id=task.pk).order_by("example_index")
    while True:
        page = list(qs.filter(example_index__gt=last).values(*EXPORT_FIELDS)[:EXPORT_PAGE])
        if not page:
            return
        last = page[-1]["example_index"]
        ids = [row["pk"] for row in page]
        responses: dict[int, list] = {}
        for r in ReviewResponse.objects.filter(item_id__in=ids).exclude(status=ReviewResponse.Status.LEASED) \
                .order_by("reviewer__username").values_list(*RESPONSE_FIELDS):
            responses.setdefault(r[0], []).append(r)
        comments: dict[int, list] = {}
        for c in ReviewComment.objects.filter(item_id__in=ids).order_by("created_at", "pk").values_list(
                "item_id", "author__username", "body", "created_at"):
            comments.setdefault(c[0], []).append(c)
        edits: dict[int, list] = {}
        for e in TurnEdit.objects.filter(item_id__in=ids).order_by("revision").values_list(
                "item_id", "turn_index", "revision", "author__username", "before", "after", "created_at"):
            edits.setdefault(e[0], []).append(e)
        flags: dict[int, dict[str, list]] = {}
        for item_id, flag, name in ReviewFlag.objects.filter(item_id__in=ids).values_list(
                "item_id", "flag", "user__username").order_by("user__username"):
            flags.setdefault(item_id, {}).setdefault(flag, []).append(name)
        for row in page:
            pk = row["pk"]
            yield json.dumps(_record(row, responses.get(pk, []), comments.get(pk, []), flags.get(pk, {}),
                                     edits.get(pk, [])), ensure_ascii=False) + "\n"


def export_check(*, user, task_id: int) -> ReviewTask:
    from apps.review import permissions as perms

    task = task_for(user, task_id, need="view")
    if not (perms.can_manage(user, task) or perms.can_adjudicate(user, task)):
        raise perms.PermissionDenied("Only the task's owner, its lead or an admin can export the decisions.")
    return task
