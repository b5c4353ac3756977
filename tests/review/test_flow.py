"""The review flow through the services: queue, decisions, skip, undo, turn edits and conflicts, comments,
flags, adjudication, progress counters."""
from __future__ import annotations

import pytest

from apps.core.exceptions import Conflict, PermissionDenied, ValidationFailed
from apps.review import selectors, services
from apps.review.models import ReviewItem, ReviewResponse, TurnEdit

pytestmark = pytest.mark.django_db


def test_create_task_makes_one_item_per_selected_example(people, make_version):
    v = make_version(12)
    task = services.task_create(user=people.owner, version_id=v.pk, name="  Check answers ", overlap=2,
                                assignees=["rev1", "rev2"], instructions="Be strict.", labels=["tone", "facts"],
                                rating=True, lead="lead", filter={"q": "Question 1"})
    # "Question 1" matches 1, 10, 11
    assert task.total_items == 3
    assert sorted(task.items.values_list("example_index", flat=True)) == [1, 10, 11]
    assert task.name == "Check answers" and task.lead == people.lead
    assert sorted(task.assignees.values_list("username", flat=True)) == ["rev1", "rev2"]


def test_create_task_field_errors(people, make_version):
    v = make_version(3)
    with pytest.raises(ValidationFailed) as e:
        services.task_create(user=people.owner, version_id=v.pk, name="", overlap=3, assignees=["rev1", "rev2"])
    fields = {err["field"] for err in e.value.errors}
    assert fields == {"name", "overlap"}
    with pytest.raises(ValidationFailed) as e:
        services.task_create(user=people.owner, version_id=v.pk, name="x", assignees=["rev1", "ghost"])
    assert e.value.errors[0]["field"] == "assignees" and "ghost" in e.value.message
    with pytest.raises(ValidationFailed) as e:
        services.task_create(user=people.owner, version_id=v.pk, name="x", assignees=["rev1"], filter={"colour": "red"})
    assert e.value.errors[0]["field"] == "filter.colour"
    with pytest.raises(ValidationFailed) as e:
        services.task_create(user=people.owner, version_id=v.pk, name="x", assignees=["rev1"], filter={"q": "nothing like it"})
    assert e.value.errors[0]["field"] == "filter"
    from apps.review.models import ReviewTask
    assert ReviewTask.objects.count() == 0  # nothing half made


def test_next_decide_and_progress(people, make_task):
    task = make_task(n=3, overlap=2)
    a = services.queue_next(user=people.rev1, task_id=task.pk)
    assert a.example_index == 0
    # asking again while holding it gives the same item back
    assert services.queue_next(user=people.rev1, task_id=task.pk).pk == a.pk
    b = services.queue_next(user=people.rev2, task_id=task.pk)
    assert b.pk == a.pk  # overlap 2: the second reviewer gets the same item
    prog = selectors.task_progress(task=task)
    assert {x["username"] for x in prog["active"]} == {"rev1", "rev2"}
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=a.pk, decision="accept", comment="fine")
    services.item_decide(user=people.rev2, task_id=task.pk, item_id=a.pk, decision="accept")
    item = ReviewItem.objects.get(pk=a.pk)
    assert (item.state, item.final_decision, item.done, item.taken, item.open) == ("agreed", "accept", 2, 2, False)
    task.refresh_from_db()
    prog = selectors.task_progress(task=task)
    assert prog["total"] == 3 and prog["done"] == 1 and prog["decisions"] == 2
    assert prog["per_reviewer"] == {"rev1": 1, "rev2": 1} and prog["active"] == []


def test_disagreement_goes_to_adjudication(people, make_task):
    task = make_task(n=1, overlap=2, lead="lead")
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    services.queue_next(user=people.rev2, task_id=task.pk)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    services.item_decide(user=people.rev2, task_id=task.pk, item_id=item.pk, decision="reject", comment="wrong fact")
    assert list(selectors.adjudication_list(user=people.lead, task_id=task.pk)) == [item]
    side = selectors.item_responses(user=people.lead, task_id=task.pk, item_id=item.pk)
    assert [(r["reviewer"], r["decision"]) for r in side] == [("rev1", "accept"), ("rev2", "reject")]
    with pytest.raises(PermissionDenied):
        services.item_adjudicate(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    with pytest.raises(PermissionDenied):
        services.item_adjudicate(user=people.owner, task_id=task.pk, item_id=item.pk, decision="accept")
    msgs = [dict(m) for m in item.example.messages]
    msgs[2]["content"] = "Answer 0: a corrected fact."
    services.item_adjudicate(user=people.lead, task_id=task.pk, item_id=item.pk, decision="accept", messages=msgs,
                             comment="fixed the fact")
    item.refresh_from_db()
    assert (item.state, item.final_decision, item.decided_by) == ("resolved", "accept", people.lead)
    assert item.messages[2]["content"] == "Answer 0: a corrected fact."
    assert not selectors.adjudication_list(user=people.admin, task_id=task.pk).exists()


def test_skip_comes_back_after_the_rest(people, make_task):
    task = make_task(n=3, overlap=1, assignees=[people.rev1])
    first = services.queue_next(user=people.rev1, task_id=task.pk)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=first.pk, decision="skip")
    second = services.queue_next(user=people.rev1, task_id=task.pk)
    assert second.example_index == 1
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=second.pk, decision="accept")
    third = services.queue_next(user=people.rev1, task_id=task.pk)
    assert third.example_index == 2
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=third.pk, decision="reject")
    again = services.queue_next(user=people.rev1, task_id=task.pk)
    assert again.pk == first.pk  # the skipped one, last
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=again.pk, decision="accept")
    assert services.queue_next(user=people.rev1, task_id=task.pk) is None


def test_expired_lease_goes_back_to_the_queue(people, make_task):
    from datetime import timedelta

    from django.utils import timezone

    task = make_task(n=1, overlap=1)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    assert services.queue_next(user=people.rev2, task_id=task.pk) is None  # taken
    ReviewResponse.objects.filter(item=item).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    got = services.queue_next(user=people.rev2, task_id=task.pk)
    assert got.pk == item.pk
    with pytest.raises(PermissionDenied) as e:  # rev1's slot went to rev2
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    assert e.value.code == "not_holder"
    assert ReviewItem.objects.get(pk=item.pk).taken == 1


def test_undo_last_decision(people, make_task):
    task = make_task(n=2, overlap=1, assignees=[people.rev1])
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    msgs = [dict(m) for m in item.example.messages]
    msgs[2]["content"] = "An edited answer."
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="reject", messages=msgs)
    task.refresh_from_db()
    assert task.done_items == 1 and task.decisions == 1
    back = services.decision_undo(user=people.rev1, task_id=task.pk)
    assert back.pk == item.pk
    item.refresh_from_db()
    task.refresh_from_db()
    assert (item.state, item.final_decision, item.done) == ("pending", "", 0)
    assert item.messages[2]["content"] == item.example.messages[2]["content"]  # the edit is reverted
    assert task.done_items == 0 and task.decisions == 0
    resp = ReviewResponse.objects.get(item=item, reviewer=people.rev1)
    assert resp.status == "leased"
    # the undone item is the one in hand
    assert services.queue_next(user=people.rev1, task_id=task.pk).pk == item.pk
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    assert services.decision_undo(user=people.rev1, task_id=task.pk).pk == item.pk


def test_edit_validation_refuses_broken_examples_and_saves_nothing(people, make_task):
    task = make_task(n=1, overlap=1)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    msgs = [dict(m) for m in item.example.messages]
    msgs[2]["content"] = "   "
    with pytest.raises(ValidationFailed) as e:
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept", messages=msgs)
    assert e.value.errors[0]["field"] == "messages.2" and "empty" in e.value.errors[0]["message"]
    broken = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{not json"}}]}
    with pytest.raises(ValidationFailed) as e:
        services.turn_edit(user=people.rev1, task_id=task.pk, item_id=item.pk, turn_index=2, message=broken)
    assert e.value.errors[0]["field"] == "message" and "arguments" in e.value.errors[0]["message"]
    with pytest.raises(ValidationFailed):
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept", messages=msgs[:2])
    item.refresh_from_db()
    assert item.messages is None and item.revision == 0 and not TurnEdit.objects.exists()
    assert ReviewResponse.objects.get(item=item).status == "leased"  # no decision saved either


def test_turn_edit_diff_and_conflict(people, make_task):
    task = make_task(n=1, overlap=2)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    services.queue_next(user=people.rev2, task_id=task.pk)
    mine = {"role": "assistant", "content": "Answer 0: rev1's better answer."}
    out = services.turn_edit(user=people.rev1, task_id=task.pk, item_id=item.pk, turn_index=2, message=mine)
    assert out["revision"] == 1 and out["changed"]
    assert any(line.startswith("+Answer 0: rev1") for line in out["diff"])
    assert any(line.startswith("-Answer 0:") for line in out["diff"])
    theirs = {"role": "assistant", "content": "Answer 0: rev2's version."}
    with pytest.raises(Conflict) as e:
        services.turn_edit(user=people.rev2, task_id=task.pk, item_id=item.pk, turn_index=2, message=theirs)
    body = e.value.as_dict()
    assert e.value.status_code == 409 and body["code"] == "edit_conflict"
    assert body["theirs"]["author"] == "rev1" and body["theirs"]["message"]["content"] == mine["content"]
    assert body["yours"]["content"] == theirs["content"]
    item.refresh_from_db()
    assert item.messages[2]["content"] == mine["content"]  # nothing lost
    # rev2 editing another turn is not a conflict, and keeps rev1's edit
    user_turn = {"role": "user", "content": "Question 0: rephrased by rev2."}
    services.turn_edit(user=people.rev2, task_id=task.pk, item_id=item.pk, turn_index=1, message=user_turn)
    item.refresh_from_db()
    assert item.messages[1]["content"] == user_turn["content"] and item.messages[2]["content"] == mine["content"]
    # knowingly replacing it (base_revision = what the 409 said)
    services.turn_edit(user=people.rev2, task_id=task.pk, item_id=item.pk, turn_index=2, message=theirs,
                       base_revision=body["revision"])
    item.refresh_from_db()
    assert item.messages[2]["content"] == theirs["content"]
    # rev1 decides sending the messages as they last saw them (their own edit, not rev2's later ones): the
    # turns they did not change keep rev2's edits, and nothing conflicts
    seen = [dict(m) for m in item.example.messages]
    seen[2] = mine
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept", messages=seen)
    item.refresh_from_db()
    assert item.messages[2]["content"] == theirs["content"] and item.messages[1]["content"] == user_turn["content"]
    # but sending the original turn 2 back is a change of a turn rev2 edited since: 409
    with pytest.raises(Conflict):
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept",
                             messages=[dict(m) for m in item.example.messages])


def test_decision_with_conflicting_messages_is_409(people, make_task):
    task = make_task(n=1, overlap=2)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    services.queue_next(user=people.rev2, task_id=task.pk)
    a = [dict(m) for m in item.example.messages]
    a[2]["content"] = "Answer 0: from rev1."
    b = [dict(m) for m in item.example.messages]
    b[2]["content"] = "Answer 0: from rev2."
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept", messages=a)
    with pytest.raises(Conflict) as e:
        services.item_decide(user=people.rev2, task_id=task.pk, item_id=item.pk, decision="accept", messages=b)
    assert e.value.extra["theirs"]["message"]["content"] == "Answer 0: from rev1."
    assert ReviewResponse.objects.get(item=item, reviewer=people.rev2).status == "leased"  # nothing saved


def test_labels_rating_and_turn_decisions_are_checked(people, make_task):
    task = make_task(n=1, overlap=1, labels=["tone"], rating=True)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    with pytest.raises(ValidationFailed) as e:
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept", labels=["nope"],
                             rating=9)
    assert {x["field"] for x in e.value.errors} == {"labels", "rating"}
    with pytest.raises(ValidationFailed):
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept",
                             turn_decisions={"7": "reject"})
    with pytest.raises(ValidationFailed):
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="maybe")
    r = services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept", labels=["tone"],
                             rating=4, turn_decisions={"2": "reject"})
    assert (r.labels, r.rating, r.turn_decisions) == (["tone"], 4, {"2": "reject"})


def test_comments_and_flags(people, make_task):
    task = make_task(n=1, overlap=1)
    item = services.queue_next(user=people.rev1, task_id=task.pk)
    services.comment_add(user=people.rev1, task_id=task.pk, item_id=item.pk, body="Is fact 0 right?")
    services.comment_add(user=people.owner, task_id=task.pk, item_id=item.pk, body="Yes.")
    with pytest.raises(ValidationFailed):
        services.comment_add(user=people.rev1, task_id=task.pk, item_id=item.pk, body="  ")
    assert services.flag_set(user=people.rev1, task_id=task.pk, item_id=item.pk, flag="pii") == ["pii"]
    assert services.flag_set(user=people.rev1, task_id=task.pk, item_id=item.pk, flag="duplicate") == ["duplicate", "pii"]
    assert services.flag_set(user=people.rev1, task_id=task.pk, item_id=item.pk, flag="pii", on=False) == ["duplicate"]
    with pytest.raises(ValidationFailed):
        services.flag_set(user=people.rev1, task_id=task.pk, item_id=item.pk, flag="boring")
    view = selectors.item_view(user=people.rev1, task_id=task.pk, item_id=item.pk)
    assert [c["body"] for c in view["comments"]] == ["Is fact 0 right?", "Yes."]
    assert view["flags"] == {"mine": ["duplicate"], "all": {"duplicate": ["rev1"]}}
    assert view["held"] and view["example"]["messages"] == item.example.messages


def test_task_update_and_lease_extend(people, make_task):
    task = make_task(n=3, overlap=1, assignees=[people.rev1, people.rev2])
    item = services.queue_next(user=people.rev2, task_id=task.pk)
    before = ReviewResponse.objects.get(item=item).lease_expires_at
    assert services.lease_extend(user=people.rev2, task_id=task.pk, item_id=item.pk).lease_expires_at >= before
    with pytest.raises(PermissionDenied):
        services.lease_extend(user=people.rev1, task_id=task.pk, item_id=item.pk)
    services.task_update(user=people.owner, task_id=task.pk, name="Renamed", instructions="New rules",
                         assignees=["rev1", "rev3"], lead="lead")
    task.refresh_from_db()
    assert (task.name, task.instructions, task.lead) == ("Renamed", "New rules", people.lead)
    assert sorted(task.assignees.values_list("username", flat=True)) == ["rev1", "rev3"]
    # rev2's held item went back to the queue, and rev2 can no longer take items
    assert ReviewItem.objects.get(pk=item.pk).taken == 0
    with pytest.raises(PermissionDenied):
        services.queue_next(user=people.rev2, task_id=task.pk)
    assert services.queue_next(user=people.rev3, task_id=task.pk).pk == item.pk
    with pytest.raises(ValidationFailed):
        services.task_update(user=people.owner, task_id=task.pk, assignees=[])
    services.task_update(user=people.owner, task_id=task.pk, clear_lead=True)
    task.refresh_from_db()
    assert task.lead is None


def test_next_is_one_statement(people, make_task):
    """On PostgreSQL `next` is one statement (apps.review.services.queue_sql: the assignment, the held lease or
    the locking search with the lease insert and both counters, and the example; inside a caller's transaction,
    as here, within a savepoint), and the `presence` event reads nothing. Handing the item out (the API's body)
    reads nothing more."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.review.api import next_out

    task = make_task(n=30, overlap=2)
    for _ in range(5):
        item = services.queue_next(user=people.rev1, task_id=task.pk)
        services.item_decide(user=people.rev1, task_id=task.pk, item_id=item.pk, decision="accept")
    with CaptureQueriesContext(connection) as ctx:
        item = services.queue_next(user=people.rev1, task_id=task.pk)
        body = next_out(item)
    statements = [q["sql"] for q in ctx.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    if connection.vendor == "postgresql":
        assert len(statements) == 1 and statements[0].lstrip().startswith("WITH a AS MATERIALIZED"), statements
    assert body["example"]["messages"] == ReviewItem.objects.get(pk=item.pk).example.messages
    assert body["lease_expires_at"] and body["example_index"] == 5
