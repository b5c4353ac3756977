"""Review fixtures: named users of every role, a ready version of N chat examples, a task maker.

    task = make_task(n=10, overlap=2, assignees=[rev1, rev2])   # owned by `owner` (a member)

`tokenizer_loaded`: the base model's tokenizer loaded in this process, as in a web process that has served a
validation before: a small result version is then built inside the request (apps.review.services.results);
without it (or past INLINE_MAX) the version is built by the worker's actor — `run_result_job(snap)` runs
what the worker runs.
"""
from __future__ import annotations

import pytest

from tests.factories import DatasetVersionFactory, UserFactory


def chat_example(i: int) -> dict:
    """A valid, distinct chat example (no near-duplicates between indexes)."""
    words = ["apples", "rivers", "castles", "engines", "violins", "glaciers", "compilers", "lanterns", "orchards",
             "harbors", "meteors", "bicycles", "volcanoes", "libraries", "telescopes", "gardens"]
    w = words[i % len(words)]
    return {"messages": [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": f"Question {i}: tell me one thing about {w} number {i * 7919 % 1000}."},
        {"role": "assistant", "content": f"Answer {i}: {w} are interesting; fact {i * 104729 % 997} is my pick."},
    ]}


@pytest.fixture
def people(db):
    class P:
        owner = UserFactory(username="owner", role="member")
        admin = UserFactory(username="admin1", role="admin")
        rev1 = UserFactory(username="rev1", role="reviewer")
        rev2 = UserFactory(username="rev2", role="reviewer")
        rev3 = UserFactory(username="rev3", role="reviewer")
        member2 = UserFactory(username="member2", role="member")  # a member with no part in the task
        lead = UserFactory(username="lead", role="member")
    return P


@pytest.fixture
def make_version(people):
    def _make(n=10, owner=None, examples=None):
        return DatasetVersionFactory(owner=owner or people.owner,
                                     examples=examples if examples is not None else [chat_example(i) for i in range(n)])
    return _make


@pytest.fixture
def make_task(people, make_version):
    from apps.review import services

    def _make(n=10, overlap=1, assignees=None, version=None, **kw):
        version = version or make_version(n)
        names = [u.username for u in (assignees if assignees is not None else [people.rev1, people.rev2])]
        kw.setdefault("name", "Review")
        return services.task_create(user=kw.pop("user", people.owner), version_id=version.pk, overlap=overlap,
                                    assignees=names, **kw)
    return _make


@pytest.fixture
def tokenizer_loaded():
    from apps.datasets.validation.tokens import counter_for_base_model

    counter_for_base_model(None)  # small results are built in the request only when it is loaded


def run_result_job(snap):
    """What the `default` worker does with the snapshot's job message (workers.review.review_result); returns
    the snapshot, refreshed, with its version."""
    from apps.review.models import ReviewSnapshot
    from workers.review import review_result

    review_result.fn(snap.pk)
    return ReviewSnapshot.objects.select_related("version", "version__job", "task").get(pk=snap.pk)
