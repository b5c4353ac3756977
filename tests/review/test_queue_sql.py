"""`next` in one PostgreSQL statement (apps.review.services.queue_sql) against the ORM path it replaces in the
usual case: the same items in the same order, the same rows written (leases, counters, cursors), the held
lease renewed rather than a second one taken, items kept for others (bulk `assign`) left alone, a closed task
refused, the item handed out with its example, and the cases the statement leaves to the ORM path (the
wrap-around from the start, skipped items) still served."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.core.exceptions import Conflict, NotFound, PermissionDenied
from apps.review import services
from apps.review.models import ReviewAssignment, ReviewItem, ReviewResponse
from apps.review.services import queue as q
from apps.review.services import queue_sql

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's"),
]

RESPONSE_FIELDS = ("status", "decision", "labels", "rating", "comment", "turn_decisions", "edited_turns",
                   "base_revision")
WHEN_FIELDS = ("leased_at", "skipped_at", "decided_at", "duration_ms")  # compared as set or not


def _state(task):
    """Everything `next` writes, keyed by example index and username (comparable across two tasks)."""
    items = list(ReviewItem.objects.filter(task=task).order_by("example_index").values_list(
        "example_index", "taken", "open", "done", "state"))
    responses = sorted(
        (r.item.example_index, r.reviewer.username, *(getattr(r, f) for f in RESPONSE_FIELDS),
         *(getattr(r, f) is not None for f in WHEN_FIELDS), round((r.lease_expires_at - r.leased_at).total_seconds()) if r.lease_expires_at else None)
        for r in ReviewResponse.objects.filter(task=task).select_related("item", "reviewer"))
    cursors = dict(ReviewAssignment.objects.filter(task=task).values_list("user__username", "cursor"))
    return items, responses, cursors


def _play(task, people, take):
    """A fixed script of takes, decisions and skips; returns the example index each `next` gave."""
    got = []
    for user, then in ((people.rev1, "accept"), (people.rev2, "skip"), (people.rev1, None), (people.rev3, "reject"),
                       (people.rev2, "accept"), (people.rev3, None), (people.rev1, "accept"), (people.rev2, None)):
        item = take(user, task)
        got.append(item.example_index if item else None)
        if item is not None and then == "skip":
            services.item_skip(user=user, task_id=task.pk, item_id=item.pk)
        elif item is not None and then:
            services.item_decide(user=user, task_id=task.pk, item_id=item.pk, decision=then)
    while (item := take(people.rev1, task)) is not None:  # rev1 takes everything left for them
        got.append(item.example_index)
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    return got


def test_one_statement_writes_what_the_orm_path_writes(people, make_version, make_task):
    version = make_version(6)
    kw = dict(overlap=2, assignees=[people.rev1, people.rev2, people.rev3], version=version)
    fast, orm = make_task(**kw), make_task(**kw)
    services.bulk_apply(user=people.owner, task_id=fast.pk, filter={"q": "Question 4"}, action="assign",
                        assignees=["rev3"])
    services.bulk_apply(user=people.owner, task_id=orm.pk, filter={"q": "Question 4"}, action="assign",
                        assignees=["rev3"])
    got_fast = _play(fast, people, lambda user, task: services.queue_next(user=user, task_id=task.pk))
    got_orm = _play(orm, people, lambda user, task: q._queue_next_orm(user=user, task_id=task.pk))
    # rev2 skips 0; rev1 renews its held lease on 1; then rev1 gets 3 and 5, never 4 (kept for rev3)
    assert got_fast == got_orm == [0, 0, 1, 0, 1, 2, 1, 2, 3, 5]
    assert _state(fast) == _state(orm)
    assert ReviewItem.objects.get(task=fast, example_index=4).reserved  # kept for rev3: nobody else got it


def test_held_lease_is_renewed_not_doubled(people, make_task):
    task = make_task(n=3, overlap=1, lease_seconds=60)
    first = services.queue_next(user=people.rev1, task_id=task.pk)
    ReviewResponse.objects.filter(item=first).update(lease_expires_at=timezone.now() + timedelta(seconds=5))
    again = services.queue_next(user=people.rev1, task_id=task.pk)
    assert again.pk == first.pk and again.lease.lease_expires_at > timezone.now() + timedelta(seconds=50)
    assert ReviewResponse.objects.filter(task=task, reviewer=people.rev1).count() == 1
    assert ReviewItem.objects.get(pk=first.pk).taken == 1


def test_the_item_comes_with_its_example_and_lease(people, make_task, django_assert_num_queries):
    task = make_task(n=2, overlap=1)
    services.queue_next(user=people.rev2, task_id=task.pk)  # the expired-lease check of this task is done
    with django_assert_num_queries(1):
        got = queue_sql.next_in_one_statement(task_id=task.pk, user=people.rev1, now=timezone.now())
        item = got.item
        payload = (item.example.messages, item.example.category, item.example.split, item.example.tags,
                   item.example.meta, item.lease.lease_expires_at, item.revision, item.taken, item.open)
    fresh = ReviewItem.objects.select_related("example").get(pk=item.pk)
    lease = ReviewResponse.objects.get(item=fresh, reviewer=people.rev1)
    assert payload == (fresh.example.messages, fresh.example.category, fresh.example.split, fresh.example.tags,
                       fresh.example.meta, lease.lease_expires_at, fresh.revision, fresh.taken, fresh.open)
    assert got.new and got.status == "open" and lease.status == "leased" and item.lease.pk == lease.pk


def test_refusals_are_those_of_the_orm_path(people, make_task):
    task = make_task(n=1, overlap=1)
    assert queue_sql.next_in_one_statement(task_id=task.pk, user=people.rev3, now=timezone.now()) is None
    with pytest.raises(PermissionDenied):
        services.queue_next(user=people.rev3, task_id=task.pk)  # not assigned
    with pytest.raises(NotFound):
        services.queue_next(user=people.rev1, task_id=987654)
    type(task).objects.filter(pk=task.pk).update(status="finishing")
    got = queue_sql.next_in_one_statement(task_id=task.pk, user=people.rev1, now=timezone.now())
    assert got.status == "finishing" and got.item is None
    with pytest.raises(Conflict) as e:
        services.queue_next(user=people.rev1, task_id=task.pk)
    assert e.value.code == "task_closed" and not ReviewResponse.objects.filter(task=task).exists()


def test_past_the_cursor_the_orm_path_takes_over(people, make_task):
    """The statement only looks ahead of the caller's cursor: an item given back behind it (an expired lease
    reclaimed, a skip) is found by the ORM path, from the start."""
    task = make_task(n=3, overlap=1, assignees=[people.rev1, people.rev2])
    a = services.queue_next(user=people.rev1, task_id=task.pk)
    b = services.queue_next(user=people.rev2, task_id=task.pk)
    services.item_decide(user=people.rev2, task_id=task.pk, item_id=b.pk, decision="accept")
    c = services.queue_next(user=people.rev2, task_id=task.pk)
    assert (a.example_index, b.example_index, c.example_index) == (0, 1, 2)
    services.item_decide(user=people.rev2, task_id=task.pk, item_id=c.pk, decision="accept")
    services.item_skip(user=people.rev1, task_id=task.pk, item_id=a.pk)  # item 0 goes back, behind rev2's cursor
    assert queue_sql.next_in_one_statement(task_id=task.pk, user=people.rev2, now=timezone.now()).item is None
    assert services.queue_next(user=people.rev2, task_id=task.pk).pk == a.pk


def test_a_unique_clash_falls_back_to_the_orm_path(people, make_task, monkeypatch):
    """The same reviewer asking twice at the very same moment can make both statements pick one item; the
    second's lease insert then breaks the (item, reviewer) unique constraint: that `next` is served by the ORM
    path (which retries), and a caller's transaction stays usable (the statement ran in a savepoint)."""
    task = make_task(n=2, overlap=1)

    def clash(**kw):  # a real unique violation from PostgreSQL, as the race produces
        with connection.cursor() as cur:
            cur.execute('INSERT INTO review_reviewassignment (task_id, user_id, done, "cursor") VALUES (%s, %s, 0, -1)',
                        [task.pk, people.rev1.pk])

    monkeypatch.setattr(queue_sql, "next_in_one_statement", clash)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    assert item is not None and item.example_index == 0
    assert ReviewResponse.objects.filter(task=task, reviewer=people.rev1, status="leased").count() == 1
