"""The proxy in front of the real inference process (tiny model), through the openai client."""
from __future__ import annotations

import pytest

from tests.proxy.fake_upstream import ServerThread

pytestmark = pytest.mark.django_db(transaction=True)


def test_chat_through_proxy_and_inference_server(settings, hub_server, api_key, admin_user, tiny_base_model):
    from openai import OpenAI

    from apps.proxy.gateway import caches_clear
    from apps.registry.services import alias_deploy, model_version_register
    from workers.inference.server import create_app

    version = model_version_register(name="tiny served", kind="adapter", base_model=tiny_base_model)
    alias_deploy(actor=admin_user, version_id=version.pk, alias="staging")
    caches_clear()
    with ServerThread(create_app(artifact_root=settings.ARTIFACT_ROOT)) as inference:
        settings.HUB_INFERENCE_URL = inference.url + "/v1"
        with OpenAI(base_url=hub_server.url + "/v1", api_key=api_key, max_retries=0, timeout=60) as client:
            c = client.chat.completions.create(model="staging", messages=[{"role": "user", "content": "hi"}],
                                               max_tokens=5, temperature=0)
            assert c.model == "staging" and c.usage.completion_tokens >= 1
            assert c.choices[0].finish_reason in ("stop", "length")
            chunks = list(client.chat.completions.create(
                model=f"mv-{version.pk}", messages=[{"role": "user", "content": "hi"}], max_tokens=5,
                temperature=0, stream=True, stream_options={"include_usage": True}))
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            assert text == c.choices[0].message.content  # greedy: same answer streamed or not
            assert chunks[-1].usage.completion_tokens == c.usage.completion_tokens
            models = {m.id for m in client.models.list()}
            assert {"staging", f"mv-{version.pk}"} <= models
