"""The queue under concurrency, on PostgreSQL: reviewers in threads, each with its own database connection,
ask for the next item at the same moment. No item is ever held or decided by more than `overlap` reviewers,
no reviewer gets an item twice, and every item is reviewed exactly `overlap` times in the end."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from apps.review import services
from apps.review.models import ReviewItem, ReviewResponse
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks with SKIP LOCKED need PostgreSQL"),
]


def _reviewers(n):
    return [UserFactory(username=f"crowd{i}", role="reviewer") for i in range(n)]


def _run_threads(users, work):
    barrier = threading.Barrier(len(users))
    errors = []

    def run(user):
        try:
            barrier.wait(timeout=30)
            work(user)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_simultaneous_next_never_exceeds_overlap(people, make_task):
    users = _reviewers(8)
    task = make_task(n=3, overlap=2, assignees=users)
    got: dict[str, int | None] = {}

    def work(user):
        item = services.queue_next(user=user, task_id=task.pk)
        got[user.username] = item.pk if item else None

    _run_threads(users, work)
    held = Counter(v for v in got.values() if v is not None)
    assert sum(held.values()) == 6  # 3 items x overlap 2: two reviewers are left without one
    assert all(n == 2 for n in held.values()) and len(held) == 3
    assert sorted(ReviewItem.objects.filter(task=task).values_list("taken", flat=True)) == [2, 2, 2]
    assert ReviewResponse.objects.filter(task=task, status="leased").count() == 6


def test_eight_reviewers_review_everything_exactly_overlap_times(people, make_task):
    users = _reviewers(8)
    task = make_task(n=30, overlap=2, assignees=users)
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()
    peak = {"max": 0}

    def work(user):
        while (item := services.queue_next(user=user, task_id=task.pk)) is not None:
            with lock:
                seen.append((user.username, item.pk))
            # nobody else may hold or have decided it beyond the overlap, at any moment
            n = ReviewResponse.objects.filter(item_id=item.pk).count()
            with lock:
                peak["max"] = max(peak["max"], n)
            services.item_decide(user=user, task_id=task.pk, item_id=item.pk, decision="accept")

    _run_threads(users, work)
    assert len(seen) == len(set(seen)), "a reviewer got the same item twice"
    per_item = Counter(pk for _, pk in seen)
    assert len(per_item) == 30 and set(per_item.values()) == {2}
    assert peak["max"] <= 2
    task.refresh_from_db()
    assert task.done_items == 30 and task.decisions == 60
    assert not ReviewItem.objects.filter(task=task).exclude(state="agreed").exists()
    assert sum(task.assignments.values_list("done", flat=True)) == 60


def test_same_reviewer_asking_twice_at_once_gets_one_item(people, make_task):
    user = UserFactory(username="twice", role="reviewer")
    task = make_task(n=5, overlap=1, assignees=[user])
    got = []

    def work(_):
        item = services.queue_next(user=user, task_id=task.pk)
        got.append(item.pk if item else None)

    _run_threads([user] * 4, work)
    # each call either gets the item the reviewer already holds or a fresh one; never one item twice
    assert ReviewResponse.objects.filter(task=task, reviewer=user).count() == len(set(got) - {None})
    assert all(t <= 1 for t in ReviewItem.objects.filter(task=task).values_list("taken", flat=True))
