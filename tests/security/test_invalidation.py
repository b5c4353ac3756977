"""Key revocations, deploys and rollbacks reach every web process within 1 s, over Redis pub/sub
(apps.core.invalidation), not TTLs; a revoked key stops working in its own process at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from tests.security.conftest import REDIS_URL, asgi_call

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)  # on_commit runs as in a web process
def test_revoked_key_is_forgotten_in_this_process_at_once(live_bus, member):
    from apps.accounts import key_cache
    from apps.accounts.services import api_key_create, api_key_parse, api_key_revoke

    created = api_key_create(user=member)
    prefix = api_key_parse(created.plaintext)[0]
    assert key_cache.user_id_for(created.plaintext) == member.pk
    assert prefix in key_cache.cached_prefixes()  # remembered: the next call costs no query
    api_key_revoke(actor=member, key_id=created.api_key.pk)
    assert prefix not in key_cache.cached_prefixes()
    assert key_cache.user_id_for(created.plaintext) is None


@pytest.mark.django_db(transaction=True)
async def test_revoked_key_stops_working_on_v1_in_the_same_process(live_bus, hub_app, member):
    from apps.accounts.services import api_key_create, api_key_revoke

    created = await sync_to_async(api_key_create)(user=member)
    headers = {"authorization": f"Bearer {created.plaintext}"}
    assert (await asgi_call(hub_app, "GET", "/v1/models", headers=headers)).status == 200
    assert (await asgi_call(hub_app, "GET", "/v1/models", headers=headers)).status == 200  # from the cache
    await sync_to_async(api_key_revoke)(actor=member, key_id=created.api_key.pk)
    r = await asgi_call(hub_app, "GET", "/v1/models", headers=headers)
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.django_db
def test_a_process_that_cannot_hear_invalidations_does_not_cache(settings, member):
    from apps.accounts import key_cache
    from apps.accounts.services import api_key_create
    from apps.core import invalidation

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    invalidation.reset()
    try:
        created = api_key_create(user=member)
        assert key_cache.user_id_for(created.plaintext) == member.pk
        assert not invalidation.is_live() and key_cache.cached_prefixes() == set()
    finally:
        invalidation.reset()


@pytest.mark.django_db
def test_a_lookup_that_raced_an_invalidation_is_not_stored(live_bus, member, monkeypatch):
    from apps.accounts import key_cache, services
    from apps.accounts.services import api_key_create, api_key_parse

    created = api_key_create(user=member)
    real_lookup = services.api_key_lookup

    def lookup_during_a_revoke(raw):
        key = real_lookup(raw)  # read before the revoke commits ...
        key_cache._forget(services.KEY_TOPIC, api_key_parse(raw)[0])  # ... which lands meanwhile
        return key

    monkeypatch.setattr(services, "api_key_lookup", lookup_during_a_revoke)
    assert key_cache.user_id_for(created.plaintext) == member.pk
    assert key_cache.cached_prefixes() == set()


@pytest.mark.django_db(transaction=True)
def test_deploy_and_rollback_forget_routes_at_once(live_bus, admin_user):
    from apps.proxy import gateway
    from apps.registry.services import alias_deploy, alias_rollback, model_version_register

    one = model_version_register(name="one", kind="adapter", base_model=None)
    two = model_version_register(name="two", kind="adapter", base_model=None)
    alias_deploy(actor=admin_user, version_id=one.pk, alias="production")

    async def resolve():
        return await gateway.resolve(gateway.Call(endpoint="test"), "production")

    from asgiref.sync import async_to_sync

    assert async_to_sync(resolve)().version_id == one.pk
    assert gateway._route_cache  # remembered
    alias_deploy(actor=admin_user, version_id=two.pk, alias="production")
    assert not gateway._route_cache
    assert async_to_sync(resolve)().version_id == two.pk
    alias_rollback(actor=admin_user, alias="production")
    assert async_to_sync(resolve)().version_id == one.pk


@pytest.mark.django_db(transaction=True)
def test_revoke_deploy_and_rollback_reach_another_process_within_a_second(live_bus, member, admin_user):
    """A second Django process caches a key and a route; this one revokes the key and deploys: the other
    one drops both within 1 s (measured from the commit here to the drop there)."""
    from apps.accounts.services import api_key_create, api_key_parse, api_key_revoke
    from apps.registry.services import alias_deploy, alias_rollback, model_version_register

    created = api_key_create(user=member)
    prefix = api_key_parse(created.plaintext)[0]
    one = model_version_register(name="one", kind="adapter", base_model=None)
    two = model_version_register(name="two", kind="adapter", base_model=None)
    alias_deploy(actor=admin_user, version_id=one.pk, alias="production")

    def other_process():
        env = {**os.environ, "REDIS_URL": REDIS_URL, "HUB_INVALIDATION_CHANNEL": live_bus,
               "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_other_process.py")), prefix,
                                 "production"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert json.loads(line) == {"ready": True}, line
        return proc

    def drops(proc) -> dict:
        out, _ = proc.communicate(timeout=15)
        return {d["dropped"]: d["at"] for d in map(json.loads, out.splitlines()) if "dropped" in d}

    proc = other_process()
    sent = time.monotonic()
    api_key_revoke(actor=member, key_id=created.api_key.pk)
    alias_deploy(actor=admin_user, version_id=two.pk, alias="production")
    got = drops(proc)  # time.monotonic() is one clock for every process of this machine
    assert set(got) == {"key", "route"}, got
    print("invalidation latency (s):", {k: round(v - sent, 4) for k, v in got.items()})
    assert got["key"] - sent < 1.0 and got["route"] - sent < 1.0, {k: v - sent for k, v in got.items()}

    proc = other_process()  # and a rollback
    sent = time.monotonic()
    alias_rollback(actor=admin_user, alias="production")
    out_deadline = time.monotonic() + 1.0
    got = {}
    while time.monotonic() < out_deadline and "route" not in got:
        line = proc.stdout.readline()
        if line:
            d = json.loads(line)
            got[d["dropped"]] = d["at"]
    proc.kill()
    proc.wait()
    assert "route" in got and got["route"] - sent < 1.0


def test_listener_and_publisher_work_on_the_embedded_redis_unix_socket(settings, tmp_path):
    """`make run`'s default: REDIS_URL is the embedded server's unix socket."""
    from apps.core import invalidation
    from training_hub import embedded_redis

    proc, url = embedded_redis.start(tmp_path)
    heard = []
    other = invalidation.Subscriber(url, "hub:test:unix", dispatch=lambda t, p: heard.append((t, p)),
                                    origin="another-process")
    try:
        settings.REDIS_URL, settings.HUB_INVALIDATION_CHANNEL = url, "hub:test:unix"
        invalidation.reset()
        assert url.startswith("unix://") and invalidation.wait_live(5)
        assert other.wait_live(5)
        heard.clear()  # the "*" a fresh subscription starts with
        invalidation.publish(invalidation.API_KEY, "abcd1234")
        deadline = time.monotonic() + 1.0
        while ("api_key", "abcd1234") not in heard and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ("api_key", "abcd1234") in heard
    finally:
        other.stop()
        invalidation.reset()
        embedded_redis.stop(proc)
