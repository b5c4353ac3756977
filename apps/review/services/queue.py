"""The review queue: the next item for a reviewer under a short lease, skip, release.

Contract:
- An item is offered to at most `task.overlap` reviewers: `ReviewItem.taken` counts live leases and
  decisions, changed only while the item's row is locked; `open` (the partial index the queue reads) is
  `taken < overlap` and not resolved.
- `queue_next` takes the first open item the caller has no answer on, locking it with
  `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL), so reviewers asking at the same moment lock different rows
  and never wait on each other; it looks ahead of the caller's cursor first (an index range scan), then from
  the start (items given back by expired leases), then the caller's skipped items (oldest skip first).
- A caller who already holds a lease gets that item back (its lease renewed): one item in hand at a time.
- Leases last `task.lease_seconds`; an expired lease is reclaimed by a later `queue_next` of the task (each
  process looks at most every RECLAIM_EVERY_S); its slot returns to the queue. Until then its holder may
  still decide on it.
Query budget of `queue_next` on PostgreSQL: ONE statement in the usual case (apps.review.services.queue_sql:
the assignment, the held lease renewed or the locking search — one index range scan — with the lease insert and
the two one-row updates, and the example's content), plus a one-row check for expired leases at most every
RECLAIM_EVERY_S per process. The ORM path below (the wrap-around from the start, waiting on rows being taken
this moment, skipped items; every case on other databases) does the same in a few statements. The `presence`
event after commit carries only what changed (who took or gave back which item): no read."""
from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from apps.review.models import ItemReservation, ReviewAssignment, ReviewItem, ReviewResponse, ReviewTask
from apps.review.realtime import presence_on_commit
from apps.review.services import queue_sql
from apps.review.services.common import task_for

Status = ReviewResponse.Status


def item_is_open(item: ReviewItem, overlap: int) -> bool:
    return item.taken < overlap and item.state != ReviewItem.State.RESOLVED


def _set_taken(item: ReviewItem, overlap: int, delta: int) -> None:
    item.taken = max(0, item.taken + delta)
    item.open = item_is_open(item, overlap)
    ReviewItem.objects.filter(pk=item.pk).update(taken=item.taken, open=item.open)


def reclaim_expired(task: ReviewTask, now=None) -> int:
    """Give back the slots of expired leases in `task` (items locked by someone else are left for later)."""
    now = now or timezone.now()
    expired = list(ReviewResponse.objects.filter(task_id=task.pk, status=Status.LEASED, lease_expires_at__lt=now)
                   .values_list("item_id", flat=True)[:200])
    if not expired:
        return 0
    n = 0
    for item in ReviewItem.objects.select_for_update(skip_locked=True).filter(pk__in=expired).order_by("pk"):
        gone = ReviewResponse.objects.filter(item=item, status=Status.LEASED, lease_expires_at__lt=now).delete()[0]
        if gone:
            _set_taken(item, task.overlap, -gone)
            n += gone
    return n


def release_leases_of(*, task: ReviewTask, user_id: int) -> None:
    """Give back every item `user_id` holds in `task` (an assignee removed)."""
    for resp in ReviewResponse.objects.filter(task_id=task.pk, reviewer_id=user_id, status=Status.LEASED):
        item = ReviewItem.objects.select_for_update().get(pk=resp.item_id)
        resp.delete()
        _set_taken(item, task.overlap, -1)


def _candidates(task: ReviewTask, user):
    mine = ReviewResponse.objects.filter(item=OuterRef("pk"), reviewer_id=user.pk)
    reserved_for_me = ItemReservation.objects.filter(item=OuterRef("pk"), user_id=user.pk)
    return (ReviewItem.objects.filter(task_id=task.pk, open=True)
            .filter(~Exists(mine))
            .filter(Q(reserved=False) | Exists(reserved_for_me)))


def _lock_first(qs):
    return qs.order_by("example_index").select_for_update(skip_locked=True, of=("self",)).first()


def _lease(task: ReviewTask, user, item: ReviewItem, now, response: ReviewResponse | None = None) -> ReviewResponse:
    expires = now + timedelta(seconds=task.lease_seconds)
    if response is None:
        response = ReviewResponse.objects.create(task=task, item=item, reviewer=user, status=Status.LEASED,
                                                 base_revision=item.revision, leased_at=now, lease_expires_at=expires)
    else:
        response.status, response.leased_at, response.lease_expires_at = Status.LEASED, now, expires
        response.base_revision = item.revision
        response.save(update_fields=["status", "leased_at", "lease_expires_at", "base_revision"])
    _set_taken(item, task.overlap, +1)
    return response


def take_item(task: ReviewTask, user, item: ReviewItem, now=None) -> ReviewResponse | None:
    """Lease `item` (locked by the caller) to `user` when a slot is free and it is not kept for others."""
    now = now or timezone.now()
    if not item_is_open(item, task.overlap):
        return None
    if item.reserved and not ItemReservation.objects.filter(item=item, user_id=user.pk).exists():
        return None
    existing = ReviewResponse.objects.filter(item=item, reviewer_id=user.pk).first()
    if existing is not None and existing.status != Status.SKIPPED:
        return None
    return _lease(task, user, item, now, existing)


RECLAIM_EVERY_S = 5.0  # each process looks for expired leases of a task at most this often
_last_reclaim: dict[int, float] = {}


def _maybe_reclaim(task: ReviewTask | int, now, *, force: bool = False) -> int:
    import time

    task_id = task if isinstance(task, int) else task.pk
    t = time.monotonic()
    if not force and t - _last_reclaim.get(task_id, -1e9) < RECLAIM_EVERY_S:
        return 0
    _last_reclaim[task_id] = t
    if ReviewResponse.objects.filter(task_id=task_id, status=Status.LEASED, lease_expires_at__lt=now).exists():
        if isinstance(task, int):
            task = ReviewTask.objects.only("pk", "overlap").get(pk=task_id)
        with transaction.atomic():  # its own short transaction: no lock is kept while searching
            return reclaim_expired(task, now)
    return 0


def _closed(status: str):
    from apps.core.exceptions import Conflict

    return Conflict(f"The review task is {status}: nothing can change in it any more.", code="task_closed")


def _took(user, item: ReviewItem, now) -> dict:
    return {"username": user.username, "item_id": item.pk, "example_index": item.example_index,
            "since": now.isoformat()}


def queue_next(*, user, task_id: int) -> ReviewItem | None:
    """The next item for `user` in the task, leased to them; None when nothing is left for them.
    403 when they are not assigned; 409 when the task is no longer open."""
    if user is None or not getattr(user, "is_authenticated", False):
        task_for(user, task_id, need="review")  # 404, with the one wording
        raise AssertionError("unreachable")
    if connection.vendor == "postgresql":
        now = timezone.now()
        _maybe_reclaim(task_id, now)
        try:
            if connection.in_atomic_block:  # a savepoint: a failed statement leaves the caller's transaction usable
                with transaction.atomic():
                    got = queue_sql.next_in_one_statement(task_id=task_id, user=user, now=now)
            else:  # the statement is its own transaction
                got = queue_sql.next_in_one_statement(task_id=task_id, user=user, now=now)
        except IntegrityError:  # the same reviewer asked twice at once and both picked one item: the ORM path
            got = queue_sql.Next(status=ReviewTask.Status.OPEN, item=None)
        if got is None:  # not assigned
            task_for(user, task_id, need="review")  # 404 or 403, with the one wording
            raise AssertionError("unreachable")
        if got.status != ReviewTask.Status.OPEN:
            raise _closed(got.status)
        if got.item is not None:
            if got.new:
                presence_on_commit(task_id, took=_took(user, got.item, now))
            return got.item
    return _queue_next_orm(user=user, task_id=task_id)


def _queue_next_orm(*, user, task_id: int) -> ReviewItem | None:
    held = (ReviewResponse.objects.filter(task_id=OuterRef("task_id"), reviewer_id=OuterRef("user_id"),
                                          status=Status.LEASED).order_by("-leased_at").values("pk")[:1])
    assignment = (ReviewAssignment.objects.select_related("task").annotate(held_id=Subquery(held))
                  .filter(task_id=task_id, user_id=user.pk).first()
                  if user is not None and getattr(user, "is_authenticated", False) else None)
    if assignment is None:
        task_for(user, task_id, need="review")  # 404 or 403, with the one wording
        raise AssertionError("unreachable")
    task = assignment.task
    if task.status != ReviewTask.Status.OPEN:
        raise _closed(task.status)
    now = timezone.now()
    _maybe_reclaim(task, now)
    item = _next(task, user, now, assignment)
    if item is None and _maybe_reclaim(task, now, force=True):  # only expired leases were left: look again
        item = _next(task, user, now, assignment)
    return item


def _next(task: ReviewTask, user, now, assignment: ReviewAssignment) -> ReviewItem | None:
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return _next_in_transaction(task, user, now, assignment)
        except IntegrityError:  # the same reviewer asked twice at once and both picked one item
            continue
    return None


def _next_in_transaction(task: ReviewTask, user, now, assignment: ReviewAssignment) -> ReviewItem | None:
    held = None
    if getattr(assignment, "held_id", None) is not None:  # the lease the caller holds (read with the assignment)
        held = ReviewResponse.objects.filter(pk=assignment.held_id, status=Status.LEASED).select_related("item").first()
        assignment.held_id = None
    if held is not None:
        held.lease_expires_at = now + timedelta(seconds=task.lease_seconds)
        ReviewResponse.objects.filter(pk=held.pk).update(lease_expires_at=held.lease_expires_at)
        item = held.item
        item.lease = held
        return item
    cursor = assignment.cursor
    base = _candidates(task, user)
    item = _lock_first(base.filter(example_index__gt=cursor)) if cursor >= 0 else None
    if item is None:
        item = _lock_first(base)
    if item is None and base.exists():
        # every item left for the caller is locked by reviewers taking it this very moment: wait for their
        # (short) transactions; PostgreSQL re-checks each row after the wait and passes over full ones
        item = base.order_by("example_index").select_for_update(of=("self",)).first()
    response = None
    if item is not None:
        response = _lease(task, user, item, now)
        ReviewAssignment.objects.filter(pk=assignment.pk).update(cursor=item.example_index)
        assignment.cursor = item.example_index
    else:  # the caller's skipped items, oldest skip first
        skipped = (ReviewItem.objects.filter(task_id=task.pk, open=True, responses__reviewer_id=user.pk,
                                             responses__status=Status.SKIPPED)
                   .filter(Q(reserved=False) | Exists(ItemReservation.objects.filter(item=OuterRef("pk"),
                                                                                     user_id=user.pk)))
                   .order_by("responses__skipped_at", "example_index")
                   .select_for_update(skip_locked=True, of=("self",)).first())
        if skipped is not None:
            existing = ReviewResponse.objects.get(item=skipped, reviewer_id=user.pk)
            response = _lease(task, user, skipped, now, existing)
            item = skipped
    if item is None:
        return None
    item.lease = response
    presence_on_commit(task.pk, took=_took(user, item, now))
    return item


@transaction.atomic
def item_skip(*, user, task_id: int, item_id: int) -> None:
    """Give the item back for now: its slot returns to the queue, and it comes back to the caller after
    everything else. 403 when the caller does not hold it."""
    from apps.core.exceptions import NotFound, PermissionDenied

    task = task_for(user, task_id, need="review", open_only=True)
    item = ReviewItem.objects.select_for_update().filter(pk=item_id, task_id=task.pk).first()
    if item is None:
        raise NotFound("No such item in this task.")
    resp = ReviewResponse.objects.filter(item=item, reviewer_id=user.pk).first()
    if resp is None or resp.status != Status.LEASED:
        raise PermissionDenied("You do not hold this item (take it with `next`).", code="not_holder")
    resp.status, resp.skipped_at, resp.lease_expires_at = Status.SKIPPED, timezone.now(), None
    resp.save(update_fields=["status", "skipped_at", "lease_expires_at"])
    _set_taken(item, task.overlap, -1)
    presence_on_commit(task.pk, left={"username": user.username, "item_id": item.pk})


def lease_extend(*, user, task_id: int, item_id: int) -> ReviewResponse:
    """Keep holding an item (the page calls it while the reviewer works on a long example)."""
    from apps.core.exceptions import PermissionDenied

    task = task_for(user, task_id, need="review", open_only=True)
    resp = ReviewResponse.objects.filter(task_id=task.pk, item_id=item_id, reviewer_id=user.pk,
                                         status=Status.LEASED).first()
    if resp is None:
        raise PermissionDenied("You do not hold this item.", code="not_holder")
    resp.lease_expires_at = timezone.now() + timedelta(seconds=task.lease_seconds)
    ReviewResponse.objects.filter(pk=resp.pk).update(lease_expires_at=resp.lease_expires_at)
    return resp


