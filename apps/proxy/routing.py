"""What a requested model name routes to, and what an alias's settings do to a request. No I/O (except
`context_length_for`, which reads a model folder's config.json when a plan is built).

Contract:
- `Route` is one target: a hub model version (the inference process, or Together for a remote version) or a
  provider's model; `label` names it in headers, logs and the breaker (`version:12`,
  `provider:openrouter/gpt-4o`). `Plan` is the ordered targets of a requested name plus its `ChainSettings`,
  and, while an experiment or canary runs on the alias, its `split` (one plan per arm).
- `apply_openai_settings(body, settings) -> (body, tools_dropped)` and `apply_anthropic_settings(...)` return
  new bodies: temperature when the request sets none, max_tokens capped (and set when absent), the system
  prefix in front of the system prompt, tools outside the allow-list removed (a `tool_choice` naming one
  becomes `auto`, or goes with the last tool).
- `prompt_text(body)` is the text a prompt is made of (messages, system, tools; OpenAI or Anthropic shape);
  `estimate_tokens(text)` ~4 characters a token; `may_overflow(route, text, n)` is the cheap test (UTF-8
  bytes against the target's context) that decides whether a prompt is worth counting at all (the count
  itself: apps.proxy.tokencount, with the version's own tokenizer where the hub has it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE_TOKENS_PER_MESSAGE = 8  # role markers of a chat template, roughly
TEMPLATE_TOKENS_FIXED = 32  # a default system prompt some templates add
MIN_ANSWER_TOKENS = 16  # a prompt must leave at least this much room to count as fitting


@dataclass(frozen=True)
class Route:
    requested: str
    version_id: int | None
    upstream_model: str  # the name the upstream knows it by
    base_url: str
    api_key: str | None
    remote: bool
    alias: str | None = None
    kind: str = "openai"  # openai | anthropic (the upstream's wire format)
    label: str = ""
    provider_id: int | None = None
    provider_name: str = ""
    connect_s: float = 5.0
    first_byte_s: float | None = None
    total_s: float | None = None
    max_concurrency: int | None = None
    context_length: int | None = None
    unavailable: str = ""  # why this target cannot be called now (disabled, unreadable key, no remote id)


@dataclass(frozen=True)
class ChainSettings:
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float | None = None
    system_prefix: str = ""
    tools_allow: tuple[str, ...] | None = None

    def as_dict(self) -> dict:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "timeout_s": self.timeout_s,
                "system_prefix": self.system_prefix,
                "tools_allow": list(self.tools_allow) if self.tools_allow is not None else None}


@dataclass(frozen=True)
class Plan:
    requested: str
    alias: str | None
    targets: tuple[Route, ...]
    settings: ChainSettings = field(default_factory=ChainSettings)
    # a running experiment on the alias (apps.experiments.assign.Split): gateway.resolve_plan picks an arm,
    # whose own plan then serves the request
    split: object | None = None


# --- alias settings --------------------------------------------------------------------------------
def _tool_name(tool: dict) -> str | None:
    if not isinstance(tool, dict):
        return None
    fn = tool.get("function")
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        return fn["name"]
    return tool.get("name") if isinstance(tool.get("name"), str) else None


def _filter_tools(body: dict, allow: tuple[str, ...] | None, choice_named, auto) -> int:
    tools = body.get("tools")
    if allow is None or not isinstance(tools, list) or not tools:
        return 0
    allowed = set(allow)
    kept = [t for t in tools if _tool_name(t) in allowed]
    dropped = len(tools) - len(kept)
    if not dropped:
        return 0
    named = choice_named(body.get("tool_choice"))
    if kept:
        body["tools"] = kept
        if named is not None and named not in allowed:
            body["tool_choice"] = auto
    else:
        body.pop("tools", None)
        body.pop("tool_choice", None)
        body.pop("parallel_tool_calls", None)
    return dropped


def _openai_choice_name(choice) -> str | None:
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
        if isinstance(choice.get("name"), str):
            return choice["name"]
    return None


def _anthropic_choice_name(choice) -> str | None:
    if isinstance(choice, dict) and choice.get("type") == "tool" and isinstance(choice.get("name"), str):
        return choice["name"]
    return None


def apply_openai_settings(body: dict, s: ChainSettings) -> tuple[dict, int]:
    """An OpenAI chat (or legacy completions) request with the alias's settings applied."""
    out = dict(body)
    if s.temperature is not None and out.get("temperature") is None:
        out["temperature"] = s.temperature
    if s.max_tokens is not None:
        asked = out.get("max_tokens")
        out["max_tokens"] = min(asked, s.max_tokens) if isinstance(asked, int) and asked > 0 else s.max_tokens
    if s.system_prefix and isinstance(out.get("messages"), list):
        msgs = list(out["messages"])
        first = msgs[0] if msgs else None
        if isinstance(first, dict) and first.get("role") in ("system", "developer") and isinstance(
                first.get("content"), str):
            msgs[0] = {**first, "content": s.system_prefix + "\n\n" + first["content"]}
        else:
            msgs.insert(0, {"role": "system", "content": s.system_prefix})
        out["messages"] = msgs
    if s.tools_allow is not None and out.get("tools"):
        out["tools"] = list(out["tools"])
        return out, _filter_tools(out, s.tools_allow, _openai_choice_name, "auto")
    return out, 0


def apply_anthropic_settings(body: dict, s: ChainSettings) -> tuple[dict, int]:
    """An Anthropic Messages request (passed natively to an Anthropic provider) with the settings applied."""
    out = dict(body)
    if s.temperature is not None and out.get("temperature") is None:
        out["temperature"] = min(1.0, s.temperature)  # Anthropic's range is 0..1
    if s.max_tokens is not None:
        asked = out.get("max_tokens")
        out["max_tokens"] = min(asked, s.max_tokens) if isinstance(asked, int) and asked > 0 else s.max_tokens
    if s.system_prefix:
        system = out.get("system")
        if isinstance(system, list):
            out["system"] = [{"type": "text", "text": s.system_prefix}, *system]
        elif isinstance(system, str) and system:
            out["system"] = s.system_prefix + "\n\n" + system
        else:
            out["system"] = s.system_prefix
    dropped = 0
    if s.tools_allow is not None and out.get("tools"):
        out["tools"] = list(out["tools"])
        dropped = _filter_tools(out, s.tools_allow, _anthropic_choice_name, {"type": "auto"})
    return out, dropped


# --- prompt size -----------------------------------------------------------------------------------
def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict):
                for key in ("text", "thinking", "content", "input", "arguments"):
                    v = p.get(key)
                    if isinstance(v, str):
                        parts.append(v)
                    elif isinstance(v, (list, dict)):
                        parts.append(_text_of(v) if isinstance(v, list) else json.dumps(v))
            elif isinstance(p, str):
                parts.append(p)
        return "\n".join(parts)
    if isinstance(content, dict):
        return json.dumps(content)
    return ""


def prompt_text(body: dict) -> tuple[str, int]:
    """(the prompt's text, its number of messages) for an OpenAI or Anthropic request body."""
    parts: list[str] = []
    n = 0
    if isinstance(body.get("prompt"), str):
        parts.append(body["prompt"])
    if body.get("system") is not None:
        parts.append(_text_of(body["system"]))
        n += 1
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        n += 1
        parts.append(_text_of(m.get("content")))
        for tc in m.get("tool_calls") or []:
            if isinstance(tc, dict):
                fn = tc.get("function") or {}
                parts.append(f"{fn.get('name', '')} {fn.get('arguments', '')}")
    if body.get("tools"):
        parts.append(json.dumps(body["tools"], ensure_ascii=False))
    return "\n".join(p for p in parts if p), n


def estimate_tokens(text: str, messages: int = 0) -> int:
    """~4 characters a token (English prose and code), plus a chat template's markers."""
    return len(text) // 4 + TEMPLATE_TOKENS_PER_MESSAGE * messages + 1


def may_overflow(route: Route, text: str, messages: int, answer_tokens: int | None = None) -> bool:
    """Cheap test first: a prompt of fewer UTF-8 bytes than the context (less the template's share and the
    answer's room) can neither overflow a byte-level tokenizer nor need its max_tokens lowered, so most
    requests are never tokenized."""
    if not route.context_length:
        return False
    upper = len(text.encode("utf-8", "surrogatepass")) + TEMPLATE_TOKENS_PER_MESSAGE * messages + \
        TEMPLATE_TOKENS_FIXED
    return upper + max(MIN_ANSWER_TOKENS, answer_tokens or 0) > route.context_length


def context_length_for(folder: str | Path | None, fallback: int | None) -> int | None:
    """max_position_embeddings of a model folder's config.json (what the inference server uses), else
    `fallback` (the base model's registered context length)."""
    if folder:
        try:
            cfg = json.loads((Path(folder) / "config.json").read_text())
            n = int(cfg.get("max_position_embeddings") or 0)
            if 0 < n <= 10_000_000:
                return n
        except (OSError, ValueError, TypeError, AttributeError):
            pass
    return fallback
