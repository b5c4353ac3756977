"""Anthropic Messages wire fidelity, through the official `anthropic` SDK against the real ASGI app and the fake
OpenAI-style upstream: Claude Code's request shape (mid-conversation system messages, thinking, context
management, cache_control, 20+ tools, tool results), stop sequences, tool_use streaming, thinking blocks,
usage in message_start, count_tokens with tools, images refused, failures after the first byte."""
from __future__ import annotations

import json

import anthropic
import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "context-management-2025-06-27",
         "prompt-caching-scope-2026-01-05", "mid-conversation-system-2026-04-07", "effort-2025-11-24"]
CC_HEADERS = {"x-app": "cli", "User-Agent": "claude-cli/2.1.0 (external, cli)",
              "X-Claude-Code-Session-Id": "5f0c8a8e-0000-4000-8000-000000000001"}
_TOOL_NAMES = ["Task", "Bash", "Glob", "Grep", "ExitPlanMode", "Read", "Edit", "Write", "NotebookEdit", "WebFetch",
               "TodoWrite", "WebSearch", "BashOutput", "KillShell", "Skill", "SlashCommand", "AskUserQuestion",
               "EnterPlanMode", "ListMcpResources", "ReadMcpResource", "LSP", "MultiEdit"]


def cc_tools(n: int = 22) -> list[dict]:
    """Claude Code-like tool definitions (JSON schema inputs, cache_control on the last one)."""
    tools = []
    for name in (_TOOL_NAMES * 3)[:n]:
        tools.append({"name": name if len(tools) < len(_TOOL_NAMES) else f"{name}{len(tools)}",
                      "description": f"{name}: does what a coding agent needs. " * 6,
                      "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                                       "additionalProperties": False, "required": ["command"],
                                       "properties": {"command": {"type": "string", "description": "what to run"},
                                                      "timeout": {"type": "number"}}}})
    tools[-1]["cache_control"] = {"type": "ephemeral"}
    return tools


def cc_body(last_user: str = "Now summarise.", **over) -> dict:
    """A Claude Code 2.1-shaped request (see ../shared/docs/WIRE-CONTRACT.md)."""
    body = {
        "model": "claude-sonnet-4-5-20250929", "max_tokens": 32000, "stream": True,
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": json.dumps({"session_id": "5f0c8a8e-0000-4000-8000-000000000001"})},
        "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                    "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Be concise.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "tools": cc_tools(),
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                                         {"type": "text", "text": "List the files.",
                                          "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "Available agent types: general-purpose, Explore."},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should run ls.", "signature": "c2ln"},
                {"type": "text", "text": "Running ls."},
                {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_02", "name": "Read", "input": {"command": "cat x"}}]},
            {"role": "system", "content": [{"type": "text", "text": "Skills: pdf, xlsx."}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01",
                 "content": [{"type": "text", "text": "a.py"}, {"type": "text", "text": "b.py"}]},
                {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": True, "content": "no such file",
                 "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": last_user}]},
        ],
    }
    body.update(over)
    return body


@pytest.fixture
def claude(hub_server, api_key):
    with anthropic.Anthropic(base_url=hub_server.url, api_key=api_key, max_retries=0, timeout=20) as c:
        yield c


def _sse(hub_server, api_key, body: dict, path: str = "/v1/messages?beta=true") -> list[tuple[str, dict]]:
    """The raw (event, data) pairs of a streamed answer."""
    headers = {"x-api-key": api_key, "anthropic-version": "2023-06-01", "anthropic-beta": ",".join(BETAS)}
    with httpx.stream("POST", hub_server.url + path, json={**body, "stream": True}, headers=headers,
                      timeout=20) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    out = []
    for chunk in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.split("\n") if ": " in line)
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def _upstream_roles(sent: dict) -> list[tuple[str, str]]:
    return [(m["role"], m.get("tool_call_id") or (m.get("content") or "")[:24]) for m in sent["messages"]]


def test_claude_code_request_streams(claude, versions, wired, hub_server, api_key):
    body = cc_body()
    with claude.beta.messages.stream(**{k: v for k, v in body.items() if k != "stream"}, betas=BETAS,
                                     extra_headers=CC_HEADERS) as stream:
        kinds = [ev.type for ev in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].type == "text" and final.content[0].text == "echo: Now summarise."
    assert final.stop_reason == "end_turn" and final.usage.input_tokens == 7 and final.usage.output_tokens == 3
    sent = wired.seen[-1]["body"]
    # mid-conversation system messages stay in place; tool results still follow the assistant's tool calls
    assert _upstream_roles(sent) == [
        ("system", "You are Claude Code, Ant"), ("user", "<system-reminder>ctx</sy"),
        ("system", "Available agent types: g"), ("assistant", "Running ls."), ("tool", "toolu_01"),
        ("tool", "toolu_02"), ("system", "Skills: pdf, xlsx."), ("user", "Now summarise.")]
    assert sent["messages"][0]["content"] == "You are Claude Code, Anthropic's official CLI for Claude.\nBe concise."
    assert [c["id"] for c in sent["messages"][3]["tool_calls"]] == ["toolu_01", "toolu_02"]
    assert sent["messages"][4]["content"] == "a.py\nb.py"
    assert sent["messages"][5]["content"] == "[error] no such file"
    assert len(sent["tools"]) == 22 and sent["tools"][0]["function"]["parameters"]["required"] == ["command"]
    assert sent["max_tokens"] == 32000 and sent["stream"] is True
    for key in ("thinking", "context_management", "output_config", "metadata", "cache_control"):
        assert key not in sent

    # the same request, raw: ?beta=true, exact event order, an input-token estimate already in message_start
    events = _sse(hub_server, api_key, body)
    names = [e for e, _ in events]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["usage"]["input_tokens"] > 22 * 60  # 22 tool schemas of ~300 characters each, at least
    assert events[-2][1]["usage"]["input_tokens"] == 7  # the upstream's real count at the end
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_claude_code_request_non_streaming(claude, versions, wired):
    body = cc_body()
    body.pop("stream")
    msg = claude.beta.messages.create(**body, betas=BETAS, extra_headers=CC_HEADERS)
    assert msg.content[0].text == "echo: Now summarise." and msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens == 7 and msg.usage.output_tokens == 3 and msg.stop_sequence is None
    assert len(wired.seen[-1]["body"]["tools"]) == 22


def test_thinking_blocks_from_reasoning_content(claude, versions):
    ask = dict(model="production", max_tokens=2000, messages=[{"role": "user", "content": "WIRE_THINK"}])
    msg = claude.messages.create(**ask, thinking={"type": "enabled", "budget_tokens": 1024})
    assert [b.type for b in msg.content] == ["thinking", "text"]
    assert msg.content[0].thinking == "Let me think." and msg.content[1].text == "The answer."
    with claude.messages.stream(**ask, thinking={"type": "adaptive"}) as stream:
        deltas = [ev.delta.type for ev in stream if ev.type == "content_block_delta"]
        final = stream.get_final_message()
    assert deltas == ["thinking_delta", "thinking_delta", "text_delta", "text_delta"]
    assert [b.type for b in final.content] == ["thinking", "text"] and final.content[0].thinking == "Let me think."
    plain = claude.messages.create(**ask)  # thinking not asked for: no thinking block
    assert [b.type for b in plain.content] == ["text"]
    with pytest.raises(anthropic.BadRequestError, match="budget_tokens"):
        claude.messages.create(**ask, thinking={"type": "enabled"})


@pytest.mark.parametrize("behaviour", ["WIRE_STOP_REPORT", "WIRE_STOP_IGNORE"])
def test_stop_sequence_reported(claude, versions, wired, behaviour):
    ask = dict(model="production", max_tokens=50, stop_sequences=["END", "zzz"],
               messages=[{"role": "user", "content": behaviour}])
    msg = claude.messages.create(**ask)
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == "END"
    assert msg.content[0].text == "alpha beta "
    assert wired.seen[-1]["body"]["stop"] == ["END", "zzz"]
    with claude.messages.stream(**ask) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "stop_sequence" and final.stop_sequence == "END"
    assert final.content[0].text == "alpha beta "  # (IGNORE: the hub cut the text itself)


def test_stop_sequence_that_did_not_match_and_silent_upstreams(claude, versions):
    msg = claude.messages.create(model="production", max_tokens=50, stop_sequences=["nope"],
                                 messages=[{"role": "user", "content": "WIRE_STOP_REPORT"}])
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None and msg.content[0].text == "alpha beta END gamma"
    # An upstream that honours stops without saying which (OpenAI itself) is indistinguishable from a natural
    # end: documented as end_turn.
    msg = claude.messages.create(model="production", max_tokens=50, stop_sequences=["END"],
                                 messages=[{"role": "user", "content": "WIRE_STOP_SILENT"}])
    assert msg.stop_reason == "end_turn" and msg.content[0].text == "alpha beta "
    with pytest.raises(anthropic.BadRequestError, match="at most 4"):
        claude.messages.create(model="production", max_tokens=5, stop_sequences=list("abcde"),
                               messages=[{"role": "user", "content": "x"}])


def test_max_tokens_stop_reason(claude, versions):
    for stream in (False, True):
        if stream:
            with claude.messages.stream(model="production", max_tokens=2,
                                        messages=[{"role": "user", "content": "WIRE_LENGTH"}]) as s:
                msg = s.get_final_message()
        else:
            msg = claude.messages.create(model="production", max_tokens=2,
                                         messages=[{"role": "user", "content": "WIRE_LENGTH"}])
        assert msg.stop_reason == "max_tokens" and msg.content[0].text == "The answer."


def test_a_cut_the_hub_imposed_ends_the_turn(claude, versions, admin_user, hub_server, api_key, wired):
    """The upstream stopped for length before the client's max_tokens (the alias's cap, the context's room):
    not `max_tokens`, which would make Claude Code retry with more room it cannot get."""
    from apps.proxy import providers

    ask = dict(model="production", max_tokens=32000, messages=[{"role": "user", "content": "WIRE_LENGTH"}])
    assert claude.messages.create(**ask).stop_reason == "end_turn"
    with claude.messages.stream(**ask) as s:
        assert s.get_final_message().stop_reason == "end_turn"
    providers.chain_set(actor=admin_user, name="capped", targets=[{"model_version_id": versions["local"].pk}],
                        settings={"max_tokens": 3})  # no usage from the upstream: the alias's cap decides
    for alias, expected in (("capped", "end_turn"), ("production", "max_tokens")):
        events = _sse(hub_server, api_key, {"model": alias, "max_tokens": 32000,
                                            "messages": [{"role": "user", "content": "WIRE_LENGTH_NO_USAGE"}]})
        assert events[-2][1]["delta"]["stop_reason"] == expected, alias
    assert wired.seen[-2]["body"]["max_tokens"] == 3


def test_tool_use_streams_whole_calls_and_round_trips(claude, versions, wired, hub_server, api_key):
    tools = cc_tools(3)
    ask = dict(model="production", max_tokens=100, tools=tools, tool_choice={"type": "auto",
                                                                                "disable_parallel_tool_use": False},
               messages=[{"role": "user", "content": "WIRE_TOOLS"}])
    msg = claude.messages.create(**ask)
    assert msg.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "name", None)) for b in msg.content] == [("text", None), ("tool_use", "Read"),
                                                                         ("tool_use", "Bash")]
    assert msg.content[1].input == {"file_path": "/tmp/a.py"} and msg.content[1].id == "call_1"
    with claude.messages.stream(**ask) as stream:
        events = list(stream)
        final = stream.get_final_message()
    json_deltas = [ev.delta.partial_json for ev in events if ev.type == "content_block_delta"
                   and ev.delta.type == "input_json_delta"]
    assert [json.loads(d) for d in json_deltas] == [{"file_path": "/tmp/a.py"}, {"command": "ls"}]
    assert final.stop_reason == "tool_use" and final.content[0].text == "Let me look."
    assert [b.input for b in final.content[1:]] == [{"file_path": "/tmp/a.py"}, {"command": "ls"}]
    assert [b.id for b in final.content[1:]] == ["call_1", "call_2"]
    # the answer goes back: tool_use -> assistant tool_calls, tool_result -> tool messages
    claude.messages.create(model="production", max_tokens=5, tools=tools, messages=[
        {"role": "user", "content": "WIRE_TOOLS"},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "print(1)"}]},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "a.py", "is_error": False}]}])
    sent = wired.seen[-1]["body"]["messages"]
    assert sent[1]["role"] == "assistant" and sent[1]["content"] == "Let me look."
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in sent[1]["tool_calls"]] \
        == [("call_1", "Read", {"file_path": "/tmp/a.py"}), ("call_2", "Bash", {"command": "ls"})]
    assert sent[2:] == [{"role": "tool", "tool_call_id": "call_1", "content": "print(1)"},
                        {"role": "tool", "tool_call_id": "call_2", "content": "a.py"}]
    # tool_choice any / a named tool / disable_parallel_tool_use reach the upstream
    claude.messages.create(model="production", max_tokens=5, tools=tools, messages=[{"role": "user", "content": "x"}],
                           tool_choice={"type": "tool", "name": "Bash", "disable_parallel_tool_use": True})
    sent = wired.seen[-1]["body"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "Bash"}}
    assert sent["parallel_tool_calls"] is False


def test_malformed_tool_arguments_arrive_as_raw(claude, versions, hub_server, api_key):
    ask = dict(model="production", max_tokens=100, tools=cc_tools(2), messages=[{"role": "user",
                                                                                   "content": "WIRE_BAD_ARGS"}])
    msg = claude.messages.create(**ask)
    assert msg.content[0].input == {"_raw": "{not json"}
    with claude.messages.stream(**ask) as stream:
        final = stream.get_final_message()  # the SDK parses every input_json_delta: it must be valid JSON
    assert final.content[0].input == {"_raw": "{not json"} and final.stop_reason == "tool_use"


def test_mid_stream_failure_is_an_error_event(claude, versions, hub_server, api_key):
    for behaviour in ("FAIL_MID", "ERROR_EVENT", "NO_DONE", "WIRE_FAIL_IN_TOOL"):
        with pytest.raises(anthropic.APIError):
            with claude.messages.stream(model="production", max_tokens=50, tools=cc_tools(1),
                                        messages=[{"role": "user", "content": behaviour}]) as stream:
                for _ in stream:
                    pass
    events = _sse(hub_server, api_key, {"model": "production", "max_tokens": 50, "tools": cc_tools(1),
                                        "messages": [{"role": "user", "content": "WIRE_FAIL_IN_TOOL"}]})
    names = [e for e, _ in events]
    assert names[-1] == "error" and "message_stop" not in names and "message_delta" not in names
    assert not any(d.get("content_block", {}).get("type") == "tool_use" for _, d in events)  # never half a call
    assert events[-1][1]["type"] == "error" and events[-1][1]["error"]["type"] == "api_error"
    events = _sse(hub_server, api_key, {"model": "production", "max_tokens": 50,
                                        "messages": [{"role": "user", "content": "ERROR_EVENT"}]})
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": "model crashed"}})


def test_images_are_refused_clearly(claude, versions, wired):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    n = len(wired.seen)
    with pytest.raises(anthropic.BadRequestError) as ei:
        claude.messages.create(model="production", max_tokens=5, messages=[
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}])
    err = ei.value.body["error"]
    assert err["type"] == "invalid_request_error" and "messages.2.content.1" in err["message"]
    assert "image" in err["message"] and "messages.2" in err["message"]
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.1\.content\.0\.content\.1"):
        claude.messages.create(model="production", max_tokens=5, messages=[
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "shot:"}, image]}]}])
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.count_tokens(model="production", messages=[{"role": "user", "content": [image]}])
    assert len(wired.seen) == n  # nothing reached the upstream


def test_count_tokens_counts_system_tools_and_messages(claude, versions):
    msgs = [{"role": "user", "content": "hello"}]
    base = claude.messages.count_tokens(model="production", messages=msgs).input_tokens
    with_system = claude.messages.count_tokens(model="production", messages=msgs, system="sys").input_tokens
    few = claude.messages.count_tokens(model="production", messages=msgs, tools=cc_tools(2)).input_tokens
    many = claude.messages.count_tokens(model="production", messages=msgs, tools=cc_tools(22)).input_tokens
    assert base < with_system and base < few < many  # the local server's /tokenize sees the tools
    body = cc_body()
    for key in ("max_tokens", "stream", "metadata"):
        body.pop(key)
    cc = claude.beta.messages.count_tokens(**body, betas=BETAS).input_tokens  # the whole Claude Code shape
    assert cc > many
    remote = claude.messages.count_tokens(model="cloud", messages=msgs, tools=cc_tools(22)).input_tokens
    assert remote > claude.messages.count_tokens(model="cloud", messages=msgs).input_tokens  # chars estimate


@pytest.fixture
def tokenized(wired, admin_user, tiny_base_model):
    """A remote version whose base model's tokenizer the hub has: counts come from that tokenizer."""
    from apps.proxy import tokencount
    from apps.registry.services import alias_deploy, model_version_register

    tokencount.clear()
    v = model_version_register(name="tok", kind="remote", base_model=tiny_base_model, remote_model_id="acme/tok")
    alias_deploy(actor=admin_user, version_id=v.pk, alias="tokd")
    yield tiny_base_model
    tokencount.clear()


def test_served_models_tokenizer_counts_and_message_start(claude, tokenized, hub_server, api_key):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tok = Tokenizer.from_file(str(tokenized.path) + "/tokenizer.json")
    reference = AutoTokenizer.from_pretrained(str(tokenized.path))  # the chat template as the server renders it
    msgs = [{"role": "user", "content": "What is Python? Roll for initiative!"}]
    tools = cc_tools(3)
    n = claude.messages.count_tokens(model="tokd", system="Be brief.", messages=msgs, tools=tools).input_tokens
    functions = [{"type": "function", "function": {"name": t["name"], "description": t["description"],
                                                   "parameters": t["input_schema"]}} for t in tools]
    prompt = reference.apply_chat_template([{"role": "system", "content": "Be brief."}, *msgs], tokenize=False,
                                           add_generation_prompt=True)
    # the tiny model's template ignores tools: their JSON (+ tokencount.PER_TOOL each), as the server lays them out
    expected = (len(tok.encode(prompt, add_special_tokens=False).ids)
                + len(tok.encode(json.dumps(functions, separators=(",", ":")), add_special_tokens=False).ids) + 3 * 8)
    assert abs(n - expected) <= 2, (n, expected)  # (BPE merges across a turn's edges may differ by a token)
    chars = sum(len(s) for s in ("Be brief.", msgs[0]["content"], json.dumps(functions, separators=(",", ":"))))
    assert n != -(-chars // 4) + 2 * 4 + 3 * 8  # not the characters estimate
    assert n > claude.messages.count_tokens(model="tokd", system="Be brief.", messages=msgs).input_tokens
    events = _sse(hub_server, api_key, {"model": "tokd", "max_tokens": 20, "system": "Be brief.", "messages": msgs,
                                        "tools": tools})
    assert events[0][1]["message"]["usage"]["input_tokens"] == n  # the same estimate, before the first token
    assert events[-2][1]["usage"]["input_tokens"] == 7  # then the upstream's real count


def test_usage_details(claude, versions, hub_server, api_key):
    msg = claude.messages.create(model="production", max_tokens=5, messages=[{"role": "user",
                                                                                "content": "WIRE_CACHED"}])
    assert msg.usage.input_tokens == 40 and msg.usage.cache_read_input_tokens == 60
    events = _sse(hub_server, api_key, {"model": "production", "max_tokens": 5,
                                        "messages": [{"role": "user", "content": "WIRE_NO_USAGE"}]})
    est = events[0][1]["message"]["usage"]["input_tokens"]
    assert est >= 1 and events[-2][1]["usage"]["input_tokens"] == est  # no upstream usage: the estimate stays
    assert events[-2][1]["usage"]["output_tokens"] >= 1  # counted from the text


def test_pings_while_the_upstream_is_silent(versions, hub_server, api_key, monkeypatch):
    from apps.proxy import anthropic_stream

    monkeypatch.setattr(anthropic_stream, "PING_S", 0.15)
    events = _sse(hub_server, api_key, {"model": "production", "max_tokens": 5,
                                        "messages": [{"role": "user", "content": "WIRE_PAUSE"}]})
    names = [e for e, _ in events]
    first, second = [i for i, n in enumerate(names) if n == "content_block_delta"]
    assert names[:2] == ["message_start", "ping"] and names[first + 1:second].count("ping") >= 2
    assert names[-1] == "message_stop"


def test_every_claude_code_field_is_validated_not_ignored_blindly(claude, versions):
    ask = dict(model="production", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    for bad, match in (({"thinking": {"type": "sometimes"}}, "thinking.type"),
                       ({"context_management": "all"}, "context_management"),
                       ({"output_config": ["high"]}, "output_config"),
                       ({"metadata": "u1"}, "metadata"),
                       ({"tool_choice": "auto", "tools": cc_tools(1)}, "tool_choice"),
                       ({"top_k": -1}, "top_k")):
        with pytest.raises(anthropic.BadRequestError, match=match):
            claude.messages.create(**ask, extra_body=bad)
    with pytest.raises(anthropic.BadRequestError, match="messages.0.role"):
        claude.messages.create(model="production", max_tokens=5, messages=[{"role": "robot", "content": "x"}])


@pytest.fixture
def native(wired, admin_user):
    """An Anthropic provider (the fake upstream's /v1/messages) behind the alias `native`."""
    from apps.proxy import providers

    providers.provider_create(actor=admin_user, name="anth", kind="anthropic", base_url=wired.url,
                              api_key="sk-ant-test", timeouts={"connect_s": 1.0, "first_byte_s": 5.0, "total_s": 10.0})
    providers.chain_set(actor=admin_user, name="native", targets=[{"provider": "anth", "model": "claude-x"}])
    return wired


def test_count_tokens_on_an_anthropic_provider_asks_it(claude, native):
    msgs = [{"role": "user", "content": "hello"}]
    assert claude.messages.count_tokens(model="native", messages=msgs).input_tokens == 100
    n = claude.messages.count_tokens(model="native", messages=msgs, tools=cc_tools(3)).input_tokens
    assert n > 100  # its own count, tools included


def test_openai_clients_reach_an_anthropic_provider(oai, native):
    """OpenAI chat requests translated for a native Anthropic provider and its answers translated back
    (apps/proxy/anthropic_upstream.py, wired in by the chains' upstream code)."""
    done = oai.chat.completions.create(model="native", messages=[{"role": "system", "content": "Be brief."},
                                                                 {"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == "echo: hi" and done.choices[0].finish_reason == "stop"
    assert done.usage.prompt_tokens == 13 and done.usage.completion_tokens == 3
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(oai.chat.completions.create(model="native", messages=[{"role": "user", "content": "TOOL"}],
                                              tools=tools, stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "toolu_1" and calls[0].function.name == "get_weather"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    with pytest.raises(Exception) as ei:  # a failure after the first byte reaches the SDK as an error
        list(oai.chat.completions.create(model="native", messages=[{"role": "user", "content": "ERROR_EVENT"}],
                                         stream=True))
    assert "Overloaded" in str(ei.value)
