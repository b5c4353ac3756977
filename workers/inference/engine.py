"""Loading model versions from their manifests and generating tokens. No Django, no HTTP.

A manifest (written by apps.registry.services.model_version_register) sits at
ARTIFACT_ROOT/models/mv-<id>/hub_model.json:
    {"name": "mv-12", "kind": "adapter"|"full", "base_model_path": ..., "adapter_path": ...|null,
     "model_path": ...|null}
Adapter versions load the base model, apply the peft adapter and merge it (fast generation);
an adapter version without an adapter path serves the base model itself.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

NAME_RE = re.compile(r"^mv-(\d+)$")
MANIFEST = "hub_model.json"


class EngineError(Exception):
    """An error with an HTTP status and an OpenAI error type/code."""

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.type, self.param, self.code = message, status, type, param, code


@dataclass
class LoadedModel:
    name: str
    model: object
    tokenizer: object
    context_length: int
    eos_ids: set[int]
    created: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    ll_tokenizer: object = None  # llguidance's view of the tokenizer, built on first constrained request


@dataclass
class GenerationResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    stop_reason: str | None = None  # the stop string that ended the text, if one did


class ModelStore:
    """Finds manifests under the artifact root; keeps at most `max_loaded` models in memory (LRU)."""

    def __init__(self, artifact_root: Path, *, max_loaded: int = 2):
        self.artifact_root = Path(artifact_root)
        self.max_loaded = max_loaded
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._loading_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    # --- discovery ------------------------------------------------------------------------------
    def manifest(self, name: str) -> dict | None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            return None
        path = self.artifact_root / "models" / name / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("kind") not in ("adapter", "full"):
            return None  # remote versions are served elsewhere
        data["_created"] = int(path.stat().st_mtime)
        return data

    def available(self) -> list[dict]:
        root = self.artifact_root / "models"
        out = []
        if root.is_dir():
            for child in root.iterdir():
                m = self.manifest(child.name)
                if m is not None:
                    out.append({"id": child.name, "created": m["_created"]})
        out.sort(key=lambda m: int(NAME_RE.match(m["id"]).group(1)))
        return out

    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    # --- loading --------------------------------------------------------------------------------
    def get(self, name: str) -> LoadedModel:
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return self._loaded[name]
            load_lock = self._loading_locks.setdefault(name, threading.Lock())
        with load_lock:  # one load per name at a time; others wait and reuse it
            with self._lock:
                if name in self._loaded:
                    self._loaded.move_to_end(name)
                    return self._loaded[name]
            manifest = self.manifest(name)
            if manifest is None:
                raise EngineError(f"The model `{name}` does not exist.", status=404, param="model",
                                  code="model_not_found")
            loaded = load_model(name, manifest)
            with self._lock:
                self._loaded[name] = loaded
                self._loaded.move_to_end(name)
                while len(self._loaded) > self.max_loaded:
                    self._loaded.popitem(last=False)
            return loaded


def tokenizer_dir(manifest: dict) -> str:
    """Where a version's tokenizer (and chat template) lives: a full version's folder; an adapter version's adapter
    folder when it saved one, else its base model's. (Also the llama.cpp backend's rule.)"""
    if manifest.get("kind") == "full":
        return manifest.get("model_path") or ""
    adapter = manifest.get("adapter_path")
    if adapter and (Path(adapter) / "tokenizer_config.json").exists():
        return adapter
    return manifest.get("base_model_path") or ""


def load_model(name: str, manifest: dict) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind = manifest.get("kind")
    try:
        if kind == "full":
            path = manifest.get("model_path")
            if not path:
                raise EngineError(f"Manifest of {name} has no model_path.", status=500, type="server_error")
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        else:
            base = manifest.get("base_model_path")
            if not base:
                raise EngineError(f"Manifest of {name} has no base_model_path.", status=500, type="server_error")
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
            adapter = manifest.get("adapter_path")
            if adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(manifest))
    except EngineError:
        raise
    except Exception as exc:  # missing files, bad weights: the version cannot be served
        raise EngineError(f"Could not load {name}: {exc}", status=500, type="server_error") from exc
    model.eval()
    config = model.config
    ctx = int(getattr(config, "max_position_embeddings", 0) or getattr(tokenizer, "model_max_length", 2048))
    if ctx > 1_000_000:
        ctx = 2048
    eos = set()
    for source in (getattr(config, "eos_token_id", None), getattr(getattr(model, "generation_config", None),
                                                                   "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            eos.add(source)
        elif isinstance(source, (list, tuple)):
            eos.update(int(x) for x in source)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if im_end is not None:
        eos.add(im_end)
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, context_length=ctx, eos_ids=eos,
                       created=int(manifest.get("_created") or time.time()))


# --- prompts ------------------------------------------------------------------------------------
def chat_prompt_ids(loaded: LoadedModel, messages: list[dict], tools: list[dict] | None = None) -> list[int]:
    """The prompt of a chat request, laid out by workers.engine.chat_format.render_chat: the layout the
    hub trains with (tools through the chat template, or Hermes-style in the system prompt)."""
    from workers.engine.chat_format import render_chat

    tok = loaded.tokenizer
    try:
        text = render_chat(tok, messages, tools, add_generation_prompt=True)
    except Exception as exc:
        raise EngineError(f"The model's chat template rejected these messages: {exc}", param="messages") from exc
    return list(tok(text, add_special_tokens=False)["input_ids"])


def text_prompt_ids(loaded: LoadedModel, prompt: str) -> list[int]:
    return list(loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"])


# --- generation ---------------------------------------------------------------------------------
def plan_max_tokens(loaded: LoadedModel, prompt_len: int, requested: int | None) -> int:
    room = loaded.context_length - prompt_len
    if room <= 0:
        raise EngineError(
            f"This model's maximum context length is {loaded.context_length} tokens; the prompt has "
            f"{prompt_len} tokens.", param="messages", code="context_length_exceeded")
    if requested is None:
        return min(room, 1024)
    return max(0, min(requested, room))


def _first_stop(text: str, stop: list[str]) -> tuple[int, str | None]:
    """(index, stop string) of the earliest stop string in `text`, or (-1, None)."""
    best, which = -1, None
    for s in stop:
        i = text.find(s)
        if i >= 0 and (best < 0 or i < best):
            best, which = i, s
    return best, which


def generate(loaded: LoadedModel, prompt_ids: list[int], *, max_tokens: int, temperature: float = 1.0,
             top_p: float = 1.0, stop: list[str] | None = None, seed: int | None = None,
             should_stop: Callable[[], bool] = lambda: False,
             constraint=None) -> Iterator[tuple[str, str | None, int, str | None]]:
    """Yield (text_delta, finish_reason, completion_tokens, stop_reason). The last item has a
    finish_reason ("stop" or "length") and, when a stop string ended the text, that string as
    stop_reason (vLLM's field); deltas never split a UTF-8 character nor leak part of a stop string.
    `constraint` (structured.Constraint) masks the logits to what its grammar allows; generation
    ends ("stop") once the grammar is complete. completion_tokens counts an end-of-sequence token the
    model sampled (it was generated, as vLLM and llama.cpp's server count it). The caller must hold
    loaded.lock."""
    import torch

    model, tok = loaded.model, loaded.tokenizer
    stop = [s for s in (stop or []) if s]
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    ids = torch.tensor([prompt_ids], dtype=torch.long)
    past = None
    produced: list[int] = []
    emitted = 0  # characters of the decoded text already sent
    finish, ended_on_eos = "length", 0
    with torch.inference_mode():
        for _ in range(max_tokens):
            if should_stop():
                finish = "stop"
                break
            out = model(input_ids=ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1, :].float()
            if constraint is not None:
                constraint.mask(logits)
            nxt = _sample(logits, temperature, top_p, gen)
            if nxt in loaded.eos_ids:  # a generated token too: counted, as vLLM and llama.cpp's server count it
                finish, ended_on_eos = "stop", 1
                break
            produced.append(nxt)
            if constraint is not None:
                constraint.advance(nxt)
                if constraint.done():
                    finish = "stop"
                    break
            ids = torch.tensor([[nxt]], dtype=torch.long)
            text = tok.decode(produced, skip_special_tokens=True)
            if stop:
                hit, which = _first_stop(text, stop)
                if hit >= 0:
                    if hit > emitted:
                        yield text[emitted:hit], None, len(produced), None
                    yield "", "stop", len(produced), which
                    return
            safe = len(text)
            if text.endswith("\ufffd"):
                safe = len(text.rstrip("\ufffd"))  # wait for the rest of a multi-byte character
            for s in stop:  # hold back a possible beginning of a stop string
                for k in range(min(len(s) - 1, safe), 0, -1):
                    if text[:safe].endswith(s[:k]):
                        safe -= k
                        break
            if safe > emitted:
                yield text[emitted:safe], None, len(produced), None
                emitted = safe
    text = tok.decode(produced, skip_special_tokens=True) if produced else ""
    tail, which = text[emitted:], None
    if stop and tail:
        hit, which = _first_stop(tail, stop)
        if hit >= 0:
            tail, finish = tail[:hit], "stop"
    yield tail, finish, len(produced) + ended_on_eos, which


def _sample(logits, temperature: float, top_p: float, gen) -> int:
    import torch

    if temperature is None or temperature <= 1e-5:
        return int(torch.argmax(logits))
    logits = logits / temperature
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, idx = torch.sort(probs, descending=True)
        cum = torch.cumsum(sorted_probs, dim=-1)
        keep = cum - sorted_probs < top_p
        keep[0] = True
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=gen)
        return int(idx[choice])
    return int(torch.multinomial(probs, 1, generator=gen))


def generate_all(loaded: LoadedModel, prompt_ids: list[int], **kw) -> GenerationResult:
    parts, finish, n, reason = [], "length", 0, None
    for delta, fin, n, why in generate(loaded, prompt_ids, **kw):
        parts.append(delta)
        if fin:
            finish, reason = fin, why
    return GenerationResult("".join(parts), finish, len(prompt_ids), n, reason)
