"""A fault-injecting upstream for the fallback-chain tests: one OpenAI-compatible (`/v1/chat/completions`,
`/v1/models`) and Anthropic (`/v1/messages`, `/v1/models` with x-api-key) server whose behaviour is picked
by the requested *model* name, so that one server plays every target of a chain:

    ok[-NAME]        a normal answer ("from NAME: <last user text>"), streamed or not
    stall            sleeps STALL_S before sending anything (no status line)
    stall-headers    sends 200 and a keep-alive comment, then sleeps STALL_S before the first event
    500              HTTP 500                       429     HTTP 429 with retry-after: 7
    529              HTTP 529 overloaded            401     HTTP 401 (a wrong provider key)
    context          HTTP 400 context_length_exceeded ("maximum context length is 100 tokens ...")
    malformed        200 with a body that is not JSON (streamed: a `data:` line that is not JSON)
    drop:N           sends the normal answer's first N bytes (streamed or not), then drops the connection
    tool-drop        streams half of a tool call's arguments, then drops the connection
    tool             a whole tool call (get_weather), streamed in fragments

Refusing the connection is a provider whose base URL has a port nothing listens on (`refused_url()`).
`app.state.hits` counts requests per model; `app.state.seen` keeps each request's path, headers and body.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.proxy.fake_upstream import free_port

STALL_S = 30.0
MODELS = ["ok", "ok-b", "stall", "500", "429", "tool"]


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def _last_text(messages) -> str:
    last = (messages or [{}])[-1].get("content") or ""
    if isinstance(last, list):
        last = "".join(p.get("text", "") for p in last if isinstance(p, dict))
    return str(last)


def _sse(obj) -> str:
    return "data: " + json.dumps(obj) + "\n\n"


def _event(name: str, obj) -> str:
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n"


def _openai_stream_text(model: str, reply: str, include_usage: bool) -> str:
    base = {"id": "fault-1", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    out = [_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})]
    for i, word in enumerate(reply.split(" ")):
        out.append(_sse({**base, "choices": [{"index": 0, "delta": {"content": word if i == 0 else " " + word},
                                              "finish_reason": None}]}))
    out.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    if include_usage:
        out.append(_sse({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3,
                                                          "total_tokens": 8}}))
    out.append("data: [DONE]\n\n")
    return "".join(out)


def _anthropic_stream_text(model: str, reply: str) -> str:
    msg = {"id": "msg_fault", "type": "message", "role": "assistant", "model": model, "content": [],
           "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 0}}
    out = [_event("message_start", {"type": "message_start", "message": msg}),
           _event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}})]
    for i, word in enumerate(reply.split(" ")):
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
            "type": "text_delta", "text": word if i == 0 else " " + word}}))
    out += [_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                        "stop_sequence": None},
                                     "usage": {"output_tokens": 3}}),
            _event("message_stop", {"type": "message_stop"})]
    return "".join(out)


def _tool_stream(model: str, *, drop: bool) -> list[str]:
    base = {"id": "fault-t", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    frags = ['{"city": ', '"Par', 'is"}']
    out = [_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Checking."},
                                      "finish_reason": None}]})]
    for i, part in enumerate(frags):
        frag = {"index": 0, "function": {"arguments": part}}
        if i == 0:
            frag.update({"id": "call_w", "type": "function"})
            frag["function"]["name"] = "get_weather"
        out.append(_sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [frag]}, "finish_reason": None}]}))
        if drop and i == 1:
            return out
    out.append(_sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    out.append("data: [DONE]\n\n")
    return out


def create_fault_upstream() -> Starlette:
    hits: Counter = Counter()
    seen: list = []

    def error(status: int, message: str, *, type_: str = "server_error", code=None, headers=None, anthropic=False):
        body = ({"type": "error", "error": {"type": type_, "message": message}} if anthropic else
                {"error": {"message": message, "type": type_, "param": None, "code": code}})
        return JSONResponse(body, status_code=status, headers=headers)

    async def common_fault(model: str, anthropic: bool):
        if model == "stall":
            await asyncio.sleep(STALL_S)
        if model == "500":
            return error(500, "internal failure", anthropic=anthropic, type_="api_error" if anthropic else "server_error")
        if model == "429":
            return error(429, "slow down", type_="rate_limit_error", code="rate_limit_exceeded",
                         headers={"retry-after": "7"}, anthropic=anthropic)
        if model == "529":
            return error(529, "Overloaded", type_="overloaded_error", anthropic=anthropic)
        if model == "401":
            return error(401, "invalid x-api-key", type_="authentication_error", anthropic=anthropic)
        if model == "context":
            if anthropic:
                return error(400, "prompt is too long: 150 tokens > 100 maximum", type_="invalid_request_error",
                             anthropic=True)
            return error(400, "This model's maximum context length is 100 tokens. However, your messages resulted "
                              "in 150 tokens. Please reduce the length of the messages.",
                         type_="invalid_request_error", code="context_length_exceeded")
        return None

    def stalled_after_headers():
        async def gen():
            yield ": keep-alive\n\n"
            await asyncio.sleep(STALL_S)
        return StreamingResponse(gen(), media_type="text/event-stream")

    def dropping(text: str, n: int):
        async def gen():
            yield text[:n]
            await asyncio.sleep(0.05)
            raise RuntimeError("fault upstream: connection dropped")
        return StreamingResponse(gen(), media_type="text/event-stream")

    async def chat(request: Request):
        body = await request.json()
        model = str(body.get("model"))
        hits[model] += 1
        seen.append({"path": "/v1/chat/completions", "body": body, "headers": dict(request.headers)})
        fault = await common_fault(model, False)
        if fault is not None:
            return fault
        reply = f"from {model}: {_last_text(body.get('messages'))}"
        stream = bool(body.get("stream"))
        if model == "malformed":
            if stream:
                return StreamingResponse(iter(["data: {not json\n\n", "data: [DONE]\n\n"]),
                                         media_type="text/event-stream")
            return PlainTextResponse("{\"id\": \"half", media_type="application/json")
        if model == "stall-headers":
            return stalled_after_headers()
        if model.startswith("tool"):
            parts = _tool_stream(model, drop=model == "tool-drop")
            if model == "tool-drop":
                async def gen():
                    for p in parts:
                        yield p
                    await asyncio.sleep(0.05)
                    raise RuntimeError("fault upstream: dropped mid tool call")
                return StreamingResponse(gen(), media_type="text/event-stream")
            return StreamingResponse(iter(parts), media_type="text/event-stream")
        if not stream:
            answer = {"id": "fault-1", "object": "chat.completion", "created": int(time.time()), "model": model,
                      "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                   "finish_reason": "stop"}],
                      "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
            if model.startswith("drop:"):
                return dropping(json.dumps(answer), int(model.split(":", 1)[1]))
            return JSONResponse(answer)
        text = _openai_stream_text(model, reply, bool((body.get("stream_options") or {}).get("include_usage")))
        if model.startswith("drop:"):
            return dropping(text, int(model.split(":", 1)[1]))
        return StreamingResponse(iter([text]), media_type="text/event-stream")

    async def messages(request: Request):
        body = await request.json()
        model = str(body.get("model"))
        hits[model] += 1
        seen.append({"path": "/v1/messages", "body": body, "headers": dict(request.headers)})
        if request.headers.get("x-api-key") != "sk-ant-test":
            return error(401, "invalid x-api-key", type_="authentication_error", anthropic=True)
        fault = await common_fault(model, True)
        if fault is not None:
            return fault
        reply = f"from {model}: {_last_text(body.get('messages'))}"
        if model == "malformed":
            return PlainTextResponse("{\"id\": \"half", media_type="application/json")
        if model == "stall-headers":
            return stalled_after_headers()
        if not body.get("stream"):
            answer = {"id": "msg_fault", "type": "message", "role": "assistant", "model": model,
                      "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
                      "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 3}}
            if model.startswith("drop:"):
                return dropping(json.dumps(answer), int(model.split(":", 1)[1]))
            return JSONResponse(answer)
        text = _anthropic_stream_text(model, reply)
        if model.startswith("drop:"):
            return dropping(text, int(model.split(":", 1)[1]))
        return StreamingResponse(iter([text]), media_type="text/event-stream")

    async def models(request: Request):
        if request.headers.get("anthropic-version"):
            if request.headers.get("x-api-key") != "sk-ant-test":
                return error(401, "invalid x-api-key", type_="authentication_error", anthropic=True)
            return JSONResponse({"data": [{"type": "model", "id": "claude-test-1"}], "has_more": False})
        if request.headers.get("authorization") != "Bearer sk-test":
            return error(401, "bad key", type_="invalid_request_error")
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/broken/models", lambda r: Response("nope", status_code=200), methods=["GET"]),
    ])
    app.state.hits = hits
    app.state.seen = seen
    return app
