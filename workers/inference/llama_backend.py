"""Serving a model version through llama.cpp's `llama-server` (the fast CPU path), behind the hub's own
OpenAI-compatible server.

A version is served by llama.cpp when its manifest names a GGUF file (`gguf_path`, written when a GGUF export of the
version succeeds — deploying a version asks for one) and the pinned llama.cpp is on this machine (HUB_LLAMA_CPP_DIR or
the build in HUB_MODEL_CACHE); otherwise by transformers, and `engine_for(name)` says why (the notice shown on
/v1/models and the dashboard). HUB_INFERENCE_ENGINE=transformers turns llama.cpp off; =llama.cpp makes its absence
an error instead of a fallback.

The hub renders the prompt itself (the same chat layout and tool rendering it trains with) and sends token ids to
llama-server's native /completion endpoint, streaming; tool calls are parsed back by the server exactly as for
transformers. One llama-server child per loaded version (LRU, `max_loaded`), started on first use (~0.4 s for
SmolLM2) and stopped with the process.

Contract: `LlamaPool(artifact_root, model_cache, max_loaded=, threads=, ctx=, parallel=, mode=)`;
`.engine_for(manifest) -> (engine, notice)`; `.get(name, manifest) -> LlamaLoaded` (duck-types
engine.LoadedModel for prompt rendering: name, tokenizer, context_length, created); `stream(loaded, prompt_ids,
params) -> async iterator of (delta, finish_reason, completion_tokens, stop_reason)`; `.close()`."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from workers.inference.engine import EngineError, tokenizer_dir

from orjson import loads as _loads


@dataclass
class LlamaLoaded:
    name: str
    tokenizer: object
    context_length: int
    created: int
    server: object  # runner.LlamaServer
    gguf_path: str
    engine: str = "llama.cpp"
    eos_ids: set = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LlamaPool:
    def __init__(self, artifact_root: Path, model_cache: Path, *, max_loaded: int = 2, threads: int = 0,
                 ctx: int = 4096, parallel: int = 4, mode: str = "auto"):
        self.artifact_root, self.model_cache = Path(artifact_root), Path(model_cache)
        self.max_loaded, self.threads, self.ctx, self.parallel, self.mode = max_loaded, threads, ctx, parallel, mode
        self._loaded: OrderedDict[str, LlamaLoaded] = OrderedDict()
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._toolchain = None
        self._failed: dict[str, str] = {}  # gguf path -> why llama-server could not load it
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=5.0),
                                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))

    # --- which engine ------------------------------------------------------------------------------
    def toolchain(self):
        if self._toolchain is None:
            from workers.engine.llamacpp import toolchain

            self._toolchain = toolchain.find(model_cache=self.model_cache)
        return self._toolchain

    def engine_for(self, manifest: dict) -> tuple[str, str | None]:
        """("llama.cpp", None) or ("transformers", why not llama.cpp)."""
        if self.mode == "transformers":
            return "transformers", None
        gguf = manifest.get("gguf_path")
        if not gguf:
            return "transformers", "No GGUF export of this version yet: served by transformers (slower)."
        if not Path(gguf).is_file():
            return "transformers", f"Its GGUF file is missing ({gguf}): served by transformers."
        if self.toolchain() is None:
            from workers.engine.llamacpp import toolchain

            status = toolchain.build_status(model_cache=self.model_cache)
            state = status["state"]
            why = {"building": "llama.cpp is being built", "failed": "the llama.cpp build failed",
                   "missing": "llama.cpp is not built on this machine"}.get(state, state)
            self._toolchain = None
            return "transformers", f"Served by transformers because {why}."
        if gguf in self._failed:
            return "transformers", f"llama.cpp could not load its GGUF ({self._failed[gguf]}): served by transformers."
        return "llama.cpp", None

    # --- loading -------------------------------------------------------------------------------------
    def get(self, name: str, manifest: dict) -> LlamaLoaded:
        with self._lock:
            if name in self._loaded and self._loaded[name].server.alive():
                self._loaded.move_to_end(name)
                return self._loaded[name]
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            with self._lock:
                hit = self._loaded.get(name)
                if hit is not None and hit.server.alive():
                    return hit
            loaded = self._start(name, manifest)
            evicted = []
            with self._lock:
                old = self._loaded.pop(name, None)
                if old is not None:
                    evicted.append(old)
                self._loaded[name] = loaded
                while len(self._loaded) > self.max_loaded:
                    evicted.append(self._loaded.popitem(last=False)[1])
            for item in evicted:
                item.server.stop()
            return loaded

    def _start(self, name: str, manifest: dict) -> LlamaLoaded:
        from transformers import AutoTokenizer

        from workers.engine.llamacpp import runner
        from workers.engine.llamacpp.toolchain import LlamaCppError

        tok_dir = tokenizer_dir(manifest)
        try:
            tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        except Exception as exc:
            raise EngineError(f"Could not load the tokenizer of {name}: {exc}", status=500, type="server_error")
        ctx = self.ctx
        try:
            cfg = json.loads((Path(tok_dir) / "config.json").read_text())
            ctx = min(ctx, int(cfg.get("max_position_embeddings") or ctx))
        except (OSError, ValueError, TypeError):
            pass
        server = runner.LlamaServer(self.toolchain(), Path(manifest["gguf_path"]), ctx=ctx, parallel=self.parallel,
                                    threads=self.threads or None,
                                    log_path=self.artifact_root / "models" / name / "llama-server.log")
        try:
            server.start()
        except LlamaCppError as exc:
            self._failed[manifest["gguf_path"]] = exc.message
            raise
        return LlamaLoaded(name=name, tokenizer=tokenizer, context_length=ctx,
                           created=int(manifest.get("_created") or 0), server=server,
                           gguf_path=manifest["gguf_path"])

    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def close(self) -> None:
        with self._lock:
            items = list(self._loaded.values())
            self._loaded.clear()
        for item in items:
            item.server.stop()

    # --- generation ------------------------------------------------------------------------------------
    async def stream(self, loaded: LlamaLoaded, prompt_ids: list[int], params: dict):
        """(delta, finish, completion_tokens, stop_reason) items, like engine.generate."""
        temperature = params.get("temperature", 1.0)
        body = {"prompt": prompt_ids, "n_predict": params["max_tokens"], "stream": True, "cache_prompt": True,
                "temperature": temperature, "top_p": params.get("top_p", 1.0), "top_k": 0, "min_p": 0.0,
                "typical_p": 1.0, "repeat_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
                "stop": params.get("stop") or [], "return_tokens": False}
        if temperature is not None and temperature <= 1e-5:
            body["top_k"], body["temperature"] = 1, 0.0
        if params.get("seed") is not None:
            body["seed"] = params["seed"]
        if params.get("json_schema") is not None:
            body["json_schema"] = params["json_schema"]
        if params["max_tokens"] == 0:
            yield "", "length", 0, None
            return
        n = 0
        async with self.client.stream("POST", loaded.server.url + "/completion", json=body) as r:
            if r.status_code != 200:
                text = (await r.aread()).decode("utf-8", "replace")
                try:
                    message = json.loads(text)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    message = text[:300]
                raise EngineError(f"llama.cpp refused the request: {message}",
                                  status=400 if r.status_code < 500 else 500,
                                  type="invalid_request_error" if r.status_code < 500 else "server_error")
            buf = b""
            async for chunk in r.aiter_raw():  # SSE events split by hand: httpx's line decoder costs more per token
                buf += chunk
                *events, buf = buf.split(b"\n\n")
                for raw in events:
                    if not raw.startswith(b"data: "):
                        continue
                    event = _loads(raw[6:])
                    if "error" in event:
                        raise EngineError(f"llama.cpp failed: {event['error'].get('message')}", status=500,
                                          type="server_error")
                    n = event.get("tokens_predicted", n + 1)
                    if event.get("stop"):
                        stop_type = event.get("stop_type")
                        finish = "length" if stop_type == "limit" else "stop"
                        why = (event.get("stopping_word") or None) if stop_type == "word" else None
                        yield event.get("content") or "", finish, n, why
                        return
                    content = event.get("content")
                    if content:
                        yield content, None, n, None
        yield "", "stop", n, None
