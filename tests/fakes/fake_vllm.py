"""A fake vLLM OpenAI-compatible server with runtime LoRA updating, served over real HTTP on loopback.

Mirrors what `vllm serve BASE --enable-lora` does with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (docs.vllm.ai,
features/lora.md "Dynamically serving LoRA Adapters"; vllm/entrypoints/openai/serving_models.py):

    GET  /v1/models                 {"object": "list", "data": [the base model, then every loaded adapter with
                                    "root": its path and "parent": the base]}
    POST /v1/load_lora_adapter      {"lora_name", "lora_path"} -> 200 text "Success: LoRA adapter 'x' added
                                    successfully."; 400 "Both 'lora_name' and 'lora_path' must be provided.";
                                    400 "The lora adapter 'x' has already been loaded. ..."; 404 when the path
                                    holds no adapter_config.json ("No adapter found"); 400 when the adapter's rank
                                    is above --max-lora-rank
    POST /v1/unload_lora_adapter    {"lora_name"} -> 200 "Success: LoRA adapter 'x' removed successfully.";
                                    404 "The lora adapter 'x' cannot be found."
    POST /v1/chat/completions       the base or a loaded adapter answers "served by <model>" (streamed too);
                                    any other model: 404 "The model `x` does not exist." (NotFoundError)

Errors use vLLM's current shape, {"error": {"message", "type", "param", "code"}}. Knobs on FakeVLLM:
    api_key          when set, every /v1 route wants `Authorization: Bearer <key>` (vLLM's --api-key: 401
                     {"error": "Unauthorized"} otherwise)
    runtime_updating False: no load/unload routes (FastAPI's 404 {"detail": "Not Found"}), as when the
                     environment variable is not set
    load_status      an HTTP status every load answers with instead (e.g. 500), None: behave
    max_lora_rank    --max-lora-rank
`calls` records every request (method, path, body, auth) in order; `adapters` maps each loaded name to its path.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from tests.proxy.fake_upstream import ServerThread


def _error(status: int, message: str, type_: str, param: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": status}},
                        status_code=status)


class FakeVLLM:
    def __init__(self, *, base_model: str = "base", api_key: str | None = None, max_lora_rank: int = 16):
        self.base_model = base_model
        self.api_key = api_key
        self.max_lora_rank = max_lora_rank
        self.runtime_updating = True
        self.load_status: int | None = None
        self.adapters: dict[str, str] = {}
        self.calls: list[dict] = []
        self.base_url = ""  # set by serve(): http://127.0.0.1:<port>/v1

    def reset(self) -> None:
        self.runtime_updating, self.load_status = True, None
        self.adapters.clear()
        self.calls.clear()

    def paths(self, method: str | None = None) -> list[str]:
        return [c["path"] for c in self.calls if method is None or c["method"] == method]

    # --- the app -------------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        async def guarded(request: Request):
            body = None
            if request.method == "POST":
                raw = await request.body()
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            self.calls.append({"method": request.method, "path": request.url.path, "body": body,
                               "auth": request.headers.get("authorization")})
            if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
            path = request.url.path
            if path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter") and not self.runtime_updating:
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            handler = {("GET", "/v1/models"): self._models, ("POST", "/v1/load_lora_adapter"): self._load,
                       ("POST", "/v1/unload_lora_adapter"): self._unload,
                       ("POST", "/v1/chat/completions"): self._chat}.get((request.method, path))
            if handler is None:
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            return handler(body if isinstance(body, dict) else {})

        return Starlette(routes=[Route("/v1/{rest:path}", guarded, methods=["GET", "POST"])])

    def _models(self, body: dict):
        now = int(time.time())
        data = [{"id": self.base_model, "object": "model", "created": now, "owned_by": "vllm",
                 "root": self.base_model, "parent": None, "max_model_len": 2048}]
        data += [{"id": name, "object": "model", "created": now, "owned_by": "vllm", "root": path,
                  "parent": self.base_model} for name, path in self.adapters.items()]
        return JSONResponse({"object": "list", "data": data})

    def _load(self, body: dict):
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
        if name in self.adapters:
            return _error(400, f"The lora adapter '{name}' has already been loaded. If you want to load the "
                               "adapter in place, set 'load_inplace' to True.", "InvalidUserInput")
        if self.load_status is not None:
            return _error(self.load_status, "CUDA error: out of memory while loading the adapter",
                          "InternalServerError")
        config = Path(path) / "adapter_config.json"
        if not config.is_file():
            return _error(404, f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError")
        rank = int(json.loads(config.read_text()).get("r") or 0)
        if rank > self.max_lora_rank:
            return _error(400, f"LoRA rank {rank} is greater than max_lora_rank {self.max_lora_rank}.",
                          "BadRequestError")
        self.adapters[name] = path
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    def _unload(self, body: dict):
        name = body.get("lora_name")
        if not name:
            return _error(400, "either 'lora_name' and 'lora_int_id' needs to be provided.", "InvalidUserInput")
        if name not in self.adapters:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        del self.adapters[name]
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    def _chat(self, body: dict):
        model = body.get("model")
        if model != self.base_model and model not in self.adapters:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        text = f"served by {model}"
        base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model}
        if body.get("stream"):
            def chunks():
                for delta, finish in (({"role": "assistant", "content": text}, None), ({}, "stop")):
                    chunk = {**base, "object": "chat.completion.chunk",
                             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    yield "data: " + json.dumps(chunk) + "\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(chunks(), media_type="text/event-stream")
        return JSONResponse({**base, "object": "chat.completion",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})


@contextmanager
def serve(fake: FakeVLLM | None = None):
    """Serve a FakeVLLM on 127.0.0.1 (a free port) in a background thread; yields it with base_url set."""
    fake = fake or FakeVLLM()
    with ServerThread(fake.app()) as srv:
        fake.base_url = srv.url + "/v1"
        yield fake
