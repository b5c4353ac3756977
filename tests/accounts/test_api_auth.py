"""/api authentication: an anonymous write is told to authenticate (401), not that its CSRF token is
missing; a logged-in session's writes still need the CSRF token."""
from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_anonymous_write_is_401_not_a_csrf_failure():
    c = Client(enforce_csrf_checks=True)
    r = c.post("/api/api-keys", {"name": "ci"}, content_type="application/json")
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    r = c.delete("/api/api-keys/1")
    assert r.status_code == 401


def test_session_writes_still_need_the_csrf_token(member):
    c = Client(enforce_csrf_checks=True)
    c.force_login(member)
    r = c.post("/api/api-keys", {"name": "ci"}, content_type="application/json")
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    c.get("/accounts/api-keys/")  # the dashboard page sets the CSRF cookie
    token = c.cookies["csrftoken"].value
    r = c.post("/api/api-keys", {"name": "ci"}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 201


def test_api_keys_need_no_csrf_token(api_key):
    c = Client(enforce_csrf_checks=True)
    r = c.post("/api/api-keys", {"name": "ci"}, content_type="application/json",
               HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert r.status_code == 201
