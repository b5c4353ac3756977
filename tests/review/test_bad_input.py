"""Bad input to the review API is a clear 4xx in the one error shape, never a 500 or a half-written row."""
from __future__ import annotations

import json

import pytest

from apps.review.models import ReviewResponse, TurnEdit
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(people, make_task, client):
    task = make_task(n=2, overlap=1, labels=["tone"], rating=True)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=people.rev1).plaintext}"
    nxt = client.post(f"/api/reviews/{task.pk}/next").json()
    return task, nxt, client


BAD_DECISIONS = [
    {"decision": "accept", "messages": [1, 2, 3]},
    {"decision": "accept", "messages": [{"role": "user"}, {"role": "bogus", "content": "x"}, {"role": "assistant",
                                                                                              "content": 5}]},
    {"decision": "accept", "messages": "not a list"},
    {"decision": "accept", "messages": []},
    {"decision": "accept", "turn_decisions": {"x": "accept"}},
    {"decision": "accept", "turn_decisions": {"99": "reject"}},
    {"decision": "accept", "turn_decisions": {"1": "maybe"}},
    {"decision": "accept", "labels": ["not-a-label"]},
    {"decision": "accept", "labels": "tone"},
    {"decision": "accept", "rating": 0},
    {"decision": "accept", "rating": "five"},
    {"decision": "accept", "comment": "x" * 6000},
    {"decision": "accept", "comment": "nul \u0000 byte"},
    {"decision": "accept", "base_revision": -1},
    {"decision": None},
    {},
]


@pytest.mark.parametrize("body", BAD_DECISIONS)
def test_bad_decisions_are_422_and_save_nothing(held, body):
    task, nxt, client = held
    r = client.post(f"/api/reviews/{task.pk}/items/{nxt['item_id']}/decision", json.dumps(body),
                    content_type="application/json")
    assert r.status_code == 422, (r.status_code, r.content[:300])
    assert r.json()["code"] == "invalid" and r.json()["detail"]
    assert ReviewResponse.objects.get(item_id=nxt["item_id"]).status == "leased"
    assert not TurnEdit.objects.exists()


BAD_TURNS = [
    {"message": {"role": "assistant", "content": ""}},
    {"message": {"role": "assistant", "content": 12}},
    {"message": {"role": "wizard", "content": "hi"}},
    {"message": {"role": "assistant", "tool_calls": "nope"}},
    {"message": {"role": "assistant", "content": None, "tool_calls": [{"function": {"arguments": "{}"}}]}},
    {"message": {"role": "assistant", "content": "ok", "weight": 7}},
    {"message": {"role": "tool", "content": "result", "tool_call_id": "nobody"}},
    {"message": ["not", "an", "object"]},
    {"decision": "maybe"},
]


@pytest.mark.parametrize("body", BAD_TURNS)
def test_bad_turn_edits_are_422(held, body):
    task, nxt, client = held
    r = client.post(f"/api/reviews/{task.pk}/items/{nxt['item_id']}/turns/2", json.dumps(body),
                    content_type="application/json")
    assert r.status_code == 422, (r.status_code, r.content[:300])
    assert not TurnEdit.objects.exists()


def test_missing_turn_and_item_are_404(held):
    task, nxt, client = held
    r = client.post(f"/api/reviews/{task.pk}/items/{nxt['item_id']}/turns/9",
                    json.dumps({"message": {"role": "assistant", "content": "x"}}), content_type="application/json")
    assert r.status_code == 404
    r = client.post(f"/api/reviews/{task.pk}/items/987654/decision", json.dumps({"decision": "accept"}),
                    content_type="application/json")
    assert r.status_code == 404


@pytest.mark.parametrize("body", [
    {"filter": {"min_turns": "lots"}, "action": "accept"},
    {"filter": {"q": {"nested": 1}}, "action": "accept"},
    {"filter": {"split": "test"}, "action": "accept"},
    {"filter": {}, "action": "delete"},
    {"filter": {}, "action": "tag", "tag": "a|b"},
    {"filter": {}, "action": "tag"},
    {"filter": {}, "action": "assign", "assignees": []},
    {"filter": [], "action": "accept"},
])
def test_bad_bulk_is_422(people, make_task, client, body):
    task = make_task(n=2)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=people.owner).plaintext}"
    r = client.post(f"/api/reviews/{task.pk}/bulk", json.dumps(body), content_type="application/json")
    assert r.status_code == 422, (r.status_code, r.content[:300])
    assert not task.bulk_actions.exists()


@pytest.mark.parametrize("body", [
    {"name": "x", "assignees": []},
    {"name": "", "assignees": ["rev1"]},
    {"name": "x", "assignees": ["rev1"], "overlap": 0},
    {"name": "x", "assignees": ["rev1"], "overlap": 2},
    {"name": "x", "assignees": ["rev1"], "filter": {"state": "pending"}},
    {"name": "x", "assignees": ["rev1"], "lead": "nobody"},
    {"name": "x", "assignees": ["rev1"], "labels": [""]},
    {"name": "x", "assignees": ["rev1"], "lease_seconds": 5},
])
def test_bad_task_is_422(people, make_version, client, body):
    v = make_version(2)
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=people.owner).plaintext}"
    r = client.post("/api/reviews", json.dumps({"dataset_version_id": v.pk, **body}), content_type="application/json")
    assert r.status_code == 422, (r.status_code, r.content[:300])
    from apps.review.models import ReviewTask
    assert not ReviewTask.objects.exists()
