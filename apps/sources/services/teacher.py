"""The teacher model of a generation: any OpenAI-compatible endpoint that rewrites the scenarios' queries and
plans (workers.engine.repos.enrich; file blocks are never touched, so provenance stays exact).

- `hub`: this hub's own `/v1` (an alias such as `production`, or a model version's name), called with a
  short-lived API key of the generation's owner, created for the teacher phase and revoked when it ends
  (a key left by a crashed worker is revoked when the generation resumes).
- `provider`: an upstream of the proxy (Providers page): its base URL and its key, decrypted in the worker only.

No key is ever stored in the generation's options or shown anywhere.
"""
from __future__ import annotations

import contextlib

from django.conf import settings

from workers.engine import repos as engine


def _key_name(generation_id: int) -> str:
    return f"teacher · generation {generation_id}"


def hub_base_url() -> str:
    host = settings.HUB_HOST if settings.HUB_HOST not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"http://{host}:{settings.HUB_PORT}/v1"


@contextlib.contextmanager
def teacher_session(gen):
    """Yields the generation's engine TeacherConfig; cleans up the hub key it made."""
    from apps.accounts.models import ApiKey

    t = gen.options["teacher"]
    common = {"model": t["model"], "temperature": t["temperature"], "requests_per_minute": t["requests_per_minute"],
              "max_tokens": t["max_tokens"]}
    if t["endpoint"] == "provider":
        from apps.proxy.crypto import decrypt
        from apps.proxy.models import Provider

        provider = Provider.objects.filter(pk=t.get("provider_id")).first()
        if provider is None or not provider.enabled:
            raise engine.RepoError("teacher_unreachable", "The teacher's provider was deleted or disabled.")
        key = decrypt(provider.api_key_encrypted) if provider.api_key_encrypted else ""
        yield engine.TeacherConfig(base_url=provider.base_url.rstrip("/"), api_key=key, **common)
        return
    from apps.accounts.services import api_key_create, api_key_revoke

    owner = gen.created_by or gen.source.owner
    name = _key_name(gen.pk)
    for left in ApiKey.objects.filter(user=owner, name=name, revoked_at__isnull=True):  # left by a crashed run
        api_key_revoke(actor=owner, key_id=left.pk)
    created = api_key_create(user=owner, name=name)
    try:
        yield engine.TeacherConfig(base_url=hub_base_url(), api_key=created.plaintext, **common)
    finally:
        api_key_revoke(actor=owner, key_id=created.api_key.pk)
