"""The OpenAI wire dialect of /v1: response bodies and streams in OpenAI's shapes.

Contract: `chat_completion_body` and `completion_body` turn an upstream OpenAI-style answer into the body
the hub returns (normalized finish_reason, integer usage, the id/model the client asked for);
`chat_stream` and `completion_stream` re-frame an upstream SSE stream (first delta `{role, content: ""}`,
tool-call fragments with id/type/name only on their first piece, exactly one finish_reason, the usage
chunk when `stream_options.include_usage` asked for it, `[DONE]`), turning a failure after the first
byte into an error event, passing on `choices[i].stop_reason` (the stop string that ended the answer,
as vLLM and the local inference server report it; on the final chunk when streaming), and record
content, tool calls, usage and timings on the `Call` (which logs it). The
Anthropic dialect (anthropic.py) reuses `chat_stream(raw_events=True)`. No HTTP handling here: the views
(views.py) and the one request path (gateway.relay) call these."""
from __future__ import annotations

import json

import orjson

from apps.proxy.gateway import Call, UpstreamStreamError, sse_events


def _sse(obj) -> str:
    try:  # one per token: orjson is several times cheaper than json.dumps (same compact, unescaped output)
        return "data: " + orjson.dumps(obj).decode() + "\n\n"
    except TypeError:  # what orjson refuses (an integer past 64 bits): the standard library writes it
        return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _error_event(call: Call, err: dict) -> str:
    call.status_code = 502
    call.error = err.get("message", "")
    return _sse({"error": err})


def stream_include_usage(clean: dict) -> bool:
    """Did the request ask for the usage chunk at the end of the stream (`stream_options.include_usage`)?"""
    return bool((clean.get("stream_options") or {}).get("include_usage"))


def _norm_finish(reason) -> str:
    return reason if reason in ("stop", "length", "tool_calls", "content_filter") else (
        "tool_calls" if reason == "function_call" else "stop")


def _usage(u) -> dict:
    u = u if isinstance(u, dict) else {}
    p = u.get("prompt_tokens") if isinstance(u.get("prompt_tokens"), int) else 0
    c = u.get("completion_tokens") if isinstance(u.get("completion_tokens"), int) else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def chat_completion_body(data: dict, *, cid: str, created: int, model: str) -> dict:
    choices = []
    for i, ch in enumerate(data.get("choices") or []):
        msg = ch.get("message") or {}
        message = {"role": "assistant", "content": msg.get("content")}
        if msg.get("tool_calls"):
            message["tool_calls"] = msg["tool_calls"]
        elif message["content"] is None:
            message["content"] = ""
        choice = {"index": ch.get("index", i), "message": message,
                  "finish_reason": _norm_finish(ch.get("finish_reason")), "logprobs": None}
        if isinstance(ch.get("stop_reason"), str):
            choice["stop_reason"] = ch["stop_reason"]
        choices.append(choice)
    return {"id": cid, "object": "chat.completion", "created": created, "model": model, "choices": choices,
            "usage": _usage(data.get("usage")), "system_fingerprint": None}


async def chat_stream(call: Call, resp, *, cid: str, created: int, include_usage: bool,
                      raw_events: bool = False):
    """Re-frame the upstream stream: first delta `{role, content: ""}`, content/tool-call deltas
    (id/type/name only on a tool call's first fragment), exactly one finish_reason on a final empty
    delta, the usage chunk when asked, `[DONE]`. A failure after the first byte becomes an error
    event — never a silent close. With `raw_events` yields dicts (for the Anthropic translation)."""

    def chunk(delta, finish=None, stop_reason=None):
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": call.model_requested,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        if stop_reason is not None:
            obj["choices"][0]["stop_reason"] = stop_reason
        if include_usage:
            obj["usage"] = None
        return obj

    emit = (lambda o: o) if raw_events else _sse
    finish = None
    stop_reason = None  # the stop string that ended the answer, when the upstream says (vLLM, the local server)
    seen_tools: set[int] = set()
    tools: dict[int, dict] = {}  # the calls as assembled from their fragments (for the request log)
    parts: list[str] = []
    try:
        yield emit(chunk({"role": "assistant", "content": ""}))
        async for ev in sse_events(resp):
            if ev.get("usage"):
                call.set_usage(ev["usage"])
            for ch in ev.get("choices") or []:
                if ch.get("index", 0) != 0:
                    continue
                delta = ch.get("delta") or {}
                out = {}
                if isinstance(delta.get("content"), str) and delta["content"]:
                    out["content"] = delta["content"]
                    parts.append(delta["content"])
                if delta.get("tool_calls"):
                    frags = []
                    for frag in delta["tool_calls"]:
                        idx = frag.get("index", 0)
                        f = {"index": idx}
                        fn = frag.get("function") or {}
                        if idx not in seen_tools:
                            seen_tools.add(idx)
                            f["id"] = frag.get("id") or f"call_{call.request_id[:12]}_{idx}"
                            f["type"] = "function"
                            f["function"] = {"name": fn.get("name") or "", "arguments": fn.get("arguments") or ""}
                            tools[idx] = {"id": f["id"], "type": "function", "function": dict(f["function"])}
                        else:
                            f["function"] = {"arguments": fn.get("arguments") or ""}
                            tools[idx]["function"]["arguments"] += f["function"]["arguments"]
                        frags.append(f)
                    out["tool_calls"] = frags
                if out:
                    call.mark_first_token()
                    yield emit(chunk(out))
                if ch.get("finish_reason"):
                    finish = _norm_finish(ch["finish_reason"])
                    if isinstance(ch.get("stop_reason"), str):
                        stop_reason = ch["stop_reason"]
        yield emit(chunk({}, finish or ("tool_calls" if seen_tools else "stop"), stop_reason))
        if include_usage:
            usage = _usage({"prompt_tokens": call.prompt_tokens, "completion_tokens": call.completion_tokens})
            yield emit({"id": cid, "object": "chat.completion.chunk", "created": created,
                        "model": call.model_requested, "choices": [], "usage": usage})
        call.response_body = {"content": "".join(parts), "finish_reason": finish}
        if tools:
            call.response_body["tool_calls"] = [tools[i] for i in sorted(tools)]
        if stop_reason is not None:
            call.response_body["stop_reason"] = stop_reason
        if not raw_events:
            yield "data: [DONE]\n\n"
    except UpstreamStreamError as exc:
        call.response_body = {"content": "".join(parts), "partial": True}
        event = _error_event(call, exc.error)
        if raw_events:
            raise
        yield event
    finally:
        call.log()


def completion_body(data: dict, *, cid: str, created: int, model: str) -> dict:
    """A legacy text-completion answer in OpenAI's shape."""
    choices = []
    for i, ch in enumerate(data.get("choices") or []):
        choice = {"text": ch.get("text") or "", "index": ch.get("index", i), "logprobs": None,
                  "finish_reason": _norm_finish(ch.get("finish_reason"))}
        if isinstance(ch.get("stop_reason"), str):
            choice["stop_reason"] = ch["stop_reason"]
        choices.append(choice)
    return {"id": cid, "object": "text_completion", "created": created, "model": model,
            "choices": choices, "usage": _usage(data.get("usage"))}


async def completion_stream(call: Call, resp, *, cid: str, created: int, include_usage: bool):
    """The legacy text-completion stream: text chunks, one final chunk with the finish_reason, the
    usage chunk when asked, `[DONE]`; a failure after the first byte becomes an error event."""

    def chunk(text, finish=None, stop_reason=None):
        obj = {"id": cid, "object": "text_completion", "created": created, "model": call.model_requested,
               "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}
        if stop_reason is not None:
            obj["choices"][0]["stop_reason"] = stop_reason
        if include_usage:
            obj["usage"] = None
        return _sse(obj)

    finish, parts, stop_reason = None, [], None
    try:
        async for ev in sse_events(resp):
            if ev.get("usage"):
                call.set_usage(ev["usage"])
            for ch in ev.get("choices") or []:
                if ch.get("text"):
                    call.mark_first_token()
                    parts.append(ch["text"])
                    yield chunk(ch["text"])
                if ch.get("finish_reason"):
                    finish = _norm_finish(ch["finish_reason"])
                    if isinstance(ch.get("stop_reason"), str):
                        stop_reason = ch["stop_reason"]
        yield chunk("", finish or "stop", stop_reason)
        if include_usage:
            yield _sse({"id": cid, "object": "text_completion", "created": created,
                        "model": call.model_requested, "choices": [],
                        "usage": _usage({"prompt_tokens": call.prompt_tokens,
                                         "completion_tokens": call.completion_tokens})})
        call.response_body = {"text": "".join(parts), "finish_reason": finish}
        yield "data: [DONE]\n\n"
    except UpstreamStreamError as exc:
        call.response_body = {"text": "".join(parts), "partial": True}
        yield _error_event(call, exc.error)
    finally:
        call.log()
