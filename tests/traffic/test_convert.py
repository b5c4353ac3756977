"""Logged requests of the three dialects become hub chat examples (apps/traffic/convert.py): tool calls and
tool results kept, thinking kept, and the reasons a request cannot become an example."""
from __future__ import annotations

import json

from apps.traffic import convert
from tests.traffic.conftest import chat_request, chat_response

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                             "parameters": {"type": "object",
                                                            "properties": {"city": {"type": "string"}}}}}


def test_openai_chat_with_tools_keeps_calls_and_results():
    request = {"model": "production", "tools": [WEATHER], "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C and sunny"}]}
    conv = convert.conversation("chat.completions", request, chat_response("It is 18C and sunny in Paris."))
    assert not conv.problems and conv.clean and conv.answered
    roles = [m["role"] for m in conv.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.messages[2]["tool_calls"][0]["function"] == {"name": "get_weather",
                                                             "arguments": "{\"city\": \"Paris\"}"}
    assert conv.messages[3]["tool_call_id"] == "call_1"
    assert conv.tools[0]["function"]["name"] == "get_weather"


def test_openai_answer_that_is_a_tool_call():
    call = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
    conv = convert.conversation("chat.completions", chat_request("Oslo?", tools=[WEATHER]),
                                chat_response(tool_calls=[call], finish="tool_calls"))
    last = conv.messages[-1]
    assert last["role"] == "assistant" and last["content"] == ""
    assert json.loads(last["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}


def test_anthropic_messages_tool_use_tool_result_thinking_and_mid_conversation_system():
    request = {"model": "claude", "system": [{"type": "text", "text": "You are Claude Code."}],
               "tools": [{"name": "Bash", "description": "Run a command",
                          "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
               "messages": [
                   {"role": "user", "content": "List files"},
                   {"role": "assistant", "content": [{"type": "thinking", "thinking": "use ls", "signature": "x"},
                                                     {"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                                      "input": {"command": "ls"}}]},
                   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"},
                                                {"type": "text", "text": "and now?"}]},
                   {"role": "system", "content": "Reminder: be careful."}]}
    response = {"type": "message", "role": "assistant", "stop_reason": "end_turn",
                "content": [{"type": "text", "text": "There is one file: a.py."}]}
    conv = convert.conversation("messages", request, response)
    assert not conv.problems
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "tool", "user", "system", "assistant"]
    assert conv.messages[2]["content"].startswith("<thinking>use ls</thinking>")
    assert conv.messages[2]["tool_calls"][0]["id"] == "toolu_1"
    assert json.loads(conv.messages[2]["tool_calls"][0]["function"]["arguments"]) == {"command": "ls"}
    assert conv.messages[3] == {"role": "tool", "content": "a.py", "tool_call_id": "toolu_1"}
    assert conv.tools[0]["function"]["parameters"]["properties"]["command"]["type"] == "string"


def test_anthropic_answer_cut_by_max_tokens_is_not_clean():
    conv = convert.conversation("messages", {"messages": [{"role": "user", "content": "hi"}]},
                                {"type": "message", "stop_reason": "max_tokens",
                                 "content": [{"type": "text", "text": "Hel"}]})
    assert conv.answered and not conv.clean


def test_responses_api_items():
    request = {"model": "production", "instructions": "Be terse.",
               "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
               "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
                         {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
                         {"type": "function_call_output", "call_id": "c1", "output": "rain"}]}
    response = {"object": "response", "status": "completed",
                "output": [{"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": "Rain."}]}]}
    conv = convert.conversation("responses", request, response)
    assert not conv.problems
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert conv.messages[2]["tool_calls"][0]["id"] == "c1"
    assert conv.tools[0]["function"]["name"] == "get_weather"


def test_stream_summary_and_partial_stream():
    conv = convert.conversation("chat.completions", chat_request("hi"), {"content": "Hello!", "finish_reason": "stop"})
    assert conv.answered and conv.clean and conv.messages[-1] == {"role": "assistant", "content": "Hello!"}
    broken = convert.conversation("chat.completions", chat_request("hi"), {"content": "Hel", "partial": True})
    assert not broken.clean


def test_reasons_a_request_cannot_become_an_example():
    cut = convert.conversation("chat.completions", chat_request("x" * 10 + "… [500 more chars]"), chat_response("ok"))
    assert "truncated" in cut.problems
    many = convert.conversation("chat.completions", {"messages": [{"role": "user", "content": "a"}, "… 45 items …"]},
                                chat_response("ok"))
    assert "truncated" in many.problems
    image = convert.conversation("chat.completions", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:..."}}]}]},
        chat_response("a cat"))
    assert "unsupported" in image.problems and "[image]" in image.messages[0]["content"]
    assert "no_answer" in convert.conversation("chat.completions", chat_request("hi"), {}).problems
    legacy = convert.conversation("completions", {"prompt": "Once"}, {"choices": [{"text": " upon"}]})
    assert "not_chat" in legacy.problems


def test_prompt_hash_ignores_the_answer_and_the_model_but_not_the_tools():
    a = convert.conversation("chat.completions", chat_request("hi"), chat_response("Hello"))
    b = convert.conversation("chat.completions", chat_request("hi", model="staging"), chat_response("Hi there"))
    c = convert.conversation("chat.completions", chat_request("hi", tools=[WEATHER]), chat_response("Hello"))
    assert convert.prompt_hash(a) == convert.prompt_hash(b) != convert.prompt_hash(c)
