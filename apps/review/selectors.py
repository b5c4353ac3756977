"""Review reads shared by /api, the pages and the websocket consumer; scoped to the user
(apps.review.permissions: 404 for no such task, 403 for a task the user is not part of)."""
from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from apps.core.exceptions import NotFound, PermissionDenied
from apps.review import agreement as _agreement
from apps.review.filters import filter_examples, parse_filter
from apps.review.models import (
    FLAGS, ReviewComment, ReviewFlag, ReviewItem, ReviewResponse, ReviewSnapshot, ReviewTask, TurnEdit,
)
from apps.review.permissions import can_adjudicate, can_manage, can_review, can_view, is_admin  # noqa: F401
from apps.review.services.common import task_for
from apps.review.services.edits import current_messages, turn_diff

ACTIVE_LIMIT = 50


def task_list(*, user) -> QuerySet[ReviewTask]:
    """Tasks the user may see: every task for an admin; else those they own, lead or are assigned to."""
    if user is None or not getattr(user, "is_authenticated", False):
        return ReviewTask.objects.none()
    qs = ReviewTask.objects.select_related("version", "version__dataset", "owner", "lead")
    if not is_admin(user):
        qs = qs.filter(Q(owner=user) | Q(lead=user) | Q(assignments__user=user)).distinct()
    return qs.order_by("-created_at")


def task_get(*, user, task_id: int) -> ReviewTask:
    return task_for(user, task_id, need="view")


def task_progress(*, task: ReviewTask) -> dict:
    """{total, done, decisions, required, disputed, resolved, per_reviewer: {username: done},
    active: [{username, item_id, example_index, since}]} — a handful of indexed reads."""
    per = dict(task.assignments.select_related("user").order_by("user__username")
               .values_list("user__username", "done"))
    counts = dict(task.items.filter(state__in=[ReviewItem.State.DISPUTED, ReviewItem.State.RESOLVED])
                  .order_by().values("state").annotate(n=Count("pk")).values_list("state", "n"))
    active = task_active(task_id=task.pk)
    return {"total": task.total_items, "done": task.done_items, "decisions": task.decisions,
            "required": task.total_items * task.overlap, "disputed": counts.get("disputed", 0),
            "resolved": counts.get("resolved", 0), "per_reviewer": per, "active": active}


def task_active(*, task_id: int) -> list[dict]:
    """Who holds which item right now: [{username, item_id, example_index, since}] (one indexed read)."""
    return [{"username": u, "item_id": i, "example_index": x, "since": s.isoformat() if s else None}
            for u, i, x, s in ReviewResponse.objects.filter(task_id=task_id, status=ReviewResponse.Status.LEASED)
            .order_by("reviewer__username", "leased_at")
            .values_list("reviewer__username", "item_id", "item__example_index", "leased_at")[:ACTIVE_LIMIT]]


def _response_dict(r: ReviewResponse) -> dict:
    return {"reviewer": r.reviewer.username, "status": r.status, "decision": r.decision or None,
            "labels": r.labels, "rating": r.rating, "comment": r.comment, "turn_decisions": r.turn_decisions,
            "edited_turns": r.edited_turns, "duration_ms": r.duration_ms, "base_revision": r.base_revision,
            "lease_expires_at": r.lease_expires_at.isoformat() if r.lease_expires_at else None,
            "decided_at": r.decided_at.isoformat() if r.decided_at else None}


def _item(task: ReviewTask, item_id: int) -> ReviewItem:
    item = ReviewItem.objects.select_related("example", "decided_by").filter(pk=item_id, task_id=task.pk).first()
    if item is None:
        raise NotFound("No such item in this task.")
    return item


def example_payload(item: ReviewItem) -> dict:
    ex = item.example
    return {"messages": current_messages(item), "tools": ex.tools, "category": ex.category,
            "source_file": ex.source_file, "source_line": ex.source_line, "tags": list(ex.tags or []),
            "split": ex.split, "issues": [c for c in (ex.issues or "").split("|") if c],
            "meta": ex.meta or {}}


def item_view(*, user, task_id: int, item_id: int, item: ReviewItem | None = None) -> dict:
    """Everything the review screen shows for one item (see /work/notes/review-api.md)."""
    task = task_for(user, task_id, need="view")
    item = item if item is not None and item.task_id == task.pk else _item(task, item_id)
    if not hasattr(item, "example") or item.example is None:
        item = _item(task, item.pk)
    original = item.example.messages
    current = current_messages(item)
    edits = list(TurnEdit.objects.filter(item=item).select_related("author").order_by("revision"))
    last_by_turn = {}
    for e in edits:
        last_by_turn[e.turn_index] = e
    turns = []
    for i, m in enumerate(current):
        before = original[i] if i < len(original) else None
        changed = before != m
        e = last_by_turn.get(i)
        turns.append({"index": i, "role": m.get("role"), "changed": changed,
                      "diff": turn_diff(before, m) if changed else [],
                      "edited_by": e.author.username if changed and e and e.author else None})
    mine = ReviewResponse.objects.filter(item=item, reviewer_id=user.pk).select_related("reviewer").first()
    flags_all: dict[str, list[str]] = {}
    my_flags = []
    for flag, name, uid in ReviewFlag.objects.filter(item=item).values_list("flag", "user__username", "user_id") \
            .order_by("user__username"):
        flags_all.setdefault(flag, []).append(name)
        if uid == user.pk:
            my_flags.append(flag)
    comments = [{"id": c.pk, "author": c.author.username if c.author else None, "body": c.body,
                 "created_at": c.created_at.isoformat()}
                for c in ReviewComment.objects.filter(item=item).select_related("author")]
    return {
        "item_id": item.pk, "task_id": task.pk, "example_index": item.example_index, "state": item.state,
        "final_decision": item.final_decision or None, "revision": item.revision,
        "tags": [t for t in item.tags.strip("|").split("|") if t],
        "example": {**example_payload(item), "original_messages": original},
        "turns": turns,
        "mine": _response_dict(mine) if mine else None,
        "held": bool(mine and mine.status == ReviewResponse.Status.LEASED),
        "lease_expires_at": mine.lease_expires_at.isoformat() if mine and mine.lease_expires_at else None,
        "comments": comments,
        "flags": {"mine": sorted(my_flags), "all": flags_all},
        "can_adjudicate": can_adjudicate(user, task),
    }


def item_responses(*, user, task_id: int, item_id: int) -> list[dict]:
    """Every reviewer's answer on the item, side by side (adjudicators, the owner and admins; a reviewer
    sees them once they have decided the item themselves)."""
    task = task_for(user, task_id, need="view")
    item = _item(task, item_id)
    if not (can_manage(user, task) or can_adjudicate(user, task)):
        if not ReviewResponse.objects.filter(item=item, reviewer_id=user.pk,
                                             status=ReviewResponse.Status.DONE).exists():
            raise PermissionDenied("Decide the item yourself first.")
    out = []
    for r in ReviewResponse.objects.filter(item=item).select_related("reviewer").order_by("reviewer__username"):
        d = _response_dict(r)
        d["edits"] = [{"turn_index": e.turn_index, "revision": e.revision, "after": e.after,
                       "diff": turn_diff(e.before, e.after)} for e in r.edits.order_by("revision")]
        out.append(d)
    return out


def adjudication_list(*, user, task_id: int, limit: int | None = None) -> QuerySet[ReviewItem]:
    """Disputed items, in example order (admins and the task's lead)."""
    task = task_for(user, task_id, need="adjudicate")
    qs = task.items.filter(state=ReviewItem.State.DISPUTED).select_related("example").order_by("example_index")
    return qs[:limit] if limit else qs


def my_items(*, user, task_id: int, limit: int = 50) -> list[dict]:
    """The caller's answered items in the task, newest first (the screen's "previous")."""
    task = task_for(user, task_id, need="view")
    rows = (ReviewResponse.objects.filter(task_id=task.pk, reviewer_id=user.pk, status=ReviewResponse.Status.DONE)
            .order_by("-decided_at").values_list("item_id", "item__example_index", "decision", "decided_at")[:limit])
    return [{"item_id": i, "example_index": x, "decision": d, "decided_at": t.isoformat() if t else None}
            for i, x, d, t in rows]


def reviewer_stats(*, task: ReviewTask) -> list[dict]:
    return _agreement.reviewer_stats(task)


def agreement(*, task: ReviewTask) -> dict:
    return _agreement.task_agreement(task)


def snapshots(*, task: ReviewTask) -> QuerySet[ReviewSnapshot]:
    """The versions made from the task, with their jobs (a version being built shows its job's progress)."""
    return task.snapshots.select_related("version", "version__dataset", "version__job", "created_by")


def bulk_actions(*, task: ReviewTask):
    return task.bulk_actions.select_related("actor")


def task_example_count(*, user, version_id: int, filter: dict | None) -> int:
    """How many examples of a version a task filter selects (the create form's preview)."""
    from apps.datasets.models import Example

    if user is None or not getattr(user, "is_authenticated", False):
        raise NotFound("No such dataset version.")
    flt = parse_filter(filter, items=False)
    return filter_examples(Example.objects.filter(version_id=version_id), flt).count()


def item_count(*, user, task_id: int, filter: dict | None) -> int:
    """How many items of a task a bulk filter selects (the bulk form's preview)."""
    from apps.review.filters import filter_items

    task = task_for(user, task_id, need="view")
    return filter_items(task.items.all(), parse_filter(filter)).count()


FLAG_CHOICES = FLAGS
