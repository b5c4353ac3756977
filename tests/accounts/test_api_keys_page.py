"""The API-keys page: POST, then redirect (a reload never creates a second key); the new secret is
shown once, on the page the redirect lands on."""
from __future__ import annotations

import pytest

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_authenticate

pytestmark = pytest.mark.django_db


def test_create_redirects_and_shows_the_key_once(client, member):
    client.force_login(member)
    r = client.post("/accounts/api-keys/", {"name": "laptop"})
    assert r.status_code == 302 and r["Location"] == "/accounts/api-keys/"
    assert ApiKey.objects.filter(user=member).count() == 1

    page = client.get("/accounts/api-keys/")
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    secret = page.context["created"]["plaintext"]
    assert secret.encode() in page.content and api_key_authenticate(secret) == member

    reload = client.get("/accounts/api-keys/")  # what a browser reload does after the redirect
    assert secret.encode() not in reload.content and reload.context["created"] is None
    assert ApiKey.objects.filter(user=member).count() == 1


def test_invalid_name_is_a_field_error_and_creates_nothing(client, member):
    client.force_login(member)
    r = client.post("/accounts/api-keys/", {"name": "x" * 101})
    assert r.status_code == 422 and b"at most 100 characters" in r.content
    assert not ApiKey.objects.exists()
