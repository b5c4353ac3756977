"""Finish and snapshot (a new immutable dataset version with lineage), bulk actions with their audit row,
and the JSONL export of every reviewer's response."""
from __future__ import annotations

import json

import pytest

from apps.core.exceptions import Conflict, ValidationFailed
from apps.datasets import selectors as dataset_selectors
from apps.datasets.models import DatasetVersion
from apps.review import services
from apps.review.models import BulkAction, ReviewItem, ReviewSnapshot

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tokenizer_loaded")]  # results built inline


def _review_all(task, reviewer, decide):
    """`reviewer` takes every item left for them; decide(item) -> (decision, messages|None)."""
    while (item := services.queue_next(user=reviewer, task_id=task.pk)) is not None:
        decision, messages = decide(item)
        services.item_decide(user=reviewer, task_id=task.pk, item_id=item.pk, decision=decision, messages=messages)


def test_finish_makes_a_trainable_version_with_lineage_and_is_idempotent(people, make_task):
    task = make_task(n=6, overlap=1, assignees=[people.rev1])

    def decide(item):
        if item.example_index in (1, 4):
            return "reject", None
        if item.example_index == 2:
            msgs = [dict(m) for m in item.example.messages]
            msgs[2]["content"] = "Answer 2: an edited, better answer about castles."
            return "accept", msgs
        return "accept", None

    _review_all(task, people.rev1, decide)
    # rev1 rejects the assistant turn of example 3: kept as context only
    item3 = task.items.get(example_index=3)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item3.pk, decision="accept",
                         turn_decisions={"2": "reject"})
    snap = services.task_finish(user=people.owner, task_id=task.pk)
    assert (snap.accepted, snap.rejected, snap.edited, snap.final) == (4, 2, 1, True)
    v = snap.version
    assert v.status == "ready" and v.parent_id == task.version_id and v.dataset_id == task.version.dataset_id
    assert v.example_count == 4 and not dataset_selectors.version_has_errors(v)
    task.refresh_from_db()
    assert task.status == "finished" and task.result_version_id == v.pk
    examples = list(v.examples.order_by("index"))
    assert [e.meta["review"]["item"] for e in examples] == list(
        task.items.filter(final_decision="accept").order_by("example_index").values_list("pk", flat=True))
    assert all(e.meta["review"]["task"] == task.pk for e in examples)
    edited = [e for e in examples if e.meta["review"]["edited"]]
    assert len(edited) == 1 and edited[0].messages[2]["content"] == "Answer 2: an edited, better answer about castles."
    assert [m.get("weight") for m in examples[2].messages] == [None, None, 0]  # example 3's rejected turn
    # training reads it: every accepted example, the edit applied
    train = list(dataset_selectors.version_training_examples(version=v))
    assert len(train) == 4 and train[1]["messages"][2]["content"].startswith("Answer 2: an edited")
    # finishing twice returns the same version; nothing new is made
    again = services.task_finish(user=people.owner, task_id=task.pk)
    assert again.pk == snap.pk and again.version_id == v.pk
    assert DatasetVersion.objects.filter(parent=task.version).count() == 1
    # the parent is unchanged (immutable)
    assert task.version.examples.count() == 6
    # a finished task takes no more decisions
    with pytest.raises(Conflict):
        services.queue_next(user=people.rev1, task_id=task.pk)


def test_finish_waits_for_adjudication_and_snapshot_does_not(people, make_task):
    task = make_task(n=2, overlap=2)
    for reviewer, decision in ((people.rev1, "accept"), (people.rev2, "reject")):
        _review_all(task, reviewer, lambda item, d=decision: (d if item.example_index == 0 else "accept", None))
    with pytest.raises(Conflict) as e:
        services.task_finish(user=people.owner, task_id=task.pk)
    assert e.value.code == "disputed_items" and "1 item" in e.value.message
    snap = services.task_snapshot(user=people.owner, task_id=task.pk)
    assert (snap.accepted, snap.final) == (1, False) and snap.version.example_count == 1
    task.refresh_from_db()
    assert task.status == "open"
    disputed = task.items.get(state="disputed")
    services.item_adjudicate(user=people.admin, task_id=task.pk, item_id=disputed.pk, decision="accept")
    final = services.task_finish(user=people.admin, task_id=task.pk)
    assert final.accepted == 2 and final.version.example_count == 2
    assert ReviewSnapshot.objects.filter(task=task).count() == 2


def test_finish_with_nothing_accepted_is_refused(people, make_task):
    task = make_task(n=1, overlap=1)
    with pytest.raises(ValidationFailed):
        services.task_finish(user=people.owner, task_id=task.pk)
    task.refresh_from_db()
    assert task.status == "open"


def test_bulk_actions_in_one_transaction_with_an_audit_row(people, make_version, make_task):
    from tests.review.conftest import chat_example

    rows = [chat_example(i) for i in range(8)]
    v = make_version(examples=rows)
    from apps.datasets.models import Example
    Example.objects.filter(version=v, index__in=[0, 1, 2]).update(category="math", issues="|short_answer|")
    task = make_task(version=v, overlap=1)
    audit = services.bulk_apply(user=people.owner, task_id=task.pk, filter={"category": "math"}, action="reject")
    assert audit.count == 3 and BulkAction.objects.filter(pk=audit.pk, action="reject", actor=people.owner).exists()
    assert set(task.items.filter(final_decision="reject").values_list("example_index", flat=True)) == {0, 1, 2}
    assert task.items.filter(state="resolved", open=False).count() == 3
    task.refresh_from_db()
    assert task.done_items == 3
    # the queue no longer offers them
    assert services.queue_next(user=people.rev1, task_id=task.pk).example_index == 3
    services.bulk_apply(user=people.owner, task_id=task.pk, filter={"q": "Question 5"}, action="tag", tag="hard")
    services.bulk_apply(user=people.owner, task_id=task.pk, filter={"q": "Question 5"}, action="tag", tag="hard")
    assert task.items.get(example_index=5).tags == "|hard|"
    services.bulk_apply(user=people.owner, task_id=task.pk, filter={"tag": "hard"}, action="tag", tag="v2")
    assert task.items.get(example_index=5).tags == "|hard|v2|"
    a = services.bulk_apply(user=people.owner, task_id=task.pk, filter={"min_turns": 3, "state": "pending"},
                            action="assign", assignees=["rev2"])
    assert a.count == 5  # all pending items (3..7) have three turns
    # rev1 holds item 3; the rest are kept for rev2 now
    assert services.queue_next(user=people.rev1, task_id=task.pk).example_index == 3
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=task.items.get(example_index=3).pk,
                         decision="accept")
    assert services.queue_next(user=people.rev1, task_id=task.pk) is None
    assert services.queue_next(user=people.rev2, task_id=task.pk).example_index == 4
    with pytest.raises(ValidationFailed):
        services.bulk_apply(user=people.owner, task_id=task.pk, filter={"state": "nope"}, action="accept")
    with pytest.raises(ValidationFailed):
        services.bulk_apply(user=people.owner, task_id=task.pk, filter={}, action="assign", assignees=["member2"])
    services.bulk_apply(user=people.owner, task_id=task.pk, filter={"code": "short_answer"}, action="accept")
    assert task.items.filter(final_decision="accept", example_index__in=[0, 1, 2]).count() == 3
    assert BulkAction.objects.filter(task=task).count() == 6
    snap = services.task_finish(user=people.owner, task_id=task.pk)
    tags = {e.meta["review"]["item"]: e.tags for e in snap.version.examples.all()}
    assert tags[task.items.get(example_index=3).pk] == []
    assert snap.accepted == 4


def test_decisions_export_jsonl(people, make_task):
    task = make_task(n=2, overlap=2, labels=["tone"], rating=True)
    for reviewer in (people.rev1, people.rev2):
        while (item := services.queue_next(user=reviewer, task_id=task.pk)) is not None:
            services.item_decide(user=reviewer, task_id=task.pk, item_id=item.pk,
                                 decision="accept" if reviewer == people.rev1 else "reject",
                                 labels=["tone"], rating=3 if reviewer == people.rev1 else 2, comment=reviewer.username)
    item = task.items.get(example_index=0)
    services.comment_add(user=people.rev1, task_id=task.pk, item_id=item.pk, body="hello")
    services.flag_set(user=people.rev2, task_id=task.pk, item_id=item.pk, flag="pii")
    lines = list(services.decisions_export_lines(user=people.owner, task_id=task.pk))
    assert len(lines) == 2 and all(line.endswith("\n") for line in lines)
    records = [json.loads(line) for line in lines]
    first = records[0]
    assert first["example_index"] == 0 and first["state"] == "disputed" and first["final_decision"] is None
    assert [(r["reviewer"], r["decision"], r["rating"], r["labels"], r["comment"]) for r in first["responses"]] == [
        ("rev1", "accept", 3, ["tone"], "rev1"), ("rev2", "reject", 2, ["tone"], "rev2")]
    assert first["comments"][0]["body"] == "hello" and first["flags"] == {"pii": ["rev2"]}
    assert first["messages"] == item.example.messages
    from apps.core.exceptions import PermissionDenied
    with pytest.raises(PermissionDenied):
        services.export_check(user=people.rev1, task_id=task.pk)


def test_items_left_out_are_counted(people, make_task):
    task = make_task(n=3, overlap=1, assignees=[people.rev1])
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    snap = services.task_finish(user=people.owner, task_id=task.pk)
    assert (snap.accepted, snap.rejected) == (1, 0)
    assert ReviewItem.objects.filter(task=task, final_decision="").count() == 2
