"""The translation pieces on their own: OpenAI requests for a native Anthropic provider and its answers back
(apps/proxy/anthropic_upstream.py), the stop-sequence matcher, and Anthropic -> OpenAI request details."""
from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from apps.proxy import anthropic_upstream as au
from apps.proxy.anthropic import to_openai
from apps.proxy.anthropic_stream import StopMatcher
from apps.proxy.errors import ProxyError
from apps.proxy.gateway import UpstreamStreamError


# --- OpenAI request -> Anthropic provider ----------------------------------------------------------
def test_openai_request_becomes_a_messages_request():
    body = {
        "model": "gpt-x", "max_completion_tokens": 300, "temperature": 1.7, "top_p": 0.9, "stop": "###",
        "user": "u-1", "stream": True, "parallel_tool_calls": False, "tool_choice": "required", "seed": 3,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "w",
                                                    "parameters": {"type": "object", "properties": {}}}}],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "developer", "content": "Answer in French."},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": ""},
        ]}
    req = au.openai_to_anthropic_request(body)
    assert req["system"] == "Be brief.\n\nAnswer in French." and req["max_tokens"] == 300
    assert req["temperature"] == 1.0 and req["top_p"] == 0.9 and req["stop_sequences"] == ["###"]
    assert req["metadata"] == {"user_id": "u-1"} and req["stream"] is True and "seed" not in req
    assert req["tools"] == [{"name": "get_weather", "description": "w",
                             "input_schema": {"type": "object", "properties": {}}}]
    assert req["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert [m["role"] for m in req["messages"]] == ["user", "assistant", "user"]  # empty assistant turn dropped
    assert req["messages"][0]["content"] == [
        {"type": "text", "text": "Weather?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA="}}]
    assert req["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}}]
    assert req["messages"][2]["content"] == [  # both results first, in one user turn, then the user's text
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
        {"type": "text", "text": "Thanks"}]


def test_openai_request_edge_cases():
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert au.openai_to_anthropic_request(base)["max_tokens"] == au.DEFAULT_MAX_TOKENS
    req = au.openai_to_anthropic_request({**base, "reasoning_effort": "medium", "max_tokens": 8000,
                                          "temperature": 0.2})
    assert req["thinking"] == {"type": "enabled", "budget_tokens": 4096} and "temperature" not in req
    req = au.openai_to_anthropic_request({**base, "reasoning_effort": "high", "max_tokens": 100, "temperature": 0.2})
    assert "thinking" not in req and req["temperature"] == 0.2  # the budget would not fit under max_tokens
    req = au.openai_to_anthropic_request({**base, "tools": [{"type": "function", "function": {"name": "f"}}],
                                          "tool_choice": {"type": "function", "function": {"name": "f"}}})
    assert req["tool_choice"] == {"type": "tool", "name": "f"}
    for bad, code in (({"n": 2}, "unsupported_value"), ({"logprobs": True}, "unsupported_value"),
                      ({"response_format": {"type": "json_object"}}, "unsupported_value")):
        with pytest.raises(ProxyError) as ei:
            au.openai_to_anthropic_request({**base, **bad})
        assert ei.value.status == 400 and ei.value.code == code
    with pytest.raises(ProxyError, match="JSON object"):
        au.openai_to_anthropic_request({"model": "m", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]})
    with pytest.raises(ProxyError, match="input_audio"):
        au.openai_to_anthropic_request({"model": "m", "messages": [
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]})
    assert au.upstream_headers("sk", ["a", "b"]) == {
        "content-type": "application/json", "accept": "application/json, text/event-stream",
        "anthropic-version": "2023-06-01", "x-api-key": "sk", "anthropic-beta": "a,b"}


def test_anthropic_response_becomes_a_chat_completion():
    data = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude", "stop_reason": "tool_use",
            "stop_sequence": None,
            "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 20,
                      "cache_creation_input_tokens": 3}}
    out = au.anthropic_to_openai_response(data, cid="chatcmpl-1", created=7, model="alias")
    assert out["id"] == "chatcmpl-1" and out["model"] == "alias" and out["object"] == "chat.completion"
    msg = out["choices"][0]["message"]
    assert msg["content"] == "Checking." and msg["reasoning_content"] == "hmm"
    assert msg["tool_calls"] == [{"id": "toolu_1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"] == {"prompt_tokens": 33, "completion_tokens": 5, "total_tokens": 38,
                            "prompt_tokens_details": {"cached_tokens": 20}}
    for stop_reason, finish in (("end_turn", "stop"), ("max_tokens", "length"), ("refusal", "content_filter"),
                                ("stop_sequence", "stop"), ("model_context_window_exceeded", "length")):
        out = au.anthropic_to_openai_response({"content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason,
                                               "stop_sequence": "##" if stop_reason == "stop_sequence" else None},
                                              cid="c", created=1, model="m")
        assert out["choices"][0]["finish_reason"] == finish
    assert out["choices"][0].get("stop_reason") is None
    out = au.anthropic_to_openai_response({"content": [], "stop_reason": "stop_sequence", "stop_sequence": "##"},
                                          cid="c", created=1, model="m")
    assert out["choices"][0]["stop_reason"] == "##" and out["choices"][0]["message"]["content"] == ""


async def _collect(agen):
    return [x async for x in agen]


def _fake_anthropic_stream(wired_url: str, text: str, **extra) -> list[dict]:
    async def run():
        async with httpx.AsyncClient() as client:
            req = client.build_request("POST", wired_url + "/v1/messages", json={
                "model": "claude-x", "max_tokens": 20, "stream": True,
                "messages": [{"role": "user", "content": text}], **extra})
            resp = await client.send(req, stream=True)
            return await _collect(au.anthropic_stream_to_openai_chunks(au.anthropic_sse_events(resp)))

    return asyncio.run(run())


def _openai_sdk_reads(chunks: list[dict]):
    """Frame the chunks as OpenAI SSE and let the official SDK parse them."""
    sse = "".join("data: " + json.dumps(c) + "\n\n" for c in chunks) + "data: [DONE]\n\n"
    transport = httpx.MockTransport(lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=sse.encode()))
    with openai.OpenAI(api_key="k", base_url="http://fake/v1", http_client=httpx.Client(transport=transport)) as c:
        return list(c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))


def test_anthropic_stream_becomes_openai_chunks(fake_upstream):
    chunks = _fake_anthropic_stream(fake_upstream.url, "TOOL")
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""} and chunks[0]["id"] == "msg_fake"
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert {"content": "Checking."} in deltas
    tool = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert tool[0] == {"index": 0, "id": "toolu_1", "type": "function",
                       "function": {"name": "get_weather", "arguments": ""}}
    assert all(set(t) == {"index", "function"} for t in tool[1:])  # id/type/name on the first fragment only
    assert json.loads("".join(t["function"]["arguments"] for t in tool)) == {"city": "Paris"}
    finals = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finals == ["tool_calls"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 13
    assert chunks[-1]["usage"]["completion_tokens"] == 3
    parsed = _openai_sdk_reads(chunks)
    calls = [tc for p in parsed if p.choices for tc in (p.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather" and parsed[-1].usage.total_tokens == 16

    chunks = _fake_anthropic_stream(fake_upstream.url, "hello there")
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert {"reasoning_content": "Hmm."} in deltas and {"content": "echo: hello there"} in deltas
    text = "".join(p.choices[0].delta.content or "" for p in _openai_sdk_reads(chunks) if p.choices)
    assert text == "echo: hello there"


def test_anthropic_stream_failures_raise(fake_upstream):
    with pytest.raises(UpstreamStreamError) as ei:
        _fake_anthropic_stream(fake_upstream.url, "ERROR_EVENT")
    assert ei.value.error["message"] == "Overloaded" and ei.value.error["code"] == "overloaded"

    async def truncated():
        yield {"type": "message_start", "message": {"id": "m", "model": "x", "usage": {}}}
        yield {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

    with pytest.raises(UpstreamStreamError, match="before it finished"):
        asyncio.run(_collect(au.anthropic_stream_to_openai_chunks(truncated())))


# --- stop sequences --------------------------------------------------------------------------------
def test_stop_matcher_across_chunks():
    m = StopMatcher(["END", "\n\nHuman:"])
    out = []
    for piece in ["alpha E", "N", "x beta \n", "\nHum", "an: gone"]:
        text, hit = m.feed(piece)
        out.append(text)
        if hit:
            break
    assert "".join(out) == "alpha ENx beta " and hit == "\n\nHuman:"
    m = StopMatcher(["END"])
    assert m.feed("abc EN") == ("abc ", None) and m.flush() == "EN"  # a held prefix is released at the end
    assert StopMatcher(["b", "abc"]).cut("xxabcd") == ("xx", "abc")  # the earliest match wins
    assert StopMatcher(["zz"]).cut("no stop") == ("no stop", None)


# --- Anthropic request details ---------------------------------------------------------------------
def test_tool_results_after_a_mid_conversation_system_message_stay_adjacent():
    req = to_openai({"model": "m", "max_tokens": 5, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "system", "content": "reminder"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                                     {"type": "text", "text": "next"}]},
        {"role": "system", "content": "late note"},
        {"role": "user", "content": "plain"}]})
    assert [(m["role"], m.get("content")) for m in req["messages"]] == [
        ("user", "go"), ("assistant", None), ("tool", "ok"), ("system", "reminder"), ("user", "next"),
        ("system", "late note"), ("user", "plain")]


def test_documents_server_tools_and_unknown_blocks():
    req = to_openai({"model": "m", "max_tokens": 5,
                     "tools": [{"name": "Bash", "input_schema": {"type": "object"}},
                               {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
                     "tool_choice": {"type": "tool", "name": "web_search"},
                     "messages": [{"role": "user", "content": [
                         {"type": "document", "title": "notes", "source": {"type": "text", "media_type": "text/plain",
                                                                           "data": "the notes"}},
                         {"type": "text", "text": "summarise"}]},
                         {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "xx"},
                                                           {"type": "server_tool_use", "id": "s", "name": "web_search",
                                                            "input": {}}, {"type": "text", "text": "done"}]}]})
    assert [t["function"]["name"] for t in req["tools"]] == ["Bash"] and "tool_choice" not in req
    assert req["messages"][0]["content"] == "notes\nthe notes\nsummarise"
    assert req["messages"][1] == {"role": "assistant", "content": "done"}
    with pytest.raises(ProxyError, match="only text documents") as ei:
        to_openai({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "x"}}]}]})
    assert ei.value.param == "messages.0.content.0"
    with pytest.raises(ProxyError, match="'hologram'"):
        to_openai({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "hologram"}]}]})
    req = to_openai({"model": "m", "max_tokens": 5, "output_config": {"effort": "low", "format": {
        "type": "json_schema", "schema": {"type": "object"}}}, "messages": [{"role": "user", "content": "x"}]})
    assert req["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "strict": True,
                                                                             "schema": {"type": "object"}}}


# --- token estimates with a tokenizer and its chat template ----------------------------------------
def test_estimates_follow_the_chat_template(tiny_model_dir, tmp_path):
    import shutil

    from tokenizers import Tokenizer

    from apps.proxy import tokencount

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, tmp_path / name)
    (tmp_path / "chat_template.jinja").write_text(
        "{% if tools %}<|im_start|>system\nTools: {{ tools | tojson }}<|im_end|>\n{% endif %}"
        "{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tool role') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    counter = tokencount._Counter(str(tmp_path / "tokenizer.json"))
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is Python?"}]

    def exact(text):
        return len(tok.encode(text, add_special_tokens=False).ids)

    prompt = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs) + "<|im_start|>assistant\n"
    tools_text = "<|im_start|>system\nTools: " + json.dumps(tools) + "<|im_end|>\n"
    assert abs(tokencount._estimate_with(counter, msgs, None)[0] - exact(prompt)) <= 2
    assert abs(tokencount._estimate_with(counter, msgs, tools)[0] - exact(tools_text + prompt)) <= 3
    # a template that refuses a shape: a constant per message instead, still with the tokenizer
    with_tool = [*msgs, {"role": "tool", "tool_call_id": "t", "content": "ok"}]
    n, method = tokencount._estimate_with(counter, with_tool, None)
    assert method == "tokenizer" and n == counter.count(["Be brief.", "What is Python?", "ok"]) + 3 * tokencount.PER_MESSAGE
    assert tokencount._estimate_with(None, msgs, None) == (tokencount.chars_estimate(msgs), "chars")
