"""Votes become training data: the preference rows (the winner's answer chosen, the loser's rejected; ties,
both-bad and split votes left out), the export through the dataset importer (a ready version of
preference examples, recorded on the arena), re-export as a new version of the same dataset, the DPO run
started from it (or run_create's field errors, cleanly), and the lineage tag a model version page shows."""
from __future__ import annotations

import pytest
from django.template import Context, Template

from apps.arena import services
from apps.arena.models import Arena, ArenaExport
from tests.arena.conftest import answer_for, prefer_longer, vote_all
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _api(client, user):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=user).plaintext}"
    return client


def test_preference_rows_follow_the_votes(people, make_arena, generate):
    arena = generate(make_arena(voters=["v1", "v2"], overlap=2, prompts=["P0?", "P1?", "P2?"]))
    # v1 prefers the strong answer everywhere; v2 agrees on P0, says tie on P1, prefers the weak one on P2
    plan = {"P0?": "strong", "P1?": "tie", "P2?": "weak"}
    vote_all(arena, people.v1, prefer_longer)

    def v2(left, right):
        from apps.arena.models import ArenaVote

        held = ArenaVote.objects.select_related("match__item").get(arena=arena, voter=people.v2, status="leased")
        want = plan[held.match.item.messages[-1]["content"]]
        if want == "tie":
            return "tie"
        longer = "left" if len(left) > len(right) else "right"
        return longer if want == "strong" else ("right" if longer == "left" else "left")

    vote_all(arena, people.v2, v2)
    rows, counts = services.preference_rows(arena)
    assert counts == {"voted": 3, "exported": 1, "undecided": 2}  # P1: strong vs tie, P2: 1–1
    (row,) = rows
    assert row["input"]["messages"] == [{"role": "user", "content": "P0?"}]
    assert row["preferred_output"] == [{"role": "assistant", "content": answer_for("strong", "P0?")}]
    assert row["non_preferred_output"] == [{"role": "assistant", "content": answer_for("weak", "P0?")}]


def test_export_makes_a_preference_dataset_version(client, people, make_arena, generate):
    from apps.datasets.models import Example

    arena = generate(make_arena(voters=["v1"]))
    api = _api(client, people.owner)
    r = api.post(f"/api/arenas/{arena.pk}/export", {}, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "votes"  # nothing voted yet
    vote_all(arena, people.v1, prefer_longer)
    r = api.post(f"/api/arenas/{arena.pk}/export", {"name": "prefs"}, content_type="application/json")
    assert r.status_code == 201, r.content
    out = r.json()
    assert (out["pairs"], out["voted"], out["undecided"]) == (5, 5, 0)
    arena.refresh_from_db()
    version = arena.export_version
    assert version.pk == out["dataset_version_id"] and version.status == "ready"
    assert version.dataset.name == "prefs" and version.dataset.owner_id == people.owner.pk
    assert version.example_count == 5
    ex = Example.objects.filter(version=version).order_by("index").first()
    assert ex.meta.get("kind") == "preference"
    assert ex.messages[-1]["content"].startswith("Here is a careful")  # the chosen (strong) answer
    assert ex.meta["non_preferred_output"] == [{"role": "assistant", "content": "Not sure."}]
    # again: a new version of the same dataset, both exports recorded
    r = api.post(f"/api/arenas/{arena.pk}/export", {}, content_type="application/json")
    assert r.status_code == 201 and r.json()["dataset_id"] == version.dataset_id
    assert r.json()["dataset_version_id"] != version.pk
    assert ArenaExport.objects.filter(arena=arena).count() == 2


def test_dpo_run_from_the_export(client, people, make_arena, generate, tiny_base_model):
    arena = generate(make_arena(voters=["v1"]))
    api = _api(client, people.owner)
    r = api.post(f"/api/arenas/{arena.pk}/dpo", {}, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "dataset_version_id"  # export first
    vote_all(arena, people.v1, prefer_longer)
    services.arena_export(user=people.owner, arena_id=arena.pk)
    r = api.post(f"/api/arenas/{arena.pk}/dpo", {"base_model": "nope"}, content_type="application/json")
    assert r.status_code == 422, r.content  # run_create's own field error, passed through
    assert "base_model" in [e["field"] for e in r.json()["errors"]]
    r = api.post(f"/api/arenas/{arena.pk}/dpo", {"base_model": "tiny", "hyperparameters": {"max_steps": 2}},
                 content_type="application/json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["method"] == "dpo" and body["dataset_version_id"] == Arena.objects.get(pk=arena.pk).export_version_id
    assert Arena.objects.get(pk=arena.pk).dpo_run_id == body["run_id"]

    # The run trains (a real DPO run on the tiny model, as the gpu worker runs it) and its model version's
    # lineage names the arena the preferences came from.
    from apps.registry.models import ModelVersion
    from apps.training.models import TrainingRun
    from workers.training import train_run

    train_run.fn(body["run_id"])
    run = TrainingRun.objects.get(pk=body["run_id"])
    assert run.status == "succeeded", run.error
    version = ModelVersion.objects.get(run=run)
    assert version.dataset_version_id == body["dataset_version_id"] and "rewards/margins" in version.metrics
    client.force_login(people.owner)
    page = client.get(f"/models/{version.pk}/").content.decode()
    assert "Preference data" in page and f"/arenas/{arena.pk}/" in page


def test_lineage_tag_names_the_arena(people, make_arena, generate):
    arena = generate(make_arena(voters=["v1"]))
    vote_all(arena, people.v1, prefer_longer)
    export = services.arena_export(user=people.owner, arena_id=arena.pk)
    tpl = Template("{% load arena_extras %}<dl>{% arena_lineage vid %}</dl>")
    html = tpl.render(Context({"vid": export.version_id}))
    assert "Preference data" in html and f"/arenas/{arena.pk}/" in html and arena.name in html
    assert tpl.render(Context({"vid": export.version_id + 1000})) == "<dl></dl>"
    assert tpl.render(Context({"vid": None})) == "<dl></dl>"
    # the model version trained on it shows the arena in its lineage (templates/registry/detail.html)
    from django.test import Client

    from tests.factories import ModelVersionFactory

    mv = ModelVersionFactory(dataset_version=export.version)
    c = Client()
    c.force_login(people.owner)
    html = c.get(f"/models/{mv.pk}/").content.decode()
    assert "Preference data" in html and f'href="/arenas/{arena.pk}/"' in html
    other = ModelVersionFactory()
    assert "Preference data" not in c.get(f"/models/{other.pk}/").content.decode()
