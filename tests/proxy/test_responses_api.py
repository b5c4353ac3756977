"""POST /v1/responses (the OpenAI Responses API, the only API Codex speaks) against the fake upstream,
through the official openai SDK and raw HTTP."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def _sse(text: str) -> list[tuple[str, dict]]:
    """(event name, data) of a Responses SSE body."""
    out = []
    for block in text.split("\n\n"):
        name, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            out.append((name, data))
    return out


def _post(hub_server, api_key, body, **headers):
    headers["Authorization"] = f"Bearer {api_key}"
    return httpx.post(hub_server.url + "/v1/responses", json=body, headers=headers, timeout=20)


# --- text answers ------------------------------------------------------------------------------------
def test_text_answer(oai, versions, wired):
    raw = oai.responses.with_raw_response.create(model="production", input="hello there", max_output_tokens=20,
                                                 temperature=0.3)
    assert raw.headers.get("x-request-id")
    r = raw.parse()
    assert r.object == "response" and r.id.startswith("resp_") and r.model == "production"
    assert r.status == "completed" and r.incomplete_details is None and r.error is None
    assert r.output_text == "echo: hello there"
    msg = r.output[0]
    assert msg.type == "message" and msg.role == "assistant" and msg.status == "completed"
    assert msg.content[0].type == "output_text" and msg.content[0].annotations == []
    assert r.usage.input_tokens == 7 and r.usage.output_tokens == 3 and r.usage.total_tokens == 10
    assert r.store is False and r.max_output_tokens == 20 and r.temperature == 0.3
    sent = wired.seen[-1]["body"]
    assert sent["messages"] == [{"role": "user", "content": "hello there"}]
    assert sent["model"] == f"mv-{versions['local'].pk}" and sent["max_tokens"] == 20 and sent["temperature"] == 0.3
    assert not {"input", "max_output_tokens", "store", "instructions"} & set(sent)


def test_stream_event_sequence(oai, versions, wired):
    events = list(oai.responses.create(model="production", input="one two three", stream=True))
    kinds = [e.type for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert kinds == (["response.created", "response.in_progress", "response.output_item.added",
                      "response.content_part.added"] + ["response.output_text.delta"] * deltas
                     + ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                        "response.completed"])
    assert deltas == 4
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "echo: one two three"
    item_id = events[2].item.id
    assert all(e.item_id == item_id for e in events if hasattr(e, "item_id"))
    done = events[-1].response
    assert done.status == "completed" and done.output_text == text
    assert done.usage.input_tokens == 7 and done.usage.output_tokens == 4 and done.usage.total_tokens == 11
    assert wired.seen[-1]["body"]["stream"] is True
    assert wired.seen[-1]["body"]["stream_options"] == {"include_usage": True}


def test_stream_helper_final_response(oai, versions):
    with oai.responses.stream(model="production", input=[{"role": "user", "content": "a b"}]) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == "echo: a b" and final.output_text == "echo: a b"


def test_token_limit_gives_incomplete(oai, versions):
    r = oai.responses.create(model="production", input="LENGTH", max_output_tokens=2)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.output_text == "cut short" and r.output[0].status == "incomplete"
    events = list(oai.responses.create(model="production", input="LENGTH", max_output_tokens=2, stream=True))
    assert events[-1].type == "response.incomplete"  # OpenAI's terminal event for a cut-off answer
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].response.output_text == "cut short"


# --- roles, instructions ------------------------------------------------------------------------------
def test_developer_role_and_instructions_reach_the_upstream_as_system(oai, versions, wired):
    oai.responses.create(model="production", instructions="Be brief.", input=[
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Sandbox: read-only."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "hello"}]},
        {"role": "developer", "content": "Now answer in French."},
        {"role": "system", "content": "No emojis."},
        {"role": "user", "content": "bye"},
    ])
    assert wired.seen[-1]["body"]["messages"] == [
        {"role": "system", "content": "Be brief.\n\nSandbox: read-only."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Now answer in French.\n\nNo emojis."},
        {"role": "user", "content": "bye"},
    ]


def test_text_format_becomes_response_format(oai, versions, wired):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    oai.responses.create(model="production", input="x",
                         text={"format": {"type": "json_schema", "name": "out", "schema": schema, "strict": True}})
    assert wired.seen[-1]["body"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}
    r = oai.responses.create(model="production", input="x", text={"format": {"type": "json_object"}})
    assert wired.seen[-1]["body"]["response_format"] == {"type": "json_object"}
    assert r.text.format.type == "json_object"
    oai.responses.create(model="production", input="x", text={"format": {"type": "text"}})
    assert "response_format" not in wired.seen[-1]["body"]


# --- tools --------------------------------------------------------------------------------------------
def test_function_call_then_output_round_trip(oai, versions, wired):
    r = oai.responses.create(model="production", input="TOOL", tools=[WEATHER], tool_choice="auto",
                             parallel_tool_calls=False)
    sent = wired.seen[-1]["body"]
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather in a city", "parameters": WEATHER["parameters"]}}]
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is False
    call = r.output[0]
    assert call.type == "function_call" and call.status == "completed"
    assert call.name == "get_weather" and call.call_id == "call_1" and call.arguments == '{"city": "Paris"}'
    assert r.tools[0].name == "get_weather"

    r2 = oai.responses.create(model="production", tools=[WEATHER], input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ])
    assert r2.output_text == "echo: sunny"
    assert wired.seen[-1]["body"]["messages"] == [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]


def test_streamed_tool_calls(oai, versions):
    tools = [WEATHER, {"type": "function", "name": "get_time", "parameters": {"type": "object"}}]
    with oai.responses.stream(model="production", input="TOOL_PAIR", tools=tools) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    # the text item closes before the first call opens, as OpenAI streams it
    assert kinds.index("response.output_item.done") < kinds.index("response.function_call_arguments.delta")
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [(i.type, getattr(i, "name", None)) for i in added] == [
        ("message", None), ("function_call", "get_weather"), ("function_call", "get_time")]
    args = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            args[e.output_index] = args.get(e.output_index, "") + e.delta
    assert args == {1: '{"city": "Paris"}', 2: '{"tz": "Europe/Paris"}'}
    dones = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [d.arguments for d in dones] == ['{"city": "Paris"}', '{"tz": "Europe/Paris"}']
    assert [o.type for o in final.output] == ["message", "function_call", "function_call"]
    assert final.output_text == "Let me check both."
    assert [(o.call_id, o.name) for o in final.output[1:]] == [("call_a", "get_weather"), ("call_b", "get_time")]
    # an upstream that repeats id/name on every fragment still gives one whole call
    with oai.responses.stream(model="production", input="TOOL", tools=[WEATHER]) as stream:
        final = stream.get_final_response()
    assert [(o.type, o.name, o.arguments) for o in final.output] == [
        ("function_call", "get_weather", '{"city": "Paris"}')]


def test_parallel_calls_in_history_form_one_assistant_turn(oai, versions, wired):
    oai.responses.create(model="production", input=[
        {"role": "user", "content": "both"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "rain"}]},
        {"type": "function_call_output", "call_id": "c2", "output": "noon"},
    ])
    msgs = wired.seen[-1]["body"]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "tool"]
    assert msgs[1]["content"] == "Checking." and [t["id"] for t in msgs[1]["tool_calls"]] == ["c1", "c2"]
    assert msgs[2]["content"] == "rain"


def test_custom_tools_become_function_tools(oai, versions, wired):
    patch = {"type": "custom", "name": "apply_patch", "description": "Edit files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"}}
    r = oai.responses.create(model="production", input="CUSTOM_TOOL", tools=[patch])
    fn = wired.seen[-1]["body"]["tools"][0]["function"]
    assert fn["name"] == "apply_patch" and "start: begin_patch" in fn["description"]
    assert fn["parameters"]["required"] == ["input"]
    item = r.output[0]
    assert item.type == "custom_tool_call" and item.call_id == "call_p"
    assert item.input == "*** Begin Patch\n*** End Patch"
    with oai.responses.stream(model="production", input="CUSTOM_TOOL", tools=[patch]) as stream:
        final = stream.get_final_response()
    assert final.output[0].type == "custom_tool_call" and final.output[0].input == item.input
    oai.responses.create(model="production", tools=[patch], input=[
        {"role": "user", "content": "patch it"},
        {"type": "custom_tool_call", "call_id": "call_p", "name": "apply_patch", "input": item.input},
        {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
    ])
    msgs = wired.seen[-1]["body"]["messages"]
    assert json.loads(msgs[1]["tool_calls"][0]["function"]["arguments"]) == {"input": item.input}
    assert msgs[2] == {"role": "tool", "tool_call_id": "call_p", "content": "Done!"}


def test_namespace_tools_are_flattened(oai, versions, wired):
    ns = {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.", "tools": [
        {**WEATHER, "description": "namespaced"}, {"type": "web_search"}]}
    raw = oai.responses.with_raw_response.create(model="production", input="TOOL", tools=[ns])
    assert raw.headers["x-hub-tools-dropped"] == "1"
    call = raw.parse().output[0]
    assert (call.type, call.name, call.namespace) == ("function_call", "get_weather", "multi_agent_v1")
    assert [t["function"]["name"] for t in wired.seen[-1]["body"]["tools"]] == ["get_weather"]
    # a clash with a top-level tool: the namespaced one gets a prefix upstream, and its calls map back
    oai.responses.create(model="production", tools=[WEATHER, ns], input=[
        {"role": "user", "content": "x"},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "namespace": "multi_agent_v1",
         "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ], tool_choice={"type": "function", "name": "get_weather", "namespace": "multi_agent_v1"})
    sent = wired.seen[-1]["body"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather", "multi_agent_v1__get_weather"]
    assert sent["messages"][1]["tool_calls"][0]["function"]["name"] == "multi_agent_v1__get_weather"
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "multi_agent_v1__get_weather"}}


# --- errors -------------------------------------------------------------------------------------------
def test_previous_response_id_is_a_clear_400(oai, versions, wired):
    n = len(wired.seen)
    with pytest.raises(openai.BadRequestError) as ei:
        oai.responses.create(model="production", input="x", previous_response_id="resp_123")
    assert ei.value.param == "previous_response_id" and "does not store responses" in ei.value.message
    assert len(wired.seen) == n  # nothing reached the upstream


@pytest.mark.parametrize("patch, param", [
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": "a"}, {"type": "function_call", "name": "f", "arguments": "{}"}]},
     "input[1].call_id"),
    ({"input": [{"role": "user", "content": "a"}, {"type": "function_call_output", "call_id": "c"}]},
     "input[1].output"),
    ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_video"}]}]},
     "input[0].content[0].type"),
    ({"input": [{"type": "message", "role": "user", "content": [{"type": "input_text"}]}]},
     "input[0].content[0].text"),
    ({"input": [{"role": "user", "content": 5}]}, "input[0].content"),
    ({"input": [{"role": "user", "content": "a"}, {"type": "bogus"}]}, "input[1].type"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
    ({"input": ["just a string in a list"]}, "input[0]"),
    ({"input": []}, "input"),
    ({"input": None}, "input"),
    ({"input": [{"role": "developer", "content": "only instructions"}]}, "input"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [{"name": "x"}]}, "tools[0].type"),
    ({"tool_choice": {"type": "function", "name": "nope"}}, "tool_choice.name"),
    ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"temperature": 3}, "temperature"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"stream": "yes"}, "stream"),
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"instructions": ["x"]}, "instructions"),
    ({"model": ""}, "model"),
])
def test_malformed_requests_name_the_param(hub_server, api_key, versions, wired, patch, param):
    n = len(wired.seen)
    body = {"model": "production", "input": "hi", **patch}
    if body["input"] is None:
        del body["input"]
    r = _post(hub_server, api_key, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]
    assert r.headers["x-should-retry"] == "false" and r.headers["x-request-id"]
    assert len(wired.seen) == n


def test_errors_before_the_first_byte(oai, hub_server, api_key, versions):
    r = httpx.get(hub_server.url + "/v1/responses", headers={"Authorization": f"Bearer {api_key}"})
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    with pytest.raises(openai.NotFoundError):
        oai.responses.create(model="nope", input="x")
    with pytest.raises(openai.InternalServerError):  # 502: the stream never started, so a plain HTTP error
        list(oai.responses.create(model="production", input="UPSTREAM_500", stream=True))
    with pytest.raises(openai.RateLimitError):
        oai.responses.create(model="production", input="RATE_LIMIT")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=str(oai.base_url), api_key="wrong", max_retries=0).responses.create(
            model="production", input="x")


@pytest.mark.parametrize("trigger", ["FAIL_MID", "NO_DONE", "ERROR_EVENT"])
def test_mid_stream_failure_is_an_sdk_error(oai, hub_server, api_key, versions, trigger):
    got = []
    with pytest.raises(openai.APIError) as ei:
        for ev in oai.responses.create(model="production", input=trigger, stream=True):
            got.append(ev)
    assert ei.value.message
    assert got[0].type == "response.created" and "response.output_text.delta" in [e.type for e in got]
    assert got[-1].type == "response.failed" and got[-1].response.status == "failed"
    assert got[-1].response.error.code == "server_error"
    assert "response.completed" not in [e.type for e in got]
    with pytest.raises(openai.APIError):
        with oai.responses.stream(model="production", input=trigger) as stream:
            stream.get_final_response()
    # on the wire: response.failed (what Codex reads), then an `error` event, flat and nested
    events = _sse(_post(hub_server, api_key, {"model": "production", "input": trigger, "stream": True}).text)
    assert [name for name, _ in events[-2:]] == ["response.failed", "error"]
    err = events[-1][1]
    assert err["type"] == "error" and err["message"] and err["error"]["message"] == err["message"]
    assert "sequence_number" in err


def test_tool_call_cut_mid_stream_is_never_done(oai, versions, monkeypatch):
    from apps.proxy import gateway, responses

    async def broken(resp):
        yield {"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_x", "type": "function", "function": {"name": "get_weather",
                                                                          "arguments": '{"ci'}}]}}]}
        raise gateway.UpstreamStreamError("dropped")

    monkeypatch.setattr(responses, "sse_events", broken)
    got = []
    with pytest.raises(openai.APIError):
        for ev in oai.responses.create(model="production", input="TOOL", tools=[WEATHER], stream=True):
            got.append(ev)
    kinds = [e.type for e in got]
    assert "response.output_item.added" in kinds and "response.function_call_arguments.delta" in kinds
    assert "response.output_item.done" not in kinds and "response.function_call_arguments.done" not in kinds
    assert got[-1].type == "response.failed" and got[-1].response.output == []


# --- Codex ----------------------------------------------------------------------------------------------
CODEX_BODY = {
    "model": "production",
    "instructions": "You are Codex, a coding agent running in the Codex CLI.",
    "input": [
        {"type": "message", "role": "developer", "content": [
            {"type": "input_text", "text": "<permissions>sandbox: workspace-write</permissions>"}]},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "<environment_context><cwd>/work</cwd></environment_context>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "list the files"}]},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "I should run ls."}],
         "content": None, "encrypted_content": "gAAAA..."},
        {"type": "function_call", "name": "shell", "arguments": "{\"command\":[\"ls\"]}", "call_id": "call_ls"},
        {"type": "function_call_output", "call_id": "call_ls", "output": "README.md\nsrc"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
    ],
    "tools": [
        {"type": "function", "name": "shell", "description": "Runs a shell command and returns its output.",
         "strict": False, "parameters": {"type": "object", "properties": {
             "command": {"type": "array", "items": {"type": "string"}}, "workdir": {"type": "string"},
             "timeout_ms": {"type": "number"}}, "required": ["command"], "additionalProperties": False}},
        {"type": "function", "name": "update_plan", "description": "Updates the task plan.", "strict": False,
         "parameters": {"type": "object", "properties": {"plan": {"type": "array", "items": {"type": "object"}}},
                        "required": ["plan"], "additionalProperties": False}},
        {"type": "namespace", "name": "multi_agent_v1", "description": "Tools for spawning sub-agents.", "tools": [
            {"type": "function", "name": "spawn_agent", "description": "Spawn a sub-agent.", "strict": False,
             "parameters": {"type": "object", "properties": {"message": {"type": "string"}}}}]},
        {"type": "web_search"},
        {"type": "local_shell"},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "reasoning": {"effort": "medium", "summary": "auto"},
    "store": False,
    "stream": True,
    "include": ["reasoning.encrypted_content"],
    "prompt_cache_key": "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000",
    "text": {"verbosity": "medium"},
    "client_metadata": {"x-codex-installation-id": "abc"},
}


def test_codex_shaped_request_is_accepted(hub_server, api_key, versions, wired):
    r = _post(hub_server, api_key, CODEX_BODY, accept="text/event-stream", **{
        "session-id": "0199aaaa-bbbb-7ccc-8ddd-eeeeffff0000", "x-client-request-id": "0199aaaa",
        "originator": "codex_exec", "version": "0.170.0"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream") and r.headers["x-request-id"]
    assert r.headers["x-hub-tools-dropped"] == "2"
    events = _sse(r.text)
    assert all(name == data["type"] for name, data in events)
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
    done = [d["item"] for name, d in events if name == "response.output_item.done"]
    assert done == [{"id": done[0]["id"], "type": "message", "status": "completed", "role": "assistant",
                     "content": [{"type": "output_text", "text": "echo: thanks", "annotations": [], "logprobs": []}]}]
    final = events[-1][1]["response"]
    assert isinstance(final["id"], str)
    usage = final["usage"]
    assert all(isinstance(usage[k], int) for k in ("input_tokens", "output_tokens", "total_tokens"))
    assert isinstance(usage["input_tokens_details"]["cached_tokens"], int)
    assert isinstance(usage["output_tokens_details"]["reasoning_tokens"], int)

    sent = wired.seen[-1]["body"]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "user", "assistant", "tool", "user"]
    assert sent["messages"][0]["content"].startswith("You are Codex") and "sandbox" in sent["messages"][0]["content"]
    assert sent["messages"][3]["tool_calls"][0]["function"]["name"] == "shell"
    assert sent["messages"][4] == {"role": "tool", "tool_call_id": "call_ls", "content": "README.md\nsrc"}
    assert [t["function"]["name"] for t in sent["tools"]] == ["shell", "update_plan", "spawn_agent"]
    assert sent["tool_choice"] == "auto" and sent["parallel_tool_calls"] is False
    assert not {"reasoning", "include", "store", "prompt_cache_key", "text", "client_metadata"} & set(sent)


def test_codex_tool_turn_on_the_wire(hub_server, api_key, versions):
    """The tool-call turn as Codex reads it: output_item.done with a whole function_call, then completed."""
    body = {**CODEX_BODY, "input": [{"type": "message", "role": "user",
                                     "content": [{"type": "input_text", "text": "TOOL"}]}]}
    events = _sse(_post(hub_server, api_key, body).text)
    done = [d["item"] for name, d in events if name == "response.output_item.done"]
    assert len(done) == 1 and done[0]["type"] == "function_call"
    assert {k: done[0][k] for k in ("call_id", "name", "arguments")} == {
        "call_id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert events[-1][0] == "response.completed"


def test_the_log_keeps_the_response(oai, versions, monkeypatch):
    from apps.proxy import responses, services

    logged = []
    monkeypatch.setattr(services, "request_log_enqueue", logged.append)
    oai.responses.create(model="production", input="TOOL", tools=[WEATHER])
    list(oai.responses.create(model="production", input="TOOL", tools=[WEATHER], stream=True))
    assert [p["endpoint"] for p in logged] == ["responses", "responses"]
    for p in logged:
        assert p["status_code"] == 200 and p["prompt_tokens"] == 7
        assert p["request"]["input"] == "TOOL"
        assert p["response"]["output"][0]["type"] == "function_call"
    assert logged[1]["stream"] is True and logged[1]["ttft_ms"] is not None
    # what the traffic page turns into a chat example
    msg = responses.assistant_message(logged[1]["response"])
    assert msg == {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert responses.to_chat(logged[1]["request"]).chat["messages"] == [{"role": "user", "content": "TOOL"}]
