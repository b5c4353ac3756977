"""Anthropic Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) translated to and from
the OpenAI upstream, so Claude Code can use the hub (ANTHROPIC_BASE_URL=http://host:port)."""
from __future__ import annotations

import json
import time

import httpx
from django.views.decorators.csrf import csrf_exempt

from apps.proxy import upstream
from apps.proxy.errors import ProxyError, anthropic_error_response, json_response
from apps.proxy.gateway import (ANTHROPIC, Call, UpstreamStreamError, authenticate, method_not_allowed, parse_json,
                                relay, resolve)
from apps.proxy.openai import chat_stream

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "end_turn"}


def _bad(message: str, param: str | None = None):
    raise ProxyError(400, message, param=param)


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def to_openai(body: dict) -> dict:
    """Validate an Anthropic Messages request and translate it to an OpenAI chat request."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        _bad("model: Field required", "model")
    mt = body.get("max_tokens")
    if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
        _bad("max_tokens: Field required (a positive integer)", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        _bad("messages: at least one message is required", "messages")
    out_msgs = []
    system = body.get("system")
    if system is not None:
        if not isinstance(system, (str, list)):
            _bad("system: a string or a list of text blocks", "system")
        text = _text(system)
        if text:
            out_msgs.append({"role": "system", "content": text})
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            _bad(f"messages.{i}.role: Input should be 'user' or 'assistant'", f"messages.{i}.role")
        content = m.get("content")
        if isinstance(content, str):
            out_msgs.append({"role": m["role"], "content": content})
            continue
        if not isinstance(content, list):
            _bad(f"messages.{i}.content: a string or a list of content blocks", f"messages.{i}.content")
        texts, parts, tool_calls, tool_results = [], [], [], []
        for j, block in enumerate(content):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                _bad(f"messages.{i}.content.{j}: a content block needs a type", f"messages.{i}.content.{j}")
            kind = block["type"]
            if kind == "text":
                texts.append(str(block.get("text", "")))
                parts.append({"type": "text", "text": str(block.get("text", ""))})
            elif kind == "image":
                src = block.get("source") or {}
                if src.get("type") == "base64":
                    parts.append({"type": "image_url", "image_url": {
                        "url": f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"}})
                elif src.get("type") == "url":
                    parts.append({"type": "image_url", "image_url": {"url": src.get("url", "")}})
            elif kind == "tool_use":
                tool_calls.append({"id": block.get("id") or f"toolu_{i}_{j}", "type": "function", "function": {
                    "name": block.get("name", ""), "arguments": json.dumps(block.get("input") or {})}})
            elif kind == "tool_result":
                result = block.get("content")
                text = result if isinstance(result, str) else _text(result)
                if block.get("is_error"):
                    text = f"[error] {text}"
                tool_results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id", "")),
                                     "content": text})
            # thinking / redacted_thinking / documents: not forwarded
        out_msgs.extend(tool_results)
        if m["role"] == "assistant":
            msg = {"role": "assistant", "content": "".join(texts) or (None if tool_calls else "")}
            if tool_calls:
                msg["tool_calls"] = tool_calls
            out_msgs.append(msg)
        elif parts:
            only_text = all(p["type"] == "text" for p in parts)
            out_msgs.append({"role": "user", "content": "".join(texts) if only_text else parts})
    req = {"model": model, "messages": out_msgs, "max_tokens": mt, "stream": bool(body.get("stream"))}
    for key, lo, hi in (("temperature", 0, 1), ("top_p", 0, 1)):
        v = body.get(key)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                _bad(f"{key}: must be a number between {lo} and {hi}", key)
            req[key] = v
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            _bad("stop_sequences: a list of strings", "stop_sequences")
        if stops:
            req["stop"] = stops[:4]
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            _bad("tools: a list", "tools")
        req["tools"] = [{"type": "function", "function": {"name": t.get("name", ""),
                                                         "description": t.get("description", ""),
                                                         "parameters": t.get("input_schema") or {"type": "object"}}}
                        for t in tools if isinstance(t, dict) and t.get("name")]
    tc = body.get("tool_choice")
    if isinstance(tc, dict) and req.get("tools"):
        req["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(tc.get("type"), "auto")
        if tc.get("type") == "tool":
            req["tool_choice"] = {"type": "function", "function": {"name": tc.get("name", "")}}
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if isinstance(user, str):
        req["user"] = user
    return req


def to_anthropic(data: dict, *, msg_id: str, model: str) -> dict:
    ch = (data.get("choices") or [{}])[0]
    msg = ch.get("message") or {}
    content = []
    if msg.get("content"):
        content.append({"type": "text", "text": msg["content"]})
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {"_raw": fn.get("arguments")}
        content.append({"type": "tool_use", "id": tc.get("id") or f"toolu_{len(content)}", "name": fn.get("name", ""),
                        "input": args})
    usage = data.get("usage") or {}
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": _STOP.get(ch.get("finish_reason"), "end_turn"), "stop_sequence": None,
            "usage": {"input_tokens": int(usage.get("prompt_tokens") or 0),
                      "output_tokens": int(usage.get("completion_tokens") or 0)}}


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _anthropic_stream(call: Call, resp, *, msg_id: str):
    model = call.model_requested
    yield _event("message_start", {"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})
    yield _event("ping", {"type": "ping"})
    block = -1
    open_kind = None  # "text" | ("tool", openai index)
    finish = None
    try:
        async for chunk in chat_stream(call, resp, cid=msg_id, created=int(time.time()), include_usage=True,
                                       raw_events=True):
            for ch in chunk.get("choices") or []:
                delta = ch.get("delta") or {}
                if delta.get("content"):
                    if open_kind != "text":
                        if open_kind is not None:
                            yield _event("content_block_stop", {"type": "content_block_stop", "index": block})
                        block += 1
                        open_kind = "text"
                        yield _event("content_block_start", {"type": "content_block_start", "index": block,
                                                             "content_block": {"type": "text", "text": ""}})
                    yield _event("content_block_delta", {"type": "content_block_delta", "index": block,
                                                         "delta": {"type": "text_delta", "text": delta["content"]}})
                for frag in delta.get("tool_calls") or []:
                    key = ("tool", frag.get("index", 0))
                    if open_kind != key:
                        if open_kind is not None:
                            yield _event("content_block_stop", {"type": "content_block_stop", "index": block})
                        block += 1
                        open_kind = key
                        fn = frag.get("function") or {}
                        yield _event("content_block_start", {"type": "content_block_start", "index": block,
                                                             "content_block": {"type": "tool_use",
                                                                               "id": frag.get("id") or f"toolu_{block}",
                                                                               "name": fn.get("name", ""),
                                                                               "input": {}}})
                    args = (frag.get("function") or {}).get("arguments")
                    if args:
                        yield _event("content_block_delta", {"type": "content_block_delta", "index": block,
                                                             "delta": {"type": "input_json_delta",
                                                                       "partial_json": args}})
                if ch.get("finish_reason"):
                    finish = ch["finish_reason"]
        if open_kind is not None:
            yield _event("content_block_stop", {"type": "content_block_stop", "index": block})
        yield _event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": _STOP.get(finish, "end_turn"), "stop_sequence": None},
                                       "usage": {"input_tokens": call.prompt_tokens or 0,
                                                 "output_tokens": call.completion_tokens or 0}})
        yield _event("message_stop", {"type": "message_stop"})
    except UpstreamStreamError as exc:
        call.status_code = 502
        call.error = exc.error.get("message", "")
        yield _event("error", {"type": "error", "error": {"type": "api_error", "message": call.error}})


@csrf_exempt
async def messages(request):
    call = Call(endpoint="messages")
    msg_id = "msg_" + call.request_id

    def render(data: dict) -> dict:
        out = to_anthropic(data, msg_id=msg_id, model=call.model_requested)
        call.prompt_tokens, call.completion_tokens = out["usage"]["input_tokens"], out["usage"]["output_tokens"]
        return out

    return await relay(request, call, wire=ANTHROPIC, validate=to_openai, path="/chat/completions",
                       render=render, stream=lambda clean, resp: _anthropic_stream(call, resp, msg_id=msg_id),
                       anthropic=True)


@csrf_exempt
async def count_tokens(request):
    """`{"input_tokens": N}`: exact from the inference process's /tokenize (vLLM has the same
    endpoint) for local versions; an estimate (~4 characters a token) for remote ones."""
    call = Call(endpoint="messages.count_tokens")
    if request.method != "POST":
        return method_not_allowed(request, call, ANTHROPIC)
    try:
        await authenticate(request, call)
        body = parse_json(request)
        req = to_openai({**body, "max_tokens": 1})
        route = await resolve(call, req["model"], anthropic=True)
    except ProxyError as exc:
        return anthropic_error_response(exc, call.request_id)
    count = None
    if not route.remote:
        root = route.base_url[:-3] if route.base_url.endswith("/v1") else route.base_url
        try:
            r = await upstream.client().post(root + "/tokenize", json={
                "model": route.upstream_model, "messages": req["messages"]}, timeout=30)
            if r.status_code == 200:
                count = int(r.json().get("count"))
        except (httpx.HTTPError, ValueError, TypeError):
            count = None
    if count is None:
        chars = len(json.dumps(req["messages"])) + len(json.dumps(req.get("tools") or []))
        count = max(1, chars // 4)
    return json_response({"input_tokens": count}, headers={"request-id": call.request_id})
