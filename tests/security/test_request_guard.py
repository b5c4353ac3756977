"""training_hub/asgi_guard.RequestGuard: oversized bodies get 413 from Content-Length before a byte is
read; /api and /v1 refuse a request without a valid credential (401) before reading its body; chunked
bodies are cut off at the limit; each in the interface's own error format."""
from __future__ import annotations

import pytest

from tests.security.conftest import asgi_call

pytestmark = pytest.mark.django_db(transaction=True)

MIB = 1024 * 1024
JSON = {"content-type": "application/json"}


def _bearer(key):
    return {"authorization": f"Bearer {key}"}


async def test_oversized_json_on_v1_is_413_before_the_body_is_read(hub_app, api_key):
    r = await asgi_call(hub_app, "POST", "/v1/chat/completions",
                        headers={**JSON, **_bearer(api_key), "content-length": str(11 * MIB)}, chunks=[b"{}"])
    assert r.status == 413 and r.body_messages_read == 0
    err = r.json()["error"]
    assert err["code"] == "request_too_large" and err["type"] == "invalid_request_error"
    assert "10 MB" in err["message"] and r.headers["x-should-retry"] == "false"


async def test_oversized_on_anthropic_messages_is_anthropic_shaped(hub_app, api_key):
    r = await asgi_call(hub_app, "POST", "/v1/messages",
                        headers={**JSON, "x-api-key": api_key, "content-length": str(50 * MIB)}, chunks=[b"{}"])
    assert r.status == 413 and r.body_messages_read == 0
    body = r.json()
    assert body == {"type": "error", "error": {"type": "request_too_large", "message": body["error"]["message"]}}


async def test_oversized_upload_on_api_is_413_field_error_before_reading(hub_app, api_key, settings):
    settings.HUB_MAX_UPLOAD_MB = 1
    r = await asgi_call(hub_app, "POST", "/api/datasets",
                        headers={**_bearer(api_key), "content-type": "multipart/form-data; boundary=x",
                                 "content-length": str(2 * MIB)}, chunks=[b"--x"])
    assert r.status == 413 and r.body_messages_read == 0
    body = r.json()
    assert body["code"] == "too_large" and body["errors"][0]["field"] == "file"
    assert "1 MB limit" in body["detail"]


async def test_upload_limit_applies_to_logged_in_uploads_only(hub_app, api_key, settings):
    """Between the body limit and the upload limit a multipart body is fine from a key holder, and
    refused (after 401 on /api, or 413 on a dashboard page) from an anonymous client."""
    settings.HUB_MAX_BODY_MB = 1
    settings.HUB_MAX_UPLOAD_MB = 8
    size = str(2 * MIB)
    multipart = {"content-type": "multipart/form-data; boundary=x", "content-length": size}
    anon_page = await asgi_call(hub_app, "POST", "/datasets/upload/", headers=multipart, chunks=[b"--x"])
    assert anon_page.status == 413 and anon_page.body_messages_read == 0
    assert anon_page.headers["content-type"].startswith("text/html")
    assert b"not logged in" in anon_page.body
    anon_api = await asgi_call(hub_app, "POST", "/api/datasets", headers=multipart, chunks=[b"--x"])
    assert anon_api.status == 401 and anon_api.body_messages_read == 0


async def test_anonymous_write_to_v1_is_401_before_the_body_is_read(hub_app):
    r = await asgi_call(hub_app, "POST", "/v1/chat/completions", headers={**JSON, "content-length": "2"},
                        chunks=[b"{}"])
    assert r.status == 401 and r.body_messages_read == 0
    assert r.json()["error"]["code"] == "invalid_api_key"


async def test_wrong_key_on_v1_is_401_before_the_body_is_read(hub_app, api_key):
    r = await asgi_call(hub_app, "POST", "/v1/messages",
                        headers={**JSON, "x-api-key": api_key + "x", "content-length": "2"}, chunks=[b"{}"])
    assert r.status == 401 and r.body_messages_read == 0
    assert r.json()["error"]["type"] == "authentication_error"


async def test_anonymous_write_to_api_is_401_before_the_body_is_read(hub_app):
    r = await asgi_call(hub_app, "POST", "/api/api-keys", headers={**JSON, "content-length": "15"},
                        chunks=[b'{"name": "ci"}'])
    assert r.status == 401 and r.body_messages_read == 0
    assert r.json()["code"] == "unauthenticated" and r.headers["www-authenticate"] == "Bearer"


async def test_a_bogus_session_cookie_is_not_a_credential(hub_app):
    r = await asgi_call(hub_app, "POST", "/api/api-keys",
                        headers={**JSON, "content-length": "15", "cookie": "sessionid=not-a-session"},
                        chunks=[b'{"name": "ci"}'])
    assert r.status == 401 and r.body_messages_read == 0


async def test_valid_key_and_valid_session_writes_go_through(hub_app, api_key, member):
    from asgiref.sync import sync_to_async
    from django.test import Client

    r = await asgi_call(hub_app, "POST", "/api/api-keys", headers={**JSON, **_bearer(api_key), "content-length": "15"},
                        chunks=[b'{"name": "ci"}'])
    assert r.status == 201 and r.json()["key"].startswith("th_")

    client = Client()
    await sync_to_async(client.force_login)(member)
    session = client.cookies["sessionid"].value
    r = await asgi_call(hub_app, "POST", "/api/api-keys",
                        headers={**JSON, "content-length": "15", "cookie": f"sessionid={session}"},
                        chunks=[b'{"name": "ci"}'])
    assert r.status == 403 and r.json()["code"] == "csrf_failed"  # logged in: CSRF still applies


async def test_anonymous_reads_that_work_today_still_work(hub_app):
    r = await asgi_call(hub_app, "GET", "/api/docs")
    assert r.status == 200 and b"openapi.json" in r.body
    r = await asgi_call(hub_app, "GET", "/api/me")  # Django's answer, unchanged
    assert r.status == 401
    r = await asgi_call(hub_app, "GET", "/v1/playground/")
    assert r.status == 302 and "/accounts/login/" in r.headers["location"]


async def test_chunked_body_is_cut_off_at_the_limit(hub_app, api_key, settings):
    settings.HUB_MAX_BODY_MB = 1
    chunks = [b"x" * (256 * 1024)] * 40  # 10 MiB, no Content-Length
    r = await asgi_call(hub_app, "POST", "/v1/chat/completions",
                        headers={**JSON, **_bearer(api_key), "transfer-encoding": "chunked"}, chunks=chunks)
    assert r.status == 413 and r.json()["error"]["code"] == "request_too_large"
    assert r.body_messages_read == 5  # 1.25 MiB read: stopped at the first chunk past 1 MiB


async def test_chunked_body_under_the_limit_reaches_the_view(hub_app, api_key):
    r = await asgi_call(hub_app, "POST", "/v1/chat/completions",
                        headers={**JSON, **_bearer(api_key), "transfer-encoding": "chunked"},
                        chunks=[b'{"model": "nope", ', b'"messages": [{"role": "user", "content": "hi"}]}'])
    assert r.body_messages_read == 2
    assert r.status == 404 and r.json()["error"]["code"] == "model_not_found"


async def test_dashboard_form_over_the_body_limit_is_a_plain_413_page(hub_app, settings):
    settings.HUB_MAX_BODY_MB = 1
    r = await asgi_call(hub_app, "POST", "/accounts/login/",
                        headers={"content-type": "application/x-www-form-urlencoded",
                                 "content-length": str(3 * MIB)}, chunks=[b"a=b"])
    assert r.status == 413 and r.body_messages_read == 0
    assert b"<h1>Request too large</h1>" in r.body and b"1 MB limit" in r.body


async def test_bad_content_length_is_400(hub_app):
    r = await asgi_call(hub_app, "POST", "/api/api-keys", headers={"content-length": "-5"})
    assert r.status == 400 and r.json()["code"] == "invalid"
