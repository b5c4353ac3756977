"""/api/arenas through Django's test client with API keys: create (201; every bad input a 422 naming its field,
nothing written), the blind voting flow (next without names, the vote revealing them, 204 when done), overlap
across voters, results with known numbers, the drill-down, permissions (404 outside, 403 for what a role may
not do), close and its 409s."""
from __future__ import annotations

import pytest

from apps.arena.models import Arena, ArenaMatch, ArenaVote
from tests.arena.conftest import PROMPTS, prefer_longer, vote_all
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def as_user(client):
    def _as(user):
        c = client.__class__()
        c.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=user).plaintext}"
        return c
    return _as


def post(c, url, body=None):
    return c.post(url, body or {}, content_type="application/json")


def test_create_read_and_vote_blind(as_user, people, provider, generate):
    owner = as_user(people.owner)
    r = post(owner, "/api/arenas", {"name": "Blind test", "contestants": ["fakeai/strong", "fakeai/weak"],
                                    "prompts": PROMPTS[:3], "voters": ["v1", "v2"], "overlap": 2})
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "generating" and body["job"]["status"] == "queued"
    assert [c["label"] for c in body["contestants"]] == ["fakeai/strong", "fakeai/weak"]
    assert body["progress"]["items"] == 3 and body["progress"]["voters"] == ["v1", "v2"]
    arena = generate(Arena.objects.get(pk=body["id"]))
    assert arena.status == "ready"

    v1 = as_user(people.v1)
    r = post(v1, f"/api/arenas/{arena.pk}/next")
    assert r.status_code == 200
    nxt = r.json()
    assert set(nxt) == {"match_id", "item_id", "item_index", "prompt", "left", "right", "status", "lease_expires_at"}
    assert "strong" not in r.content.decode() and "weak" not in r.content.decode()  # no names before the vote
    # asking again gives the same pair back (one in hand at a time)
    assert post(v1, f"/api/arenas/{arena.pk}/next").json()["match_id"] == nxt["match_id"]
    longer = "left" if len(nxt["left"]["text"]) > len(nxt["right"]["text"]) else "right"
    r = post(v1, f"/api/arenas/{arena.pk}/votes", {"item_id": nxt["item_id"], "winner": longer, "comment": "clearer"})
    assert r.status_code == 200, r.content
    out = r.json()
    assert out["chosen"] == "fakeai/strong" and out["outcome"] == "a" and out["comment"] == "clearer"
    assert {out["left"]["label"], out["right"]["label"]} == {"fakeai/strong", "fakeai/weak"}
    assert out[longer]["label"] == "fakeai/strong"
    # voting again on it changes the vote (no double count)
    r = post(v1, f"/api/arenas/{arena.pk}/votes", {"match_id": nxt["match_id"], "winner": "tie"})
    assert r.status_code == 200 and r.json()["outcome"] == "tie"
    assert ArenaVote.objects.filter(match_id=nxt["match_id"], status="done").count() == 1
    assert ArenaMatch.objects.get(pk=nxt["match_id"]).done == 1


def test_overlap_gives_each_pair_to_two_different_voters(as_user, people, make_arena, generate):
    arena = generate(make_arena(prompts=PROMPTS[:4], voters=["v1", "v2", "v3"], overlap=2))
    counts = {u.username: vote_all(arena, u, prefer_longer) for u in (people.v1, people.v2, people.v3)}
    assert sum(counts.values()) == 8  # 4 pairs × overlap 2
    assert counts["v1"] == 4 and counts["v2"] == 4 and counts["v3"] == 0  # first come, first served
    for m in ArenaMatch.objects.filter(arena=arena):
        assert m.done == 2 and m.taken == 2 and not m.open
        assert m.votes.values("voter").distinct().count() == 2
    r = post(as_user(people.v3), f"/api/arenas/{arena.pk}/next")
    assert r.status_code == 204


def test_results_numbers(as_user, people, make_arena, generate):
    arena = generate(make_arena(voters=["v1", "v2"], overlap=2))
    vote_all(arena, people.v1, prefer_longer)  # strong 5-0
    vote_all(arena, people.v2, lambda left, right: "both_bad")
    r = as_user(people.owner).get(f"/api/arenas/{arena.pk}/results")
    assert r.status_code == 200
    res = r.json()
    (pair,) = res["pairs"]
    assert (pair["a"], pair["b"], pair["wins_a"], pair["wins_b"], pair["ties"], pair["both_bad"], pair["votes"]) == (
        "fakeai/strong", "fakeai/weak", 5, 0, 0, 5, 10)
    assert pair["win_rate_a"] == 1.0
    assert pair["ci_low"] == pytest.approx(0.5655, abs=1e-4) and pair["ci_high"] == 1.0  # Wilson 5/5
    assert [r_["contestant"] for r_ in res["ranking"]] == ["fakeai/strong", "fakeai/weak"]
    assert res["ranking"][0]["score"] > 1000 > res["ranking"][1]["score"]
    assert res["ranking"][0]["ci_low"] <= res["ranking"][0]["score"] <= res["ranking"][0]["ci_high"]
    assert (res["votes"], res["voters"], res["matches"], res["judge"]) == (10, 2, 5, None)
    item_id = ArenaMatch.objects.filter(arena=arena).first().item_id
    d = as_user(people.owner).get(f"/api/arenas/{arena.pk}/items/{item_id}").json()
    assert [o["contestant"] for o in d["outputs"]] == ["fakeai/strong", "fakeai/weak"]
    assert sorted(v["chosen"] for v in d["matches"][0]["votes"]) == ["both bad", "fakeai/strong"]


def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(as_user, people, provider, make_version):
    owner = as_user(people.owner)
    ok = {"name": "x", "contestants": ["fakeai/strong", "fakeai/weak"], "prompts": ["Hi?"]}
    cases = [
        ({**ok, "contestants": ["fakeai/strong"]}, "contestants"),
        ({**ok, "contestants": ["fakeai/strong", "no-such-alias"]}, "contestants.1"),
        ({**ok, "contestants": ["fakeai/strong", "fakeai/strong"]}, "contestants.1"),
        ({**ok, "contestants": ["fakeai/strong", "nobody/gpt"]}, "contestants.1"),
        ({**ok, "contestants": ["fakeai/strong", {"model_version_id": 999999}]}, "contestants.1.model_version_id"),
        ({**ok, "contestants": ["fakeai/strong", {"bogus": 1}]}, "contestants.1"),
        ({**ok, "prompts": [[{"role": "assistant", "content": "no user turn"}]]}, "prompts.0"),
        ({**ok, "prompts": None}, "prompts"),
        ({**ok, "prompts_dataset_version_id": 1, "prompt_dataset_version_id": 999999}, "prompts"),
        ({**ok, "prompts": None, "prompt_dataset_version_id": 999999}, "dataset_version_id"),
        ({**ok, "voters": ["v1", "ghost"]}, "voters"),
        ({**ok, "voters": ["v1"], "overlap": 2}, "overlap"),
        ({**ok, "judge_model": "nothing-here"}, "judge_model"),
        ({**ok, "temperature": 5}, "temperature"),
        ({**ok, "name": ""}, "name"),
        ({**ok, "name": "a\x00b"}, "name"),
    ]
    for body, field in cases:
        r = post(owner, "/api/arenas", body)
        assert r.status_code == 422, (field, r.content)
        fields = [e["field"] for e in r.json().get("errors", [])]
        assert field in fields, (field, r.json())
    assert not Arena.objects.exists()
    # a version with no validation split is a field error too
    v = make_version()
    r = post(owner, "/api/arenas", {**ok, "prompts": None, "prompt_dataset_version_id": v.pk})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dataset_version_id"
    assert "no validation example" in r.json()["errors"][0]["message"]


@pytest.fixture
def make_version(people):
    from tests.factories import DatasetVersionFactory, qa_example

    return lambda: DatasetVersionFactory(owner=people.owner, examples=[qa_example(i) for i in range(3)])


def test_voting_errors(as_user, people, make_arena, generate):
    arena = generate(make_arena(voters=["v1", "v2"]))
    v1, v2 = as_user(people.v1), as_user(people.v2)
    nxt = post(v1, f"/api/arenas/{arena.pk}/next").json()
    r = post(v2, f"/api/arenas/{arena.pk}/votes", {"match_id": nxt["match_id"], "winner": "left"})
    assert r.status_code == 403 and r.json()["code"] == "not_holder"
    r = post(v1, f"/api/arenas/{arena.pk}/votes", {"match_id": nxt["match_id"], "winner": "better"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "winner"
    r = post(v1, f"/api/arenas/{arena.pk}/votes", {"winner": "left"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "item_id"
    r = post(v1, f"/api/arenas/{arena.pk}/votes", {"match_id": nxt["match_id"], "item_id": nxt["item_id"] + 1000,
                                                   "winner": "left"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "item_id"
    r = post(v1, f"/api/arenas/{arena.pk}/votes", {"match_id": 99999999, "winner": "left"})
    assert r.status_code == 404
    # skip gives it back; the other voter gets it
    assert post(v1, f"/api/arenas/{arena.pk}/matches/{nxt['match_id']}/skip").status_code == 204
    assert post(v1, f"/api/arenas/{arena.pk}/votes", {"match_id": nxt["match_id"], "winner": "left"}).status_code == 403
    assert post(v2, f"/api/arenas/{arena.pk}/next").json()["match_id"] == nxt["match_id"]
    # closed: no more voting
    assert post(as_user(people.owner), f"/api/arenas/{arena.pk}/close").json()["status"] == "closed"
    r = post(v2, f"/api/arenas/{arena.pk}/votes", {"match_id": nxt["match_id"], "winner": "left"})
    assert r.status_code == 409 and r.json()["code"] == "arena_closed"
    assert post(v2, f"/api/arenas/{arena.pk}/next").status_code == 409
    assert post(as_user(people.owner), f"/api/arenas/{arena.pk}/close").status_code == 409


def test_permissions(as_user, people, make_arena, generate):
    arena = generate(make_arena(voters=["v1"]))
    outsider, v1, admin = as_user(people.outsider), as_user(people.v1), as_user(people.admin)
    assert outsider.get(f"/api/arenas/{arena.pk}").status_code == 404  # not part of it: does not exist for them
    assert post(outsider, f"/api/arenas/{arena.pk}/next").status_code == 404
    assert arena.pk not in [a["id"] for a in outsider.get("/api/arenas").json()]
    assert v1.get(f"/api/arenas/{arena.pk}").status_code == 200
    # a voter sees no results (names beside answers) until the arena is closed
    assert v1.get(f"/api/arenas/{arena.pk}/results").status_code == 403
    assert post(v1, f"/api/arenas/{arena.pk}/close").status_code == 403
    assert post(v1, f"/api/arenas/{arena.pk}/export").status_code == 403
    assert post(v1, f"/api/arenas/{arena.pk}/judge", {"model": "fakeai/judge"}).status_code == 403
    assert admin.get(f"/api/arenas/{arena.pk}/results").status_code == 200
    assert post(as_user(people.owner), f"/api/arenas/{arena.pk}/close").status_code == 200
    assert v1.get(f"/api/arenas/{arena.pk}/results").status_code == 200
    # reviewers vote; they do not create arenas
    r = post(v1, "/api/arenas", {"name": "x", "contestants": ["fakeai/strong", "fakeai/weak"], "prompts": ["Hi?"]})
    assert r.status_code == 403
    # an arena with no voter list is open to every signed-in user
    open_arena = generate(make_arena(name="open to all"))
    assert post(outsider, f"/api/arenas/{open_arena.pk}/next").status_code == 200


def test_voting_before_the_answers_exist_is_a_409(as_user, people, make_arena):
    arena = make_arena(voters=["v1"])
    r = post(as_user(people.v1), f"/api/arenas/{arena.pk}/next")
    assert r.status_code == 409 and r.json()["code"] == "arena_generating"


def test_expired_leases_come_back(as_user, people, make_arena, generate):
    from django.utils import timezone

    arena = generate(make_arena(prompts=["Only one?"], voters=["v1", "v2"]))
    first = post(as_user(people.v1), f"/api/arenas/{arena.pk}/next").json()
    assert post(as_user(people.v2), f"/api/arenas/{arena.pk}/next").status_code == 204  # overlap 1: taken
    ArenaVote.objects.filter(match_id=first["match_id"]).update(lease_expires_at=timezone.now())
    assert post(as_user(people.v2), f"/api/arenas/{arena.pk}/next").json()["match_id"] == first["match_id"]
    r = post(as_user(people.v1), f"/api/arenas/{arena.pk}/votes", {"match_id": first["match_id"], "winner": "left"})
    assert r.status_code == 403  # the lease went to someone else
