"""Bulk actions on a filter: accept, reject, tag or assign every matching item of a task, on the server,
in one transaction, with one audit row (BulkAction).

Each action is one or two set-based UPDATE / INSERT … SELECT statements over the filtered items (no Python
object per row): 100k items in a few seconds. `accept` / `reject` resolve the items (they leave the
queue; reviewers' answers are kept); `tag` adds a tag carried into the reviewed version's examples;
`assign` keeps the items for the named assignees (others no longer get them from the queue)."""
from __future__ import annotations

import re

from django.db import connection, transaction
from django.db.models import Case, F, TextField, Value, When
from django.db.models.functions import Concat

from apps.core.exceptions import ValidationFailed
from apps.review.filters import filter_items, parse_filter
from apps.review.models import BULK_ACTIONS, BulkAction, ItemReservation, ReviewItem, ReviewTask
from apps.review.realtime import progress_on_commit
from apps.review.services.common import task_for, users_by_name
from apps.review.services.decisions import lock_task

_TAG = re.compile(r"^[^|\x00]{1,60}$")


def bulk_apply(*, user, task_id: int, filter: dict | None, action: str, tag: str | None = None,
               assignees=None) -> BulkAction:
    """Apply `action` to every item matching `filter` (see apps.review.filters); owner or admin.
    Returns the audit row (its `count` is how many items matched)."""
    task = task_for(user, task_id, need="manage", open_only=True)
    if action not in BULK_ACTIONS:
        raise ValidationFailed(f"The action is one of {', '.join(BULK_ACTIONS)}.", field="action")
    flt = parse_filter(filter)
    params: dict = {}
    people = []
    if action == "tag":
        tag = (tag or "").strip()
        if not _TAG.match(tag):
            raise ValidationFailed("Give a tag of 1 to 60 characters, without `|`.", field="tag")
        params["tag"] = tag
    if action == "assign":
        people = users_by_name(assignees or [], field="assignees")
        if not people:
            raise ValidationFailed("Name the assignees who should review these items.", field="assignees")
        allowed = set(task.assignments.values_list("user_id", flat=True))
        outside = [u.username for u in people if u.pk not in allowed]
        if outside:
            raise ValidationFailed(f"Not assigned to this task: {', '.join(outside)}.", field="assignees")
        params["assignees"] = [u.username for u in people]
    with transaction.atomic():
        lock_task(task)  # task row before items, like decisions: one bulk action at a time, no deadlock
        matched = filter_items(ReviewItem.objects.filter(task_id=task.pk), flt)
        ids = matched.values("pk")
        # each action is one UPDATE over every matching item; its row count is the audit's count (the filter,
        # a text search over the messages perhaps, is evaluated once)
        if action in ("accept", "reject"):
            count = ReviewItem.objects.filter(pk__in=ids).update(
                state=ReviewItem.State.RESOLVED, final_decision=action, decided_by=user, open=False)
        elif action == "tag":
            count = ReviewItem.objects.filter(pk__in=ids).update(tags=Case(
                When(tags__contains=f"|{tag}|", then=F("tags")),
                When(tags="", then=Value(f"|{tag}|")),
                default=Concat(F("tags"), Value(f"{tag}|"), output_field=TextField()),
                output_field=TextField()))
        else:
            ItemReservation.objects.filter(item__in=ids).delete()
            count = ReviewItem.objects.filter(pk__in=ids).update(reserved=True)
            table = ItemReservation._meta.db_table
            for person in people:
                sql, sql_params = matched.order_by().annotate(_u=Value(person.pk)).values_list("pk", "_u").query.sql_with_params()
                with connection.cursor() as cur:
                    cur.execute(f"INSERT INTO {table} (item_id, user_id) {sql}", sql_params)
        done = ReviewItem.objects.filter(task_id=task.pk).exclude(state=ReviewItem.State.PENDING).count()
        ReviewTask.objects.filter(pk=task.pk).update(done_items=done)
        audit = BulkAction.objects.create(task=task, actor=user, action=action, filter=flt, params=params, count=count)
        progress_on_commit(task.pk)
    return audit
