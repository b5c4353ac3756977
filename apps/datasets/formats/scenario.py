"""Markdown scenario files: `# SYSTEM / # USER / # DM / # TOOLCALL` sections.

`# DM` is the assistant. Inline calls such as `[roll: d20+5]` or `[health: player, -5]` in a DM
section become structured tool calls (removed from the text); a following `# TOOLCALL` section is the
tool's result and becomes a `tool` turn answering the oldest unanswered call. Tool names not among the
builtin tools below extend them (reported as a warning so a person sees it).
"""
from __future__ import annotations

import json
import re

from apps.datasets.formats.base import make_example
from apps.registry.tools.builtin import BUILTIN_TOOLS, parameter_checks

# name -> (parameter names, per-parameter validators, description): derived from the builtin tools of the registry
# (apps/registry/tools/builtin.py, plain data: no database at parse time).
TOOL_REGISTRY: dict[str, dict] = {
    name: {"params": list(spec["parameters"]["properties"]), "checks": parameter_checks(spec["parameters"]),
           "description": spec["description"]}
    for name, spec in BUILTIN_TOOLS.items()
}

SECTION_RE = re.compile(r"^#{1,3}\s*(SYSTEM|USER|PLAYER|DM|ASSISTANT|TOOLCALL|TOOL\s*CALL|TOOL|TOOL\s*RESULT)\s*:?\s*$", re.I)
CALL_RE = re.compile(r"\[([A-Za-z_][\w-]*)\s*:\s*([^\[\]\n]*)\](?!\()")
BARE_CALL_RE = re.compile(r"\[([A-Za-z_][\w-]*)\s*:?\s*\](?!\()")
ROLE_OF = {"SYSTEM": "system", "USER": "user", "PLAYER": "user", "DM": "assistant", "ASSISTANT": "assistant"}


def looks_like_scenario(text: str) -> bool:
    hits = sum(1 for line in text.splitlines()[:400] if SECTION_RE.match(line.strip()))
    return hits >= 2


def tool_definition(name: str) -> dict:
    spec = TOOL_REGISTRY.get(name)
    params = spec["params"] if spec else ["args"]
    props = {p: {"type": "string"} for p in params}
    if not spec:
        props = {"args": {"type": "array", "items": {"type": "string"}}}
    return {"type": "function", "function": {
        "name": name, "description": spec["description"] if spec else f"Tool `{name}` found in the data.",
        "parameters": {"type": "object", "properties": props, "required": list(props)}}}


def _parse_call(name: str, raw_args: str, *, line, report, file):
    args = [a.strip() for a in raw_args.split(",")] if raw_args.strip() else []
    spec = TOOL_REGISTRY.get(name.lower())
    if not args:
        report.error("malformed_tool_call", f"Tool call `[{name}: ]` has no arguments.", line=line, file=file)
        return None
    if spec is None:
        report.warn("new_tool", f"Tool `{name}` is not in the tool registry; it is added from the data.",
                    line=line, file=file)
        return {"name": name, "arguments": json.dumps({"args": args})}
    params = spec["params"]
    if len(args) != len(params):
        report.error("malformed_tool_call", f"`[{name}: {raw_args.strip()}]` takes {len(params)} argument(s) "
                     f"({', '.join(params)}), got {len(args)}.", line=line, file=file)
        return None
    for p, a in zip(params, args):
        check = spec["checks"].get(p)
        if check is not None and not check.match(a):
            report.error("malformed_tool_call", f"`[{name}: {raw_args.strip()}]`: `{a}` is not a valid {p}.",
                         line=line, file=file)
            return None
    return {"name": name.lower(), "arguments": json.dumps(dict(zip(params, args)))}


def parse_scenarios(text: str, *, file: str, report, category: str = "", line_offset: int = 0):
    """Yield normalized examples from one markdown file (scenarios separated by a `---` line)."""
    lines = text.splitlines()
    blocks: list[list[tuple[int, str]]] = [[]]
    for n, line in enumerate(lines, 1 + line_offset):
        if line.strip() == "---":
            blocks.append([])
        else:
            blocks[-1].append((n, line))
    found = False
    for block in blocks:
        sections = []  # (kind, start_line, [text lines])
        for n, line in block:
            m = SECTION_RE.match(line.strip())
            if m:
                kind = re.sub(r"\s+", "", m.group(1).upper())
                sections.append([kind, n, []])
            elif sections:
                sections[-1][2].append((n, line))
            elif line.strip() and not line.lstrip().startswith("#"):
                report.warn("text_outside_section", "Text before the first section header is ignored.",
                            line=n, file=file)
        if not sections:
            continue
        found = True
        ex = _scenario_example(sections, file=file, report=report, category=category)
        if ex is not None:
            yield ex
    if not found:
        report.error("no_scenario_sections", "No `# SYSTEM` / `# USER` / `# DM` / `# TOOLCALL` sections found.",
                     line=1 + line_offset, file=file)


def _scenario_example(sections, *, file, report, category):
    messages = []
    pending: list[str] = []
    used_tools: list[str] = []
    call_no = 0
    first_line = sections[0][1]
    for kind, start, body in sections:
        text = "\n".join(t for _n, t in body).strip()
        if kind in ("TOOLCALL", "TOOL", "TOOLRESULT"):
            if not pending:
                report.error("unmatched_tool_result", "`# TOOLCALL` result with no open tool call before it "
                             "(a `[name: args]` call in the DM section above).", line=start, file=file)
                continue
            messages.append({"role": "tool", "content": text, "tool_call_id": pending.pop(0)})
            continue
        role = ROLE_OF[kind]
        if not text:
            report.warn("empty_turn", f"Empty `# {kind}` section.", line=start, file=file)
        if role != "assistant":
            messages.append({"role": role, "content": text})
            continue
        calls = []
        for n, line in body:
            for m in BARE_CALL_RE.finditer(line):
                if m.group(1).lower() in TOOL_REGISTRY:
                    report.error("malformed_tool_call", f"Tool call `{m.group(0)}` has no arguments.", line=n, file=file)
            for m in CALL_RE.finditer(line):
                parsed = _parse_call(m.group(1), m.group(2), line=n, report=report, file=file)
                if parsed is None:
                    continue
                call_no += 1
                cid = f"call_{call_no}"
                calls.append({"id": cid, "type": "function", "function": parsed})
                pending.append(cid)
                if parsed["name"] not in used_tools:
                    used_tools.append(parsed["name"])
        content = CALL_RE.sub(lambda m: "", text) if calls else text
        content = re.sub(r"[ \t]{2,}", " ", content).strip()
        msg = {"role": "assistant", "content": content}
        if calls:
            msg["tool_calls"] = calls
        messages.append(msg)
    if not any(m["role"] == "assistant" for m in messages):
        report.error("no_assistant", "Scenario has no `# DM` section: nothing to learn from.", line=first_line, file=file)
        return None
    tools = [tool_definition(n) for n in used_tools] or None
    return make_example(messages, tools=tools, source_file=file, source_line=first_line, category=category,
                        kind="chat", tags=["scenario"])
