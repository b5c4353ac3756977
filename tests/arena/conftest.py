"""Arena fixtures: named users, a scripted OpenAI-compatible upstream on a loopback port (served like the proxy
tests' fake, tests/proxy/fake_upstream.ServerThread), a provider pointing at it, and an arena maker.

The upstream answers by the requested model name:
- `strong…`: a long, careful answer quoting the prompt; `weak…`: a short one ("Not sure.");
- `judge…`: reads "Answer A" / "Answer B" from the judge prompt and says `Verdict: A` for the longer one (B on
  a tie in length), so it agrees with voters who prefer the strong model;
- `broken…`: HTTP 500; `empty…`: an empty answer;
- anything else (e.g. the hub's `mv-<id>`): "[<model>] answer to: <prompt>".
`slow_s` (settable) delays every answer; `inflight` / `max_inflight` count concurrent requests; `seen` keeps
each request's body.

    arena = make_arena(contestants=["fakeai/strong", "fakeai/weak"], prompts=["Hi", "Why?"])
    generate(arena)   # runs the generation job inline, through the proxy, against the upstream
"""
from __future__ import annotations

import asyncio
import re

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.factories import UserFactory
from tests.proxy.fake_upstream import ServerThread

_ANSWER = re.compile(r"=== Answer A ===\n(.*?)\n\n=== Answer B ===\n(.*?)\n\nWhich answer", re.S)


def answer_for(model: str, prompt: str) -> str:
    if model.startswith("strong"):
        return f"Here is a careful and complete answer to “{prompt}”: first, consider the question; then, answer it."
    if model.startswith("weak"):
        return "Not sure."
    if model.startswith("empty"):
        return ""
    return f"[{model}] answer to: {prompt}"


def create_arena_upstream():
    state = {"inflight": 0, "max_inflight": 0, "seen": [], "slow_s": 0.0}

    async def chat(request: Request):
        body = await request.json()
        model = body.get("model", "")
        state["seen"].append(body)
        state["inflight"] += 1
        state["max_inflight"] = max(state["max_inflight"], state["inflight"])
        try:
            if state["slow_s"]:
                await asyncio.sleep(state["slow_s"])
            last = body["messages"][-1].get("content") or ""
            if model.startswith("broken"):
                return JSONResponse({"error": {"message": "the model crashed", "type": "server_error"}},
                                    status_code=500)
            if model.startswith("judge"):
                m = _ANSWER.search(last)
                a, b = (m.group(1), m.group(2)) if m else ("", "")
                text = ("Verdict: A\nA is more complete." if len(a) > len(b) else "Verdict: B\nB is more complete.")
            else:
                text = answer_for(model, last)
            return JSONResponse({"id": "arena-1", "object": "chat.completion", "created": 0, "model": model,
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": len(text.split()),
                                           "total_tokens": 5 + len(text.split())}})
        finally:
            state["inflight"] -= 1

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    app.state.arena = state
    return app


@pytest.fixture(scope="session")
def arena_upstream_server():
    app = create_arena_upstream()
    with ServerThread(app) as srv:
        srv.state = app.state.arena
        yield srv


@pytest.fixture
def upstream(arena_upstream_server, settings):
    """The scripted upstream, fresh counters; the hub's inference URL points at it too (versions, aliases)."""
    from apps.proxy import breaker
    from apps.proxy.gateway import caches_clear

    caches_clear()
    breaker.forget_local()
    settings.HUB_BREAKER_FAILURES = 1000
    settings.HUB_INFERENCE_URL = arena_upstream_server.url + "/v1"
    st = arena_upstream_server.state
    st.update(inflight=0, max_inflight=0, slow_s=0.0)
    st["seen"].clear()
    yield arena_upstream_server
    breaker.forget_local()


@pytest.fixture
def people(db):
    class P:
        owner = UserFactory(username="owner", role="member")
        admin = UserFactory(username="admin1", role="admin")
        v1 = UserFactory(username="v1", role="reviewer")
        v2 = UserFactory(username="v2", role="reviewer")
        v3 = UserFactory(username="v3", role="member")
        outsider = UserFactory(username="outsider", role="member")
    return P


@pytest.fixture
def provider(people, upstream):
    from apps.proxy import providers

    return providers.provider_create(actor=people.admin, name="fakeai", kind="openai",
                                     base_url=upstream.url + "/v1", api_key="sk-fake",
                                     timeouts={"connect_s": 2.0, "first_byte_s": 10.0, "total_s": 20.0})


PROMPTS = ["What is the capital of France?", "Explain recursion in one sentence.", "Name a prime number.",
           "Why is the sky blue?", "What does HTTP stand for?"]


@pytest.fixture
def make_arena(people, provider):
    from apps.arena import services

    def _make(contestants=("fakeai/strong", "fakeai/weak"), prompts=PROMPTS, user=None, **kw):
        return services.arena_create(user=user or people.owner, name=kw.pop("name", "Strong vs weak"),
                                     contestants=list(contestants), prompts=list(prompts) if prompts else None, **kw)
    return _make


@pytest.fixture
def generate():
    """Run an arena's generation job inline (as the worker would) and return the arena, reloaded."""
    def _run(arena):
        from apps.arena.models import Arena
        from apps.arena.services import arena_generate_process

        arena_generate_process(arena_id=arena.pk)
        return Arena.objects.get(pk=arena.pk)
    return _run


def vote_all(arena, user, choose) -> int:
    """Vote on every pair `user` is given: `choose(left_text, right_text) -> winner`. Returns the count."""
    from apps.arena import selectors, services

    n = 0
    while True:
        v = services.arena_next(user=user, arena_id=arena.pk)
        if v is None:
            return n
        p = selectors.match_payload(v)
        services.vote_cast(user=user, arena_id=arena.pk, match_id=p["match_id"],
                           winner=choose(p["left"]["text"], p["right"]["text"]))
        n += 1


def prefer_longer(left: str, right: str) -> str:
    return "left" if len(left) >= len(right) else "right"
