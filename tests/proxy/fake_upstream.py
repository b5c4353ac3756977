"""A fake OpenAI-compatible upstream (what the inference process / vLLM / Together look like to the
proxy), plus a helper that serves any ASGI app with uvicorn on a loopback port in a thread.
Used by the proxy tests and by bench/bench_proxy.py.

Behaviour is picked by the last message's content: FAIL_MID (drops the connection mid-stream),
NO_DONE (ends the stream without [DONE]), ERROR_EVENT (sends an error event), TOOL (a tool call),
UPSTREAM_500, RATE_LIMIT (429 with retry-after: 2 and retry-after-ms: 50), SLOW (sleeps before answering).
TOOL_PAIR (text, then two tool calls with id/name only on their first fragment), CUSTOM_TOOL (an
`apply_patch` call with `{"input": ...}` arguments), LENGTH (cut off by max tokens), "PACED <n> <ms>" (a
stream of n tokens, one every ms milliseconds, as a model decodes: the soak benchmark's long-lived streams).
Anything else is echoed back word by word.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


def _paced(body: dict, last: str) -> StreamingResponse:
    try:
        n, ms = (int(x) for x in last.split()[1:3])
    except ValueError:
        n, ms = 20, 50
    base = {"id": "up-paced", "object": "chat.completion.chunk", "created": int(time.time()), "model": body["model"]}

    async def stream():
        yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant"},
                                                          "finish_reason": None}]}) + "\n\n"
        for i in range(n):
            await asyncio.sleep(ms / 1000)
            yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {"content": f" tok{i}"},
                                                              "finish_reason": None}]}) + "\n\n"
        yield "data: " + json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + "\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def create_fake_upstream(*, seen: list | None = None) -> Starlette:
    seen = seen if seen is not None else []

    def _words(text: str) -> list[str]:
        ws = text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(ws)]

    async def chat(request: Request):
        body = await request.json()
        seen.append({"path": "/v1/chat/completions", "body": body, "auth": request.headers.get("authorization")})
        last = body["messages"][-1].get("content") or ""
        if isinstance(last, list):
            last = "".join(p.get("text", "") for p in last)
        if last == "UPSTREAM_500":
            return JSONResponse({"error": {"message": "boom", "type": "server_error", "param": None, "code": None}},
                                status_code=500)
        if last == "RATE_LIMIT":
            return JSONResponse({"error": {"message": "slow down", "type": "rate_limit_error", "param": None,
                                           "code": "rate_limit_exceeded"}}, status_code=429,
                                headers={"retry-after": "2", "retry-after-ms": "50"})
        if last == "SLOW":
            await asyncio.sleep(5)
        if last.startswith("PACED ") and body.get("stream"):
            return _paced(body, last)
        reply = "echo: " + last
        words = _words(reply)
        usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
        base = {"id": "up-1", "created": int(time.time()), "model": body["model"]}
        if last.startswith("WIRE_"):  # the Anthropic wire tests' behaviours (_wire below)
            return await _wire(body, base, last)
        if last == "TOOL":
            tool_calls = [{"id": "call_1", "type": "function",
                           "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
            if not body.get("stream"):
                return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": tool_calls},
                     "finish_reason": "tool_calls"}]})

            async def tool_stream():
                # deliberately repeats id/name on every fragment, as some servers do
                for part in ('{"city": ', '"Paris"}'):
                    frag = {"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": part}}
                    yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [
                        {"index": 0, "delta": {"tool_calls": [frag]}, "finish_reason": None}]}) + "\n\n"
                yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}) + "\n\n"
                yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [],
                                             "usage": usage}) + "\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(tool_stream(), media_type="text/event-stream")
        if last in ("TOOL_PAIR", "CUSTOM_TOOL"):
            return _scripted_tools(body, base, usage, last)
        if last == "LENGTH":
            return _length(body, base)
        if not body.get("stream"):
            return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]})

        async def stream():
            yield ": keep-alive\n\n"
            yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}) + "\n\n"
            for i, w in enumerate(words):
                if last == "FAIL_MID" and i == 1:
                    raise RuntimeError("upstream crashed mid-stream")
                if last == "ERROR_EVENT" and i == 1:
                    yield "data: " + json.dumps({"error": {"message": "model crashed", "type": "server_error"}}) + "\n\n"
                    return
                if last == "NO_DONE" and i == 1:
                    return
                yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [
                    {"index": 0, "delta": {"content": w}, "finish_reason": None}]}) + "\n\n"
            # finish_reason on the last content-bearing chunk (legal upstream shape; the proxy re-frames it)
            yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}]}) + "\n\n"
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({**base, "object": "chat.completion.chunk", "choices": [],
                                             "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def completions(request: Request):
        body = await request.json()
        seen.append({"path": "/v1/completions", "body": body})
        text = " world"
        usage = {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
        base = {"id": "up-2", "created": int(time.time()), "model": body["model"], "object": "text_completion"}
        if not body.get("stream"):
            return JSONResponse({**base, "usage": usage, "choices": [
                {"index": 0, "text": text, "finish_reason": "length", "logprobs": None}]})

        async def stream():
            yield "data: " + json.dumps({**base, "choices": [{"index": 0, "text": text, "finish_reason": None}]}) + "\n\n"
            yield "data: " + json.dumps({**base, "choices": [{"index": 0, "text": "", "finish_reason": "length"}]}) + "\n\n"
            yield "data: " + json.dumps({**base, "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def tokenize(request: Request):
        body = await request.json()
        count = 5 * len(body.get("messages") or [])
        if body.get("tools"):  # like vLLM's /tokenize: tool definitions are part of the prompt
            count += len(json.dumps(body["tools"])) // 4
        return JSONResponse({"count": count, "max_model_len": 2048})

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
        Route("/v1/messages", _anthropic_messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", _anthropic_count_tokens, methods=["POST"]),
    ])
    app.state.seen = seen
    return app


def _sse(obj: dict) -> str:
    return "data: " + json.dumps(obj) + "\n\n"


def _scripted_tools(body: dict, base: dict, usage: dict, last: str):
    """A text answer followed by tool calls, streamed the way OpenAI does (id/type/name on the first
    fragment of each call only) or answered whole."""
    if last == "TOOL_PAIR":
        text = "Let me check both."
        calls = [("call_a", "get_weather", ['{"city": ', '"Paris"}']),
                 ("call_b", "get_time", ['{"tz": "Europe/Paris"}'])]
    else:
        text = ""
        calls = [("call_p", "apply_patch", ['{"input": "*** Begin Patch\\n', '*** End Patch"}'])]
    if not body.get("stream"):
        tool_calls = [{"id": cid, "type": "function", "function": {"name": name, "arguments": "".join(parts)}}
                      for cid, name, parts in calls]
        return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text or None, "tool_calls": tool_calls},
             "finish_reason": "tool_calls"}]})

    async def stream():
        chunk = {**base, "object": "chat.completion.chunk"}
        yield _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        if text:
            yield _sse({**chunk, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
        for i, (cid, name, parts) in enumerate(calls):
            for j, part in enumerate(parts):
                frag = {"index": i, "function": {"arguments": part}}
                if j == 0:
                    frag.update({"id": cid, "type": "function", "function": {"name": name, "arguments": part}})
                yield _sse({**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [frag]}, "finish_reason": None}]})
        yield _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        yield _sse({**chunk, "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


def _length(body: dict, base: dict):
    """An answer cut off by the token limit (finish_reason "length")."""
    usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    if not body.get("stream"):
        return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "cut short"}, "finish_reason": "length"}]})

    async def stream():
        chunk = {**base, "object": "chat.completion.chunk"}
        for word in ("cut", " short"):
            yield _sse({**chunk, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
        yield _sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        yield _sse({**chunk, "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


# --- Anthropic wire tests (tests/proxy/test_anthropic_wire*.py) ------------------------------------
# WIRE_THINK: reasoning_content, then text. WIRE_TOOLS: text, then two tool calls (id/name on the first
# fragment only). WIRE_LENGTH (WIRE_LENGTH_NO_USAGE: and no usage in the stream): cut off by max tokens. WIRE_STOP_REPORT / WIRE_STOP_IGNORE / WIRE_STOP_SILENT: the answer
# "alpha beta END gamma" with the request's `stop` honoured and reported in `choices[].stop_reason` (vLLM,
# the hub's inference server) / ignored / honoured without saying so (OpenAI). WIRE_BAD_ARGS: a tool call
# whose arguments are not JSON. WIRE_FAIL_IN_TOOL: drops the connection in the middle of a tool call.
# WIRE_CACHED: usage with cached prompt tokens. WIRE_NO_USAGE: a stream without usage. WIRE_PAUSE: 0.6 s of
# silence after the first token.
_WIRE_TEXT = ["alpha", " beta", " END", " gamma"]


async def _wire(body: dict, base: dict, last: str):
    chunk = {**base, "object": "chat.completion.chunk"}
    usage = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    reasoning, words, calls, finish, stop_reason = None, ["The", " answer."], [], "stop", None
    if last == "WIRE_THINK":
        reasoning = ["Let me", " think."]
    elif last.startswith("WIRE_STOP_"):
        words = list(_WIRE_TEXT)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        full = "".join(_WIRE_TEXT)
        hits = [(full.find(stop), stop) for stop in stops if stop and stop in full]
        if hits and last != "WIRE_STOP_IGNORE":
            at, hit = min(hits)
            words, pos = [], 0
            for w in _WIRE_TEXT:
                if pos >= at:
                    break
                words.append(w[:at - pos])
                pos += len(w)
            stop_reason = hit if last == "WIRE_STOP_REPORT" else None
    elif last == "WIRE_TOOLS":
        words, finish = ["Let me look."], "tool_calls"
        calls = [("call_1", "Read", ['{"file_path": ', '"/tmp/a.py"}']), ("call_2", "Bash", ['{"command": "ls"}'])]
    elif last in ("WIRE_LENGTH", "WIRE_LENGTH_NO_USAGE"):
        finish = "length"
    elif last == "WIRE_BAD_ARGS":
        words, calls, finish = [], [("call_x", "Bash", ["{not json"])], "tool_calls"
    elif last == "WIRE_FAIL_IN_TOOL":
        words, calls, finish = [], [("call_y", "Bash", ['{"command": ', "BOOM"])], "tool_calls"
    elif last == "WIRE_CACHED":
        usage = {"prompt_tokens": 100, "completion_tokens": 2, "total_tokens": 102,
                 "prompt_tokens_details": {"cached_tokens": 60}}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "".join(words) or None}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        if calls:
            message["tool_calls"] = [{"id": c, "type": "function", "function": {"name": n, "arguments": "".join(a)}}
                                     for c, n, a in calls]
        choice = {"index": 0, "message": message, "finish_reason": finish}
        if stop_reason:
            choice["stop_reason"] = stop_reason
        return JSONResponse({**base, "object": "chat.completion", "usage": usage, "choices": [choice]})

    async def stream():
        yield _sse({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        for r in reasoning or []:
            yield _sse({**chunk, "choices": [{"index": 0, "delta": {"reasoning_content": r}, "finish_reason": None}]})
        for k, w in enumerate(words):
            if last == "WIRE_PAUSE" and k == 1:
                await asyncio.sleep(0.6)
            yield _sse({**chunk, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]})
        for i, (cid, name, parts) in enumerate(calls):
            for j, part in enumerate(parts):
                if part == "BOOM":
                    raise RuntimeError("upstream crashed inside a tool call")
                frag = {"index": i, "function": {"arguments": part}}
                if j == 0:
                    frag.update({"id": cid, "type": "function", "function": {"name": name, "arguments": part}})
                yield _sse({**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [frag]}, "finish_reason": None}]})
        final = {"index": 0, "delta": {}, "finish_reason": finish}
        if stop_reason:
            final["stop_reason"] = stop_reason
        yield _sse({**chunk, "choices": [final]})
        if last not in ("WIRE_NO_USAGE", "WIRE_LENGTH_NO_USAGE"):
            yield _sse({**chunk, "choices": [], "usage": usage})
        yield "data: [DONE]\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream")


async def _anthropic_messages(request: Request):
    """A native Anthropic Messages endpoint (for the OpenAI -> Anthropic provider translation): echoes the
    last user text; TOOL answers with a tool_use block; ERROR_EVENT sends `event: error` mid-stream."""
    body = await request.json()
    content = body["messages"][-1]["content"]
    last = content if isinstance(content, str) else "".join(
        b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    msg_id, model = "msg_fake", body.get("model", "")
    usage = {"input_tokens": 9, "output_tokens": 3, "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}
    if last == "TOOL":
        blocks = [{"type": "text", "text": "Checking."},
                  {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]
        stop_reason = "tool_use"
    else:
        blocks = [{"type": "thinking", "thinking": "Hmm.", "signature": "sig"},
                  {"type": "text", "text": "echo: " + last}]
        stop_reason = "end_turn"
    if not body.get("stream"):
        return JSONResponse({"id": msg_id, "type": "message", "role": "assistant", "model": model, "content": blocks,
                             "stop_reason": stop_reason, "stop_sequence": None, "usage": usage})

    def ev(name, data):
        return f"event: {name}\ndata: {json.dumps(data)}\n\n"

    async def stream():
        yield ev("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}})
        yield ev("ping", {"type": "ping"})
        for i, b in enumerate(blocks):
            if b["type"] == "tool_use":
                yield ev("content_block_start", {"type": "content_block_start", "index": i,
                                                 "content_block": {**b, "input": {}}})
                for part in ('{"city": ', '"Paris"}'):
                    yield ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                                     "delta": {"type": "input_json_delta", "partial_json": part}})
            else:
                kind = b["type"]
                yield ev("content_block_start", {"type": "content_block_start", "index": i,
                                                 "content_block": {**b, kind: ""}})
                yield ev("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                    "type": f"{kind}_delta", kind: b[kind]}})
                if last == "ERROR_EVENT":
                    yield ev("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                    return
            yield ev("content_block_stop", {"type": "content_block_stop", "index": i})
        yield ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                   "usage": {"output_tokens": 3}})
        yield ev("message_stop", {"type": "message_stop"})

    return StreamingResponse(stream(), media_type="text/event-stream")


async def _anthropic_count_tokens(request: Request):
    """Anthropic's count_tokens: 100 + a quarter of the tools' JSON; 401 without x-api-key and anthropic-version."""
    if not request.headers.get("x-api-key") or not request.headers.get("anthropic-version"):
        return JSONResponse({"type": "error", "error": {"type": "authentication_error", "message": "no key"}},
                            status_code=401)
    body = await request.json()
    return JSONResponse({"input_tokens": 100 + len(json.dumps(body.get("tools") or [])) // 4})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """Serve an ASGI app with uvicorn on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app, *, port: int | None = None, **config):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error",
                                                    lifespan="off", access_log=False, **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 15
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
