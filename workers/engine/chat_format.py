"""How the hub lays out a conversation for a model: one function for training and serving.

Training (workers/engine/data.py), evaluation (evaluate.py) and the inference server
(workers/inference/engine.py) all render chats with :func:`render_chat`, so a model trained by the hub
on tool-call data sees at inference exactly the layout it was trained on. Knows nothing of Django.

The layout:

* Templates that render ``tools`` / ``tool_calls`` themselves (Qwen2.5, Hermes, ...) get them as
  ``apply_chat_template(messages, tools=...)`` arguments, OpenAI-shaped (``arguments`` as an object).
* Templates that ignore them (SmolLM2's ChatML, the tiny test template) get the hub's Hermes-style
  layout: the tool signatures in the system prompt (:func:`tools_system_text`), assistant tool calls as
  ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` lines after the turn's text, and tool
  results as ``<tool_response>...</tool_response>`` in a ``tool`` turn.

Which of the two applies is found by rendering a probe once per template (:func:`template_caps`).
"""
from __future__ import annotations

import json
import threading
from typing import Any

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
TOOL_RESPONSE_OPEN = "<tool_response>"
TOOL_RESPONSE_CLOSE = "</tool_response>"

_PROBE_NAME = "hub_probe_fn_7f3a"
_PROBE_TOOL = {"type": "function", "function": {"name": _PROBE_NAME, "description": "probe",
                                                "parameters": {"type": "object", "properties": {}}}}
_caps_cache: dict[str, tuple[bool, bool]] = {}
_caps_lock = threading.Lock()


def _args_object(args):
    """Tool-call arguments as an object when they are a JSON string holding one (templates and the
    Hermes layout want objects; OpenAI sends strings)."""
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
        except ValueError:
            return args
        return parsed
    return {} if args is None else args


def tool_call_text(calls: list[dict]) -> str:
    """Assistant tool calls in the Hermes layout, one ``<tool_call>{json}</tool_call>`` per line."""
    parts = []
    for call in calls or []:
        fn = call.get("function", call)
        parts.append(TOOL_CALL_OPEN + json.dumps({"name": fn.get("name"), "arguments": _args_object(fn.get("arguments"))},
                                                 ensure_ascii=False) + TOOL_CALL_CLOSE)
    return "\n".join(parts)


def normalize_tools(tools) -> list[dict]:
    """Tools in OpenAI's shape ``{"type": "function", "function": {name, description, parameters}}``
    (bare ``{name, description, parameters}`` objects are wrapped)."""
    out = []
    for t in tools or []:
        if not isinstance(t, dict):
            continue
        if isinstance(t.get("function"), dict):
            out.append({"type": t.get("type") or "function", "function": t["function"]})
        elif t.get("name"):
            out.append({"type": "function", "function": t})
    return out


def tools_system_text(tools: list[dict]) -> str:
    """The tool signatures for the system prompt, Hermes/Qwen style, with the call layout the hub trains."""
    lines = "\n".join(json.dumps(t, ensure_ascii=False) for t in normalize_tools(tools))
    return ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n"
            f"<tools>\n{lines}\n</tools>\n\n"
            "For each function call, return a json object with function name and arguments within "
            "<tool_call></tool_call> XML tags:\n"
            '<tool_call>{"name": <function-name>, "arguments": <args-json-object>}</tool_call>')


def template_caps(tokenizer) -> tuple[bool, bool]:
    """(renders ``tools``, renders assistant ``tool_calls``) for the tokenizer's chat template, found
    by rendering a probe once per template text."""
    template = getattr(tokenizer, "chat_template", None)
    if not template or not isinstance(template, str):
        return False, False
    with _caps_lock:
        if template in _caps_cache:
            return _caps_cache[template]
    user = [{"role": "user", "content": "hi"}]
    try:
        text = tokenizer.apply_chat_template(user, tools=[_PROBE_TOOL], tokenize=False, add_generation_prompt=True)
        tools_ok = _PROBE_NAME in text
    except Exception:
        tools_ok = False
    calls = [{"id": "call_probe", "type": "function", "function": {"name": _PROBE_NAME, "arguments": {}}}]
    try:
        text = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": "", "tool_calls": calls}],
                                             tokenize=False)
        calls_ok = _PROBE_NAME in text
    except Exception:
        calls_ok = False
    with _caps_lock:
        _caps_cache[template] = (tools_ok, calls_ok)
    return tools_ok, calls_ok


def _content_text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(p if isinstance(p, str) else str(p.get("text", "")) for p in content
                       if isinstance(p, str) or (isinstance(p, dict) and p.get("type", "text") in ("text", "input_text")))
    return str(content)


def normalize_messages(messages: list[dict], template: str | None, *, native_tool_calls: bool | None = None) -> list[dict]:
    """Make every message renderable by simple templates: content always a string, ``developer`` as
    ``system``; unless the template renders tool calls itself, assistant tool calls become Hermes
    ``<tool_call>`` lines and tool results are wrapped in ``<tool_response>``. ``native_tool_calls``
    overrides the guess made from the template text."""
    knows_tools = native_tool_calls if native_tool_calls is not None else bool(template) and "tool_calls" in template
    out = []
    for m in messages:
        role = m.get("role", "user")
        if role == "developer":
            role = "system"
        content = _content_text(m.get("content"))
        msg: dict[str, Any] = {"role": role, "content": content}
        if m.get("tool_calls"):
            if knows_tools:
                msg["tool_calls"] = [
                    {**c, "function": {**c["function"], "arguments": _args_object(c["function"].get("arguments"))}}
                    if isinstance(c, dict) and isinstance(c.get("function"), dict) else c
                    for c in m["tool_calls"]]
            else:
                msg["content"] = (content + "\n" if content else "") + tool_call_text(m["tool_calls"])
        if role == "tool" and not knows_tools:
            msg["content"] = f"{TOOL_RESPONSE_OPEN}\n{content}\n{TOOL_RESPONSE_CLOSE}"
        if m.get("name"):
            msg["name"] = m["name"]
        if m.get("tool_call_id"):
            msg["tool_call_id"] = m["tool_call_id"]
        out.append(msg)
    return out


def with_tools_in_system(messages: list[dict], tools) -> list[dict]:
    """The Hermes tool block appended to the first system message (or as a new first system message)."""
    block = tools_system_text(tools)
    if messages and messages[0].get("role") == "system":
        first = dict(messages[0])
        first["content"] = (first.get("content") or "") + ("\n\n" if first.get("content") else "") + block
        return [first] + list(messages[1:])
    return [{"role": "system", "content": block}] + list(messages)


def normalize_for(tokenizer, messages: list[dict]) -> list[dict]:
    """normalize_messages with the tool-call capability probed from the tokenizer's template."""
    _, calls_ok = template_caps(tokenizer)
    return normalize_messages(messages, getattr(tokenizer, "chat_template", None), native_tool_calls=calls_ok)


def render_chat(tokenizer, messages: list[dict], tools=None, *, add_generation_prompt: bool,
                normalized: bool = False) -> str:
    """The conversation as the model sees it. ``messages`` in OpenAI shape (or already passed through
    :func:`normalize_for` when ``normalized``); ``tools`` OpenAI tool definitions or None. Raises what
    the template raises."""
    norm = list(messages) if normalized else normalize_for(tokenizer, messages)
    tools = normalize_tools(tools) if tools else None
    template = getattr(tokenizer, "chat_template", None)
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    if tools:
        if template and template_caps(tokenizer)[0]:
            kwargs["tools"] = tools
        else:
            norm = with_tools_in_system(norm, tools)
    if not template:
        text = "".join(f"{m['role']}: {m['content']}\n" for m in norm)
        return text + ("assistant: " if add_generation_prompt else "")
    return tokenizer.apply_chat_template(norm, **kwargs)
