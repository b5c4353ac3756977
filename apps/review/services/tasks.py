"""Creating and changing review tasks.

`task_create` selects the examples (the task's filter) and writes one ReviewItem per example with a single
INSERT … SELECT inside the task's transaction (no Python object per row; 100k examples in about a second),
so a task is never seen half made. `task_update` changes the name, instructions, assignees or lead."""
from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Value

from apps.core.exceptions import Conflict, NotFound, ValidationFailed
from apps.datasets.models import DatasetVersion, Example
from apps.review import permissions as perms
from apps.review.filters import filter_examples, parse_filter
from apps.review.models import ReviewAssignment, ReviewItem, ReviewTask
from apps.review.realtime import progress_on_commit
from apps.review.services.common import task_for, users_by_name

MAX_OVERLAP = 20
MAX_LABELS = 50


def _clean_labels(labels) -> list[str]:
    if labels in (None, ""):
        return []
    if not isinstance(labels, (list, tuple)):
        raise ValidationFailed("Labels must be a list of names.", field="labels")
    out = []
    for lab in labels:
        if not isinstance(lab, str) or not lab.strip() or len(lab) > 60 or "\x00" in lab:
            raise ValidationFailed("Each label is a name of 1 to 60 characters.", field="labels")
        out.append(lab.strip())
    out = list(dict.fromkeys(out))
    if len(out) > MAX_LABELS:
        raise ValidationFailed(f"At most {MAX_LABELS} labels.", field="labels")
    return out


def _check_text(name: str, instructions: str) -> list[dict]:
    errors = []
    if not isinstance(name, str) or not name.strip():
        errors.append({"field": "name", "message": "Give the task a name."})
    elif len(name) > 200 or "\x00" in name:
        errors.append({"field": "name", "message": "The name is at most 200 characters (no NUL)."})
    if not isinstance(instructions, str) or len(instructions) > 20000 or "\x00" in instructions:
        errors.append({"field": "instructions", "message": "Instructions are text of at most 20000 characters."})
    return errors


def _insert_items(task: ReviewTask, flt: dict) -> int:
    """One ReviewItem per selected example, by INSERT … SELECT. Returns how many."""
    qs = filter_examples(Example.objects.filter(version_id=task.version_id), flt).order_by()
    cols = ("task_id", "example_id", "example_index", "taken", "open", "done", "state", "final_decision",
            "revision", "tags", "reserved")
    select = qs.annotate(
        _task=Value(task.pk), _zero=Value(0), _true=Value(True), _pending=Value("pending"), _empty=Value(""),
        _false=Value(False),
    ).values_list("_task", "pk", "index", "_zero", "_true", "_zero", "_pending", "_empty", "_zero", "_empty",
                  "_false")
    sql, params = select.query.sql_with_params()
    table = ReviewItem._meta.db_table
    with connection.cursor() as cur:
        cur.execute(f"INSERT INTO {table} ({', '.join(cols)}) {sql}", params)
        return cur.rowcount


@transaction.atomic
def task_create(*, user, version_id: int, name: str, overlap: int = 1, assignees=(), instructions: str = "",
                labels=(), rating: bool = False, lead: str | None = None, filter: dict | None = None,
                lease_seconds: int = 600) -> ReviewTask:
    """A review task on a ready dataset version. Members on their own datasets, admins on any; reviewers
    never (403). Field errors (422) for the name, overlap (1..number of assignees), unknown assignees or
    lead, labels, filter; 409 when the version is not ready; 422 when the filter selects nothing."""
    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None or user is None or not getattr(user, "is_authenticated", False):
        raise NotFound("No such dataset version.", field="dataset_version_id")
    if not perms.can_create_on(user, version.dataset):
        raise perms.PermissionDenied("Only admins, and members on their own datasets, can create review tasks.")
    if version.status != DatasetVersion.Status.READY:
        raise Conflict("Only a ready dataset version can be reviewed.")
    errors = _check_text(name, instructions)
    people = users_by_name(list(assignees or []), field="assignees")
    if not people:
        errors.append({"field": "assignees", "message": "Assign at least one reviewer."})
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= MAX_OVERLAP:
        errors.append({"field": "overlap", "message": f"Overlap is a whole number from 1 to {MAX_OVERLAP}."})
    elif people and overlap > len(people):
        errors.append({"field": "overlap", "message": f"Overlap {overlap} needs at least {overlap} assignees "
                                                       f"(there are {len(people)})."})
    if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int) or not 30 <= lease_seconds <= 86400:
        errors.append({"field": "lease_seconds", "message": "The lease is 30 to 86400 seconds."})
    if errors:
        raise ValidationFailed(errors[0]["message"] if len(errors) == 1 else "Invalid review task.", errors=errors)
    lead_user = users_by_name([lead], field="lead")[0] if lead else None
    flt = parse_filter(filter, items=False)
    task = ReviewTask.objects.create(
        version=version, name=name.strip(), instructions=instructions, owner=user, lead=lead_user, overlap=overlap,
        filter=flt, labels=_clean_labels(labels), rating=bool(rating), lease_seconds=lease_seconds)
    ReviewAssignment.objects.bulk_create([ReviewAssignment(task=task, user=u) for u in people])
    count = _insert_items(task, flt)
    if count == 0:
        raise ValidationFailed("The filter selects no examples of this version.", field="filter")
    task.total_items = count
    task.save(update_fields=["total_items"])
    if connection.vendor == "postgresql" and count >= 1000:
        # fresh statistics now, not when autovacuum gets round to it: with the new rows counted, the queue's
        # search walks the partial index in order instead of sorting every open item
        with connection.cursor() as cur:
            cur.execute(f"ANALYZE {ReviewItem._meta.db_table}")
    return task


@transaction.atomic
def task_update(*, user, task_id: int, name: str | None = None, instructions: str | None = None,
                assignees=None, lead: str | None = None, clear_lead: bool = False) -> ReviewTask:
    """Change what reviewers see or who reviews (owner or admin). Removing an assignee keeps their
    decisions; their held items go back to the queue."""
    task = task_for(user, task_id, need="manage", lock=True)
    errors = _check_text(task.name if name is None else name, task.instructions if instructions is None else instructions)
    if errors:
        raise ValidationFailed(errors[0]["message"], errors=errors)
    if name is not None:
        task.name = name.strip()
    if instructions is not None:
        task.instructions = instructions
    if clear_lead:
        task.lead = None
    elif lead:
        task.lead = users_by_name([lead], field="lead")[0]
    if assignees is not None:
        people = users_by_name(list(assignees), field="assignees")
        if len(people) < task.overlap:
            raise ValidationFailed(f"The task's overlap is {task.overlap}: keep at least that many assignees.",
                                   field="assignees")
        keep = {u.pk for u in people}
        from apps.review.services.queue import release_leases_of

        for a in task.assignments.exclude(user_id__in=keep):
            release_leases_of(task=task, user_id=a.user_id)
        task.assignments.exclude(user_id__in=keep).delete()
        have = set(task.assignments.values_list("user_id", flat=True))
        ReviewAssignment.objects.bulk_create([ReviewAssignment(task=task, user=u) for u in people if u.pk not in have])
    task.save()
    progress_on_commit(task.pk)
    return task
