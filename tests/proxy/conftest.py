from __future__ import annotations

import pytest

from tests.proxy.fake_upstream import ServerThread, create_fake_upstream


@pytest.fixture(scope="session")
def fake_upstream():
    seen: list = []
    with ServerThread(create_fake_upstream(seen=seen)) as srv:
        srv.seen = seen
        yield srv


@pytest.fixture(scope="session")
def hub_server():
    """The real ASGI app (training_hub.asgi) served by uvicorn on a loopback port."""
    from training_hub.asgi import application

    with ServerThread(application) as srv:
        yield srv


@pytest.fixture
def wired(settings, fake_upstream, transactional_db):
    """Point local versions and Together at the fake upstream."""
    from apps.proxy.gateway import caches_clear

    caches_clear()
    fake_upstream.seen.clear()
    settings.HUB_INFERENCE_URL = fake_upstream.url + "/v1"
    settings.TOGETHER_BASE_URL = fake_upstream.url + "/v1"
    settings.TOGETHER_API_KEY = "together-secret"
    return fake_upstream


@pytest.fixture
def versions(wired, admin_user):
    from apps.registry.services import alias_deploy, model_version_register

    local = model_version_register(name="local one", kind="adapter", base_model=None)
    remote = model_version_register(name="remote one", kind="remote", base_model=None,
                                    remote_model_id="acme/Remote-Model-ft-1")
    alias_deploy(actor=admin_user, version_id=local.pk, alias="production")
    alias_deploy(actor=admin_user, version_id=remote.pk, alias="cloud")
    alias_deploy(actor=admin_user, version_id=local.pk, alias="haiku")
    return {"local": local, "remote": remote}


@pytest.fixture
def oai(hub_server, api_key):
    from openai import OpenAI

    with OpenAI(base_url=hub_server.url + "/v1", api_key=api_key, max_retries=0, timeout=20) as client:
        yield client


# --- per-key limits (tests/proxy/test_key_limits*.py) ---------------------------------------------
@pytest.fixture(scope="session")
def limits_redis_url(tmp_path_factory):
    """A private Redis for the key-limit tests: the embedded redis-server on a unix socket."""
    from training_hub import embedded_redis

    proc, url = embedded_redis.start(tmp_path_factory.mktemp("limits-redis"))
    yield url
    embedded_redis.stop(proc)


@pytest.fixture
def limits_redis(settings, limits_redis_url):
    """REDIS_URL -> the private Redis, emptied; the limits client, the invalidation listener (live, so the
    key and route caches work as in production) and the caches start fresh. Yields a sync client."""
    import redis

    from apps.core import invalidation
    from apps.proxy import gateway, limits

    settings.REDIS_URL = limits_redis_url
    client = redis.Redis.from_url(limits_redis_url)
    client.flushall()
    invalidation.reset()
    limits.reset()
    gateway.caches_clear()
    assert invalidation.wait_live(5), "the invalidation listener did not subscribe"
    yield client
    invalidation.reset()
    limits.reset()
    gateway.caches_clear()
    client.close()


# --- fallback chains (tests/proxy/test_chains_*.py) -------------------------------------------------
@pytest.fixture(scope="session")
def fault_upstream():
    """tests/proxy/fault_upstream.py on a loopback port: the fault is picked by the requested model name."""
    from tests.proxy.fault_upstream import create_fault_upstream

    app = create_fault_upstream()
    with ServerThread(app) as srv:
        srv.hits, srv.seen = app.state.hits, app.state.seen
        yield srv


@pytest.fixture
def chains(wired, fault_upstream, admin_user, settings):
    """Providers on the fault upstream (`faulty`: OpenAI-compatible, `claude`: Anthropic, `refused`: a port
    nothing listens on), short timeouts, fresh breakers; `chains.set(alias, targets, settings)` PUTs a chain."""
    from types import SimpleNamespace

    from apps.proxy import breaker, providers
    from tests.proxy.fault_upstream import refused_url

    settings.HUB_BREAKER_FAILURES = 1000  # the breaker tests lower it
    breaker.forget_local()
    fault_upstream.hits.clear()
    fault_upstream.seen.clear()
    fast = {"connect_s": 1.0, "first_byte_s": 1.0, "total_s": 5.0}
    made = {
        "faulty": providers.provider_create(actor=admin_user, name="faulty", kind="openai",
                                            base_url=fault_upstream.url + "/v1", api_key="sk-test", timeouts=fast),
        "claude": providers.provider_create(actor=admin_user, name="claude", kind="anthropic",
                                            base_url=fault_upstream.url, api_key="sk-ant-test", timeouts=fast),
        "refused": providers.provider_create(actor=admin_user, name="refused", kind="openai",
                                             base_url=refused_url(), api_key="sk-test", timeouts=fast),
    }

    def set_chain(alias, targets, chain_settings=None):
        return providers.chain_set(actor=admin_user, name=alias, targets=targets, settings=chain_settings)

    yield SimpleNamespace(providers=made, set=set_chain, upstream=fault_upstream, admin=admin_user)
    breaker.forget_local()


@pytest.fixture
def claude_sdk(hub_server, api_key):
    """The official anthropic SDK pointed at the hub (no retries)."""
    import anthropic

    with anthropic.Anthropic(base_url=hub_server.url, api_key=api_key, max_retries=0, timeout=20) as client:
        yield client


# --- the real CLIs (tests/proxy/test_real_clients.py) ----------------------------------------------
# (the end-of-run note on skipped real-client tests is in tests/conftest.py: under xdist only the root conftest
# speaks at the end)
