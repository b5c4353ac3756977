"""OpenAI-compatible HTTP endpoints over the engine (Starlette).

POST /v1/chat/completions (stream or not), POST /v1/completions, GET /v1/models, GET /health,
POST /tokenize (vLLM-style: {"model", "messages"|"prompt", "tools"?} -> {"count", "max_model_len"}).
Generation runs in a worker thread under the model's lock; tokens reach the client through an
asyncio queue, and a client that disconnects stops its generation.

Beyond plain text (what vLLM's OpenAI server does too):
- `tools` are rendered into the prompt with the hub's training layout (workers/engine/chat_format.py)
  and emitted ``<tool_call>{json}</tool_call>`` blocks come back as `tool_calls` (ids `call_…`,
  arguments a JSON string, finish_reason "tool_calls"); when streaming, text before a call streams
  as it comes and each call arrives whole in one delta, never half-formed; a malformed block stays
  text. `tool_choice`: see tools.plan_tools ("none" drops the tools, "required" and a named function
  are enforced by constrained decoding).
- `response_format` json_object / json_schema is enforced by constrained decoding (structured.py);
  a schema it cannot enforce is a 400 `unsupported_value`.
- A stop string that ended the answer is reported as `choices[i].stop_reason` (null otherwise) with
  finish_reason "stop"; the stop string itself is not part of the text.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from workers.inference import engine
from workers.inference.engine import EngineError, ModelStore
from workers.inference.llama_backend import LlamaLoaded, LlamaPool
from workers.inference.structured import Constraint, build_grammar, response_schema
from workers.inference.tools import ToolCallParser, ToolPlan, plan_tools


def _error(message: str, *, status: int = 400, type: str = "invalid_request_error", param=None, code=None):
    return JSONResponse({"error": {"message": message, "type": type, "param": param, "code": code}},
                        status_code=status)


def _engine_error(exc: EngineError):
    return _error(exc.message, status=exc.status, type=exc.type, param=exc.param, code=exc.code)


def _num(body: dict, key: str, default, lo: float, hi: float, *, integer=False):
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise EngineError(f"`{key}` must be {'an integer' if integer else 'a number'}.", param=key)
    if not lo <= value <= hi:
        raise EngineError(f"`{key}` must be between {lo} and {hi}.", param=key)
    return value


def _sampling(body: dict) -> dict:
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise EngineError("`max_tokens` must be a positive integer.", param="max_tokens")
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 4):
        raise EngineError("`stop` must be a string or a list of up to 4 strings.", param="stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise EngineError("`seed` must be an integer.", param="seed")
    if body.get("n", 1) not in (1, None):
        raise EngineError("Only n=1 is supported.", param="n")
    return dict(max_tokens=max_tokens, temperature=_num(body, "temperature", 1.0, 0, 2),
                top_p=_num(body, "top_p", 1.0, 0, 1), stop=stop or [], seed=seed)


def create_app(*, artifact_root: Path, max_loaded: int = 2, model_cache: Path | None = None, engine_mode: str = "auto",
               llama_threads: int = 0, llama_ctx: int = 4096, llama_parallel: int = 4) -> Starlette:
    """`model_cache` (where llama.cpp is built) turns on serving through llama.cpp for versions with a GGUF;
    engine_mode "transformers" turns it off."""
    store = ModelStore(artifact_root, max_loaded=max_loaded)
    llama = (LlamaPool(artifact_root, model_cache, max_loaded=max_loaded, threads=llama_threads, ctx=llama_ctx,
                       parallel=llama_parallel, mode=engine_mode)
             if model_cache is not None and engine_mode != "transformers" else None)

    def engine_of(manifest: dict) -> tuple[str, str | None]:
        if llama is None:
            return "transformers", None
        return llama.engine_for(manifest)

    async def health(request: Request):
        return JSONResponse({"status": "ok", "loaded": store.loaded_names() + (llama.loaded_names() if llama else []),
                             "artifact_root": str(store.artifact_root),
                             "llama_cpp": (llama.toolchain().as_dict() if llama and llama.toolchain() else None)})

    def _available() -> list[dict]:
        out = []
        for m in store.available():
            engine_name, notice = engine_of(store.manifest(m["id"]) or {})
            out.append({"id": m["id"], "object": "model", "created": m["created"], "owned_by": "training-hub",
                        "engine": engine_name, "notice": notice})
        return out

    async def models(request: Request):
        return JSONResponse({"object": "list", "data": await run_in_threadpool(_available)})

    async def _body(request: Request) -> dict:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise EngineError("The request body is not valid JSON.")
        if not isinstance(body, dict):
            raise EngineError("The request body must be a JSON object.")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise EngineError("`model` is required.", param="model")
        return body

    async def _prepare(body: dict, chat: bool):
        params = _sampling(body)
        plan = plan_tools(body) if chat else ToolPlan(None, False, None, True)
        grammar = await run_in_threadpool(build_grammar, body, plan)
        loaded = await run_in_threadpool(_load, body["model"], grammar is not None and (
            plan.force is not None or (plan.tools is not None and response_schema(body) is not None)))
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
                raise EngineError("`messages` must be a non-empty list of messages.", param="messages")
            prompt_ids = await run_in_threadpool(engine.chat_prompt_ids, loaded, messages, plan.tools)
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise EngineError("`prompt` must be a string.", param="prompt")
            prompt_ids = await run_in_threadpool(engine.text_prompt_ids, loaded, prompt)
        params["max_tokens"] = engine.plan_max_tokens(loaded, len(prompt_ids), params["max_tokens"])
        if grammar is not None:
            if isinstance(loaded, LlamaLoaded):  # a JSON answer: llama.cpp's own schema-to-grammar enforces it
                params["json_schema"] = response_schema(body)
            else:
                params["constraint"] = await run_in_threadpool(Constraint, loaded, grammar)
        return loaded, prompt_ids, params, plan

    def _load(name: str, needs_transformers: bool):
        """The version, through llama.cpp when it can serve it (and the request needs nothing only the
        transformers engine does: forced tool calls), else through transformers."""
        if llama is not None and not needs_transformers:
            manifest = store.manifest(name)
            if manifest is not None and engine_of(manifest)[0] == "llama.cpp":
                from workers.engine.llamacpp.toolchain import LlamaCppError

                try:
                    return llama.get(name, manifest)
                except LlamaCppError:
                    if engine_mode == "llama.cpp":
                        raise EngineError(f"llama.cpp could not load {name}.", status=500, type="server_error")
        return store.get(name)

    async def _run(loaded, prompt_ids, params):
        """Run generation in a thread; yield (delta, finish, n, stop_reason) items as they come."""
        if isinstance(loaded, LlamaLoaded):
            async for item in llama.stream(loaded, prompt_ids, params):
                yield item
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancelled = threading.Event()

        def work():
            try:
                with loaded.lock:
                    for item in engine.generate(loaded, prompt_ids, should_stop=cancelled.is_set, **params):
                        loop.call_soon_threadsafe(queue.put_nowait, item)
                        if cancelled.is_set():
                            break
            except BaseException as exc:  # surfaced to the client as an error event
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        threading.Thread(target=work, name=f"gen-{loaded.name}", daemon=True).start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()

    async def chat_completions(request: Request):
        return await _completion(request, chat=True)

    async def completions(request: Request):
        return await _completion(request, chat=False)

    async def _completion(request: Request, *, chat: bool):
        try:
            body = await _body(request)
            loaded, prompt_ids, params, plan = await _prepare(body, chat)
        except EngineError as exc:
            return _engine_error(exc)
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) if stream else False
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        created = int(time.time())
        model = body["model"]
        obj = "chat.completion" if chat else "text_completion"
        engine_name = getattr(loaded, "engine", "transformers")
        parser = ToolCallParser() if plan.parse else None

        def usage(n):
            return {"prompt_tokens": len(prompt_ids), "completion_tokens": n, "total_tokens": len(prompt_ids) + n}

        if not stream:
            parts, calls, finish, reason, n = [], [], "length", None, 0
            try:
                async for delta, fin, n, why in _run(loaded, prompt_ids, params):
                    for kind, value in (parser.feed(delta) if parser else [("text", delta)]):
                        (calls if kind == "call" else parts).append(value)
                    if fin:
                        finish, reason = fin, why
            except Exception as exc:
                return _error(f"Generation failed: {exc}", status=500, type="server_error")
            for kind, value in (parser.finish() if parser else []):
                (calls if kind == "call" else parts).append(value)
            text = "".join(parts)
            if chat:
                message = {"role": "assistant", "content": text}
                if calls:
                    message["content"] = text if text.strip() else None
                    message["tool_calls"] = calls
                    finish = "tool_calls" if finish == "stop" else finish
                choice = {"index": 0, "message": message, "finish_reason": finish, "stop_reason": reason,
                          "logprobs": None}
            else:
                choice = {"index": 0, "text": text, "finish_reason": finish, "stop_reason": reason, "logprobs": None}
            return JSONResponse({"id": rid, "object": obj, "created": created, "model": model,
                                 "choices": [choice], "usage": usage(n)}, headers={"x-hub-engine": engine_name})

        chunk_obj = "chat.completion.chunk" if chat else "text_completion"

        def event(choices, usage=None, with_usage=include_usage):
            payload = {"id": rid, "object": chunk_obj, "created": created, "model": model, "choices": choices}
            if with_usage:
                payload["usage"] = usage
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"

        def choice(delta_text=None, finish=None, role=False, tool_call=None, reason=None):
            if chat:
                delta = {}
                if role:
                    delta["role"] = "assistant"
                if delta_text is not None:
                    delta["content"] = delta_text
                if tool_call is not None:
                    delta["tool_calls"] = [tool_call]
                out = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            else:
                out = {"index": 0, "text": delta_text or "", "finish_reason": finish, "logprobs": None}
            if finish:
                out["stop_reason"] = reason
            return out

        # a content delta is the hot path (one per token): its event is a fixed frame around the JSON string
        head, tail = event([choice("\x00")]).split('"\\u0000"')

        def text_event(text: str) -> str:
            return head + json.dumps(text, ensure_ascii=False) + tail

        def framed(items, calls_seen):
            """Chunks for parser events; a call goes out whole, with its index among the calls."""
            for kind, value in items:
                if kind == "call":
                    yield event([choice(tool_call={"index": calls_seen[0], **value})])
                    calls_seen[0] += 1
                elif value:
                    yield text_event(value)

        async def sse():
            n = 0
            calls_seen = [0]
            if chat:
                yield event([choice("", role=True)])
            try:
                async for delta, fin, n, why in _run(loaded, prompt_ids, params):
                    if parser is not None:
                        for chunk in framed(parser.feed(delta), calls_seen):
                            yield chunk
                        if fin:
                            for chunk in framed(parser.finish(), calls_seen):
                                yield chunk
                    elif delta:
                        yield text_event(delta)
                    if fin:
                        if calls_seen[0] and fin == "stop":
                            fin = "tool_calls"
                        yield event([choice(None, fin, reason=why)])
            except Exception as exc:
                err = {"message": f"Generation failed: {exc}", "type": "server_error", "param": None, "code": None}
                yield f"data: {json.dumps({'error': err})}\n\n"
                return
            if include_usage:
                yield event([], usage(n))
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "x-request-id": rid,
                                          "x-hub-engine": engine_name})

    async def tokenize(request: Request):
        try:
            body = await _body(request)
            loaded = await run_in_threadpool(store.get, body["model"])
            if body.get("messages") is not None:
                tools = body.get("tools") if isinstance(body.get("tools"), list) else None
                ids = await run_in_threadpool(engine.chat_prompt_ids, loaded, body["messages"], tools)
            else:
                ids = await run_in_threadpool(engine.text_prompt_ids, loaded, str(body.get("prompt", "")))
        except EngineError as exc:
            return _engine_error(exc)
        return JSONResponse({"count": len(ids), "max_model_len": loaded.context_length})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:  # llama-server children end with this process
            if llama is not None:
                await llama.client.aclose()
                llama.close()

    app = Starlette(lifespan=lifespan, routes=[
        Route("/health", health),
        Route("/v1/models", models),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/tokenize", tokenize, methods=["POST"]),
    ])
    app.state.store = store
    app.state.llama = llama
    return app
