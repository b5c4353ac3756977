"""Turn stored messages into display segments: plain text, <thinking> blocks, <file path="..."> blocks
and tool calls. Templates render every piece with autoescaping: nothing here is marked safe."""
from __future__ import annotations

import json
import re

BLOCK_RE = re.compile(r"<thinking>(?P<think>.*?)(?:</thinking>|$)|<file\s+path=\"(?P<path>[^\"]*)\"\s*>(?P<file>.*?)(?:</file>|$)",
                      re.S)


def segments(text: str) -> list[dict]:
    out, pos = [], 0
    for m in BLOCK_RE.finditer(text or ""):
        if m.start() > pos and text[pos:m.start()].strip():
            out.append({"kind": "text", "text": text[pos:m.start()].strip()})
        if m.group("think") is not None:
            out.append({"kind": "thinking", "text": m.group("think").strip("\n")})
        else:
            out.append({"kind": "file", "path": m.group("path"), "text": m.group("file").strip("\n")})
        pos = m.end()
    if pos < len(text or "") and text[pos:].strip():
        out.append({"kind": "text", "text": text[pos:].strip()})
    return out


def _pretty_args(args: str) -> str:
    try:
        return json.dumps(json.loads(args), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(args)


def render_messages(messages: list[dict], tools=None) -> list[dict]:
    turns = []
    for m in messages or []:
        turns.append({
            "role": m.get("role", "?"),
            "segments": segments(m.get("content") or ""),
            "weight": m.get("weight"),
            "tool_calls": [{"id": c.get("id"), "name": (c.get("function") or {}).get("name"),
                            "arguments": _pretty_args((c.get("function") or {}).get("arguments"))}
                           for c in (m.get("tool_calls") or [])],
            "tool_call_id": m.get("tool_call_id"),
        })
    return turns


def tool_rows(tools) -> list[dict]:
    """OpenAI-style tool definitions as the pages show them (templates/core/_tools.html): name, description and
    the JSON schema of the arguments, indented. Entries that are not function tools are shown by their type."""
    rows = []
    for t in tools or []:
        if not isinstance(t, dict):
            continue
        fn = t.get("function") if isinstance(t.get("function"), dict) else t  # Anthropic's shape is flat
        schema = fn.get("parameters", fn.get("input_schema"))
        rows.append({"name": str(fn.get("name") or t.get("type") or "(unnamed)"),
                     "description": str(fn.get("description") or ""),
                     "parameters": json.dumps(schema, indent=2, ensure_ascii=False, default=str) if schema else ""})
    return rows
