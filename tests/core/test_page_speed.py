"""Issue 14, "every page ready in under 500 ms on the embedded default": every dashboard page the URLconf has, rendered
by the server in under 500 ms.

The walk is the one tests/test_url_fuzz.py makes (every URL pattern, its ids pointing at real rows: a dataset with a
ready version, a finished run with metrics and a checkpoint, a model version with an alias and a deployment), with
the rows of build_rich_world() on top (an arena with votes, a finished evaluation, an experiment with traffic, an
export with a bundle, a provider, a review task with disputed items, a code source with a finished generation, a
logged request), as an admin on the embedded PostgreSQL, through Django's whole middleware chain. Only the
dashboard's HTML pages count (not /admin, /api, /v1, the command bar's fragments, nor a route that redirects or
refuses GET). Each page is timed three times and its best time counts, so a load spike of the machine (CI, another
test process) does not decide it; the first request of all warms the templates' caches.

What a browser adds on top (static files, plotly drawing the charts) is measured in bench/bench_pages.py."""
from __future__ import annotations

import time
from unittest import mock

import pytest

from tests.test_url_fuzz import World, _client, _drained, all_routes, build_world
from tests.test_url_fuzz import good_values as _fuzz_good_values

pytestmark = pytest.mark.django_db

LIMIT_S = 0.5
NOT_PAGES = ("admin/", "api/", "v1", "commands/", "static/", "ws/")


# --- the rows behind the other apps' pages ------------------------------------------------------------------
# build_world() holds a dataset, a run and a model version; an arena, an evaluation, an experiment, an export,
# a provider, a review task, a code source and a logged request each have detail pages of their own. Each is
# made the way its app's tests make it (their helpers where they can be imported), through the app's services;
# only the model calls are stubbed (the arena's answers, the evaluation's generations): the matches, votes,
# scores and summaries after them are the apps' own code.
def _arena(world, provider, voter):
    from apps.arena import selectors as arena_selectors
    from apps.arena import services as arena_services
    from apps.arena.services import calling
    from apps.arena.services.generation import arena_generate_process
    from tests.arena.conftest import PROMPTS, answer_for, prefer_longer

    def answered(requests, *, concurrency):
        from apps.arena.models import Contestant

        out = {}
        for (item_id, cid), _plan, body in requests:
            model = "strong" if Contestant.objects.get(pk=cid).kind == "alias" else "weak"
            text = answer_for(model, body["messages"][-1]["content"])
            out[(item_id, cid)] = calling.Answer(text=text, served_by=f"stub:{model}", latency_ms=180.0,
                                                 completion_tokens=len(text.split()))
        return out

    arena = arena_services.arena_create(user=world.admin, name="Production vs gpt-4o",
                                        contestants=["production", f"{provider.name}/gpt-4o"], prompts=PROMPTS,
                                        overlap=2)
    with mock.patch.object(calling, "call_all", answered):
        arena_generate_process(arena_id=arena.pk)
    for user, votes in ((voter, len(PROMPTS)), (world.admin, 2)):  # the admin still has pairs to vote on
        for _ in range(votes):
            held = arena_services.arena_next(user=user, arena_id=arena.pk)
            p = arena_selectors.match_payload(held)
            arena_services.vote_cast(user=user, arena_id=arena.pk, match_id=p["match_id"],
                                     winner=prefer_longer(p["left"]["text"], p["right"]["text"]))
    return arena


def _evaluation(world, mv, other):
    """The version answers every sum right; the one it is compared with misses the odd ones."""
    import re

    from apps.evaluations import run
    from apps.evaluations import services as evaluation_services

    def answer(model, tokenizer, task, max_new):
        i = int(re.search(r"\d+", task["prompt"][-1]["content"]).group())
        return f"{i} plus {i} is {2 * i}." if model == mv.name or i % 2 == 0 else f"{i} plus {i} is {2 * i + 1}."

    tasks = [{"prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(1, 7)]
    ev = evaluation_services.evaluation_create(user=world.admin, model_version_id=mv.pk,
                                               compare_to_version_id=other.pk, tasks=tasks,
                                               weights={"answer_match": 2, "length": 1, "distinct_ngrams": 1})
    with mock.patch.object(run, "_load", lambda version: (version.name, None)), \
            mock.patch.object(run, "generate", answer):
        ev = run.evaluation_process(evaluation_id=ev.pk)
    assert ev.status == "succeeded", ev.error
    return ev


def _review(admin, reviewers):
    from types import SimpleNamespace

    from apps.review import services as review_services
    from tests.factories import DatasetVersionFactory
    from tests.review.conftest import chat_example
    from tests.review.test_pages import _disagree

    version = DatasetVersionFactory(owner=admin, examples=[chat_example(i) for i in range(12)])
    task = review_services.task_create(user=admin, version_id=version.pk, name="Support answers", overlap=2,
                                       assignees=[u.username for u in (*reviewers, admin)], labels=["tone", "facts"],
                                       rating=True, instructions="Accept answers that are correct and short.")
    _disagree(SimpleNamespace(rev1=reviewers[0], rev2=reviewers[1]), task, 6)  # 3 disputed, 3 agreed
    return task, task.items.filter(state="disputed").order_by("example_index").first()


def _source(world, tmp_path):
    from apps.sources import services as source_services
    from tests.git_repos import CALC
    from tests.sources.conftest import MIT, README, TEST_CALC, TEXT, Repo

    repo = Repo(tmp_path / "calc")
    repo.commit("Add the calculator", {"calc.py": CALC, "LICENSE": MIT})
    repo.commit("Add text helpers", {"textutil.py": TEXT})
    repo.commit("Add tests and a README", {"test_calc.py": TEST_CALC, "README.md": README})
    src = source_services.source_create(user=world.admin, kind="path", location=str(repo.path))
    source_services.analysis_start(user=world.admin, source_id=src.pk, inline=True)
    gen = source_services.generation_start(user=world.admin, source_id=src.pk, options={"max_examples": 12},
                                           inline=True)
    assert gen.status == "succeeded", gen.error
    return src, gen


def _request_log(world, mv):
    import uuid

    from django.test import TestCase

    from apps.proxy.services import request_log_record
    from tests.traffic.conftest import chat_request, chat_response

    payload = {"request_id": uuid.uuid4().hex, "user_id": world.admin.pk, "endpoint": "chat.completions",
               "model_requested": "production", "model_served": f"mv-{mv.pk}", "model_version_id": mv.pk,
               "stream": False, "status_code": 200, "latency_ms": 120.0, "ttft_ms": 50.0, "prompt_tokens": 10,
               "completion_tokens": 5, "request": chat_request("What is the capital of France?"),
               "response": chat_response("Paris."), "error": "", "started_at": time.time() - 5, "alias": "production",
               "served_by": f"version:{mv.pk}", "fallback": False, "api_key_id": None,
               "attempts": [{"target": f"version:{mv.pk}", "status": 200, "error": "", "ms": 100.0}],
               "upstream_ms": 100.0, "overhead_ms": 1.5}
    with TestCase.captureOnCommitCallbacks(execute=True):  # the traffic hook runs on commit, as on the worker
        return request_log_record(payload=payload)


def build_rich_world(tmp_path) -> World:
    """build_world(), and a row behind every other detail page (see above); their ids join world.ids."""
    from apps.experiments.services import experiment_create
    from apps.proxy import providers
    from apps.registry.models import ModelVersion
    from tests.experiments.test_pages import _logs
    from tests.factories import ModelVersionFactory, UserFactory
    from tests.registry.bundle_fixtures import CHECKS, GGUF, build_bundle, make_export

    world = build_world()
    admin = world.admin
    mv = ModelVersion.objects.select_related("base_model").get(pk=world.ids["model_version_id"])
    # the base model's folder is on this machine (an evaluation checks; its answers are stubbed: no weights needed)
    (tmp_path / "tiny").mkdir()
    mv.base_model.path = str(tmp_path / "tiny")
    mv.base_model.save(update_fields=["path"])
    other = ModelVersionFactory(base_model=mv.base_model, name="challenger")
    reviewers = [UserFactory(username="rev1", role="reviewer"), UserFactory(username="rev2", role="reviewer")]
    provider = providers.provider_create(actor=admin, name="openai", kind="openai",
                                         base_url="http://127.0.0.1:9/v1", api_key="sk-test")
    arena = _arena(world, provider, reviewers[0])  # production (the alias of mv) vs a provider model
    ev = _evaluation(world, mv, other)
    exp = experiment_create(actor=admin, alias="production", metric="error_rate", name="tone test",
                            arms=[{"model_version_id": mv.pk, "weight": 50}, {"model_version_id": other.pk,
                                                                            "weight": 50}])
    _logs(exp, "A", 60)
    _logs(exp, "A", 5, status=500)
    _logs(exp, "B", 60)
    export = make_export(mv, "gguf", quantization="q4_k_m", files={"model-q4_k_m.gguf": GGUF}, checks=CHECKS,
                         llama_cpp_version="b6000", created_by=admin)
    build_bundle(admin, export)
    task, disputed = _review(admin, reviewers)
    src, gen = _source(world, tmp_path)
    log = _request_log(world, mv)
    world.ids.update({
        "arena_id": arena.pk, "arena_item_id": arena.items.order_by("index").first().pk,
        "evaluation_id": ev.pk, "evaluation_task_id": ev.tasks.order_by("index").first().pk,
        "experiment_id": exp.pk, "export_id": export.pk, "provider_id": provider.pk,
        "review_task_id": task.pk, "review_item_id": disputed.pk,
        "source_id": src.pk, "generation_id": gen.pk, "log_id": log.pk,
        "example_id": gen.dataset_version.examples.filter(meta__provenance__isnull=False).order_by("index")[0].pk,
    })
    return world


# path parameters whose name two apps share, per route template: param -> world.ids key
_PER_APP = {
    "arenas/": {"item_id": "arena_item_id"},
    "evaluations/": {"task_id": "evaluation_task_id"},
    "reviews/": {"task_id": "review_task_id", "item_id": "review_item_id"},
}


def good_values(route, world) -> dict[str, str]:
    """tests.test_url_fuzz.good_values, with the ids of a shared parameter name (task_id, item_id) per app."""
    out = _fuzz_good_values(route, world)
    for prefix, names in _PER_APP.items():
        if route.template.startswith(prefix):
            out.update({p: str(world.ids[k]) for p, k in names.items() if p in route.params})
    return out


def _pages():
    return [r for r in all_routes() if not r.template.startswith(NOT_PAGES)
            and r.name not in ("accounts:logout",)]


def test_every_dashboard_page_renders_in_under_half_a_second(tmp_path):
    world = build_rich_world(tmp_path)
    client = _client(world)
    client.get("/")  # template and URL caches, the first connection
    timings: dict[str, float] = {}
    for route in _pages():
        url = route.url(good_values(route, world))
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            response = _drained(client.get(url))
            elapsed = time.perf_counter() - t0
            if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
                best = None
                break
            best = elapsed if best is None else min(best, elapsed)
            if best < LIMIT_S / 5:
                break  # far under the limit: no need to ask again
        if best is not None:
            timings[url] = best
    slowest = sorted(timings.items(), key=lambda kv: -kv[1])
    print(f"\n{len(timings)} pages measured; slowest (best of up to 3, s):\n"
          + "\n".join(f"  {t:.3f} {u}" for u, t in slowest[:10]))
    # the walk must see the dashboard; if routes stop rendering 200 here the test has gone blind
    ids = world.ids
    arena, ev, review = ids["arena_id"], ids["evaluation_id"], ids["review_task_id"]
    for must in ("/", "/datasets/", "/runs/", "/runs/new/", "/models/", "/traffic/", "/jobs/", "/reviews/",
                 f"/datasets/{ids['dataset_id']}/", f"/runs/{ids['run_id']}/", f"/models/{ids['model_version_id']}/",
                 f"/arenas/{arena}/", f"/arenas/{arena}/vote/", f"/arenas/{arena}/results/",
                 f"/arenas/{arena}/items/{ids['arena_item_id']}/",
                 f"/evaluations/{ev}/", f"/evaluations/{ev}/tasks/{ids['evaluation_task_id']}/",
                 f"/experiments/{ids['experiment_id']}/", f"/models/exports/{ids['export_id']}/",
                 f"/models/exports/{ids['export_id']}/bundles", f"/proxy/providers/{ids['provider_id']}/",
                 f"/reviews/{review}/", f"/reviews/{review}/review/", f"/reviews/{review}/agreement/",
                 f"/reviews/{review}/adjudication/", f"/reviews/{review}/adjudication/{ids['review_item_id']}/",
                 f"/reviews/{review}/bulk/", f"/sources/{ids['source_id']}/", f"/sources/{ids['source_id']}/generate/",
                 f"/sources/generations/{ids['generation_id']}/", f"/sources/provenance/{ids['example_id']}/",
                 f"/traffic/requests/{ids['log_id']}/"):
        assert must in timings, f"{must} was not measured: {sorted(timings)}"
    assert len(timings) >= 54, sorted(timings)  # 57 when this was written
    over = [f"{u}: {t * 1000:.0f} ms" for u, t in slowest if t >= LIMIT_S]
    assert not over, "pages over 500 ms:\n" + "\n".join(over)
