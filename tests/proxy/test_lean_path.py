"""training_hub/asgi_lean.py: API-key /v1 calls skip Django's middleware chain; session calls and the rest
keep it. The marker: SessionMiddleware.process_request runs once per request on the full stack and never
on the lean path. Served by the real ASGI app (training_hub.asgi under uvicorn)."""
from __future__ import annotations

import httpx
import pytest
from django.contrib.sessions.middleware import SessionMiddleware

from training_hub.asgi_lean import is_lean


@pytest.fixture
def session_calls(monkeypatch):
    calls: list[str] = []
    original = SessionMiddleware.process_request

    def spy(self, request):
        calls.append(request.path)
        return original(self, request)

    monkeypatch.setattr(SessionMiddleware, "process_request", spy)
    return calls


def test_api_key_calls_take_the_lean_path(hub_server, versions, api_key, session_calls):
    auth = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=hub_server.url, timeout=20) as h:
        body = {"model": "production", "messages": [{"role": "user", "content": "hi"}]}
        r = h.post("/v1/chat/completions", json=body, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
        assert r.headers["x-request-id"] and float(r.headers["x-hub-overhead-ms"]) >= 0
        # what the skipped middlewares add to a response is still there
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" in r.headers
        assert int(r.headers["content-length"]) == len(r.content)

        with h.stream("POST", "/v1/chat/completions", json={**body, "stream": True},
                      headers={"x-api-key": api_key}) as s:
            assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
            text = "".join(s.iter_text())
        assert text.rstrip().endswith("data: [DONE]") and "echo" in text

        r = h.get("/v1/chat/completions", headers=auth)  # 405 in the OpenAI dialect
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        r = h.post("/v1/nope", json={}, headers=auth)  # the catch-all's JSON 404, not a CSRF page
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
        r = h.post("/v1/messages/nope", json={}, headers={"x-api-key": api_key,
                                                         "anthropic-version": "2023-06-01"})
        assert r.status_code == 404 and r.json()["type"] == "error"  # Anthropic's dialect
        r = h.get("/v1/models", headers=auth)
        assert r.status_code == 200 and r.json()["object"] == "list"
        r = h.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer hub_wrong_key"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"  # the guard's
    assert session_calls == []


def test_session_calls_keep_the_full_stack(hub_server, versions, member, session_calls):
    from django.test import Client

    c = Client()
    c.force_login(member)
    with httpx.Client(base_url=hub_server.url, cookies={"sessionid": c.cookies["sessionid"].value},
                      timeout=20) as h:
        assert h.get("/v1/models").status_code == 200
        r = h.post("/v1/chat/completions", json={"model": "production", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"  # CSRF still checked
    assert session_calls == ["/v1/models", "/v1/chat/completions"]


@pytest.mark.parametrize("path,headers,lean", [
    ("/v1/chat/completions", [(b"authorization", b"Bearer k")], True),
    ("/v1/models", [(b"x-api-key", b"k")], True),
    ("/v1", [(b"Authorization", b"bearer k")], True),
    ("/v1/chat/completions", [(b"authorization", b"Bearer ")], False),
    ("/v1/chat/completions", [(b"cookie", b"sessionid=x")], False),
    ("/v1/playground/", [], False),
    ("/api/runs", [(b"authorization", b"Bearer k")], False),
    ("/v1x", [(b"authorization", b"Bearer k")], False),
])
def test_which_requests_are_lean(path, headers, lean):
    assert is_lean({"type": "http", "path": path, "headers": headers}) is lean
