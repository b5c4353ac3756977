"""Routing on a chain: the circuit breaker (open, half-open probe, shared through Redis), context overflow
falling through (a hub version's context from its model folder, an upstream's own 400), an alias's settings
(max-tokens cap, temperature, system prefix, tool allow-list with dropped tools counted), the concurrency
cap, and warm requests that read no database."""
from __future__ import annotations

import json
import time

import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

MSGS = [{"role": "user", "content": "hi"}]


@pytest.fixture
def logged(monkeypatch):
    from apps.proxy import services

    rows: list = []
    monkeypatch.setattr(services, "request_log_enqueue", rows.append)
    return rows


# --- circuit breaker --------------------------------------------------------------------------------
def test_breaker_opens_after_n_failures_then_probes_half_open(chains, oai, settings, logged):
    from apps.proxy import breaker, providers

    settings.HUB_BREAKER_FAILURES = 2
    settings.HUB_BREAKER_COOLDOWN_S = 0.6
    flaky = providers.provider_create(actor=chains.admin, name="flaky", kind="openai",
                                      base_url=chains.providers["refused"].base_url,
                                      timeouts={"connect_s": 1, "first_byte_s": 1, "total_s": 5})
    chains.set("br", [{"provider": "flaky", "model": "ok"}, {"provider": "faulty", "model": "ok-b"}])
    label = "provider:flaky/ok"
    for _ in range(2):
        assert oai.chat.completions.create(model="br", messages=MSGS).choices[0].message.content == "from ok-b: hi"
    assert [a["status"] for a in logged[-1]["attempts"]] == ["connect_error", "ok"]
    snap = next(s for s in breaker.snapshot() if s["target"] == label)
    assert (snap["state"], snap["failures"]) == ("open", 2) and snap["opened_at"]
    # open: skipped without a connection attempt
    r = oai.chat.completions.with_raw_response.create(model="br", messages=MSGS)
    assert r.headers["x-hub-served-by"] == "provider:faulty/ok-b"
    assert [a["status"] for a in logged[-1]["attempts"]] == ["breaker_open", "ok"]
    assert logged[-1]["attempts"][0]["ms"] < 50
    # after the cooldown one probe goes through; it fails: open again
    time.sleep(0.7)
    oai.chat.completions.create(model="br", messages=MSGS)
    assert [a["status"] for a in logged[-1]["attempts"]] == ["connect_error", "ok"]
    assert breaker.state_of(label) == "open"
    # the provider is fixed: the next probe succeeds and closes the breaker
    providers.provider_update(actor=chains.admin, provider_id=flaky.pk, base_url=chains.upstream.url + "/v1")
    time.sleep(0.7)
    r = oai.chat.completions.with_raw_response.create(model="br", messages=MSGS)
    assert r.headers["x-hub-served-by"] == label and r.headers["x-hub-fallback"] == "false"
    assert breaker.state_of(label) == "closed"
    assert next(s for s in breaker.snapshot() if s["target"] == label)["failures"] == 0


def test_breaker_open_on_the_only_target_answers_503_with_retry_after(chains, oai, settings):
    settings.HUB_BREAKER_FAILURES = 1
    settings.HUB_BREAKER_COOLDOWN_S = 30
    chains.set("one", [{"provider": "faulty", "model": "500"}])
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="one", messages=MSGS)
    hits = chains.upstream.hits["500"]
    with pytest.raises(openai.InternalServerError) as info:
        oai.chat.completions.create(model="one", messages=MSGS)
    assert info.value.status_code == 503 and "circuit breaker" in info.value.message
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 30
    assert chains.upstream.hits["500"] == hits


def test_a_failure_after_the_first_byte_counts_for_the_breaker(chains, oai, settings):
    from apps.proxy import breaker

    settings.HUB_BREAKER_FAILURES = 1
    chains.set("late", [{"provider": "faulty", "model": "drop:400"}])
    with pytest.raises(openai.APIError):
        list(oai.chat.completions.create(model="late", messages=MSGS, stream=True))
    deadline = time.time() + 3
    while breaker.state_of("provider:faulty/drop:400") != "open" and time.time() < deadline:
        time.sleep(0.02)
    assert breaker.state_of("provider:faulty/drop:400") == "open"


def test_breaker_state_is_shared_through_redis(limits_redis, settings):
    """Another process (played by forgetting this one's memory) sees the breaker opened here."""
    from asgiref.sync import async_to_sync

    from apps.proxy import breaker

    settings.HUB_BREAKER_FAILURES = 2
    breaker.reset()
    for _ in range(2):
        async_to_sync(breaker.record_failure)("provider:x/y")
    raw = limits_redis.hgetall("hub:breaker:provider:x/y")
    assert raw[b"state"] == b"open" and raw[b"failures"] == b"2"
    breaker.forget_local()  # a fresh process: nothing in memory
    assert async_to_sync(breaker.allow)("provider:x/y") is False  # read from Redis once
    assert [s["state"] for s in breaker.snapshot() if s["target"] == "provider:x/y"] == ["open"]
    breaker.reset("provider:x/y")
    assert not limits_redis.exists("hub:breaker:provider:x/y")
    assert async_to_sync(breaker.allow)("provider:x/y") is True


def test_breaker_falls_back_to_local_state_without_redis(settings):
    from asgiref.sync import async_to_sync

    from apps.proxy import breaker

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.HUB_BREAKER_FAILURES = 1
    breaker.forget_local()
    async_to_sync(breaker.record_failure)("version:999")
    assert async_to_sync(breaker.allow)("version:999") is False
    assert [s["state"] for s in breaker.snapshot() if s["target"] == "version:999"] == ["open"]
    breaker.forget_local()


# --- context overflow -------------------------------------------------------------------------------
@pytest.fixture
def small_version(wired, tmp_path):
    """A hub version whose base model folder says a 64-token context (config.json)."""
    from apps.registry.models import BaseModel
    from apps.registry.services import model_version_register

    folder = tmp_path / "small-base"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 64}))
    base = BaseModel.objects.create(id="small", name="small", path=str(folder), context_length=64)
    return model_version_register(name="small one", kind="adapter", base_model=base)


def test_a_prompt_longer_than_a_versions_context_falls_through(chains, small_version, oai, logged):
    chains.set("ctx", [{"model_version_id": small_version.pk}, {"provider": "faulty", "model": "ok-b"}])
    long_text = "word " * 400  # ~500 tokens by any count: more than 64
    r = oai.chat.completions.with_raw_response.create(model="ctx", messages=[{"role": "user", "content": long_text}])
    assert r.headers["x-hub-served-by"] == "provider:faulty/ok-b" and r.headers["x-hub-fallback"] == "true"
    assert logged[-1]["attempts"][0]["status"] == "context_overflow"
    assert not any(s["body"]["model"] == f"mv-{small_version.pk}" for s in chains_seen(chains))
    # a short prompt stays on the version, its max_tokens lowered to what still fits
    r = oai.chat.completions.with_raw_response.create(model="ctx", messages=MSGS, max_tokens=500)
    assert r.headers["x-hub-served-by"] == f"version:{small_version.pk}"


def chains_seen(chains):
    return chains.upstream.seen


def test_no_target_fits_gives_the_dialects_own_context_error(chains, small_version, oai, claude_sdk, wired):
    import anthropic

    chains.set("ctx", [{"model_version_id": small_version.pk}])
    long_text = "word " * 400
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model="ctx", messages=[{"role": "user", "content": long_text}])
    err = info.value.body
    assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
    assert err["message"].startswith("This model's maximum context length is 64 tokens. However, your messages "
                                     "resulted in ")
    with pytest.raises(anthropic.BadRequestError) as info:
        claude_sdk.messages.create(model="ctx", max_tokens=20, messages=[{"role": "user", "content": long_text}])
    msg = info.value.body["error"]["message"]
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert msg.startswith("prompt is too long: ") and msg.endswith(" tokens > 64 maximum")
    assert not any(s["body"].get("model") == f"mv-{small_version.pk}" for s in wired.seen)


def test_max_tokens_is_lowered_to_fit_the_context(chains, small_version, oai, wired):
    chains.set("ctx", [{"model_version_id": small_version.pk}])
    oai.chat.completions.create(model="ctx", messages=MSGS, max_tokens=500)
    sent = wired.seen[-1]["body"]
    assert sent["model"] == f"mv-{small_version.pk}" and 16 <= sent["max_tokens"] < 64


def test_an_upstream_context_400_falls_through(chains, oai, logged):
    chains.set("ctx2", [{"provider": "faulty", "model": "context"}, {"provider": "faulty", "model": "ok-b"}])
    assert oai.chat.completions.create(model="ctx2", messages=MSGS).choices[0].message.content == "from ok-b: hi"
    assert logged[-1]["attempts"][0]["status"] == "context_overflow"


def test_a_provider_context_length_skips_without_a_call(chains, oai, logged):
    from apps.proxy import providers

    providers.provider_update(actor=chains.admin, provider_id=chains.providers["faulty"].pk, context_length=50)
    providers.provider_create(actor=chains.admin, name="big", kind="openai",
                              base_url=chains.upstream.url + "/v1", api_key="sk-test")
    chains.set("ctx3", [{"provider": "faulty", "model": "ok"}, {"provider": "big", "model": "ok-b"}])
    oai.chat.completions.create(model="ctx3", messages=[{"role": "user", "content": "word " * 400}])
    assert [a["status"] for a in logged[-1]["attempts"]] == ["context_overflow", "ok"]
    assert chains.upstream.hits["ok"] == 0


# --- alias settings ---------------------------------------------------------------------------------
TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
         for n in ("get_weather", "run_shell", "read_file")]


def test_settings_cap_default_prefix_and_allow_list(chains, versions, oai, wired, logged):
    chains.set("capped", [{"model_version_id": versions["local"].pk}],
               {"max_tokens": 50, "temperature": 0.3, "system_prefix": "Be brief.", "tools_allow": ["get_weather"]})
    oai.chat.completions.create(model="capped", messages=[{"role": "system", "content": "You help."}, *MSGS],
                                max_tokens=1000, tools=TOOLS, tool_choice={"type": "function",
                                                                           "function": {"name": "run_shell"}})
    sent = wired.seen[-1]["body"]
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.3
    assert sent["messages"][0] == {"role": "system", "content": "Be brief.\n\nYou help."}
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert sent["tool_choice"] == "auto"  # it named a dropped tool
    assert logged[-1]["tools_dropped"] == 2 and logged[-1]["alias"] == "capped"
    # the request's own values win where they are within the cap; no system message: one is added
    oai.chat.completions.create(model="capped", messages=MSGS, max_tokens=10, temperature=1.5)
    sent = wired.seen[-1]["body"]
    assert sent["max_tokens"] == 10 and sent["temperature"] == 1.5
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "tools" not in sent and logged[-1]["tools_dropped"] == 0
    # only dropped tools: tools and tool_choice go
    oai.chat.completions.create(model="capped", messages=MSGS, tools=TOOLS[1:], tool_choice="required")
    sent = wired.seen[-1]["body"]
    assert "tools" not in sent and "tool_choice" not in sent and logged[-1]["tools_dropped"] == 2


def test_settings_apply_to_anthropic_requests(chains, versions, claude_sdk, wired):
    chains.set("capped", [{"model_version_id": versions["local"].pk}],
               {"max_tokens": 64, "tools_allow": ["get_weather"]})
    tools = [{"name": n, "input_schema": {"type": "object"}} for n in ("get_weather", "run_shell")]
    claude_sdk.messages.create(model="capped", max_tokens=32000, messages=MSGS, tools=tools)
    sent = wired.seen[-1]["body"]
    assert sent["max_tokens"] == 64 and [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]


def test_settings_apply_natively_to_an_anthropic_provider(chains, claude_sdk):
    chains.set("cl", [{"provider": "claude", "model": "ok"}],
               {"max_tokens": 64, "temperature": 1.7, "system_prefix": "Prefix.", "tools_allow": ["get_weather"]})
    tools = [{"name": n, "input_schema": {"type": "object"}} for n in ("get_weather", "run_shell")]
    claude_sdk.messages.create(model="cl", max_tokens=32000, messages=MSGS, tools=tools,
                               system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
                               tool_choice={"type": "tool", "name": "run_shell"})
    sent = chains.upstream.seen[-1]["body"]
    assert sent["max_tokens"] == 64 and sent["temperature"] == 1.0  # Anthropic's range ends at 1
    assert sent["system"][0] == {"type": "text", "text": "Prefix."} and sent["system"][1]["text"] == "sys"
    assert [t["name"] for t in sent["tools"]] == ["get_weather"] and sent["tool_choice"] == {"type": "auto"}


def test_alias_without_chain_serves_its_deployed_version(versions, oai):
    r = oai.chat.completions.with_raw_response.create(model="production", messages=MSGS)
    assert r.headers["x-hub-served-by"] == f"version:{versions['local'].pk}"
    assert r.headers["x-hub-fallback"] == "false"


# --- concurrency cap --------------------------------------------------------------------------------
def test_a_full_provider_is_skipped_when_another_target_follows(chains, oai, logged):
    from apps.proxy import providers, upstream

    providers.provider_update(actor=chains.admin, provider_id=chains.providers["faulty"].pk, max_concurrency=1)
    chains.set("cap", [{"provider": "faulty", "model": "ok"}, {"provider": "claude", "model": "ok"}])
    pid = chains.providers["faulty"].pk
    assert upstream._try_acquire(pid, 1)  # someone else holds the only slot
    try:
        r = oai.chat.completions.with_raw_response.create(model="cap", messages=MSGS)
    finally:
        upstream._release(pid)
    assert [a["status"] for a in logged[-1]["attempts"]] == ["overloaded", "ok"]
    assert upstream.inflight(pid) == 0
    r = oai.chat.completions.with_raw_response.create(model="cap", messages=MSGS, stream=True)
    list(r.parse())
    assert r.headers["x-hub-served-by"] == "provider:faulty/ok"
    assert upstream.inflight(pid) == 0  # released when the stream ended


# --- the hot path -----------------------------------------------------------------------------------
def test_warm_plans_come_from_the_cache_until_a_chain_or_provider_changes(limits_redis, chains, monkeypatch):
    from asgiref.sync import async_to_sync

    from apps.proxy import gateway, providers, selectors

    chains.set("hot", [{"provider": "faulty", "model": "ok"}])
    calls = []
    real = selectors.plan_resolve
    monkeypatch.setattr(selectors, "plan_resolve", lambda *a, **k: calls.append(a) or real(*a, **k))

    def plan():
        return async_to_sync(gateway.resolve_plan)(gateway.Call(endpoint="test"), "hot")

    assert plan().targets[0].api_key == "sk-test"
    assert plan().targets[0].label == "provider:faulty/ok"
    assert len(calls) == 1  # the second lookup read nothing
    providers.provider_update(actor=chains.admin, provider_id=chains.providers["faulty"].pk, api_key="sk-new")
    assert plan().targets[0].api_key == "sk-new" and len(calls) == 2
    chains.set("hot", [{"provider": "faulty", "model": "ok-b"}])
    assert plan().targets[0].upstream_model == "ok-b" and len(calls) == 3
