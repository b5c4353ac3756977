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
