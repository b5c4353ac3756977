"""The permission matrix: every role (reviewer, member, admin — assigned or not, owner, lead) against every
review action, through the services and through /api. Allowed actions succeed; the others are refused with
403 (PermissionDenied) and change nothing."""
from __future__ import annotations

import pytest

from apps.core.exceptions import PermissionDenied
from apps.review import selectors, services
from apps.review.models import BulkAction, ReviewComment, ReviewResponse, ReviewSnapshot
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tokenizer_loaded")]  # results built inline

ACTORS = ("reviewer_assigned", "reviewer_other", "member_owner", "member_assigned", "member_other", "lead", "admin")
VIEW = {"reviewer_assigned", "member_assigned", "member_owner", "lead", "admin"}
REVIEW = {"reviewer_assigned", "member_assigned"}
MANAGE = {"member_owner", "admin"}
ADJUDICATE = {"lead", "admin"}

ALLOWED = {
    "create": MANAGE,  # on the owner's dataset
    "view": VIEW,
    "agreement": VIEW,
    "next": REVIEW,
    "decide": REVIEW,
    "skip": REVIEW,
    "undo": REVIEW,
    "turn_edit": REVIEW | ADJUDICATE,
    "comment": VIEW,
    "flag": VIEW,
    "adjudication_list": ADJUDICATE,
    "adjudicate": ADJUDICATE,
    "update": MANAGE,
    "bulk": MANAGE,
    "snapshot": MANAGE,
    "finish": MANAGE,
    "export": MANAGE | ADJUDICATE,
}


@pytest.fixture
def world(people, make_version):
    actors = {
        "reviewer_assigned": people.rev1, "reviewer_other": people.rev3, "member_owner": people.owner,
        "member_assigned": UserFactory(username="massign", role="member"), "member_other": people.member2,
        "lead": people.lead, "admin": people.admin,
    }
    version = make_version(4)
    task = services.task_create(user=people.owner, version_id=version.pk, name="matrix", overlap=1,
                                assignees=["rev1", "massign"], lead="lead")
    # one decided item (so finish / snapshot have something accepted, undo has something to undo for rev1)
    first = services.queue_next(user=people.rev1, task_id=task.pk)
    services.item_decide(user=people.rev1, task_id=task.pk, item_id=first.pk, decision="accept")
    return {"actors": actors, "task": task, "version": version, "item": first, "people": people}


def _held_item(w, user):
    """An item `user` holds, when they can take one; else some other item of the task."""
    if user in (w["people"].rev1,) or user.username == "massign":
        item = services.queue_next(user=user, task_id=w["task"].pk)
        if item is not None:
            return item
    return w["task"].items.exclude(pk=w["item"].pk).first()


def _edited_turn(item):
    return {"role": "assistant", "content": f"An edited answer for item {item.pk}."}


def service_call(action, w, user):
    t = w["task"]
    if action == "create":
        return services.task_create(user=user, version_id=w["version"].pk, name="x", assignees=["rev1"])
    if action == "view":
        return selectors.task_get(user=user, task_id=t.pk)
    if action == "agreement":
        return selectors.agreement(task=selectors.task_get(user=user, task_id=t.pk))
    if action == "next":
        return services.queue_next(user=user, task_id=t.pk)
    if action == "decide":
        item = _held_item(w, user)
        return services.item_decide(user=user, task_id=t.pk, item_id=item.pk, decision="reject")
    if action == "skip":
        item = _held_item(w, user)
        return services.item_skip(user=user, task_id=t.pk, item_id=item.pk)
    if action == "undo":
        item = _held_item(w, user)
        if user.username == "massign":
            services.item_decide(user=user, task_id=t.pk, item_id=item.pk, decision="accept")
        return services.decision_undo(user=user, task_id=t.pk)
    if action == "turn_edit":
        item = _held_item(w, user)
        return services.turn_edit(user=user, task_id=t.pk, item_id=item.pk, turn_index=2, message=_edited_turn(item))
    if action == "comment":
        return services.comment_add(user=user, task_id=t.pk, item_id=w["item"].pk, body="hi")
    if action == "flag":
        return services.flag_set(user=user, task_id=t.pk, item_id=w["item"].pk, flag="wrong")
    if action == "adjudication_list":
        return list(selectors.adjudication_list(user=user, task_id=t.pk))
    if action == "adjudicate":
        return services.item_adjudicate(user=user, task_id=t.pk, item_id=w["item"].pk, decision="reject")
    if action == "update":
        return services.task_update(user=user, task_id=t.pk, instructions="new")
    if action == "bulk":
        return services.bulk_apply(user=user, task_id=t.pk, filter={"state": "pending"}, action="tag", tag="t")
    if action == "snapshot":
        return services.task_snapshot(user=user, task_id=t.pk)
    if action == "finish":
        return services.task_finish(user=user, task_id=t.pk)
    if action == "export":
        services.export_check(user=user, task_id=t.pk)
        return list(services.decisions_export_lines(user=user, task_id=t.pk))
    raise AssertionError(action)


def _footprint(task):
    return (ReviewResponse.objects.filter(task=task).values_list("status", "decision").order_by("pk").count(),
            list(ReviewResponse.objects.filter(task=task, status="done").values_list("item_id", "decision")),
            ReviewComment.objects.count(), BulkAction.objects.count(), ReviewSnapshot.objects.count(),
            list(task.items.order_by("pk").values_list("state", "tags", "revision", "final_decision")))


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", sorted(ALLOWED))
def test_service_matrix(world, action, actor):
    user = world["actors"][actor]
    if actor in ALLOWED[action]:
        service_call(action, world, user)
    else:
        before = _footprint(world["task"])
        with pytest.raises(PermissionDenied):
            service_call(action, world, user)
        assert _footprint(world["task"]) == before


def api_request(action, w, client):
    t = w["task"]
    base = f"/api/reviews/{t.pk}"
    item = w["item"]
    if action == "create":
        return client.post("/api/reviews", {"dataset_version_id": w["version"].pk, "name": "x", "overlap": 1,
                                            "assignees": ["rev1"]}, content_type="application/json")
    if action == "view":
        return client.get(base)
    if action == "agreement":
        return client.get(f"{base}/agreement")
    if action == "next":
        return client.post(f"{base}/next")
    if action in ("decide", "skip", "undo", "turn_edit"):
        got = client.post(f"{base}/next")
        target = got.json()["item_id"] if got.status_code == 200 else t.items.exclude(pk=item.pk).first().pk
        if action == "decide":
            return client.post(f"{base}/items/{target}/decision", {"decision": "reject"},
                               content_type="application/json")
        if action == "skip":
            return client.post(f"{base}/items/{target}/decision", {"decision": "skip"},
                               content_type="application/json")
        if action == "undo":
            if got.status_code == 200:
                client.post(f"{base}/items/{target}/decision", {"decision": "accept"}, content_type="application/json")
            return client.post(f"{base}/undo")
        return client.post(f"{base}/items/{target}/turns/2", {"message": {"role": "assistant", "content": "Edited."}},
                           content_type="application/json")
    if action == "comment":
        return client.post(f"{base}/items/{item.pk}/comments", {"body": "hi"}, content_type="application/json")
    if action == "flag":
        return client.post(f"{base}/items/{item.pk}/flags", {"flag": "pii"}, content_type="application/json")
    if action == "adjudication_list":
        return client.get(f"{base}/adjudication")
    if action == "adjudicate":
        return client.post(f"{base}/items/{item.pk}/adjudicate", {"decision": "reject"}, content_type="application/json")
    if action == "update":
        return client.patch(base, {"instructions": "new"}, content_type="application/json")
    if action == "bulk":
        return client.post(f"{base}/bulk", {"filter": {}, "action": "tag", "tag": "t"}, content_type="application/json")
    if action == "snapshot":
        return client.post(f"{base}/snapshot")
    if action == "finish":
        return client.post(f"{base}/finish")
    if action == "export":
        return client.get(f"{base}/export")
    raise AssertionError(action)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("action", sorted(ALLOWED))
def test_api_matrix(world, client, action, actor):
    user = world["actors"][actor]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=user).plaintext}"
    resp = api_request(action, world, client)
    if actor in ALLOWED[action]:
        assert resp.status_code in (200, 201, 204), (resp.status_code, getattr(resp, "content", b"")[:300])
    else:
        assert resp.status_code == 403, (resp.status_code, resp.content[:300])
        assert resp.json()["code"] == "permission_denied"


def test_unknown_task_is_404_for_everyone(world, client):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=world['people'].admin).plaintext}"
    assert client.get("/api/reviews/999999").status_code == 404
    assert client.post("/api/reviews/999999/next").status_code == 404


def test_task_list_is_scoped(world):
    t = world["task"]
    for actor, user in world["actors"].items():
        visible = t in selectors.task_list(user=user)
        assert visible == (actor in VIEW), actor
