"""Token counts with the chosen base model's tokenizer *and* chat template.

Fast path (exact for templates whose turns are delimited by special tokens, like ChatML): the
template is rendered once per role sequence with empty contents ("skeleton"), and an example's count
is skeleton tokens + the tokens of each content, encoded in one batch by the Rust tokenizer.
Examples with tools or tool calls are rendered in full with `apply_chat_template`.
Tokenizers are cached per model path (`counter_loaded` says whether one is loaded in this process);
`counter_prefetch` starts loading one on a background thread, so that a job that will count tokens overlaps
that load with its other work. Loading is `AutoTokenizer.from_pretrained`, whose choice of class reads the
model's config and so imports torch (seconds, in every new process): the class it chose for a folder is
remembered (`_load_tokenizer`: HUB_DATA_DIR/cache/tokenizer-classes.json, keyed by the folder's files and the
transformers version) and later loads of the same files call that class's `from_pretrained` directly — the
same class on the same files, so the same tokenizer, without torch.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# How counts are made (the chat layout rendered, the skeleton method): recorded in a version's statistics, so
# that a derived version reuses stored per-example counts only when they were made the way they would be now.
# Bump it whenever a change here (or in workers.engine.chat_format) changes any count.
COUNTING = 2


_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx", ".msgpack", ".h5", ".ckpt")
_MEMO_LOCK = threading.Lock()


def _memo_file() -> Path | None:
    try:
        from django.conf import settings

        return Path(settings.HUB_DATA_DIR) / "cache" / "tokenizer-classes.json"
    except Exception:  # no Django settings (a bare script): nothing is remembered
        return None


def _memo_key(path: str) -> str | None:
    """What the class AutoTokenizer picks depends on: the folder's files (all but weights: name, size, mtime) and
    the transformers version. None for what is not a local folder."""
    from importlib.metadata import version

    folder = Path(path)
    if not folder.is_dir():
        return None
    files = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder)
                   if e.is_file() and not e.name.endswith(_WEIGHTS))
    raw = json.dumps([str(folder.resolve()), version("transformers"), files])
    return hashlib.sha256(raw.encode()).hexdigest()


def _load_tokenizer(path: str):
    """`AutoTokenizer.from_pretrained(path)`; when AutoTokenizer already chose a (transformers) class for these
    very files, that class's `from_pretrained(path)` instead (no config read, no torch import)."""
    memo_file, key = _memo_file(), None
    try:
        key = _memo_key(path) if memo_file is not None else None
        ref = json.loads(memo_file.read_text()).get(key) if key and memo_file.is_file() else None
    except (OSError, ValueError):
        ref = None
    if ref:
        module, _, qualname = ref.partition(":")
        try:
            return getattr(importlib.import_module(module), qualname).from_pretrained(path)
        except Exception:  # the class moved or refuses: AutoTokenizer decides again
            log.warning("loading the tokenizer of %s as %s failed", path, ref, exc_info=True)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    cls = type(tokenizer)
    if key and cls.__module__.startswith("transformers.") and "." not in cls.__qualname__:
        try:
            with _MEMO_LOCK:
                memo = json.loads(memo_file.read_text()) if memo_file.is_file() else {}
                memo[key] = f"{cls.__module__}:{cls.__qualname__}"
                memo_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = memo_file.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(memo))
                os.replace(tmp, memo_file)
        except (OSError, ValueError):
            log.warning("could not remember the tokenizer class of %s", path, exc_info=True)
    return tokenizer


class TokenCounter:
    def __init__(self, path: str | Path, *, context_length: int | None = None, name: str = ""):
        self.path = str(path)
        self.name = name or Path(path).name
        self.tokenizer = _load_tokenizer(self.path)
        self.backend = self.tokenizer.backend_tokenizer
        self.has_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.context_length = int(context_length or min(getattr(self.tokenizer, "model_max_length", 2048) or 2048,
                                                        1_000_000))
        self._skeletons: dict[tuple, int] = {}
        self._encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)

    def _render(self, messages, tools=None) -> str:
        # the layout training uses (tools, tool calls and results Hermes-style when the template ignores them)
        from workers.engine.chat_format import render_chat

        return render_chat(self.tokenizer, messages, tools, add_generation_prompt=False)

    def _skeleton(self, roles: tuple) -> int:
        n = self._skeletons.get(roles)
        if n is None:
            if self.has_template:
                try:
                    text = self._render([{"role": r, "content": ""} for r in roles])
                except Exception:  # a template that refuses this role order: count contents only
                    text = ""
                n = len(self.backend.encode(text, add_special_tokens=False).ids) if text else 0
            else:
                n = 0
            self._skeletons[roles] = n
        return n

    def count(self, examples: list[dict]) -> list[tuple[int, dict]]:
        """Per example: (total tokens as trained, {role: content tokens})."""
        # Repeated short strings (system prompts, "Roll for initiative!") are encoded once.
        todo: list[str] = []
        slot: dict[str, int] = {}
        refs: list[int] = []
        for ex in examples:
            for m in ex["messages"]:
                c = m.get("content") or ""
                if len(c) < 256:
                    k = slot.get(c)
                    if k is None:
                        k = slot[c] = len(todo)
                        todo.append(c)
                else:
                    k = len(todo)
                    todo.append(c)
                refs.append(k)
        enc = [len(e.ids) for e in self._encode(todo, add_special_tokens=False)] if todo else []
        lengths = [enc[k] for k in refs]
        out = []
        pos = 0
        for ex in examples:
            msgs = ex["messages"]
            per_role: dict[str, int] = {}
            total = 0
            for m in msgs:
                n = lengths[pos]
                pos += 1
                per_role[m["role"]] = per_role.get(m["role"], 0) + n
                total += n
            kind = ex.get("meta", {}).get("kind", "chat")
            if kind == "text" or not self.has_template:
                out.append((total, per_role))
                continue
            if ex.get("tools") or any(m.get("tool_calls") or m["role"] == "tool" for m in msgs):
                try:
                    text = self._render(msgs, ex.get("tools"))
                    total = len(self.backend.encode(text, add_special_tokens=False).ids)
                except Exception:
                    total += self._skeleton(tuple(m["role"] for m in msgs if m["role"] != "tool"))
            else:
                total += self._skeleton(tuple(m["role"] for m in msgs))
            out.append((total, per_role))
        return out

    def count_exact(self, ex: dict) -> int:
        """Slow reference count: render the whole example and encode it."""
        return len(self.backend.encode(self._render(ex["messages"], ex.get("tools")), add_special_tokens=False).ids)


_COUNTERS: dict[tuple, TokenCounter] = {}  # loaded tokenizers of this process, oldest first
_COUNTERS_MAX = 8
_COUNTERS_LOCK = threading.Lock()


def _counter_for(path: str, context_length: int | None, name: str) -> TokenCounter:
    key = (path, context_length, name)
    counter = _COUNTERS.get(key)
    if counter is None:
        with _COUNTERS_LOCK:
            counter = _COUNTERS.get(key)
            if counter is None:
                counter = TokenCounter(path, context_length=context_length, name=name)
                while len(_COUNTERS) >= _COUNTERS_MAX:
                    _COUNTERS.pop(next(iter(_COUNTERS)))
                _COUNTERS[key] = counter
    return counter


def _counter_source(base_model_id: str | None) -> tuple[str, int | None, str] | None:
    """(tokenizer path, context length, name) for a base model, or None when no tokenizer is available."""
    from django.conf import settings

    path, ctx, name = None, None, base_model_id or ""
    try:
        from apps.registry.models import BaseModel

        qs = BaseModel.objects.all()
        bm = qs.filter(pk=base_model_id).first() if base_model_id else (qs.filter(is_default=True).first()
                                                                          or qs.filter(pk="smollm2-135m-instruct").first())
        if bm is not None:
            path, ctx, name = bm.path, bm.context_length, bm.id
    except Exception:  # no database (e.g. validate_dataset before migrate)
        bm = None
    if path is None and base_model_id and Path(base_model_id).is_dir():
        path = base_model_id
    if path is None and not base_model_id:
        default = Path(settings.HUB_MODEL_CACHE) / "smollm2-135m-instruct"
        if (default / "tokenizer.json").exists() or (default / "tokenizer_config.json").exists():
            path, name = str(default), "smollm2-135m-instruct"
    if path is None or not Path(path).exists():
        return None
    return str(path), ctx, name


def counter_for_base_model(base_model_id: str | None = None) -> TokenCounter | None:
    """The token counter of a registered base model (default: the hub's default base model).
    Accepts a filesystem path to a Hugging Face folder too. None when no tokenizer is available."""
    source = _counter_source(base_model_id)
    return None if source is None else _counter_for(*source)


def counter_name(base_model_id: str | None = None) -> str | None:
    """The `name` of the counter `counter_for_base_model` returns (what a version's statistics record as
    `tokens.base_model`), without loading its tokenizer; None when there is none."""
    source = _counter_source(base_model_id)
    return None if source is None else (source[2] or Path(source[0]).name)


def counter_loaded(base_model_id: str | None = None) -> bool:
    """True when counting tokens for this base model loads nothing: its tokenizer is already loaded in
    this process, or there is none. Loading one (transformers, torch) takes seconds: a request that
    would have to do it hands the work to a worker instead."""
    source = _counter_source(base_model_id)
    return source is None or source in _COUNTERS


_PREFETCHING: dict[tuple, threading.Thread] = {}
_PREFETCH_LOCK = threading.Lock()  # not _COUNTERS_LOCK: that one is held for a whole load


def _prefetch(source: tuple) -> None:
    try:
        _counter_for(*source)
    except Exception:  # the caller that needs it loads it again and gets the error
        log.warning("prefetching the tokenizer %s failed", source[0], exc_info=True)


def counter_prefetch(base_model_id: str | None = None) -> None:
    """Start loading the token counter of this base model (as `counter_for_base_model` finds it) on a daemon
    thread, unless it is loaded, being loaded, or there is none. `counter_for_base_model` later returns it,
    waiting for the load to end if it has not (a tokenizer is never loaded twice)."""
    source = _counter_source(base_model_id)
    if source is None or source in _COUNTERS:
        return
    with _PREFETCH_LOCK:
        running = _PREFETCHING.get(source)
        if running is not None and running.is_alive():
            return
        t = _PREFETCHING[source] = threading.Thread(target=_prefetch, args=(source,), daemon=True,
                                                    name="token-counter-prefetch")
    t.start()
