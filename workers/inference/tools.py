"""Tool calls on the local server: reading `tools` / `tool_choice` from a request, and turning the
Hermes-style ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks a model emits (the
layout the hub trains, workers/engine/chat_format.py) back into OpenAI ``tool_calls``.

:class:`ToolCallParser` works on a stream of text deltas: text outside the tags passes through as
soon as it cannot be the beginning of a tag; a call comes out only once its closing tag has arrived
and its JSON parsed (never half-formed); a block whose JSON is malformed, or that is still open when
generation ends, comes out as plain text.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from workers.engine.chat_format import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from workers.inference.engine import EngineError


@dataclass(frozen=True)
class ToolPlan:
    """What a chat request asks of tools. `tools` are rendered into the prompt (None: no tools);
    `parse` turns emitted ``<tool_call>`` blocks into tool_calls; `force` is None (model decides),
    "required" (at least one call) or a function name (exactly that one); `parallel` allows several."""

    tools: list[dict] | None
    parse: bool
    force: str | None
    parallel: bool


def plan_tools(body: dict) -> ToolPlan:
    """Validate `tools`, `tool_choice` and `parallel_tool_calls` (EngineError 400 on a bad shape).

    tool_choice: "auto" (default with tools) renders the tools and parses calls; "none" sends no
    tools to the model and parses nothing (the answer is text); "required" and a named function
    ({"type": "function", "function": {"name": ...}}) are enforced with constrained decoding (see
    structured.py): the answer is one (named, or parallel_tool_calls false) or more calls."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise EngineError("`parallel_tool_calls` must be a boolean.", param="parallel_tool_calls")
    if tools is None or tools == []:
        if choice not in (None, "none", "auto"):
            raise EngineError("`tool_choice` needs `tools`.", param="tool_choice")
        return ToolPlan(None, False, None, True)
    if not isinstance(tools, list):
        raise EngineError("`tools` must be a list of tools.", param="tools")
    names = []
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type", "function") != "function" or not isinstance(fn, dict) \
                or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise EngineError(f"`tools[{i}]` must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}.",
                              param=f"tools[{i}]")
        params = fn.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise EngineError(f"`tools[{i}].function.parameters` must be a JSON schema object.",
                              param=f"tools[{i}].function.parameters")
        names.append(fn["name"])
    if choice is None or choice == "auto":
        return ToolPlan(tools, True, None, parallel is not False)
    if choice == "none":
        return ToolPlan(None, False, None, True)
    if choice == "required":
        return ToolPlan(tools, True, "required", parallel is not False)
    if isinstance(choice, dict) and choice.get("type", "function") == "function":
        name = (choice.get("function") or {}).get("name") if isinstance(choice.get("function"), dict) else None
        if not isinstance(name, str) or not name:
            raise EngineError("`tool_choice.function.name` is required.", param="tool_choice")
        if name not in names:
            raise EngineError(f"`tool_choice` names `{name}`, which is not among `tools`.", param="tool_choice")
        return ToolPlan(tools, True, name, False)
    raise EngineError('`tool_choice` must be "none", "auto", "required" or {"type": "function", "function": '
                      '{"name": ...}}.', param="tool_choice")


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _as_call(raw: str) -> dict | None:
    """An OpenAI tool call from the JSON between the tags, or None when it is not a well-formed call."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or not obj["name"]:
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            parsed = json.loads(args)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        arguments = args
    elif isinstance(args, dict):
        arguments = json.dumps(args, ensure_ascii=False)
    else:
        return None
    return {"id": new_call_id(), "type": "function", "function": {"name": obj["name"], "arguments": arguments}}


class ToolCallParser:
    """Feed text deltas, get ("text", str) and ("call", dict) events back in order.

    Whitespace that follows a call is held until some other text comes (so the newline between two
    calls, or after the last one, does not become content)."""

    def __init__(self):
        self._buf = ""          # text not yet decided on
        self._in_call = False   # inside <tool_call> ... (buf holds the tag and what follows)
        self._pending_ws = ""   # whitespace after a call
        self.calls = 0

    def _text(self, text: str, out: list) -> None:
        if not text:
            return
        if self.calls and not text.strip():
            self._pending_ws += text
            return
        out.append(("text", self._pending_ws + text))
        self._pending_ws = ""

    def feed(self, delta: str) -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = []
        self._buf += delta
        while self._buf:
            if self._in_call:
                end = self._buf.find(TOOL_CALL_CLOSE)
                if end < 0:
                    break
                block = self._buf[: end + len(TOOL_CALL_CLOSE)]
                self._buf = self._buf[end + len(TOOL_CALL_CLOSE):]
                self._in_call = False
                call = _as_call(block[len(TOOL_CALL_OPEN): -len(TOOL_CALL_CLOSE)].strip())
                if call is None:
                    self._text(block, out)  # malformed: stays text
                else:
                    self._pending_ws = ""
                    self.calls += 1
                    out.append(("call", call))
                continue
            start = self._buf.find(TOOL_CALL_OPEN)
            if start >= 0:
                self._text(self._buf[:start], out)
                self._buf = self._buf[start:]
                self._in_call = True
                continue
            # hold back a suffix that may be the beginning of the opening tag
            keep = 0
            for k in range(min(len(TOOL_CALL_OPEN) - 1, len(self._buf)), 0, -1):
                if self._buf.endswith(TOOL_CALL_OPEN[:k]):
                    keep = k
                    break
            self._text(self._buf[: len(self._buf) - keep], out)
            self._buf = self._buf[len(self._buf) - keep:]
            break
        return out

    def finish(self) -> list[tuple[str, object]]:
        """End of generation: what is still buffered (an unclosed call, a partial tag) is text."""
        out: list[tuple[str, object]] = []
        rest, self._buf, self._in_call = self._buf, "", False
        if rest:
            self._text(rest, out)
        self._pending_ws = ""  # whitespace after the last call is dropped
        return out


def split_calls(text: str) -> tuple[str, list[dict]]:
    """Whole-text form of the parser: (content, tool_calls)."""
    p = ToolCallParser()
    events = p.feed(text) + p.finish()
    content = "".join(v for k, v in events if k == "text")
    return content, [v for k, v in events if k == "call"]
