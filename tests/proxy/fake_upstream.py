"""A fake OpenAI-compatible upstream (what the inference process / vLLM / Together look like to the
proxy), plus a helper that serves any ASGI app with uvicorn on a loopback port in a thread.
Used by the proxy tests and by bench/bench_proxy.py.

Behaviour is picked by the last message's content: FAIL_MID (drops the connection mid-stream),
NO_DONE (ends the stream without [DONE]), ERROR_EVENT (sends an error event), TOOL (a tool call),
UPSTREAM_500, RATE_LIMIT (429 with retry-after: 2 and retry-after-ms: 50), SLOW (sleeps before answering). Anything else is echoed back word by word.
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
        reply = "echo: " + last
        words = _words(reply)
        usage = {"prompt_tokens": 7, "completion_tokens": len(words), "total_tokens": 7 + len(words)}
        base = {"id": "up-1", "created": int(time.time()), "model": body["model"]}
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
        return JSONResponse({"count": 5 * len(body.get("messages") or []), "max_model_len": 2048})

    app = Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
    ])
    app.state.seen = seen
    return app


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
