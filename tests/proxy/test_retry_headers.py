"""Retry hints on /v1 errors (WIRE-CONTRACT.md): `x-should-retry: false` on hopeless 4xx,
`x-should-retry: true` + `retry-after` on 429/502/503/504, so the SDKs retry only what can succeed."""
from __future__ import annotations

import httpx
import openai
import pytest

from apps.proxy.errors import retry_headers

pytestmark = pytest.mark.django_db(transaction=True)


def _chat(hub_server, api_key, body, path="/v1/chat/completions", **headers):
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.post(hub_server.url + path, json=body, headers=headers, timeout=20)


def _hopeless(r, status):
    assert r.status_code == status, r.text
    assert r.headers["x-should-retry"] == "false"
    assert "retry-after" not in r.headers


def _transient(r, status, retry_after="1"):
    assert r.status_code == status, r.text
    assert r.headers["x-should-retry"] == "true"
    assert r.headers["retry-after"] == retry_after


def test_retry_header_table():
    assert retry_headers(400) == retry_headers(404) == retry_headers(413) == {"x-should-retry": "false"}
    for status in (429, 502, 503, 504):
        assert retry_headers(status) == {"x-should-retry": "true", "retry-after": "1"}
    assert retry_headers(408) == retry_headers(409) == retry_headers(500) == {}


def test_client_errors_say_do_not_retry(hub_server, api_key, versions):
    msgs = [{"role": "user", "content": "x"}]
    _hopeless(_chat(hub_server, None, {"model": "production", "messages": msgs}), 401)
    _hopeless(_chat(hub_server, "th_wrong_key", {"model": "production", "messages": msgs}), 401)
    _hopeless(_chat(hub_server, api_key, {"model": "production", "messages": msgs, "temperature": 9}), 400)
    _hopeless(_chat(hub_server, api_key, {"model": "nope", "messages": msgs}), 404)
    _hopeless(_chat(hub_server, api_key, {"model": "nope", "prompt": "x"}, path="/v1/completions"), 404)
    _hopeless(httpx.get(hub_server.url + "/v1/models/nope", headers={"Authorization": f"Bearer {api_key}"}), 404)
    _hopeless(httpx.get(hub_server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"}),
              405)
    _hopeless(httpx.get(hub_server.url + "/v1/no/such/thing"), 404)
    # Anthropic dialect: same hints, Anthropic body
    r = _chat(hub_server, api_key, {"model": "production", "max_tokens": 0, "messages": msgs}, path="/v1/messages")
    _hopeless(r, 400)
    assert r.json()["type"] == "error" and r.headers["request-id"]
    _hopeless(httpx.get(hub_server.url + "/v1/messages", headers={"x-api-key": api_key}), 405)


def test_upstream_outage_says_retry(hub_server, api_key, versions, settings):
    from tests.proxy.fake_upstream import free_port

    _transient(_chat(hub_server, api_key, {"model": "production",
                                           "messages": [{"role": "user", "content": "UPSTREAM_500"}]}), 502)
    settings.HUB_INFERENCE_URL = f"http://127.0.0.1:{free_port()}/v1"
    msgs = [{"role": "user", "content": "x"}]
    _transient(_chat(hub_server, api_key, {"model": "production", "messages": msgs}), 502)
    _transient(_chat(hub_server, api_key, {"model": "production", "messages": msgs, "stream": True}), 502)
    _transient(_chat(hub_server, api_key, {"model": "production", "max_tokens": 5, "messages": msgs},
                     path="/v1/messages"), 502)


def test_upstream_rate_limit_passes_its_retry_after(hub_server, api_key, versions):
    r = _chat(hub_server, api_key, {"model": "production", "messages": [{"role": "user", "content": "RATE_LIMIT"}]})
    _transient(r, 429, retry_after="2")
    assert r.headers["retry-after-ms"] == "50"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_openai_sdk_retries_a_rate_limit_on_the_upstream_schedule(hub_server, api_key, versions, wired):
    from openai import OpenAI

    with OpenAI(base_url=hub_server.url + "/v1", api_key=api_key, max_retries=2, timeout=20) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="production", messages=[{"role": "user", "content": "RATE_LIMIT"}])
    # the first try and two retries, spaced by the upstream's retry-after-ms (50 ms), all reached it
    assert sum(1 for s in wired.seen if s["body"]["messages"][-1]["content"] == "RATE_LIMIT") == 3
