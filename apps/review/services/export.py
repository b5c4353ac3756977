"""The decisions of a review task as JSONL (`decisions_export_lines`): one JSON line per item with every
reviewer's response, edit, comment and flag, so data moves to and from other tools. Keyset pages of
EXPORT_PAGE items, five reads a page, no model objects: memory stays flat. Owner, lead or admin
(`export_check`, called before streaming starts so a refusal is a proper 403)."""
from __future__ import annotations

import json

from apps.review.models import ReviewComment, ReviewFlag, ReviewItem, ReviewResponse, ReviewTask, TurnEdit
from apps.review.services.common import task_for
from apps.review.services.results import ITEM_FIELDS

EXPORT_PAGE = 1000

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
