"""The /v1 proxy against a fake upstream, through the official openai client and raw HTTP."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def _events(text: str) -> list:
    out = []
    for block in text.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                data = line[6:]
                out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_non_stream_via_alias(oai, versions, wired):
    r = oai.chat.completions.with_raw_response.create(
        model="production", messages=[{"role": "user", "content": "hello there"}], max_completion_tokens=20)
    assert r.headers.get("x-request-id")
    c = r.parse()
    assert c.object == "chat.completion" and c.model == "production"
    assert c.choices[0].message.content == "echo: hello there"
    assert c.choices[0].finish_reason == "stop"
    assert c.usage.prompt_tokens == 7 and c.usage.total_tokens == 7 + c.usage.completion_tokens
    sent = wired.seen[-1]["body"]
    assert sent["model"] == f"mv-{versions['local'].pk}"
    assert sent["max_tokens"] == 20 and "max_completion_tokens" not in sent
    assert wired.seen[-1]["auth"] is None  # local inference gets no Together key


def test_version_names_and_remote_routing(oai, versions, wired):
    c = oai.chat.completions.create(model=f"mv-{versions['local'].pk}", messages=[{"role": "user", "content": "a"}])
    assert c.choices[0].message.content == "echo: a"
    c = oai.chat.completions.create(model=str(versions["local"].pk), messages=[{"role": "user", "content": "b"}])
    assert c.choices[0].message.content == "echo: b"
    oai.chat.completions.create(model="cloud", messages=[{"role": "user", "content": "c"}])
    assert wired.seen[-1]["body"]["model"] == "acme/Remote-Model-ft-1"
    assert wired.seen[-1]["auth"] == "Bearer together-secret"


def test_stream_shape_and_include_usage(oai, versions):
    chunks = list(oai.chat.completions.create(
        model="production", messages=[{"role": "user", "content": "one two three"}], stream=True,
        stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert all(c.choices[0].delta.role is None for c in chunks[1:] if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert final.choices[0].delta.content is None
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage(hub_server, api_key, versions, wired):
    r = httpx.post(hub_server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {api_key}"},
                   json={"model": "production", "messages": [{"role": "user", "content": "x y"}], "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-request-id"]
    events = _events(r.text)
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])
    assert all(e["choices"] for e in events[:-1])
    # the proxy still asks the upstream for usage, for its log
    assert wired.seen[-1]["body"]["stream_options"] == {"include_usage": True}


def test_tool_call_fragments_carry_id_and_name_once(oai, versions):
    chunks = list(oai.chat.completions.create(
        model="production", messages=[{"role": "user", "content": "TOOL"}], stream=True,
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]))
    frags = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    # the gateway releases a tool call only whole (never half-formed): one fragment, id and name once
    assert len(frags) == 1
    assert frags[0].id == "call_1" and frags[0].function.name == "get_weather"
    assert frags[0].function.arguments == '{"city": "Paris"}'
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    c = oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "TOOL"}])
    assert c.choices[0].message.tool_calls[0].function.name == "get_weather"
    assert c.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("trigger", ["FAIL_MID", "NO_DONE", "ERROR_EVENT"])
def test_mid_stream_failure_raises_in_the_sdk(oai, versions, trigger):
    got = []
    with pytest.raises(openai.APIError):
        for c in oai.chat.completions.create(model="production", messages=[{"role": "user", "content": trigger}],
                                             stream=True):
            got.append(c)
    assert got and got[0].choices[0].delta.role == "assistant"


def test_missing_and_wrong_key(hub_server, versions):
    r = httpx.post(hub_server.url + "/v1/chat/completions", json={"model": "production", "messages": []})
    assert r.status_code == 401
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == "invalid_api_key"
    from openai import OpenAI

    with OpenAI(base_url=hub_server.url + "/v1", api_key="th_nope_nope", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    r = httpx.get(hub_server.url + "/v1/models", headers={"x-api-key": "wrong"})
    assert r.status_code == 401


def test_unknown_model_is_404(oai, versions):
    with pytest.raises(openai.NotFoundError) as ei:
        oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert ei.value.code == "model_not_found"
    assert ei.value.body["param"] == "model"


@pytest.mark.parametrize("extra, param", [
    ({"n": 2}, "n"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": -0.1}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"model": ""}, "model"),
])
def test_validation_errors_are_400_openai_bodies(hub_server, api_key, versions, wired, extra, param):
    before = len(wired.seen)
    body = {"model": "production", "messages": [{"role": "user", "content": "x"}], **extra}
    r = httpx.post(hub_server.url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {api_key}"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == param
    assert r.headers["x-request-id"]
    assert len(wired.seen) == before  # nothing forwarded


def test_bad_json_is_400(hub_server, api_key, versions):
    r = httpx.post(hub_server.url + "/v1/chat/completions", content=b"{nope",
                   headers={"Authorization": f"Bearer {api_key}", "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_upstream_down_is_502(oai, versions, settings):
    from tests.proxy.fake_upstream import free_port

    settings.HUB_INFERENCE_URL = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(openai.InternalServerError) as ei:
        oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "x"}])
    assert ei.value.status_code == 502 and ei.value.body["code"] == "upstream_unavailable"
    with pytest.raises(openai.InternalServerError):
        list(oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "x"}],
                                         stream=True))


def test_upstream_500_is_502(oai, versions):
    with pytest.raises(openai.InternalServerError) as ei:
        oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "UPSTREAM_500"}])
    assert ei.value.status_code == 502 and "boom" in ei.value.message


def test_models_list_and_detail(oai, versions):
    ids = [m.id for m in oai.models.list()]
    assert {"production", "cloud", "haiku", f"mv-{versions['local'].pk}", f"mv-{versions['remote'].pk}"} <= set(ids)
    m = oai.models.retrieve("production")
    assert m.object == "model" and m.owned_by and isinstance(m.created, int)
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("missing-model")


def test_legacy_completions(oai, versions, wired):
    c = oai.completions.create(model="production", prompt="hello", max_tokens=3)
    assert c.object == "text_completion" and c.choices[0].text == " world"
    assert c.choices[0].finish_reason == "length" and c.usage.total_tokens == 3
    chunks = list(oai.completions.create(model="production", prompt="hello", max_tokens=3, stream=True))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == " world"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["length"]


def test_session_auth_needs_csrf(hub_server, versions, member):
    """The dashboard's playground calls /v1 with its session: allowed only with the CSRF token."""
    from django.test import Client

    c = Client()
    c.force_login(member)
    session = c.cookies["sessionid"].value
    with httpx.Client(base_url=hub_server.url, cookies={"sessionid": session}) as h:
        assert h.get("/v1/models").status_code == 200
        body = {"model": "production", "messages": [{"role": "user", "content": "hi"}]}
        r = h.post("/v1/chat/completions", json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
        token = "a" * 32
        h.cookies.set("csrftoken", token)
        r = h.post("/v1/chat/completions", json=body, headers={"X-CSRFToken": token, "Referer": hub_server.url})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "echo: hi"


def test_playground_page(client, member, versions):
    assert client.get("/v1/playground/").status_code == 302  # login required
    client.force_login(member)
    r = client.get("/v1/playground/?model=production")
    assert r.status_code == 200
    assert b'<option value="production" selected' in r.content
    assert f'value="mv-{versions["remote"].pk}"'.encode() in r.content
    assert b"/v1/chat/completions" in r.content and "csrftoken" in r.cookies


def test_deploy_takes_effect_immediately(oai, versions, wired, admin_user):
    """Routes are cached briefly on the hot path; a deploy in this process clears them."""
    from apps.registry.services import alias_deploy

    oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "a"}])
    assert wired.seen[-1]["body"]["model"] == f"mv-{versions['local'].pk}"
    alias_deploy(actor=admin_user, version_id=versions["remote"].pk, alias="production")
    oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "a"}])
    assert wired.seen[-1]["body"]["model"] == "acme/Remote-Model-ft-1"
