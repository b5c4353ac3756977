"""Anthropic Messages API (`POST /v1/messages`, `POST /v1/messages/count_tokens`) on top of the OpenAI-style
upstreams, so Claude Code and the `anthropic` SDKs use the hub unchanged (ANTHROPIC_BASE_URL=http://host:port).

Request (`to_openai`): accepts every field Claude Code sends. `?beta=true` and `anthropic-beta` need nothing.
- `system` (a string or text blocks) becomes the first system message; `role: "system"` messages in the
  conversation (the mid-conversation-system beta) stay system messages in place. Tool results that
  follow such a system message are moved before it, so they still answer the assistant's tool calls.
- Blocks: `text`; `tool_use` -> the assistant's `tool_calls`; `tool_result` (string or block content,
  `is_error` prefixed "[error] ") -> `tool` messages; `document` with a text source -> text; `search_result`
  -> its text; `thinking` / `redacted_thinking` / server-tool blocks are dropped (an OpenAI upstream cannot
  read them). `image` blocks (also inside a tool_result) and other documents -> 400 invalid_request_error
  naming the message and block (the hub's models read text only). `cache_control` is accepted anywhere.
- `thinking` (`enabled` with `budget_tokens`, `adaptive`, `disabled`), `context_management`, `output_config`
  (`effort`; `format` -> the upstream's `response_format`), `metadata` (`user_id` -> `user` when short),
  `top_k`, `service_tier` are accepted; none of thinking / effort / context edits / top_k has a portable
  OpenAI equivalent, so they are not forwarded. `stop_sequences` (at most 4, as OpenAI's `stop`).
  Tools: custom tools -> functions; Anthropic server tools (`web_search_…` and the like) are dropped.
Response: upstream `reasoning_content` (or `reasoning`) -> a `thinking` block when thinking was asked for
(signature ""); text; tool calls -> `tool_use` blocks (arguments that are not a JSON object arrive as
`{"_raw": "<text>"}`). `stop_reason`: tool calls -> `tool_use`; `length` -> `max_tokens` when the answer used
the client's max_tokens, `end_turn` when a limit of the hub's ended it first (the alias's cap, the context's
room: see anthropic_stream.stop_outcome; the log keeps finish_reason `length`); a stop sequence ->
`stop_sequence` + `stop_sequence`, known from the upstream's `choices[].stop_reason` (the hub's inference
server and vLLM report the matched string) or found by the hub in the text (an upstream that ignores or
echoes stops: the text is cut there). An upstream that honours stops silently (OpenAI itself) cannot be
told from a natural end: `end_turn`. Usage: `input_tokens` excludes cached prompt tokens, which appear as
`cache_read_input_tokens`. Streams: apps/proxy/anthropic_stream.py. Errors: Anthropic's shape (errors.py).
"""
from __future__ import annotations

import json

import httpx
from django.views.decorators.csrf import csrf_exempt

from apps.proxy import tokencount, upstream
from apps.proxy.anthropic_stream import (StopMatcher, anthropic_stream, cached_tokens, cut_by_hub, stop_outcome,
                                         tool_input, usage_block)
from apps.proxy.errors import ProxyError, anthropic_error_response, json_response
from apps.proxy.gateway import ANTHROPIC, Call, authenticate, method_not_allowed, parse_json, relay, resolve

THINKING_TYPES = ("enabled", "adaptive", "disabled")
MAX_STOPS = 4
# Blocks an OpenAI-style upstream cannot use: Anthropic's own reasoning and server-side tool traffic.
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result",
                             "web_fetch_tool_result", "code_execution_tool_result", "bash_code_execution_tool_result",
                             "text_editor_code_execution_tool_result", "mcp_tool_use", "mcp_tool_result",
                             "container_upload", "tool_search_tool_result"})


def _bad(message: str, param: str | None = None):
    raise ProxyError(400, message, param=param)


def _image_error(where: str, i: int):
    _bad(f"{where}: image input is not supported by this model (the hub serves text-only models; the image is "
         f"in messages.{i}). Remove the image or describe it in text.", where)


def _blocks_text(content, where: str, i: int, *, sep: str = "\n") -> str:
    """Text of a string or a list of content blocks (system prompts, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        _bad(f"{where}: a string or a list of content blocks", where)
    parts = []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            _bad(f"{at}: a content block needs a type", at)
        kind = block["type"]
        if kind == "text":
            parts.append(str(block.get("text") or ""))
        elif kind == "image":
            _image_error(at, i)
        elif kind in ("document", "search_result"):
            parts.append(_document_text(block, at, i))
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            _bad(f"{at}: content blocks of type {kind!r} are not supported here", at)
    return sep.join(p for p in parts if p)


def _document_text(block: dict, at: str, i: int) -> str:
    if block["type"] == "search_result":
        title = str(block.get("title") or "")
        body = _blocks_text(block.get("content"), at + ".content", i)
        return f"{title}\n{body}" if title else body
    src = block.get("source") or {}
    if src.get("type") == "text" and isinstance(src.get("data"), str):
        title = str(block.get("title") or "")
        return f"{title}\n{src['data']}" if title else src["data"]
    if src.get("type") == "content":
        return _blocks_text(src.get("content"), at + ".source.content", i)
    _bad(f"{at}: only text documents are supported by this model (this one is {src.get('type') or 'unknown'}; "
         f"in messages.{i}). Send its text instead.", at)


def _insert_tool_results(out: list[dict], results: list[dict]) -> None:
    """Tool messages must directly follow the assistant turn (or other tool messages) they answer: put
    them before any system messages that were inserted in between."""
    at = len(out)
    while at > 0 and out[at - 1]["role"] == "system":
        at -= 1
    if at < len(out) and at > 0 and (out[at - 1]["role"] == "tool" or out[at - 1].get("tool_calls")):
        out[at:at] = results
    else:
        out.extend(results)


def _messages(messages: list, *, allow_images: bool) -> list[dict]:
    out: list[dict] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            _bad(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'", f"messages.{i}.role")
        role, content = m["role"], m.get("content")
        if role == "system":
            text = _blocks_text(content, f"messages.{i}.content", i)
            out.append({"role": "system", "content": text})
            continue
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            _bad(f"messages.{i}.content: a string or a list of content blocks", f"messages.{i}.content")
        texts, parts, tool_calls, tool_results = [], [], [], []
        for j, block in enumerate(content):
            at = f"messages.{i}.content.{j}"
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                _bad(f"{at}: a content block needs a type", at)
            kind = block["type"]
            if kind == "text":
                text = str(block.get("text") or "")
                texts.append(text)
                parts.append({"type": "text", "text": text})
            elif kind == "image":
                if not allow_images:
                    _image_error(at, i)
                src = block.get("source") or {}
                url = (f"data:{src.get('media_type', 'image/png')};base64,{src.get('data', '')}"
                       if src.get("type") == "base64" else src.get("url", ""))
                parts.append({"type": "image_url", "image_url": {"url": url}})
            elif kind in ("document", "search_result"):
                text = _document_text(block, at, i)
                texts.append(text)
                parts.append({"type": "text", "text": text})
            elif kind == "tool_use":
                if role != "assistant":
                    _bad(f"{at}: tool_use blocks belong to assistant messages", at)
                args = block.get("input")
                tool_calls.append({"id": str(block.get("id") or f"toolu_{i}_{j}"), "type": "function", "function": {
                    "name": str(block.get("name") or ""),
                    "arguments": json.dumps(args if args is not None else {}, ensure_ascii=False)}})
            elif kind == "tool_result":
                text = _blocks_text(block.get("content"), at + ".content", i)
                if block.get("is_error"):
                    text = f"[error] {text}"
                tool_results.append({"role": "tool", "tool_call_id": str(block.get("tool_use_id") or ""),
                                     "content": text})
            elif kind in _DROPPED_BLOCKS:
                continue
            elif isinstance(block.get("text"), str):  # a text-bearing block type newer than this code
                texts.append(block["text"])
                parts.append({"type": "text", "text": block["text"]})
            else:
                _bad(f"{at}: content blocks of type {kind!r} are not supported", at)
        if tool_results:
            _insert_tool_results(out, tool_results)
        if role == "assistant":
            msg = {"role": "assistant", "content": "".join(texts) or (None if tool_calls else "")}
            if tool_calls:
                msg["tool_calls"] = tool_calls
            out.append(msg)
        elif parts:
            only_text = all(p["type"] == "text" for p in parts)
            out.append({"role": "user", "content": "\n".join(texts) if only_text else parts})
    return out


def _tools(body: dict) -> tuple[list[dict], set[str]]:
    """Custom tools as OpenAI functions; the names of dropped (server) tools."""
    tools = body.get("tools")
    if tools is None:
        return [], set()
    if not isinstance(tools, list):
        _bad("tools: a list of tool definitions", "tools")
    out, dropped = [], set()
    for k, t in enumerate(tools):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            _bad(f"tools.{k}.name: Field required", f"tools.{k}.name")
        kind = t.get("type")
        if kind not in (None, "custom") and "input_schema" not in t:
            dropped.add(t["name"])  # an Anthropic server tool (web search, code execution, ...)
            continue
        schema = t.get("input_schema")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            _bad(f"tools.{k}.input_schema: a JSON schema object", f"tools.{k}.input_schema")
        fn = {"name": t["name"], "description": str(t.get("description") or ""), "parameters": schema}
        out.append({"type": "function", "function": fn})
    return out, dropped


def _number(body: dict, key: str, lo: float, hi: float):
    v = body.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
        _bad(f"{key}: must be a number between {lo} and {hi}", key)
    return v


def _dict_field(body: dict, key: str) -> dict:
    v = body.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        _bad(f"{key}: an object", key)
    return v


def request_options(body: dict) -> dict:
    """What the answer's rendering needs from an (already validated) Anthropic request."""
    thinking = body.get("thinking") if isinstance(body.get("thinking"), dict) else {}
    return {"thinking": thinking.get("type") in ("enabled", "adaptive"),
            "stops": [s for s in body.get("stop_sequences") or [] if isinstance(s, str) and s]}


def to_openai(body: dict, *, allow_images: bool = False) -> dict:
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
        text = _blocks_text(system, "system", 0)
        if text:
            out_msgs.append({"role": "system", "content": text})
    out_msgs.extend(_messages(messages, allow_images=allow_images))
    req = {"model": model, "messages": out_msgs, "max_tokens": mt, "stream": bool(body.get("stream"))}
    for key in ("temperature", "top_p"):
        v = _number(body, key, 0, 1)
        if v is not None:
            req[key] = v
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        _bad("top_k: a non-negative integer", "top_k")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            _bad("stop_sequences: a list of non-empty strings", "stop_sequences")
        if len(stops) > MAX_STOPS:
            _bad(f"stop_sequences: at most {MAX_STOPS} stop sequences are supported by this server",
                 "stop_sequences")
        if stops:
            req["stop"] = list(stops)
    thinking = body.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
            _bad("thinking.type: one of " + ", ".join(THINKING_TYPES), "thinking.type")
        budget = thinking.get("budget_tokens")
        if thinking["type"] == "enabled" and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            _bad("thinking.budget_tokens: a positive integer is required when thinking is enabled",
                 "thinking.budget_tokens")
    _dict_field(body, "context_management")
    output_config = _dict_field(body, "output_config")
    fmt = output_config.get("format") or body.get("output_format")
    if fmt is not None:
        if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
            _bad("output_config.format: {\"type\": \"json_schema\", \"schema\": {...}}", "output_config.format")
        req["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "output", "schema": fmt["schema"], "strict": True}}
    metadata = _dict_field(body, "metadata")
    user = metadata.get("user_id")
    if isinstance(user, str) and 0 < len(user) <= 256:
        req["user"] = user
    if body.get("mcp_servers"):
        _bad("mcp_servers: the MCP connector is not supported by this server; run MCP tools client-side",
             "mcp_servers")
    tools, dropped = _tools(body)
    if tools:
        req["tools"] = tools
    tc = body.get("tool_choice")
    if tc is not None and not isinstance(tc, dict):
        _bad("tool_choice: an object such as {\"type\": \"auto\"}", "tool_choice")
    if tc and tools:
        kind = tc.get("type")
        if kind == "tool":
            if tc.get("name") not in dropped:
                req["tool_choice"] = {"type": "function", "function": {"name": str(tc.get("name") or "")}}
        elif kind in ("auto", "any", "none"):
            req["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
        else:
            _bad("tool_choice.type: one of auto, any, tool, none", "tool_choice.type")
        if tc.get("disable_parallel_tool_use") is True and kind != "none":
            req["parallel_tool_calls"] = False
    return req


# --- answers ----------------------------------------------------------------------------------------
def to_anthropic(data: dict, *, msg_id: str, model: str, options: dict | None = None, route=None,
                 request: dict | None = None, call=None) -> dict:
    options = options or {"thinking": False, "stops": []}
    ch = (data.get("choices") or [{}])[0]
    msg = ch.get("message") or {}
    content = []
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    if options["thinking"] and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text, matched = msg.get("content") or "", None
    if isinstance(text, list):  # content parts (some servers)
        text = "".join(str(p.get("text") or "") for p in text if isinstance(p, dict))
    text = text if isinstance(text, str) else str(text)
    if text and options["stops"]:
        text, matched = StopMatcher(options["stops"]).cut(text)
    if text:
        content.append({"type": "text", "text": text})
    calls = (msg.get("tool_calls") or []) if matched is None else []  # a stop came first: none follow
    for k, tc in enumerate(calls):
        fn = tc.get("function") or {}
        content.append({"type": "tool_use", "id": tc.get("id") or f"toolu_{msg_id[4:16]}_{k}",
                        "name": fn.get("name", ""), "input": tool_input(fn.get("arguments"))})
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    hub_cut = cut_by_hub(call, ch.get("finish_reason"), completion, (request or {}).get("max_tokens"))
    stop_reason, stop_sequence = stop_outcome(ch.get("finish_reason"), ch.get("stop_reason"), bool(calls), matched,
                                              options["stops"], hub_cut)
    if not isinstance(prompt, int) and request is not None:
        prompt = tokencount.estimate(route, request["messages"], request.get("tools"))[0]
    if not isinstance(completion, int):
        completion = tokencount.text_tokens(route, text)
    return {"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": stop_sequence,
            "usage": usage_block(int(prompt or 0), int(completion or 0), cached_tokens(usage))}


# --- views ------------------------------------------------------------------------------------------
@csrf_exempt
async def messages(request):
    call = Call(endpoint="messages")
    msg_id = "msg_" + call.request_id
    state: dict = {}

    def validate(body: dict) -> dict:
        req = to_openai(body)
        state["options"], state["request"] = request_options(body), req
        return req

    def render(data: dict) -> dict:
        out = to_anthropic(data, msg_id=msg_id, model=call.model_requested, options=state["options"],
                           route=call.route, request=state["request"], call=call)
        u = out["usage"]
        call.prompt_tokens = u["input_tokens"] + u["cache_read_input_tokens"]
        call.completion_tokens = u["output_tokens"]
        return out

    def stream(clean: dict, resp):
        return anthropic_stream(call, resp, msg_id=msg_id, options=state["options"], request=state["request"])

    return await relay(request, call, wire=ANTHROPIC, validate=validate, path="/chat/completions",
                       render=render, stream=stream, anthropic=True)


async def _tokenize(route, req: dict) -> int | None:
    """The inference server's (or vLLM's) `/tokenize`: the prompt exactly as the model would see it,
    chat template and tool definitions included."""
    root = route.base_url[:-3] if route.base_url.endswith("/v1") else route.base_url
    payload = {"model": route.upstream_model, "messages": req["messages"], "add_generation_prompt": True}
    if req.get("tools"):
        payload["tools"] = req["tools"]
    try:
        r = await upstream.client().post(root + "/tokenize", json=payload, timeout=30)
        if r.status_code == 200:
            count = r.json().get("count")
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                return count
    except (httpx.HTTPError, ValueError, TypeError, AttributeError):
        pass
    return None


async def _native_count(route, body: dict, betas: str | None) -> int | None:
    """An Anthropic provider counts its own tokens (`POST /v1/messages/count_tokens`)."""
    from apps.proxy.anthropic_upstream import upstream_headers

    payload = {**body, "model": route.upstream_model}
    for key in ("max_tokens", "stream", "metadata", "stop_sequences", "temperature", "top_p", "top_k"):
        payload.pop(key, None)
    headers = upstream_headers(route.api_key, [b.strip() for b in (betas or "").split(",") if b.strip()])
    try:
        r = await upstream.client().post(route.base_url.rstrip("/") + "/v1/messages/count_tokens", json=payload,
                                         headers=headers, timeout=30)
        if r.status_code == 200:
            count = r.json().get("input_tokens")
            if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
                return count
    except (httpx.HTTPError, ValueError, TypeError, AttributeError):
        pass
    return None


@csrf_exempt
async def count_tokens(request):
    """`{"input_tokens": N}` for system, tools and messages, for the first target of the model's chain. A
    version served by the hub's inference process: exact, from its `/tokenize` (the chat template with the
    tools). An Anthropic provider: its own count_tokens. Otherwise, or when those fail: the served model's
    tokenizer when the hub has its files, else ~4 characters a token (apps/proxy/tokencount.py)."""
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
    if getattr(route, "kind", "openai") == "anthropic" and not getattr(route, "unavailable", ""):
        count = await _native_count(route, body, request.headers.get("anthropic-beta"))
    elif not getattr(route, "remote", True):
        count = await _tokenize(route, req)
    if count is None:
        count = (await tokencount.aestimate(route, req["messages"], req.get("tools")))[0]
    return json_response({"input_tokens": count}, headers={"request-id": call.request_id,
                                                           "x-request-id": call.request_id})
