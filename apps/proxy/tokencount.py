"""Prompt-size estimates for /v1 without asking the model server.

Used where a count is needed before the upstream reports usage: Anthropic's `message_start`
(`usage.input_tokens` is due before the first token; OpenAI-style upstreams report usage only at the end),
`/v1/messages/count_tokens` when the inference server's `/tokenize` cannot answer, and any caller that
wants an estimate before routing (e.g. rate limits).

Contract:
- `estimate(route, messages, tools)` (sync, never loads anything: use it on the event loop) and
  `aestimate(...)` (async: may load the tokenizer in a thread, once per model version and process) return
  `(tokens, method)`, `method` being "tokenizer" or "chars".
- "tokenizer": the served model's own tokenizer (`tokenizer.json` of the version's weights folder, else of
  its base model), loaded with the `tokenizers` library (Rust, ~0.1 s, no transformers import), cached per
  model version (at most 8 tokenizers per process). The count is the tokens of every message's text
  (content, tool-call names and arguments) + the tokens of the chat template's own text around them: the
  template (`chat_template.jinja` or `tokenizer_config.json`'s `chat_template`, rendered with jinja2 as
  transformers does) is rendered once per role sequence with empty contents and the generation prompt (a
  "skeleton", memoised), and once with the tool definitions to see what they add. A template that ignores
  tools: the tools' compact JSON + `PER_TOOL` per tool (the hub's inference server then writes them into the
  system prompt). Without a usable template: `PER_MESSAGE` per message. Exact for ChatML-style templates up to
  how tool calls are laid out. Counts of long strings are memoised (by hash), so the large, repeated system
  prompt and tool list of an auto-coder cost one encode per process.
- "chars": no tokenizer available (a provider model, a version without local tokenizer files): one token
  per `CHARS_PER_TOKEN` characters of the same text, + `PER_MESSAGE` per message.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
PER_MESSAGE = 4
PER_TOOL = 8

_MAX_TOKENIZERS = 8
_tokenizers: "OrderedDict[str, _Counter]" = OrderedDict()  # tokenizer.json path -> its counter
_paths: dict[int, str | None] = {}  # model version id -> its tokenizer.json (None: none available)
_counts: "OrderedDict[tuple, int]" = OrderedDict()  # (path, hash, len) -> tokens of a long string
_MAX_COUNTS = 4096
_MEMO_MIN_CHARS = 256
_lock = threading.Lock()


# --- text of a request --------------------------------------------------------------------------
def _content_text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content)


def request_texts(messages: list[dict], tools: list | None = None) -> list[str]:
    """The strings whose tokens make up an OpenAI-shaped chat request (one or more per message)."""
    out: list[str] = []
    for m in messages or []:
        if not isinstance(m, dict):
            continue
        out.append(_content_text(m.get("content")))
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict):
                out.append(str(fn.get("name") or "") + " " + str(fn.get("arguments") or ""))
    if tools:
        out.append(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
    return out


def _overhead(messages, tools) -> int:
    return PER_MESSAGE * len(messages or []) + PER_TOOL * len(tools or [])


def chars_estimate(messages: list[dict], tools: list | None = None) -> int:
    chars = sum(len(t) for t in request_texts(messages, tools))
    return max(1, -(-chars // CHARS_PER_TOKEN) + _overhead(messages, tools))


def text_tokens(route, text: str) -> int:
    """Tokens of a generated text (when the upstream never sent usage): tokenizer if loaded, else chars."""
    counter = _loaded_for(route)
    if counter is not None and text:
        return counter.count([text])
    return -(-len(text) // CHARS_PER_TOKEN) if text else 0


# --- tokenizers per model version ---------------------------------------------------------------
def _version_id(route) -> int | None:
    vid = getattr(route, "version_id", None)
    return vid if isinstance(vid, int) and not isinstance(vid, bool) else None


def tokenizer_path_for_version(version_id: int) -> str | None:
    """The tokenizer.json a model version is served with (its own weights folder first, then its base
    model's), or None. Reads the database: call from a thread."""
    from django.conf import settings

    from apps.registry.models import ModelVersion

    version = ModelVersion.objects.select_related("base_model").filter(pk=version_id).first()
    if version is None:
        return None
    folders = []
    if version.artifact_path:
        folders.append(Path(settings.ARTIFACT_ROOT) / version.artifact_path)
    if version.base_model is not None and version.base_model.path:
        folders.append(Path(version.base_model.path))
    for folder in folders:
        candidate = folder / "tokenizer.json"
        if candidate.is_file():
            return str(candidate)
    return None


class _Counter:
    """One tokenizer and its chat template."""

    def __init__(self, path: str):
        from tokenizers import Tokenizer

        self.path = path
        self.tok = Tokenizer.from_file(path)
        self.template, self.specials = _chat_template(Path(path).parent)
        self._skeletons: "OrderedDict[tuple, int | None]" = OrderedDict()

    def encode_len(self, text: str) -> int:
        return len(self.tok.encode(text, add_special_tokens=False).ids) if text else 0

    def count(self, texts: list[str]) -> int:
        total, todo, keys = 0, [], []
        for t in texts:
            if not t:
                continue
            if len(t) >= _MEMO_MIN_CHARS:
                key = (self.path, hash(t), len(t))
                n = _counts.get(key)
                if n is not None:
                    total += n
                    continue
                keys.append(key)
            else:
                keys.append(None)
            todo.append(t)
        if todo:
            encode = getattr(self.tok, "encode_batch_fast", self.tok.encode_batch)  # releases the GIL
            for key, enc in zip(keys, encode(todo, add_special_tokens=False)):
                n = len(enc.ids)
                total += n
                if key is not None:
                    with _lock:
                        _counts[key] = n
                        while len(_counts) > _MAX_COUNTS:
                            _counts.popitem(last=False)
        return total

    def _memo(self, key: tuple, make) -> int | None:
        if key in self._skeletons:
            return self._skeletons[key]
        try:
            n = make()
        except Exception:  # a template that refuses this shape (role order, a lone tool message): no skeleton
            n = None
        with _lock:
            self._skeletons[key] = n
            while len(self._skeletons) > 1024:
                self._skeletons.popitem(last=False)
        return n

    def _render(self, messages: list[dict], tools=None, generation: bool = True) -> str:
        return self.template.render(messages=messages, tools=tools or None, add_generation_prompt=generation,
                                    **self.specials)

    def skeleton(self, roles: tuple) -> int | None:
        """Tokens of the template's text for these turns with empty contents, generation prompt included."""
        return self._memo(("roles", roles), lambda: self.encode_len(self._render(
            [{"role": r, "content": ""} for r in roles])))

    def tools_cost(self, tools: list) -> int:
        """What the tool definitions add to a prompt."""
        blob = json.dumps(tools, ensure_ascii=False, separators=(",", ":"))

        def make():
            probe = [{"role": "user", "content": ""}]
            extra = self.encode_len(self._render(probe, tools)) - self.encode_len(self._render(probe))
            return extra if extra > 0 else None

        extra = self._memo(("tools", hash(blob), len(blob)), make) if self.template is not None else None
        return extra if extra is not None else self.count([blob]) + PER_TOOL * len(tools)


def _chat_template(folder: Path):
    """The compiled chat template of a Hugging Face folder (None when it has none) and the special tokens
    the template may use."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        config = {}
    source = None
    jinja_file = folder / "chat_template.jinja"
    if jinja_file.is_file():
        source = jinja_file.read_text()
    else:
        source = config.get("chat_template")
        if isinstance(source, list):  # named templates: the default one
            source = next((t.get("template") for t in source if isinstance(t, dict) and t.get("name") == "default"),
                          None)
    specials = {}
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        value = config.get(key)
        if isinstance(value, dict):
            value = value.get("content")
        specials[key] = value if isinstance(value, str) else ""
    if not isinstance(source, str) or not source.strip():
        return None, specials
    try:
        return _jinja_env().from_string(source), specials
    except Exception:
        log.warning("the chat template in %s does not compile; token estimates use a per-message constant", folder)
        return None, specials


def _jinja_env():
    """jinja2 set up the way transformers renders chat templates (sandboxed, trim_blocks, lstrip_blocks,
    loop controls, `tojson`, `raise_exception`, `strftime_now`)."""
    from datetime import datetime

    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _load(path: str) -> _Counter:
    with _lock:
        counter = _tokenizers.get(path)
        if counter is not None:
            _tokenizers.move_to_end(path)
            return counter
    counter = _Counter(path)
    with _lock:
        _tokenizers[path] = counter
        while len(_tokenizers) > _MAX_TOKENIZERS:
            _tokenizers.popitem(last=False)
    return counter


def _loaded_for(route) -> "_Counter | None":
    """The route's counter when its tokenizer is already loaded in this process, else None."""
    vid = _version_id(route)
    if vid is None:
        return None
    path = _paths.get(vid)
    return _tokenizers.get(path) if path else None


def _resolve_path(vid: int) -> str | None:
    """Blocking (a database read, once per version and process)."""
    if vid not in _paths:
        try:
            path = tokenizer_path_for_version(vid)
        except Exception:  # no database here (a bare test), a broken row: estimate by characters
            log.debug("no tokenizer path for version %s", vid, exc_info=True)
            return None
        if len(_paths) > 10_000:
            _paths.clear()
        _paths[vid] = path
    return _paths[vid]


def _ensure_loaded(route) -> "_Counter | None":
    """Blocking: load the route's tokenizer (a file read, once per version and process)."""
    vid = _version_id(route)
    path = _paths.get(vid) if vid is not None else None
    if not path:
        return None
    try:
        return _load(path)
    except Exception:  # an unreadable tokenizer.json: remember that and estimate by characters
        log.warning("could not load the tokenizer %s; token counts are estimated by characters", path)
        _paths[vid] = None
        return None


def _estimate_with(counter: "_Counter | None", messages, tools) -> tuple[int, str]:
    if counter is None:
        return chars_estimate(messages, tools), "chars"
    messages = [m for m in messages or [] if isinstance(m, dict)]
    total = counter.count(request_texts(messages))
    skeleton = None
    if counter.template is not None and messages:
        skeleton = counter.skeleton(tuple(str(m.get("role") or "user") for m in messages))
    total += skeleton if skeleton is not None else PER_MESSAGE * len(messages)
    if tools:
        total += counter.tools_cost(tools)
    return max(1, total), "tokenizer"


def estimate(route, messages: list[dict], tools: list | None = None) -> tuple[int, str]:
    """Never blocks on loading: the tokenizer when this process already has it, else characters."""
    return _estimate_with(_loaded_for(route), messages, tools)


def _estimate_blocking(route, messages, tools) -> tuple[int, str]:
    return _estimate_with(_ensure_loaded(route), messages, tools)


async def aestimate(route, messages: list[dict], tools: list | None = None) -> tuple[int, str]:
    """The served model's tokenizer (located and loaded once per version and process), else characters.
    The database read runs on Django's sync thread, loading and encoding on a worker thread."""
    vid = _version_id(route)
    if vid is None:
        return chars_estimate(messages, tools), "chars"
    if vid not in _paths:
        from asgiref.sync import sync_to_async

        await sync_to_async(_resolve_path)(vid)
    if not _paths.get(vid):
        return chars_estimate(messages, tools), "chars"
    return await asyncio.to_thread(_estimate_blocking, route, messages, tools)


def clear() -> None:
    """Forget loaded tokenizers and memoised counts (tests)."""
    with _lock:
        _tokenizers.clear()
        _paths.clear()
        _counts.clear()


__all__ = ["aestimate", "estimate", "chars_estimate", "text_tokens", "request_texts", "tokenizer_path_for_version",
           "clear", "CHARS_PER_TOKEN", "PER_MESSAGE", "PER_TOOL"]
