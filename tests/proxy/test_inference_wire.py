"""The proxy's side of the local server's extras: response_format / tools validation (clear 400s, then
passed on as sent), and stop_reason, tool_calls and constrained JSON through /v1 from the real
inference process (tiny model; scripted generation where the test is about framing)."""
from __future__ import annotations

import json

import httpx
import pytest

from tests.proxy.fake_upstream import ServerThread

pytestmark = pytest.mark.django_db(transaction=True)

USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0,
                                                                          "maximum": 9}},
          "required": ["ok", "n"], "additionalProperties": False}


def _post(hub_server, api_key, body):
    return httpx.post(hub_server.url + "/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {api_key}"})


@pytest.mark.parametrize("extra, param", [
    ({"response_format": "json"}, "response_format"),
    ({"response_format": {}}, "response_format.type"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}}, "response_format.json_schema.name"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "bad name!", "schema": SCHEMA}}},
     "response_format.json_schema.name"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": [1]}}},
     "response_format.json_schema.schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": "yes"}}},
     "response_format.json_schema.strict"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "other"}}},
     "tool_choice.function.name"),
    ({"tools": [{"type": "function", "function": {"parameters": {}}}]}, "tools[0].function.name"),
    ({"tools": TOOLS, "parallel_tool_calls": 1}, "parallel_tool_calls"),
])
def test_bad_shapes_are_clear_400s(hub_server, api_key, versions, wired, extra, param):
    wired.seen.clear()
    r = _post(hub_server, api_key, {"model": "production", "messages": USER, **extra})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]
    assert wired.seen == []  # nothing reached the upstream


@pytest.mark.parametrize("rf", [
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "answer-1", "schema": SCHEMA, "strict": True}},
    {"type": "text"},
])
def test_valid_response_format_and_tools_are_passed_on_as_sent(hub_server, api_key, versions, wired, rf):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    r = _post(hub_server, api_key, {"model": "cloud", "messages": USER, "response_format": rf, "tools": TOOLS,
                                    "tool_choice": choice, "parallel_tool_calls": False})
    assert r.status_code == 200, r.text
    sent = wired.seen[-1]["body"]
    assert sent["response_format"] == rf and sent["tools"] == TOOLS and sent["tool_choice"] == choice
    assert sent["parallel_tool_calls"] is False


@pytest.fixture(scope="module")
def roomy_model_dir(tmp_path_factory):
    """A tiny model with a context that holds the tool block of the system prompt."""
    from workers.engine.tiny import build_model

    out = tmp_path_factory.mktemp("tiny-roomy")
    build_model(out, size="nano", texts=["What is Python?", json.dumps(TOOLS)] * 5, vocab_size=400,
                context_length=2048)
    return out


@pytest.fixture
def local_inference(settings, roomy_model_dir, admin_user):
    """The real inference server on a registered tiny model, behind the alias `staging`."""
    from apps.proxy.gateway import caches_clear
    from apps.registry.services import alias_deploy, base_model_register, model_version_register
    from workers.inference.server import create_app

    base = base_model_register(model_id="tiny-roomy", path=str(roomy_model_dir), name="Tiny roomy")
    version = model_version_register(name="tiny served", kind="adapter", base_model=base)
    alias_deploy(actor=admin_user, version_id=version.pk, alias="staging")
    caches_clear()
    with ServerThread(create_app(artifact_root=settings.ARTIFACT_ROOT)) as srv:
        settings.HUB_INFERENCE_URL = srv.url + "/v1"
        yield srv


def _script(monkeypatch, deltas, *, finish="stop", stop_reason=None):
    from workers.inference import engine

    def fake(loaded, prompt_ids, **kw):
        for i, d in enumerate(deltas):
            yield d, None, i + 1, None
        yield "", finish, len(deltas), stop_reason

    monkeypatch.setattr(engine, "generate", fake)


def test_stop_reason_through_the_proxy(hub_server, api_key, local_inference, monkeypatch):
    from openai import OpenAI

    _script(monkeypatch, ["Hello", " wor"], stop_reason="ld")
    with OpenAI(base_url=hub_server.url + "/v1", api_key=api_key, max_retries=0, timeout=60) as client:
        raw = _post(hub_server, api_key, {"model": "staging", "messages": USER, "stop": ["ld"]}).json()
        choice = raw["choices"][0]
        assert choice["finish_reason"] == "stop" and choice["stop_reason"] == "ld"
        assert choice["message"]["content"] == "Hello wor"
        chunks = list(client.chat.completions.create(model="staging", messages=USER, stop=["ld"], stream=True))
        final = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
        assert len(final) == 1 and final[0].finish_reason == "stop"
        assert final[0].model_extra.get("stop_reason") == "ld"
        r = httpx.post(hub_server.url + "/v1/completions", headers={"Authorization": f"Bearer {api_key}"},
                       json={"model": "staging", "prompt": "x", "stop": "ld"}, timeout=60)
        assert r.json()["choices"][0]["stop_reason"] == "ld"


def test_tool_calls_through_the_proxy(hub_server, api_key, local_inference, monkeypatch):
    from openai import OpenAI

    call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    _script(monkeypatch, ["Checking.", call[:17], call[17:]])
    with OpenAI(base_url=hub_server.url + "/v1", api_key=api_key, max_retries=0, timeout=60) as client:
        c = client.chat.completions.create(model="staging", messages=USER, tools=TOOLS)
        assert c.choices[0].finish_reason == "tool_calls" and c.choices[0].message.content == "Checking."
        (tc,) = c.choices[0].message.tool_calls
        assert tc.id.startswith("call_") and tc.function.name == "get_weather"
        assert json.loads(tc.function.arguments) == {"city": "Paris"}
        with client.chat.completions.stream(model="staging", messages=USER, tools=TOOLS) as stream:
            final = stream.get_final_completion()
        assert final.choices[0].finish_reason == "tool_calls"
        assert final.choices[0].message.tool_calls[0].function.arguments == tc.function.arguments


def test_json_schema_enforced_through_the_proxy(hub_server, api_key, local_inference):
    """No script: the random tiny model answers; only constrained decoding can make it valid JSON."""
    import jsonschema_rs

    rf = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}
    r = _post(hub_server, api_key, {"model": "staging", "messages": USER, "response_format": rf, "max_tokens": 40,
                                    "temperature": 0})
    assert r.status_code == 200, r.text
    jsonschema_rs.validate(SCHEMA, json.loads(r.json()["choices"][0]["message"]["content"]))
    bad = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"not": {"type": "string"}}}}
    r = _post(hub_server, api_key, {"model": "staging", "messages": USER, "response_format": bad})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == "response_format" and err["code"] == "unsupported_value"


def test_streamed_tool_calls_are_logged_whole(oai, versions, wired):
    """The request log of a stream keeps the tool calls assembled from their fragments (the traffic
    pages turn them into dataset examples)."""
    import dramatiq

    from apps.proxy.models import RequestLog
    from tests.proxy.test_anthropic_and_logs import _drain_logs

    dramatiq.get_broker().flush_all()
    list(oai.chat.completions.create(model="production", messages=[{"role": "user", "content": "TOOL_PAIR"}],
                                     tools=TOOLS, stream=True))
    _drain_logs()
    row = RequestLog.objects.get(stream=True)
    assert row.response["content"] == "Let me check both."
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in row.response["tool_calls"]] \
        == [("call_a", "get_weather", {"city": "Paris"}), ("call_b", "get_time", {"tz": "Europe/Paris"})]
