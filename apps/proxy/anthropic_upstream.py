"""OpenAI-dialect requests served by a native Anthropic provider: the reverse of apps/proxy/anthropic.py.
The chains helper calls these when an OpenAI chat request lands on an `anthropic` provider
(Anthropic-dialect requests go to such a provider natively, untranslated).

Contract:
- `openai_to_anthropic_request(body) -> dict`: an (already validated) OpenAI chat request as a Messages
  request. system/developer messages (wherever they are) -> `system`, joined by blank lines; user parts:
  text, `image_url` (data: URLs -> base64 image blocks, http(s) -> url images); assistant `tool_calls` ->
  `tool_use` blocks; `tool` messages -> `tool_result` blocks, merged into one user turn (tool results first,
  as Anthropic requires); consecutive same-role turns merged; empty assistant turns dropped. `max_tokens` /
  `max_completion_tokens` (default DEFAULT_MAX_TOKENS: Anthropic requires one); `temperature` clamped to
  Anthropic's 0..1; `top_p`; `stop` -> `stop_sequences`; tools -> `{name, description, input_schema}`;
  `tool_choice` auto/required/none/a function -> auto/any/none/tool; `parallel_tool_calls: false` ->
  `disable_parallel_tool_use`; `user` -> `metadata.user_id`; `reasoning_effort` low/medium/high -> extended
  thinking with a 1k/4k/16k budget when it fits below max_tokens (and then no temperature/top_p, as
  Anthropic requires). Raise ProxyError 400: `n` > 1, `response_format` json_object/json_schema
  (`unsupported_value`), `logprobs`, audio/file parts, tool-call arguments that are not a JSON object.
  Dropped (no Anthropic equivalent): seed, presence/frequency penalties, logit_bias, stream_options.
- `anthropic_to_openai_response(data, *, cid, created, model) -> dict`: a Messages response as a
  chat.completion. thinking -> `message.reasoning_content`; stop_reason end_turn/stop_sequence/pause_turn
  -> stop (the matched sequence in `choices[0].stop_reason`, as vLLM reports it), max_tokens /
  model_context_window_exceeded -> length, tool_use -> tool_calls, refusal -> content_filter. Usage:
  prompt_tokens = input + cache read + cache creation (`prompt_tokens_details.cached_tokens` = cache read).
- `anthropic_stream_to_openai_chunks(events)`: parsed Anthropic stream events (dicts with `type`) ->
  OpenAI chunk dicts: a first `{role, content: ""}` delta, content / `reasoning_content` / tool-call deltas
  (`id`, `type`, `name` on a call's first fragment only), one final chunk with `finish_reason`, then a usage
  chunk (`choices: []`). An `error` event, or a stream that ends without `message_stop`, raises
  gateway.UpstreamStreamError with an OpenAI error object.
- `anthropic_sse_events(resp)`: the parsed `data:` objects of an httpx streaming response from Anthropic.
- `upstream_headers(api_key, betas=())`: the headers Anthropic's API wants.
"""
from __future__ import annotations

import json
import time
from typing import AsyncIterator

from apps.proxy.errors import ProxyError

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
THINKING_BUDGET = {"low": 1024, "medium": 4096, "high": 16384}
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
           "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}


def upstream_headers(api_key: str | None, betas: tuple[str, ...] | list[str] = ()) -> dict:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "anthropic-version": ANTHROPIC_VERSION}
    if api_key:
        headers["x-api-key"] = api_key
    if betas:
        headers["anthropic-beta"] = ",".join(betas)
    return headers


def _bad(message: str, param: str | None = None, code: str | None = "invalid_value"):
    raise ProxyError(400, message, param=param, code=code)


# --- request ----------------------------------------------------------------------------------------
def _text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content
                       if isinstance(p, dict) and p.get("type") in ("text", "input_text", "output_text", None))
    return str(content)


def _image(url: str, where: str) -> dict:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media = head[5:].split(";")[0] or "image/png"
        if ";base64" not in head or not data:
            _bad(f"{where}: a data URL image must be base64-encoded", where)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    _bad(f"{where}: an image URL must be http(s) or a base64 data URL", where)


def _user_blocks(content, i: int) -> list[dict]:
    if isinstance(content, str) or content is None:
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        _bad(f"messages[{i}].content: a string or an array of content parts", f"messages[{i}].content")
    blocks = []
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text"):
            if part.get("text"):
                blocks.append({"type": "text", "text": str(part["text"])})
        elif kind == "image_url":
            img = part.get("image_url")
            url = img.get("url") if isinstance(img, dict) else img
            blocks.append(_image(str(url or ""), where))
        else:
            _bad(f"{where}: content parts of type {kind!r} are not supported by this provider", where,
                 "unsupported_value")
    return blocks


def _tool_use(tc: dict, i: int, k: int) -> dict:
    fn = tc.get("function") or {}
    args = fn.get("arguments")
    if isinstance(args, dict):
        value = args
    else:
        try:
            value = json.loads(args) if args not in (None, "") else {}
        except (TypeError, ValueError):
            value = None
    if not isinstance(value, dict):
        _bad(f"messages[{i}].tool_calls[{k}].function.arguments: must be a JSON object",
             f"messages[{i}].tool_calls[{k}].function.arguments")
    return {"type": "tool_use", "id": str(tc.get("id") or f"toolu_{i}_{k}"), "name": str(fn.get("name") or ""),
            "input": value}


def _append(out: list[dict], role: str, blocks: list[dict]) -> None:
    if not blocks:
        return
    if out and out[-1]["role"] == role:
        merged = out[-1]["content"] + blocks
        if role == "user":  # tool results first in a user turn
            merged.sort(key=lambda b: b["type"] != "tool_result")
        out[-1]["content"] = merged
    else:
        out.append({"role": role, "content": list(blocks)})


def openai_to_anthropic_request(body: dict) -> dict:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        _bad("messages: at least one message is required", "messages", "missing_required_parameter")
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        _bad("n > 1 is not supported by this provider; send one request per completion.", "n", "unsupported_value")
    if body.get("logprobs"):
        _bad("logprobs are not available from this provider.", "logprobs", "unsupported_value")
    rf = body.get("response_format")
    if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
        _bad(f"response_format {rf['type']} is not supported by this provider.", "response_format",
             "unsupported_value")
    system: list[str] = []
    out: list[dict] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            _bad(f"messages[{i}]: a message object", f"messages[{i}]")
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            text = _text(content)
            if text:
                system.append(text)
        elif role == "user":
            _append(out, "user", _user_blocks(content, i))
        elif role == "assistant":
            blocks = [{"type": "text", "text": _text(content)}] if _text(content) else []
            calls = list(m.get("tool_calls") or [])
            if isinstance(m.get("function_call"), dict):  # the legacy single function call
                calls.append({"id": f"toolu_{i}_fc", "function": m["function_call"]})
            blocks += [_tool_use(tc, i, k) for k, tc in enumerate(calls) if isinstance(tc, dict)]
            _append(out, "assistant", blocks)
        elif role in ("tool", "function"):
            tool_id = m.get("tool_call_id") or (f"toolu_{i - 1}_fc" if role == "function" else "")
            _append(out, "user", [{"type": "tool_result", "tool_use_id": str(tool_id), "content": _text(content)}])
        else:
            _bad(f"messages[{i}].role: unknown role {role!r}", f"messages[{i}].role")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    req: dict = {"model": body.get("model"), "max_tokens": int(max_tokens), "messages": out}
    if system:
        req["system"] = "\n\n".join(system)
    if body.get("stream"):
        req["stream"] = True
    effort = body.get("reasoning_effort")
    budget = THINKING_BUDGET.get(effort) if isinstance(effort, str) else None
    if budget is not None and budget < req["max_tokens"]:
        req["thinking"] = {"type": "enabled", "budget_tokens": budget}
    else:
        if isinstance(body.get("temperature"), (int, float)):
            req["temperature"] = max(0.0, min(float(body["temperature"]), 1.0))
        if isinstance(body.get("top_p"), (int, float)):
            req["top_p"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str) and stop:
        req["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        req["stop_sequences"] = [s for s in stop if isinstance(s, str) and s]
    tools = []
    for t in body.get("tools") or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and fn.get("name"):
            tools.append({"name": fn["name"], "description": str(fn.get("description") or ""),
                          "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}})
    if tools:
        req["tools"] = tools
        tc = body.get("tool_choice")
        choice = None
        if tc in ("auto", "required", "none"):
            choice = {"type": {"auto": "auto", "required": "any", "none": "none"}[tc]}
        elif isinstance(tc, dict) and isinstance(tc.get("function"), dict):
            choice = {"type": "tool", "name": str(tc["function"].get("name") or "")}
        if body.get("parallel_tool_calls") is False:
            choice = choice or {"type": "auto"}
            if choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
        if choice is not None:
            req["tool_choice"] = choice
    if isinstance(body.get("user"), str) and body["user"]:
        req["metadata"] = {"user_id": body["user"]}
    return req


# --- response ---------------------------------------------------------------------------------------
def _usage(u: dict | None) -> dict:
    u = u if isinstance(u, dict) else {}

    def num(key):
        v = u.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else 0

    cache_read = num("cache_read_input_tokens")
    prompt = num("input_tokens") + cache_read + num("cache_creation_input_tokens")
    completion = num("output_tokens")
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cache_read}}


def anthropic_to_openai_response(data: dict, *, cid: str, created: int, model: str) -> dict:
    texts, thinking, calls = [], [], []
    for block in data.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text") or ""))
        elif kind == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif kind == "tool_use":
            calls.append({"id": str(block.get("id") or f"call_{len(calls)}"), "type": "function", "function": {
                "name": str(block.get("name") or ""),
                "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False)}})
    message: dict = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    stop_reason = data.get("stop_reason")
    finish = "tool_calls" if calls else _FINISH.get(stop_reason, "stop")
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    if stop_reason == "stop_sequence" and isinstance(data.get("stop_sequence"), str):
        choice["stop_reason"] = data["stop_sequence"]
    return {"id": cid, "object": "chat.completion", "created": created, "model": model, "choices": [choice],
            "usage": _usage(data.get("usage")), "system_fingerprint": None}


# --- stream -----------------------------------------------------------------------------------------
def _stream_error(message: str, err: dict | None = None):
    from apps.proxy.gateway import UpstreamStreamError  # (gateway may import this module)

    return UpstreamStreamError(message, err)


async def anthropic_sse_events(resp) -> AsyncIterator[dict]:
    """The JSON objects of an Anthropic SSE response (httpx, opened with stream=True); a dropped
    connection or a malformed event raises gateway.UpstreamStreamError. Closes the response."""
    import httpx

    try:
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue
            try:
                obj = json.loads(line[5:].strip())
            except ValueError:
                raise _stream_error("The model server sent a malformed stream event.")
            if isinstance(obj, dict):
                yield obj
    except httpx.HTTPError as exc:
        raise _stream_error(f"The model server dropped the stream ({type(exc).__name__}).")
    finally:
        await resp.aclose()


def _openai_error(err: dict) -> dict:
    kind = str(err.get("type") or "api_error")
    mapped = {"rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
              "overloaded_error": ("server_error", "overloaded"),
              "invalid_request_error": ("invalid_request_error", None)}.get(kind, ("server_error", kind))
    return {"message": str(err.get("message") or "The model server failed mid-stream."), "type": mapped[0],
            "param": None, "code": mapped[1] or "upstream_stream_error"}


async def anthropic_stream_to_openai_chunks(events: AsyncIterator[dict]) -> AsyncIterator[dict]:
    cid, model, created = "", "", int(time.time())
    tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool-call index
    usage: dict = {}
    stop_reason = stop_sequence = None

    def chunk(delta: dict, finish=None, **extra) -> dict:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None, **extra}
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [choice]}

    async for ev in events:
        kind = ev.get("type")
        if kind == "message_start":
            msg = ev.get("message") or {}
            cid, model = str(msg.get("id") or ""), str(msg.get("model") or "")
            usage.update(msg.get("usage") or {})
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block, idx = ev.get("content_block") or {}, ev.get("index", 0)
            if block.get("type") == "tool_use":
                tool_index[idx] = len(tool_index)
                yield chunk({"tool_calls": [{"index": tool_index[idx], "id": str(block.get("id") or ""),
                                             "type": "function", "function": {"name": str(block.get("name") or ""),
                                                                              "arguments": ""}}]})
            elif block.get("type") == "text" and block.get("text"):
                yield chunk({"content": block["text"]})
        elif kind == "content_block_delta":
            delta, idx = ev.get("delta") or {}, ev.get("index", 0)
            dtype = delta.get("type")
            if dtype == "text_delta" and delta.get("text"):
                yield chunk({"content": delta["text"]})
            elif dtype == "thinking_delta" and delta.get("thinking"):
                yield chunk({"reasoning_content": delta["thinking"]})
            elif dtype == "input_json_delta" and idx in tool_index and delta.get("partial_json"):
                yield chunk({"tool_calls": [{"index": tool_index[idx],
                                             "function": {"arguments": delta["partial_json"]}}]})
        elif kind == "message_delta":
            d = ev.get("delta") or {}
            stop_reason = d.get("stop_reason") or stop_reason
            stop_sequence = d.get("stop_sequence") or stop_sequence
            usage.update({k: v for k, v in (ev.get("usage") or {}).items() if v is not None})
        elif kind == "message_stop":
            finish = "tool_calls" if tool_index else _FINISH.get(stop_reason, "stop")
            extra = {"stop_reason": stop_sequence} if stop_reason == "stop_sequence" and stop_sequence else {}
            yield chunk({}, finish, **extra)
            yield {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
                   "usage": _usage(usage)}
            return
        elif kind == "error":
            err = ev.get("error") if isinstance(ev.get("error"), dict) else {"message": str(ev.get("error"))}
            oa = _openai_error(err)
            raise _stream_error(oa["message"], oa)
        # ping and unknown event types: nothing to forward
    raise _stream_error("The model server closed the stream before it finished.")
