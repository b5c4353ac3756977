"""/api/reviews: the issue's routes with their fields and status codes — 201 create, progress, next (200 /
204), decision (200; 403 on an item you do not hold or a task you are not assigned to; 409 with the other's
version; 422 field errors with nothing saved), agreement, finish (the same version twice), export."""
from __future__ import annotations

import json

import pytest

from apps.review.models import ReviewItem, ReviewResponse, TurnEdit
from tests.factories import ApiKeyFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tokenizer_loaded")]  # results built inline


@pytest.fixture
def as_user(client):
    keys = {}

    def _as(user):
        if user.pk not in keys:
            keys[user.pk] = ApiKeyFactory(user=user).plaintext
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {keys[user.pk]}"
        return client
    return _as


def _post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def test_full_api_flow(people, make_version, as_user):
    v = make_version(3)
    c = as_user(people.owner)
    r = _post(c, "/api/reviews", {"dataset_version_id": v.pk, "name": "API review", "overlap": 2,
                                  "assignees": ["rev1", "rev2"], "instructions": "Check facts.", "rating": True,
                                  "labels": ["tone"], "lead": "lead"})
    assert r.status_code == 201, r.content
    task = r.json()
    assert task["id"] and task["status"] == "open" and task["overlap"] == 2 and task["assignees"] == ["rev1", "rev2"]
    assert task["progress"]["total"] == 3 and task["progress"]["done"] == 0
    assert task["progress"]["per_reviewer"] == {"rev1": 0, "rev2": 0}
    base = f"/api/reviews/{task['id']}"

    for reviewer, decision in ((people.rev1, "accept"), (people.rev2, "reject")):
        c = as_user(reviewer)
        while True:
            r = c.post(f"{base}/next")
            if r.status_code == 204:
                assert r.content == b""
                break
            assert r.status_code == 200, r.content
            nxt = r.json()
            assert set(nxt) >= {"item_id", "example_index", "example", "revision", "lease_expires_at"}
            assert nxt["example"]["messages"][1]["role"] == "user"
            d = decision if nxt["example_index"] == 0 else "accept"
            r = _post(c, f"{base}/items/{nxt['item_id']}/decision", {"decision": d, "rating": 4, "labels": ["tone"],
                                                                      "comment": "ok"})
            assert r.status_code == 200, r.content
            assert r.json()["decision"] == d and r.json()["item_id"] == nxt["item_id"]

    c = as_user(people.owner)
    prog = c.get(base).json()["progress"]
    assert prog == {**prog, "total": 3, "done": 3, "per_reviewer": {"rev1": 3, "rev2": 3}, "disputed": 1}
    ag = c.get(f"{base}/agreement").json()
    assert set(ag) >= {"krippendorff_alpha", "pairs"} and ag["pairs"][0]["a"] == "rev1" and ag["pairs"][0]["n"] == 3
    r = c.post(f"{base}/finish")
    assert r.status_code == 409 and r.json()["code"] == "disputed_items"
    c = as_user(people.lead)
    adj = c.get(f"{base}/adjudication").json()
    assert len(adj) == 1 and [x["decision"] for x in adj[0]["responses"]] == ["accept", "reject"]
    r = _post(c, f"{base}/items/{adj[0]['item_id']}/adjudicate", {"decision": "accept"})
    assert r.status_code == 200 and r.json()["state"] == "resolved"
    c = as_user(people.owner)
    r = c.post(f"{base}/finish")
    assert r.status_code == 200, r.content
    out = r.json()
    assert set(out) >= {"dataset_version_id", "accepted", "rejected", "edited"}
    assert (out["accepted"], out["rejected"], out["edited"]) == (3, 0, 0)
    again = c.post(f"{base}/finish").json()
    assert again["dataset_version_id"] == out["dataset_version_id"]
    assert c.get(base).json()["result_version_id"] == out["dataset_version_id"]
    assert c.get(f"/api/datasets/versions/{out['dataset_version_id']}").json()["status"] == "ready"
    r = c.get(f"{base}/export")
    assert r.status_code == 200 and r["Content-Type"].startswith("application/jsonl")
    lines = [json.loads(x) for x in b"".join(r.streaming_content).decode().splitlines()]
    assert len(lines) == 3 and {len(x["responses"]) for x in lines} == {2}


def test_403_cases(people, make_task, as_user):
    task = make_task(n=2, overlap=1)
    base = f"/api/reviews/{task.pk}"
    c = as_user(people.rev1)
    held = c.post(f"{base}/next").json()
    # rev2 decides on the item rev1 holds (the only free slot is taken): 403
    c = as_user(people.rev2)
    r = _post(c, f"{base}/items/{held['item_id']}/decision", {"decision": "accept"})
    assert r.status_code == 403 and r.json()["code"] == "not_holder"
    r = _post(c, f"{base}/items/{held['item_id']}/decision", {"decision": "skip"})
    assert r.status_code == 403
    # rev3 is not assigned: 403 on next and decision
    c = as_user(people.rev3)
    assert c.post(f"{base}/next").status_code == 403
    r = _post(c, f"{base}/items/{held['item_id']}/decision", {"decision": "accept"})
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"
    assert not ReviewResponse.objects.filter(reviewer__in=[people.rev2, people.rev3]).exists()


def test_409_two_reviewers_edit_the_same_turn(people, make_task, as_user):
    task = make_task(n=1, overlap=2)
    base = f"/api/reviews/{task.pk}"
    a = as_user(people.rev1).post(f"{base}/next").json()
    b = as_user(people.rev2).post(f"{base}/next").json()
    assert a["item_id"] == b["item_id"]
    msgs_a = [dict(m) for m in a["example"]["messages"]]
    msgs_a[2]["content"] = "rev1's answer."
    r = _post(as_user(people.rev1), f"{base}/items/{a['item_id']}/turns/2", {"message": msgs_a[2]})
    assert r.status_code == 200 and r.json()["changed"] and r.json()["revision"] == 1
    assert "+rev1's answer." in r.json()["diff"]
    msgs_b = [dict(m) for m in b["example"]["messages"]]
    msgs_b[2]["content"] = "rev2's answer."
    r = _post(as_user(people.rev2), f"{base}/items/{b['item_id']}/decision", {"decision": "accept", "messages": msgs_b})
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "edit_conflict" and body["theirs"]["author"] == "rev1"
    assert body["theirs"]["message"]["content"] == "rev1's answer." and body["yours"]["content"] == "rev2's answer."
    item = ReviewItem.objects.get(pk=a["item_id"])
    assert item.messages[2]["content"] == "rev1's answer."  # nothing lost
    assert ReviewResponse.objects.get(item=item, reviewer=people.rev2).status == "leased"  # nothing saved
    # resend knowingly
    r = _post(as_user(people.rev2), f"{base}/items/{b['item_id']}/decision",
              {"decision": "accept", "messages": msgs_b, "base_revision": body["revision"]})
    assert r.status_code == 200 and r.json()["edited_turns"] == [2]


def test_422_edit_that_breaks_the_example_saves_nothing(people, make_task, as_user):
    task = make_task(n=1, overlap=1)
    base = f"/api/reviews/{task.pk}"
    c = as_user(people.rev1)
    nxt = c.post(f"{base}/next").json()
    msgs = [dict(m) for m in nxt["example"]["messages"]]
    msgs[2] = {"role": "assistant", "content": ""}
    r = _post(c, f"{base}/items/{nxt['item_id']}/decision", {"decision": "accept", "messages": msgs})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "messages.2"
    msgs[2] = {"role": "assistant", "content": None, "tool_calls": [{"id": "x", "type": "function",
                                                                      "function": {"name": "f", "arguments": "{oops"}}]}
    r = _post(c, f"{base}/items/{nxt['item_id']}/turns/2", {"message": msgs[2]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "message"
    assert "arguments" in r.json()["errors"][0]["message"]
    r = _post(c, f"{base}/items/{nxt['item_id']}/decision", {"decision": "maybe"})
    assert r.status_code == 422
    r = _post(c, f"{base}/items/{nxt['item_id']}/decision", {"decision": "accept", "rating": 3})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "rating"  # this task asks no rating
    assert not TurnEdit.objects.exists() and ReviewResponse.objects.get().status == "leased"


def test_skip_undo_comments_flags_bulk_and_item_view(people, make_task, as_user):
    task = make_task(n=3, overlap=1, assignees=[people.rev1])
    base = f"/api/reviews/{task.pk}"
    c = as_user(people.rev1)
    first = c.post(f"{base}/next").json()
    assert _post(c, f"{base}/items/{first['item_id']}/skip").status_code == 200
    second = c.post(f"{base}/next").json()
    assert second["example_index"] == 1
    assert _post(c, f"{base}/items/{second['item_id']}/decision", {"decision": "reject"}).status_code == 200
    r = c.post(f"{base}/undo")
    assert r.status_code == 200 and r.json()["item_id"] == second["item_id"]
    assert _post(c, f"{base}/items/{second['item_id']}/decision", {"decision": "accept"}).status_code == 200
    r = _post(c, f"{base}/items/{second['item_id']}/comments", {"body": "Looks good"})
    assert r.status_code == 201 and r.json()["author"] == "rev1"
    r = _post(c, f"{base}/items/{second['item_id']}/flags", {"flag": "low_quality"})
    assert r.json() == {"item_id": second["item_id"], "flags": ["low_quality"]}
    assert _post(c, f"{base}/items/{second['item_id']}/flags", {"flag": "bad"}).status_code == 422
    r = _post(c, f"{base}/items/{second['item_id']}/turns/1", {"decision": "reject"})
    assert r.status_code == 200 and r.json()["decision"] == "reject"
    view = c.get(f"{base}/items/{second['item_id']}").json()
    assert view["mine"]["decision"] == "accept" and view["comments"][0]["body"] == "Looks good"
    assert view["flags"]["mine"] == ["low_quality"] and len(view["turns"]) == 3
    owner = as_user(people.owner)
    r = _post(owner, f"{base}/bulk", {"filter": {"state": "unreviewed"}, "action": "reject"})
    assert r.status_code == 200 and r.json()["count"] == 2 and r.json()["audit_id"]
    r = _post(owner, f"{base}/bulk", {"filter": {"colour": "x"}, "action": "reject"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "filter.colour"
    c = as_user(people.rev1)
    assert c.post(f"{base}/next").status_code == 204
    r = c.post(f"{base}/undo")
    assert r.status_code == 200  # the accepted one comes back
    r = as_user(people.owner).post(f"{base}/snapshot")
    assert r.status_code == 422 and r.json()["code"] == "nothing_accepted"


def test_list_and_unknown_version(people, make_task, as_user):
    task = make_task(n=1)
    c = as_user(people.rev1)
    assert [t["id"] for t in c.get("/api/reviews").json()] == [task.pk]
    assert as_user(people.rev3).get("/api/reviews").json() == []
    r = _post(as_user(people.owner), "/api/reviews", {"dataset_version_id": 987654, "name": "x", "assignees": ["rev1"]})
    assert r.status_code == 404
    r = _post(as_user(people.rev1), "/api/reviews", {"dataset_version_id": task.version_id, "name": "x",
                                                       "assignees": ["rev1"]})
    assert r.status_code == 403
