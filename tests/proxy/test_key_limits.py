"""Per-key limits on /v1 (apps/proxy/limits.py), through the real ASGI app served by uvicorn and the
official SDKs: allowed aliases and models (403 in both dialects, and /v1/models), requests and tokens per
minute (429 with retry-after), the monthly budget (429 insufficient_quota, surviving a Redis restart),
expiry (401), Redis outages (served, never a 500) and the Redis round trips a request costs."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

import anthropic
import httpx
import openai
import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from apps.accounts import key_cache
from apps.accounts.models import ApiKey, ApiKeyUsage
from apps.accounts.services import api_key_create
from apps.proxy import limits

MSG = [{"role": "user", "content": "hi"}]


def _oai(hub_server, key):
    return openai.OpenAI(base_url=hub_server.url + "/v1", api_key=key, max_retries=0, timeout=20)


def _ant(hub_server, key):
    return anthropic.Anthropic(base_url=hub_server.url, api_key=key, max_retries=0, timeout=20)


def _key(user, **limits_) -> str:
    return api_key_create(user=user, name="limited", **limits_).plaintext


def _key_id(raw: str) -> int:
    return key_cache.resolve(raw).id


def _window_sum(r, key: str) -> int:
    return sum(int(v) for v in r.hgetall(key).values())


# --- allowed aliases and models -------------------------------------------------------------------
def test_allowed_lists_refuse_other_models_in_both_dialects(hub_server, versions, limits_redis, member):
    key = _key(member, allowed_aliases=["production"], allowed_models=["claude-*"])
    with _oai(hub_server, key) as oai:
        assert oai.chat.completions.create(model="production", messages=MSG).choices[0].message.content
        for name in ("cloud", f"mv-{versions['local'].pk}", str(versions["local"].pk)):
            with pytest.raises(openai.PermissionDeniedError) as exc:
                oai.chat.completions.create(model=name, messages=MSG)
            assert exc.value.status_code == 403 and exc.value.code == "model_not_allowed", name
            assert exc.value.param == "model" and name in exc.value.message
        with pytest.raises(openai.PermissionDeniedError):  # streaming too, before anything is streamed
            oai.chat.completions.create(model="cloud", messages=MSG, stream=True)
        assert [m.id for m in oai.models.list()] == ["production"]  # only what the key may use
        with pytest.raises(openai.NotFoundError):
            oai.models.retrieve("cloud")
        assert oai.models.retrieve("production").id == "production"

    with _ant(hub_server, key) as ant:
        # a Claude name matches `claude-*` (and falls back to the alias `haiku` for routing)
        msg = ant.messages.create(model="claude-3-5-haiku-latest", max_tokens=16, messages=MSG)
        assert msg.content[0].text
        with pytest.raises(anthropic.PermissionDeniedError) as exc:
            ant.messages.create(model="cloud", max_tokens=16, messages=MSG)
        assert exc.value.status_code == 403
        assert exc.value.body["type"] == "error" and exc.value.body["error"]["type"] == "permission_error"
        assert "may not use the model `cloud`" in exc.value.body["error"]["message"]


def test_an_unset_list_allows_every_name_of_its_kind(hub_server, versions, limits_redis, member, admin_user):
    """Only aliases listed: any model version is still allowed, any other alias is not — including one
    created after the key's check first ran (the alias-name set is invalidated)."""
    from apps.registry.services import alias_deploy

    key = _key(member, allowed_aliases=["production"])
    with _oai(hub_server, key) as oai:
        oai.chat.completions.create(model=f"mv-{versions['remote'].pk}", messages=MSG)
        with pytest.raises(openai.PermissionDeniedError):
            oai.chat.completions.create(model="cloud", messages=MSG)
        with pytest.raises(openai.NotFoundError):  # not an alias yet: a model name, allowed, unknown
            oai.chat.completions.create(model="fresh", messages=MSG)
        alias_deploy(actor=admin_user, version_id=versions["local"].pk, alias="fresh")
        with pytest.raises(openai.PermissionDeniedError):
            oai.chat.completions.create(model="fresh", messages=MSG)
        assert {m.id for m in oai.models.list()} == {"production", f"mv-{versions['local'].pk}",
                                                     f"mv-{versions['remote'].pk}"}


def test_an_unlimited_key_sees_and_uses_everything(hub_server, versions, limits_redis, member):
    key = _key(member)
    with _oai(hub_server, key) as oai:
        assert {"production", "cloud", "haiku"} <= {m.id for m in oai.models.list()}
        for _ in range(3):
            oai.chat.completions.create(model="cloud", messages=MSG)
    assert limits_redis.keys("hub:lim:*") == []  # nothing counted for a key without limits


# --- requests per minute --------------------------------------------------------------------------
def test_rpm_gives_429_with_retry_after_in_both_dialects(hub_server, versions, limits_redis, member):
    key = _key(member, rpm=2)
    with _oai(hub_server, key) as oai:
        oai.chat.completions.create(model="production", messages=MSG)
        oai.chat.completions.create(model="production", messages=MSG)
        with pytest.raises(openai.RateLimitError) as exc:
            oai.chat.completions.create(model="production", messages=MSG)
    err = exc.value
    assert err.status_code == 429 and err.code == "rate_limit_exceeded" and err.type == "rate_limit_error"
    retry_after = int(err.response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert 0 < int(err.response.headers["retry-after-ms"]) <= 60_000
    assert err.response.headers["x-ratelimit-limit-requests"] == "2"
    assert "requests per minute" in err.message

    with _ant(hub_server, key) as ant:
        with pytest.raises(anthropic.RateLimitError) as exc:
            ant.messages.create(model="production", max_tokens=16, messages=MSG)
    assert exc.value.body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(exc.value.response.headers["retry-after"]) <= 60
    assert _window_sum(limits_redis, limits.requests_key(_key_id(key))) == 2  # refusals are not counted


def test_the_window_slides_and_retry_after_is_when_room_frees_up(limits_redis, member):
    """A request counted 59 s ago leaves the window in about a second: retry-after says so, and after it
    the key is admitted again."""
    key = key_cache.KeyInfo(id=987654, user_id=member.pk, name="k", rpm=1)
    now = int(limits_redis.time()[0])
    limits_redis.hset(limits.requests_key(key.id), str(now - 59), 1)

    async def admit():
        await limits.admit(key, "production", 10)

    with pytest.raises(limits.ProxyError) as exc:
        async_to_sync(admit)()
    ms = int(exc.value.headers["retry-after-ms"])
    assert 0 < ms <= 1000 and exc.value.headers["retry-after"] == "1"
    time.sleep(ms / 1000 + 0.05)
    async_to_sync(admit)()  # admitted: the old request left the window
    with pytest.raises(limits.ProxyError) as exc:
        async_to_sync(admit)()
    assert 59_000 <= int(exc.value.headers["retry-after-ms"]) <= 60_000


# --- tokens per minute ----------------------------------------------------------------------------
def test_tpm_counts_real_usage_streamed_or_not(hub_server, versions, limits_redis, member):
    key = _key(member, tpm=60)
    tokens_key = limits.tokens_key(_key_id(key))
    charged = 0
    with _oai(hub_server, key) as oai:
        r = oai.chat.completions.create(model="production", messages=MSG)
        charged += r.usage.total_tokens
        assert _window_sum(limits_redis, tokens_key) == charged
        chunks = list(oai.chat.completions.create(model="production", messages=MSG, stream=True,
                                                  stream_options={"include_usage": True}))
        charged += chunks[-1].usage.total_tokens
        assert _window_sum(limits_redis, tokens_key) == charged  # charged when the stream ended
        est = None
        for _ in range(20):
            try:
                r = oai.chat.completions.create(model="production", messages=MSG)
                charged += r.usage.total_tokens
            except openai.RateLimitError as exc:
                est = exc
                break
        assert est is not None, "the tokens-per-minute limit never refused"
    assert est.code == "rate_limit_exceeded" and "tokens per minute" in est.message
    assert est.response.headers["x-ratelimit-limit-tokens"] == "60"
    assert 1 <= int(est.response.headers["retry-after"]) <= 60
    used = _window_sum(limits_redis, tokens_key)
    assert used == charged and used <= 60
    # refused because what was used plus this request's estimate does not fit
    body_estimate = int(est.message.split("requested about ")[1].split(".")[0].replace(",", ""))
    assert used + body_estimate > 60


def test_a_request_larger_than_tpm_is_told_it_can_never_fit(hub_server, versions, limits_redis, member):
    key = _key(member, tpm=10)
    with _oai(hub_server, key) as oai:
        with pytest.raises(openai.RateLimitError) as exc:
            oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "x" * 400}])
    assert "Request too large" in exc.value.message
    assert exc.value.response.headers["x-should-retry"] == "false"  # the SDKs do not retry it


# --- monthly budget -------------------------------------------------------------------------------
def test_monthly_budget_is_enforced_persisted_and_survives_a_redis_restart(hub_server, versions, limits_redis,
                                                                           member):
    key = _key(member, monthly_tokens=25)
    key_id = _key_id(key)
    used = 0
    with _oai(hub_server, key) as oai:
        while used < 25:
            used += oai.chat.completions.create(model="production", messages=MSG).usage.total_tokens
        with pytest.raises(openai.RateLimitError) as exc:
            oai.chat.completions.create(model="production", messages=MSG)
    err = exc.value
    assert err.code == "insufficient_quota" and err.response.headers["x-should-retry"] == "false"
    now = dt.datetime.now(dt.timezone.utc)
    next_month = (now.replace(day=1) + dt.timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0,
                                                                      microsecond=0)
    assert abs(int(err.response.headers["retry-after"]) - (next_month - now).total_seconds()) < 5

    assert limits.usage_persist() == 1  # what the periodic job does
    month = now.date().replace(day=1)
    assert ApiKeyUsage.objects.get(api_key_id=key_id, month=month).tokens == used
    assert limits.month_usage([key_id]) == {key_id: used}

    limits_redis.flushall()  # Redis restarted empty: the budget is seeded back from the database
    with _oai(hub_server, key) as oai:
        with pytest.raises(openai.RateLimitError) as exc:
            oai.chat.completions.create(model="production", messages=MSG)
    assert exc.value.code == "insufficient_quota"
    assert int(limits_redis.get(limits.month_key(key_id, limits._month()))) == used


def test_the_scheduler_persists_usage_every_minute(limits_redis, member):
    """workers/keys.py: registered with the scheduler (dramatiq-crontab) at a 60 s interval; the actor
    copies the month counters charged since its last run."""
    from dramatiq_crontab import scheduler

    import workers.tasks  # noqa: F401  (what `manage.py crontab` and the workers import)
    from workers.keys import key_usage_persist

    jobs = [j for j in scheduler.get_jobs() if "key_usage_persist" in j.name]
    assert len(jobs) == 1 and jobs[0].trigger.interval.total_seconds() == 60
    key = key_cache.KeyInfo(id=api_key_create(user=member, monthly_tokens=1000).api_key.pk, user_id=member.pk,
                            name="k", monthly_tokens=1000)

    async def charge(n):
        await limits.charge(key, n)

    async_to_sync(charge)(30)
    async_to_sync(charge)(12)
    key_usage_persist.fn()
    assert ApiKeyUsage.objects.get(api_key_id=key.id).tokens == 42
    assert limits_redis.scard(limits.dirty_key()) == 0  # nothing left to copy
    key_usage_persist.fn()  # nothing changed: nothing written
    assert ApiKeyUsage.objects.get(api_key_id=key.id).tokens == 42


def test_usage_persist_never_lowers_the_stored_count(limits_redis, member):
    from apps.accounts.services import api_key_usage_record

    created = api_key_create(user=member, monthly_tokens=1000)
    month = timezone.now().date().replace(day=1)
    api_key_usage_record(key_id=created.api_key.pk, month=month, tokens=500)
    api_key_usage_record(key_id=created.api_key.pk, month=month, tokens=200)
    assert ApiKeyUsage.objects.get(api_key=created.api_key).tokens == 500


# --- expiry ---------------------------------------------------------------------------------------
def test_an_expired_key_gets_401_key_expired(hub_server, versions, limits_redis, member):
    key = _key(member, expires_at=timezone.now() + dt.timedelta(hours=1))
    with _oai(hub_server, key) as oai:
        oai.chat.completions.create(model="production", messages=MSG)  # cached now
        ApiKey.objects.filter(pk=_key_id(key)).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        key_cache.clear()
        with pytest.raises(openai.AuthenticationError) as exc:
            oai.chat.completions.create(model="production", messages=MSG)
        assert exc.value.code == "key_expired"
        with pytest.raises(openai.AuthenticationError):
            oai.models.list()
    with _ant(hub_server, key) as ant:
        with pytest.raises(anthropic.AuthenticationError) as exc:
            ant.messages.create(model="production", max_tokens=16, messages=MSG)
    assert exc.value.body["error"]["type"] == "authentication_error"
    r = httpx.get(hub_server.url + "/api/me", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 401 and r.json()["code"] == "key_expired"


def test_expiry_is_checked_in_process_without_an_invalidation(limits_redis, member):
    """A cached key expires on time by itself: no TTL, no message needed."""
    info = key_cache.KeyInfo(id=1, user_id=member.pk, name="k", expires_at=time.time() + 0.3)

    async def admit():
        await limits.admit(info, "production", 1)

    async_to_sync(admit)()
    time.sleep(0.35)
    with pytest.raises(limits.ProxyError) as exc:
        async_to_sync(admit)()
    assert exc.value.status == 401 and exc.value.code == "key_expired"


# --- Redis unreachable ----------------------------------------------------------------------------
def test_requests_are_served_when_redis_is_unreachable(hub_server, versions, settings, member, caplog):
    from apps.core import invalidation
    from apps.proxy import gateway

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    invalidation.reset()
    limits.reset()
    gateway.caches_clear()
    key = _key(member, rpm=1, tpm=5, monthly_tokens=1)
    try:
        with caplog.at_level(logging.WARNING, logger="apps.proxy.limits"), _oai(hub_server, key) as oai:
            for _ in range(3):  # far past every limit: limits are off, serving is not
                assert oai.chat.completions.create(model="production", messages=MSG).choices
            chunks = list(oai.chat.completions.create(model="production", messages=MSG, stream=True))
            assert chunks
        assert any("Redis failed" in r.getMessage() and "serving without rate limits" in r.getMessage()
                   for r in caplog.records)
    finally:
        invalidation.reset()
        limits.reset()


def test_redis_dying_mid_traffic_fails_open_fast(hub_server, versions, settings, member, tmp_path):
    from apps.core import invalidation
    from apps.proxy import gateway
    from training_hub import embedded_redis

    proc, url = embedded_redis.start(tmp_path)
    settings.REDIS_URL = url
    invalidation.reset()
    limits.reset()
    gateway.caches_clear()
    key = _key(member, rpm=2)
    try:
        with _oai(hub_server, key) as oai:
            oai.chat.completions.create(model="production", messages=MSG)
            embedded_redis.stop(proc)
            started = time.monotonic()
            for _ in range(4):
                oai.chat.completions.create(model="production", messages=MSG)
            assert time.monotonic() - started < 5
    finally:
        embedded_redis.stop(proc)
        invalidation.reset()
        limits.reset()


# --- cost -----------------------------------------------------------------------------------------
def _commands(r) -> dict:
    """Calls per command since the server started (commands run inside a script are counted too)."""
    return {k.split("_", 1)[1]: v["calls"] for k, v in r.info("commandstats").items()}


def test_redis_round_trips_per_request(hub_server, versions, limits_redis, member):
    """A key with rpm, tpm and a budget: one EVALSHA to admit and one to charge, per request (after the
    month counter exists), and no other command sent. A key without limits: nothing at all."""
    limited = _key(member, rpm=1000, tpm=10**9, monthly_tokens=10**9)
    free = _key(member)
    script_only = {"hincrby", "hgetall", "hdel", "time", "expire", "incrby", "sadd", "exists", "get"}
    with _oai(hub_server, limited) as oai:
        oai.chat.completions.create(model="production", messages=MSG)  # scripts loaded, month seeded
        before, sent = _commands(limits_redis), limits.round_trips
        n = 20
        for _ in range(n):
            oai.chat.completions.create(model="production", messages=MSG)
        for _ in range(n):
            list(oai.chat.completions.create(model="production", messages=MSG, stream=True))
        after = _commands(limits_redis)
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    print(f"\nRedis commands for {2 * n} limited requests (script-internal ones included):", delta)
    top_level = {k: v for k, v in delta.items() if k not in script_only and k.split("|")[0] not in
                 ("info", "ping", "client", "hello")}
    assert top_level == {"evalsha": 4 * n}  # 2 per request: admit + charge
    assert limits.round_trips - sent == 4 * n
    with _oai(hub_server, free) as oai:
        before = _commands(limits_redis)
        for _ in range(n):
            oai.chat.completions.create(model="production", messages=MSG)
        after = _commands(limits_redis)
    assert {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)
            and k.split("|")[0] not in ("info", "ping")} == {}


def test_admit_and_charge_add_little_latency(limits_redis, member):
    """Reported, loosely bounded: the Redis cost of admit + charge on a local Redis."""
    key = key_cache.KeyInfo(id=424242, user_id=member.pk, name="k", rpm=10**6, tpm=10**9, monthly_tokens=10**12)

    async def run(n):
        await limits.admit(key, "production", 10)
        await limits.charge(key, 10)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            await limits.admit(key, "production", 10)
            await limits.charge(key, 10)
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        return samples[len(samples) // 2], samples[int(len(samples) * 0.99) - 1]

    p50, p99 = asyncio.run(run(500))
    print(f"\nadmit + charge on a unix-socket Redis: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    assert p50 < 5
