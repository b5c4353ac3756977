"""The judge: verdicts read from replies, a judge named at creation queued once the answers are in, a judge
started later through the API, blind prompts (answer A / B in the match's own order, no names), and its
agreement with the voters (share and Cohen's κ)."""
from __future__ import annotations

import pytest

from apps.arena.models import Arena, JudgeVote
from apps.arena.services.judge import parse_verdict
from tests.arena.conftest import prefer_longer, vote_all
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("reply,verdict", [
    ("Verdict: A\nA is better.", "left"), ("verdict: b", "right"), ("B — shorter and right", "right"),
    ("**Verdict:** TIE", "tie"), ("Verdict: BOTH_BAD", "both_bad"), ("both bad: neither answers", "both_bad"),
    ("Verdict = [A]", "left"), ("I cannot decide.", ""), ("", ""), ("Answer B is better", ""),
])
def test_parse_verdict(reply, verdict):
    assert parse_verdict(reply) == verdict


def _judge_job(arena):
    from apps.arena.services import judge_process

    judge_process(arena_id=arena.pk)
    return Arena.objects.select_related("judge_job").get(pk=arena.pk)


def test_judge_named_at_creation_runs_after_generation(people, make_arena, generate, upstream):
    arena = make_arena(voters=["v1"], judge_model="fakeai/judge", judge_rubric="Prefer complete answers.")
    arena = generate(arena)
    assert arena.status == "ready" and arena.judge_job is not None and arena.judge_job.status == "queued"
    upstream.state["seen"].clear()
    arena = _judge_job(arena)
    assert arena.judge_job.status == "succeeded"
    assert JudgeVote.objects.filter(arena=arena).count() == 5
    prompt = upstream.state["seen"][0]["messages"][-1]["content"]
    assert "Prefer complete answers." in prompt and "=== Answer A ===" in prompt
    assert "strong" not in prompt and "weak" not in prompt and "fakeai" not in prompt  # blind
    assert upstream.state["seen"][0]["temperature"] == 0.0
    # the judge picks the longer answer, which is the strong model's, whatever side it was on
    assert set(JudgeVote.objects.filter(arena=arena).values_list("outcome", flat=True)) == {"a"}
    vote_all(arena, people.v1, prefer_longer)
    from apps.arena.selectors import arena_results

    judge = arena_results(arena=arena)["judge"]
    assert (judge["compared"], judge["agreement"], judge["verdicts"], judge["errors"]) == (5, 1.0, 5, 0)
    assert judge["kappa"] is None  # everyone always chose the strong model: no variation to measure


def test_judge_started_later_through_the_api(client, people, make_arena, generate):
    arena = generate(make_arena(voters=["v1"]))
    vote_all(arena, people.v1, lambda left, right: "tie")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {ApiKeyFactory(user=people.owner).plaintext}"
    r = client.post(f"/api/arenas/{arena.pk}/judge", {"model": "nowhere/x"}, content_type="application/json")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "model"
    r = client.post(f"/api/arenas/{arena.pk}/judge", {"model": "fakeai/judge", "rubric": "Be fair."},
                    content_type="application/json")
    assert r.status_code == 202, r.content
    assert r.json()["judge_job"]["status"] == "queued" and r.json()["judge_model"] == "fakeai/judge"
    r = client.post(f"/api/arenas/{arena.pk}/judge", {"model": "fakeai/judge"}, content_type="application/json")
    assert r.status_code == 409 and r.json()["code"] == "judge_running"
    arena = _judge_job(arena)
    res = client.get(f"/api/arenas/{arena.pk}/results").json()["judge"]
    assert (res["compared"], res["agreement"]) == (5, 0.0)  # the voters said tie, the judge never did
    # a judge that fails on every call: verdicts carry the error, the agreement compares nothing
    r = client.post(f"/api/arenas/{arena.pk}/judge", {"model": "fakeai/broken-judge"}, content_type="application/json")
    assert r.status_code == 202
    arena = _judge_job(arena)
    res = client.get(f"/api/arenas/{arena.pk}/results").json()["judge"]
    assert (res["errors"], res["compared"], res["agreement"]) == (5, 0, None)
