"""Failed log-ins and failed API keys are throttled per IP and per account (username / key), with a
429 in the interface's format; successful attempts are never counted."""
from __future__ import annotations

import pytest
from django.test import Client

from tests.security.conftest import asgi_call



@pytest.fixture
def limits(settings):
    settings.HUB_THROTTLE_FAILURES_PER_IP = 5
    settings.HUB_THROTTLE_FAILURES_PER_ACCOUNT = 3
    settings.HUB_THROTTLE_WINDOW_S = 120
    return settings


def _login(client, username, password, ip="10.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


# --- the login form --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_login_locks_a_username_after_failed_attempts(client, member, limits):
    for _ in range(3):
        r = _login(client, "member", "wrong-password")
        assert r.status_code == 200 and b"Please enter a correct username" in r.content
    r = _login(client, "Member", "pw-123456", ip="10.0.0.2")  # right password, another IP, same account
    assert r.status_code == 429
    assert 0 < int(r["Retry-After"]) <= 120
    assert b"Too many failed log-in attempts" in r.content and b"_auth_user_id" not in r.content
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_login_locks_an_ip_after_failed_attempts_on_many_usernames(client, member, make_user, limits):
    make_user("other")
    for i in range(5):
        assert _login(client, f"nobody{i}", "x").status_code == 200
    assert _login(client, "other", "pw-123456").status_code == 429  # this IP is locked
    assert _login(client, "other", "pw-123456", ip="10.0.0.9").status_code == 302  # another is not


@pytest.mark.django_db
def test_successful_logins_lock_no_one_out(member, limits):
    for _ in range(10):
        c = Client()
        assert _login(c, "member", "pw-123456").status_code == 302


@pytest.mark.django_db
def test_login_keeps_its_csrf_check(member):
    c = Client(enforce_csrf_checks=True)
    assert c.post("/accounts/login/", {"username": "member", "password": "pw-123456"}).status_code == 403
    c.get("/accounts/login/")
    token = c.cookies["csrftoken"].value
    r = c.post("/accounts/login/", {"username": "member", "password": "pw-123456", "csrfmiddlewaretoken": token})
    assert r.status_code == 302


# --- API keys on /api and /v1 (the ASGI guard) ------------------------------------------------------
def _wrong(api_key: str) -> str:
    return api_key[:-4] + ("aaaa" if not api_key.endswith("aaaa") else "bbbb")


@pytest.mark.django_db(transaction=True)
async def test_a_key_is_locked_after_failed_attempts_in_each_format(hub_app, api_key, limits):
    bad = _wrong(api_key)  # same prefix, wrong secret
    for i in range(3):
        r = await asgi_call(hub_app, "GET", "/api/me", headers={"authorization": f"Bearer {bad}"},
                            client=f"10.1.0.{i}")
        assert r.status == 401
    # Even the right secret for that key is refused now, from any address, with a Retry-After.
    r = await asgi_call(hub_app, "GET", "/api/me", headers={"authorization": f"Bearer {api_key}"}, client="10.1.1.1")
    assert r.status == 429 and r.json()["code"] == "throttled" and 0 < int(r.headers["retry-after"]) <= 120
    r = await asgi_call(hub_app, "POST", "/v1/chat/completions",
                        headers={"authorization": f"Bearer {api_key}", "content-length": "2"}, chunks=[b"{}"],
                        client="10.1.1.2")
    assert r.status == 429 and r.body_messages_read == 0
    err = r.json()["error"]
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded" and r.headers["retry-after"]
    r = await asgi_call(hub_app, "POST", "/v1/messages", headers={"x-api-key": api_key, "content-length": "2"},
                        chunks=[b"{}"], client="10.1.1.3")
    assert r.status == 429 and r.json()["error"]["type"] == "rate_limit_error" and r.headers["retry-after"]


@pytest.mark.django_db(transaction=True)
async def test_an_ip_is_locked_after_failed_keys_but_others_are_not(hub_app, api_key, limits):
    for i in range(5):  # a different made-up key each time: only the IP count reaches its limit
        r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer th_{i:08x}_nope"},
                            client="10.2.0.1")
        assert r.status == 401
    r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {api_key}"}, client="10.2.0.1")
    assert r.status == 429
    r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {api_key}"}, client="10.2.0.2")
    assert r.status == 200


@pytest.mark.django_db(transaction=True)
async def test_valid_keys_are_never_counted(hub_app, api_key, limits):
    for _ in range(12):
        r = await asgi_call(hub_app, "GET", "/api/me", headers={"authorization": f"Bearer {api_key}"})
        assert r.status == 200


def test_throttle_fails_open_when_the_cache_is_down(monkeypatch, settings, caplog):
    from django.core.cache.backends.redis import RedisCache

    from apps.accounts import throttle

    settings.HUB_THROTTLE_FAILURES_PER_ACCOUNT = 1
    monkeypatch.setattr(throttle, "cache", RedisCache("redis://127.0.0.1:1/0", {}))  # nothing listens there
    throttle.record_failure(throttle.LOGIN, ip="10.3.0.1", account="x")
    assert throttle.retry_after(throttle.LOGIN, ip="10.3.0.1", account="x") == 0
    assert "cache is unavailable" in caplog.text


# --- the guard's in-memory "not locked" answers ------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_a_lock_applies_at_once_even_right_after_the_key_was_let_through(hub_app, api_key, limits):
    """The guard remembers for a second that a key and IP were not locked (no cache round trip per /v1
    call); a lock recorded in this process forgets that at once."""
    r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {api_key}"}, client="10.4.0.1")
    assert r.status == 200
    bad = _wrong(api_key)
    for _ in range(3):
        r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {bad}"}, client="10.4.0.1")
        assert r.status == 401
    r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {api_key}"}, client="10.4.0.1")
    assert r.status == 429


@pytest.mark.django_db(transaction=True)
async def test_a_lock_set_by_another_process_is_seen_on_its_message_or_within_the_memory_window(
        hub_app, api_key, limits, monkeypatch):
    import time

    from django.core.cache import cache

    from apps.accounts import services, throttle
    from apps.core import invalidation

    ip = "10.5.0.1"
    r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {api_key}"}, client=ip)
    assert r.status == 200
    prefix = services.api_key_parse(api_key)[0]
    lock = [lk for _, lk, _ in throttle._checks(throttle.API_KEY, ip, prefix) if ":account:" in lk][0]
    cache.set(lock, time.time() + 60, timeout=60)  # what another web process's record_failure wrote
    invalidation.dispatch(invalidation.THROTTLE, lock)  # ... its message arrives
    r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {api_key}"}, client=ip)
    assert r.status == 429
    # Without a message, the remembered answer expires by itself.
    cache.delete(lock)
    monkeypatch.setattr(throttle, "CLEAR_FOR_S", 0.2)
    r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {api_key}"}, client=ip)
    assert r.status == 200
    cache.set(lock, time.time() + 60, timeout=60)
    time.sleep(0.25)
    r = await asgi_call(hub_app, "GET", "/v1/models", headers={"authorization": f"Bearer {api_key}"}, client=ip)
    assert r.status == 429


async def test_a_remembered_answer_spares_the_cache_round_trip(monkeypatch, settings):
    from apps.accounts import throttle

    settings.HUB_THROTTLE_FAILURES_PER_IP = 5
    calls = []
    monkeypatch.setattr(throttle, "retry_after", lambda scope, **kw: calls.append(kw) or 0)
    throttle._forget_clear()
    for _ in range(3):
        assert await throttle.aretry_after(throttle.API_KEY, ip="10.6.0.1", account="th_abc") == 0
    assert len(calls) == 1
    assert await throttle.aretry_after(throttle.API_KEY, ip="10.6.0.2", account="th_abc") == 0  # another IP
    assert len(calls) == 2
