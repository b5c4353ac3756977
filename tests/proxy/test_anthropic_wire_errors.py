"""Unknown /v1 paths and wrong methods answer JSON in the dialect the client speaks (never HTML, never
Django's CSRF page), and error bodies keep the words the CLIs react to."""
from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

METHODS = ["POST", "PUT", "DELETE", "PATCH", "GET"]


def _json(r: httpx.Response) -> dict:
    assert r.headers["content-type"].startswith("application/json"), (r.status_code, r.text[:300])
    return r.json()


@pytest.mark.parametrize("method", METHODS)
def test_unknown_paths_are_json_404s_in_the_openai_shape(hub_server, api_key, method):
    for path in ("/v1/nothing", "/v1/responses/resp_1/cancel/x", "/v1/chat/completions/extra", "/v1/", "/v1"):
        r = httpx.request(method, hub_server.url + path, json={"model": "x"},
                          headers={"Authorization": f"Bearer {api_key}"})
        body = _json(r)
        assert r.status_code == 404, (method, path, r.text)
        assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["code"] == "unknown_url"
        assert method in body["error"]["message"] and r.headers.get("x-request-id")


@pytest.mark.parametrize("method", METHODS)
def test_unknown_paths_are_json_404s_in_the_anthropic_shape(hub_server, api_key, method):
    bearer = {"Authorization": f"Bearer {api_key}"}
    cases = [("/v1/messages/batches", bearer), ("/v1/files", {**bearer, "anthropic-version": "2023-06-01"}),
             ("/v1/nothing", {"x-api-key": api_key}),
             ("/v1/nothing", {**bearer, "anthropic-beta": "files-api-2025-04-14"})]
    for path, headers in cases:
        r = httpx.request(method, hub_server.url + path, json={}, headers=headers)
        assert r.status_code == 404, (method, path, r.text)
        body = _json(r)
        assert body == {"type": "error", "error": {"type": "not_found_error", "message": body["error"]["message"]}}
        assert method in body["error"]["message"]
        assert r.headers.get("request-id")


def test_unknown_post_with_a_session_cookie_is_not_a_csrf_page(hub_server, api_key):
    r = httpx.post(hub_server.url + "/v1/responses/compact", json={}, cookies={"csrftoken": "y"},
                   headers={"Authorization": f"Bearer {api_key}", "Origin": "http://elsewhere.example"})
    assert r.status_code == 404 and "CSRF" not in r.text and _json(r)["error"]["code"] == "unknown_url"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_methods_on_known_endpoints_are_json_405s(hub_server, api_key, method):
    key = {"Authorization": f"Bearer {api_key}"}
    for path, anthropic_shape in (("/v1/messages", True), ("/v1/messages?beta=true", True),
                                  ("/v1/messages/count_tokens", True), ("/v1/chat/completions", False),
                                  ("/v1/completions", False)):
        r = httpx.request(method, hub_server.url + path, json={}, headers=key)
        assert r.status_code == 405, (method, path, r.text)
        body = _json(r)
        if anthropic_shape:
            assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        else:
            assert body["error"]["code"] == "method_not_allowed"
    for path in ("/v1/models", "/v1/models/production"):
        r = httpx.request("POST" if method == "GET" else method, hub_server.url + path, json={}, headers=key)
        assert r.status_code == 405 and _json(r)["error"]["code"] == "method_not_allowed"


def test_the_sdks_raise_their_not_found_errors(hub_server, api_key):
    with anthropic.Anthropic(base_url=hub_server.url, api_key=api_key, max_retries=0) as claude:
        with pytest.raises(anthropic.NotFoundError) as ei:
            claude.beta.files.list()
        assert ei.value.body["error"]["type"] == "not_found_error"
    with openai.OpenAI(base_url=hub_server.url + "/v1", api_key=api_key, max_retries=0) as oai:
        with pytest.raises(openai.NotFoundError) as ei:
            oai.files.list()
        assert ei.value.body["code"] == "unknown_url"


def test_error_bodies():
    from apps.proxy.errors import ProxyError, anthropic_error_event

    exc = ProxyError(400, "the prompt has 9000 tokens; the context is 8192", code="context_length_exceeded")
    assert exc.anthropic_body()["error"] == {"type": "invalid_request_error",
                                             "message": "prompt is too long: the prompt has 9000 tokens; the "
                                                        "context is 8192"}
    assert exc.openai_body()["error"]["message"] == "the prompt has 9000 tokens; the context is 8192"
    same = ProxyError(400, "prompt is too long: 9000 tokens > 8192 maximum", code="context_length_exceeded")
    assert same.anthropic_body()["error"]["message"] == "prompt is too long: 9000 tokens > 8192 maximum"
    assert ProxyError(504, "slow").anthropic_body()["error"]["type"] == "timeout_error"
    assert ProxyError(529, "busy").anthropic_body()["error"]["type"] == "overloaded_error"
    assert anthropic_error_event({"message": "x", "type": "server_error", "code": "upstream_timeout"})["error"][
        "type"] == "timeout_error"
    assert anthropic_error_event({"message": "slow down", "type": "rate_limit_error"})["error"] == {
        "type": "rate_limit_error", "message": "slow down"}
    assert anthropic_error_event({})["error"]["type"] == "api_error"
