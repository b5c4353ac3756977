"""The arena pages through Django's test client (session login): list, new-arena form (field errors with a 422,
nothing saved; success queues the generation), an arena's page per role, the voting screen's htmx flow (the
pair blind, the reveal after the vote, refused votes shown in place), results and drill-down, the owner's
actions (close, export, DPO errors as messages), and the websocket's snapshot and live progress."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from apps.arena.models import Arena, ArenaVote
from tests.arena.conftest import prefer_longer, vote_all

pytestmark = pytest.mark.django_db(transaction=True)


def login(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_list_and_new_form(people, provider, generate):
    owner = login(people.owner)
    r = owner.get("/arenas/")
    assert r.status_code == 200 and "No arenas yet" in r.content.decode() and 'id="new-arena"' in r.content.decode()
    r = login(people.v1).get("/arenas/")
    assert 'id="new-arena"' not in r.content.decode()  # reviewers do not create arenas
    assert login(people.v1).get("/arenas/new/").status_code == 403
    r = owner.get("/arenas/new/")
    assert r.status_code == 200 and "fakeai" in r.content.decode()
    bad = {"name": "", "provider_models": "fakeai/strong\nnowhere/x", "source": "prompts", "prompts": "",
           "overlap": "1", "concurrency": "4"}
    r = owner.post("/arenas/new/", bad)
    assert r.status_code == 422
    html = r.content.decode()
    assert "This field is required." in html  # the name
    r = owner.post("/arenas/new/", {**bad, "name": "Page arena"})
    html = r.content.decode()
    assert r.status_code == 422 and "no provider is called" in html and "Give prompts" in html
    r = owner.post("/arenas/new/", {**bad, "name": "Page arena", "source": "dataset"})
    assert r.status_code == 422 and "Choose a dataset version" in r.content.decode()
    assert not Arena.objects.exists()
    good = {**bad, "name": "Page arena", "provider_models": "fakeai/strong\nfakeai/weak",
            "prompts": "First prompt?\nSecond prompt?", "voters": ["v1", "v2"], "overlap": "2"}
    r = owner.post("/arenas/new/", good)
    arena = Arena.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/arenas/{arena.pk}/"
    assert arena.items.count() == 2 and arena.overlap == 2 and arena.job.status == "queued"
    multi = {**good, "name": "multi-line", "prompts": "Line one\nstill one\n---\nSecond"}
    owner.post("/arenas/new/", multi)
    assert [i.messages[0]["content"] for i in Arena.objects.get(name="multi-line").items.order_by("index")] == [
        "Line one\nstill one", "Second"]


def test_detail_page_by_role(people, make_arena, generate):
    arena = generate(make_arena(voters=["v1"]))
    html = login(people.owner).get(f"/arenas/{arena.pk}/").content.decode()
    for part in ('id="close-button"', 'id="export-button"', 'id="judge-form"', "fakeai/strong", "Mean latency",
                 'id="results-link"'):
        assert part in html, part
    html = login(people.v1).get(f"/arenas/{arena.pk}/").content.decode()
    assert 'id="start-voting"' in html and 'id="close-button"' not in html and 'id="results-link"' not in html
    assert login(people.outsider).get(f"/arenas/{arena.pk}/").status_code == 404
    assert login(people.v1).get(f"/arenas/{arena.pk}/results/").status_code == 403


def test_voting_screen_htmx_flow(people, make_arena, generate):
    arena = generate(make_arena(prompts=["One?", "Two?"], voters=["v1"]))
    v1 = login(people.v1)
    r = v1.get(f"/arenas/{arena.pk}/vote/")
    html = r.content.decode()
    assert r.status_code == 200 and 'id="vote-form"' in html
    assert "fakeai/strong" not in html and "fakeai/weak" not in html  # blind
    held = ArenaVote.objects.get(arena=arena, voter=people.v1, status="leased")
    url = f"/arenas/{arena.pk}/vote/{held.match_id}/"
    r = v1.post(url, {"winner": "sideways"}, HTTP_HX_REQUEST="true")
    assert r.status_code == 422 and "winner" in r.content.decode() and 'id="vote-hint"' in r.content.decode()
    r = v1.post(url, {"winner": "right", "comment": "<b>bold</b> claim"}, HTTP_HX_REQUEST="true")
    html = r.content.decode()
    assert r.status_code == 200 and 'id="reveal"' in html and "<html" not in html
    assert "fakeai/strong" in html and "fakeai/weak" in html  # revealed now
    v = ArenaVote.objects.get(pk=held.pk)
    assert v.status == "done" and v.winner == "right" and v.comment == "<b>bold</b> claim"
    r = v1.post(url, {"winner": "left"}, HTTP_HX_REQUEST="true")  # again: replaces the vote
    assert ArenaVote.objects.get(pk=held.pk).winner == "left"
    nxt = ArenaVote.objects.get(arena=arena, voter=people.v1, status="leased")
    r = v1.post(f"/arenas/{arena.pk}/vote/{nxt.match_id}/skip/", HTTP_HX_REQUEST="true")
    assert r.status_code == 200 and "Skipped" in r.content.decode()
    r = v1.post(f"/arenas/{arena.pk}/vote/{nxt.match_id}/", {"winner": "tie"})  # no htmx: a redirect
    assert r.status_code == 302
    html = v1.get(f"/arenas/{arena.pk}/vote/").content.decode()
    assert 'id="nothing-left"' in html
    # an outsider is refused
    assert login(people.outsider).get(f"/arenas/{arena.pk}/vote/").status_code == 404


def test_results_and_drill_down_pages(people, make_arena, generate):
    arena = generate(make_arena(contestants=["fakeai/strong", "fakeai/weak", "fakeai/mid"], voters=["v1"]))
    vote_all(arena, people.v1, prefer_longer)
    owner = login(people.owner)
    html = owner.get(f"/arenas/{arena.pk}/results/").content.decode()
    for part in ('id="pairs"', 'id="ranking"', 'id="chart-pairs"', 'id="chart-ranking"', "<svg", "arena-chart-data",
                 "Wilson", "Bradley–Terry", 'id="items"'):
        assert part in html, part
    item = arena.items.order_by("index").first()
    r = owner.get(f"/arenas/{arena.pk}/items/{item.pk}/")
    html = r.content.decode()
    assert r.status_code == 200 and "Here is a careful" in html and "v1</strong> chose" in html
    assert owner.get(f"/arenas/{arena.pk}/items/99999999/").status_code == 404
    # a two-contestant arena shows no ranking section
    two = generate(make_arena(name="two", voters=["v1"]))
    assert 'id="ranking"' not in owner.get(f"/arenas/{two.pk}/results/").content.decode()


def test_owner_actions(people, make_arena, generate):
    arena = generate(make_arena(voters=["v1"]))
    owner = login(people.owner)
    r = owner.post(f"/arenas/{arena.pk}/export/", follow=True)
    assert "nothing to export" in r.content.decode()
    vote_all(arena, people.v1, prefer_longer)
    r = owner.post(f"/arenas/{arena.pk}/export/", follow=True)
    assert "Exported 5 preference pairs" in r.content.decode() and 'id="exports"' in r.content.decode()
    r = owner.post(f"/arenas/{arena.pk}/dpo/", {"base_model": "", "from_winner": "on"}, follow=True)
    assert r.status_code == 200 and 'class="msg-error"' in r.content.decode()  # run_create's field error, shown
    r = owner.post(f"/arenas/{arena.pk}/close/", follow=True)
    assert "Voting closed" in r.content.decode()
    assert Arena.objects.get(pk=arena.pk).status == "closed"
    r = owner.post(f"/arenas/{arena.pk}/close/", follow=True)
    assert "Voting in this arena is closed" in r.content.decode()
    assert login(people.v1).post(f"/arenas/{arena.pk}/close/").status_code == 302  # refused as a message
    assert Arena.objects.get(pk=arena.pk).status == "closed"
    assert login(people.v1).get(f"/arenas/{arena.pk}/results/").status_code == 200  # open to voters once closed


def _app():
    from channels.routing import URLRouter

    from training_hub.routing import websocket_urlpatterns

    return URLRouter(websocket_urlpatterns)


async def test_websocket_snapshot_and_progress(people, make_arena, generate):
    from apps.arena import services

    arena = await sync_to_async(lambda: generate(make_arena(voters=["v1"])))()
    comm = WebsocketCommunicator(_app(), f"/ws/arenas/{arena.pk}/")
    comm.scope["user"] = people.v1
    connected, _ = await comm.connect()
    assert connected
    first = await comm.receive_json_from(timeout=5)
    assert first["event"] == "snapshot"
    p = first["payload"]
    assert (p["arena_id"], p["status"], p["matches"], p["votes"]) == (arena.pk, "ready", 5, 0)
    assert p["per_voter"] == {"v1": 0}
    assert p["job"]["status"] == "succeeded"
    vote = await sync_to_async(services.arena_next)(user=people.v1, arena_id=arena.pk)
    await sync_to_async(services.vote_cast)(user=people.v1, arena_id=arena.pk, match_id=vote.match_id, winner="tie")
    for _ in range(5):
        msg = await comm.receive_json_from(timeout=5)
        if msg["event"] == "progress" and msg["payload"]["votes"] == 1:
            break
    else:
        raise AssertionError("no progress event with the vote")
    assert msg["payload"]["per_voter"] == {"v1": 1}
    assert "winner" not in str(msg) and "tie" not in str(msg["payload"])  # counts only, never the choice
    await comm.disconnect()
    outsider = WebsocketCommunicator(_app(), f"/ws/arenas/{arena.pk}/")
    outsider.scope["user"] = people.outsider
    connected, code = await outsider.connect()
    assert not connected and code == 4404
