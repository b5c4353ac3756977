"""The generation job ("arena.generate") end to end through the proxy's own request path against a scripted
upstream on a loopback port: answers saved, bounded concurrency, failures per answer, a job that fails with
its reason, cancel, resume, versions and aliases routed like /v1, dataset prompts, matches made blind."""
from __future__ import annotations

import pytest

from apps.arena.models import Arena, ArenaItem, ArenaMatch, ArenaOutput
from apps.core.models import Job
from tests.arena.conftest import PROMPTS, answer_for
from tests.factories import DatasetVersionFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_generation_answers_every_prompt_and_makes_blind_matches(make_arena, generate, upstream):
    arena = make_arena(contestants=["fakeai/strong", "fakeai/weak", {"provider": "fakeai", "model": "other",
                                                                      "label": "Other one"}])
    assert arena.status == "generating" and arena.job.status == "queued"
    arena = generate(arena)
    assert arena.status == "ready", arena.error
    assert arena.job.status == "succeeded"
    assert arena.job.progress["current"] == arena.job.progress["total"] == 15
    outs = ArenaOutput.objects.filter(item__arena=arena)
    assert outs.count() == 15 and not outs.exclude(error="").exists()
    strong = arena.contestants.get(position=0)
    first = ArenaItem.objects.get(arena=arena, index=0)
    assert ArenaOutput.objects.get(item=first, contestant=strong).text == answer_for("strong", PROMPTS[0])
    assert ArenaOutput.objects.get(item=first, contestant=strong).served_by == "provider:fakeai/strong"
    # every request went out as a plain chat body with the arena's settings
    assert {b["model"] for b in upstream.state["seen"]} == {"strong", "weak", "other"}
    assert all(b["temperature"] == 0.7 and b["max_tokens"] == 512 and b["stream"] is False
               for b in upstream.state["seen"])
    # one match per item and pair; random sides (both orders occur over 15 matches with overwhelming odds)
    matches = ArenaMatch.objects.filter(arena=arena)
    assert matches.count() == 5 * 3
    assert {m.left_is_a for m in matches} == {True, False}
    assert sorted(m.order for m in matches) == list(range(15))
    assert all(m.a.position < m.b.position for m in matches.select_related("a", "b"))


def test_concurrency_is_bounded(make_arena, generate, upstream):
    upstream.state["slow_s"] = 0.05
    arena = make_arena(prompts=[f"Question {i}?" for i in range(12)], concurrency=3)
    arena = generate(arena)
    assert arena.status == "ready"
    assert upstream.state["max_inflight"] == 3  # never more, and the bound was reached
    upstream.state["max_inflight"] = 0
    one = generate(make_arena(prompts=["a?", "b?", "c?"], concurrency=1, name="one at a time"))
    assert one.status == "ready" and upstream.state["max_inflight"] == 1


def test_failed_answers_are_kept_and_left_out_of_matches(make_arena, generate):
    arena = generate(make_arena(contestants=["fakeai/strong", "fakeai/weak", "fakeai/broken"]))
    assert arena.status == "ready"
    broken = arena.contestants.get(model="broken")
    errors = ArenaOutput.objects.filter(contestant=broken).values_list("error", flat=True)
    assert len(errors) == 5 and all("crashed" in e for e in errors)
    assert not ArenaMatch.objects.filter(arena=arena, b=broken).exists()
    assert ArenaMatch.objects.filter(arena=arena).count() == 5  # strong vs weak only
    assert "5 calls failed" in arena.job.progress.get("message", "")


def test_no_answer_at_all_fails_the_job_with_the_reason(make_arena, generate):
    arena = generate(make_arena(contestants=["fakeai/broken", "fakeai/broken-too"]))
    assert arena.status == "failed"
    assert arena.job.status == "failed" and arena.job.error_code == "E_ARENA_NO_ANSWERS"
    assert "No contestant answered any prompt" in arena.error and "crashed" in arena.error
    assert not ArenaMatch.objects.filter(arena=arena).exists()


def test_retry_calls_only_what_is_missing_or_failed(make_arena, generate, upstream, people):
    from apps.core.jobs.services import job_retry

    arena = generate(make_arena(contestants=["fakeai/strong", "fakeai/broken"]))
    assert arena.status == "failed"
    arena.contestants.filter(model="broken").update(model="weak")  # "fixed" upstream: the model answers now
    upstream.state["seen"].clear()
    job_retry(user=people.owner, job_id=arena.job_id)
    arena = generate(arena)
    assert arena.status == "ready"
    assert [b["model"] for b in upstream.state["seen"]] == ["weak"] * 5  # strong's answers were kept
    assert ArenaMatch.objects.filter(arena=arena).count() == 5


def test_cancel_before_the_worker_starts(make_arena, generate, people):
    from apps.arena import services

    arena = make_arena()
    arena = services.arena_cancel(user=people.owner, arena_id=arena.pk)
    assert arena.status == "cancelled" and arena.job.status == "cancelled"
    assert generate(arena).status == "cancelled"  # a late message does nothing
    assert not ArenaOutput.objects.filter(item__arena=arena).exists()


def test_cancel_while_generating_stops_between_chunks(make_arena, people, upstream, monkeypatch):
    from apps.arena.services import generation
    from apps.core.jobs import services as jobs

    arena = make_arena(prompts=[f"q{i}?" for i in range(20)], concurrency=1)
    calls = []
    real = generation.calling.call_all

    def call_and_cancel(requests, *, concurrency):
        calls.append(len(requests))
        if len(calls) == 1:  # a person presses Cancel while the first chunk is in flight
            jobs.job_request_cancel(user=people.owner, job_id=arena.job_id)
        return real(requests, concurrency=concurrency)

    monkeypatch.setattr(generation.calling, "call_all", call_and_cancel)
    generation.arena_generate_process(arena_id=arena.pk)
    arena.refresh_from_db()
    assert arena.status == "cancelled" and Job.objects.get(pk=arena.job_id).status == "cancelled"
    assert calls == [4]  # one chunk of CHUNK × concurrency, then it stopped
    assert ArenaOutput.objects.filter(item__arena=arena).count() == 4  # what came back is kept for a retry


def test_versions_and_aliases_route_like_v1(people, upstream, generate):
    from apps.arena import services
    from apps.registry.services import alias_deploy, model_version_register

    a = model_version_register(name="sft one", kind="adapter", base_model=None)
    b = model_version_register(name="sft two", kind="adapter", base_model=None)
    alias_deploy(actor=people.admin, version_id=b.pk, alias="staging")
    arena = services.arena_create(user=people.owner, name="versions", contestants=[f"mv-{a.pk}", "staging"],
                                  prompts=["Hello?"])
    labels = list(arena.contestants.values_list("label", "kind", "model"))
    assert labels == [(f"sft one (mv-{a.pk})", "version", f"mv-{a.pk}"), ("staging", "alias", "staging")]
    arena = generate(arena)
    assert arena.status == "ready"
    assert sorted(b_["model"] for b_ in upstream.state["seen"]) == sorted([f"mv-{a.pk}", f"mv-{b.pk}"])
    assert set(ArenaOutput.objects.filter(item__arena=arena).values_list("served_by", flat=True)) == {
        f"version:{a.pk}", f"version:{b.pk}"}
    assert arena.contestants.get(kind="alias").model_version_id == b.pk


def test_a_contestant_that_no_longer_routes_fails_the_job(people, upstream, generate):
    from apps.arena import services
    from apps.registry.models import Alias
    from apps.registry.services import alias_deploy, model_version_register

    v = model_version_register(name="gone soon", kind="adapter", base_model=None)
    alias_deploy(actor=people.admin, version_id=v.pk, alias="temp")
    arena = services.arena_create(user=people.owner, name="x", contestants=["temp", f"mv-{v.pk}"], prompts=["Hi?"])
    Alias.objects.filter(name="temp").delete()
    arena = generate(arena)
    assert arena.status == "failed" and "temp" in arena.error and "no longer routes" in arena.error
    assert arena.job.error_code == "E_ARENA_UNROUTABLE"


def test_dataset_prompts_are_cut_before_the_last_answer(people, make_arena, generate, upstream):
    conv = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Capital of Peru?"},
                         {"role": "assistant", "content": "Lima."}]}
    tool = {"messages": [{"role": "user", "content": "weather?"},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                         {"role": "assistant", "content": "Sunny."}]}
    version = DatasetVersionFactory(owner=people.owner, examples=[conv],
                                    examples__validation=[conv, tool, conv])
    arena = make_arena(prompts=None, dataset_version_id=version.pk, max_prompts=2)
    items = list(ArenaItem.objects.filter(arena=arena).order_by("index"))
    assert len(items) == 2  # the tool example is not a plain chat prompt: skipped; at most 2
    assert items[0].messages == conv["messages"][:4] and items[0].example_index == 1
    assert items[1].example_index == 3
    assert generate(arena).status == "ready"
    assert upstream.state["seen"][0]["messages"][-1] == {"role": "user", "content": "Capital of Peru?"}


def test_the_worker_actor_gets_the_message_by_name(make_arena, upstream):
    import dramatiq

    from workers import arena as actors

    broker = dramatiq.get_broker()
    broker.flush_all()
    arena = make_arena(judge_model="fakeai/judge")  # committed: the message went out after commit
    sent = [m for m in broker.queues["default"].queue if b"arena_generate" in m] if "default" in broker.queues else []
    assert len(sent) == 1
    msg = dramatiq.Message.decode(sent[0])
    assert (msg.actor_name, msg.args) == ("arena_generate", (arena.pk,))
    assert broker.get_actor("arena_generate").queue_name == "default"
    actors.arena_generate.fn(*msg.args)  # what the worker runs
    arena.refresh_from_db()
    assert arena.status == "ready"
    judge = [dramatiq.Message.decode(m) for m in broker.queues["default"].queue if b"arena_judge" in m]
    assert [(m.actor_name, m.args) for m in judge] == [("arena_judge", (arena.pk,))]
    actors.arena_judge.fn(arena.pk)
    assert Arena.objects.get(pk=arena.pk).judge_job.status == "succeeded"
    broker.flush_all()
