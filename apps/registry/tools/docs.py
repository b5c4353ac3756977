"""Markdown documentation of the tool registry: pure, no Django (selectors.tool_docs_markdown feeds it).

Contract: `render_markdown(tools, call_formats) -> str` with, for each tool (dicts as selectors.tool_as_dict
makes them, in the order given): a `## name` section with its description, origin and call format, an example
call in that format (a fenced block), a parameters table from its JSON schema (type, required, description and
constraints: enum, pattern, bounds), and what scans observed (calls, dataset versions, formats, argument shapes,
up to 3 example arguments). Text from tools (names, descriptions, schema values) is data: table cells have `|`
and line breaks escaped, fenced blocks use a fence longer than any backtick run inside them.
"""
from __future__ import annotations

import json
import re

from apps.registry.tools.validate import parameter_order

CONSTRAINTS = ("enum", "const", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
               "minLength", "maxLength", "minItems", "maxItems", "default")


def _cell(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ").strip() or " "


def _fenced(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _inline(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    tick = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{tick}{pad}{text}{pad}{tick}"


def _type(spec: dict) -> str:
    t = spec.get("type")
    if isinstance(t, list):
        return " \\| ".join(map(str, t))
    if t == "array" and isinstance(spec.get("items"), dict) and spec["items"].get("type"):
        return f"array of {spec['items']['type']}"
    return str(t) if t else "any"


def _parameters(schema: dict) -> list[str]:
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    if not props:
        return ["No parameters."]
    required = set(schema.get("required") or ())
    rows = ["| Parameter | Type | Required | Description |", "|---|---|---|---|"]
    for name in parameter_order(schema):
        spec = props[name] if isinstance(props[name], dict) else {}
        notes = [spec["description"]] if isinstance(spec.get("description"), str) else []
        notes += [f"{k}: {json.dumps(spec[k], ensure_ascii=False)}" for k in CONSTRAINTS if k in spec]
        rows.append(f"| {_cell(name)} | {_type(spec)} | {'yes' if name in required else 'no'} | "
                    f"{_cell('; '.join(notes) or '—')} |")
    if schema.get("additionalProperties") is False:
        rows.append("")
        rows.append("No other arguments are allowed.")
    return rows


def _observed(obs: dict) -> list[str]:
    calls = obs.get("calls") or 0
    if not calls:
        return ["Not seen in any scanned dataset version yet."]
    datasets = obs.get("datasets") or {}
    formats = ", ".join(f"{f} {n}" for f, n in sorted((obs.get("formats") or {}).items()))
    lines = [f"Seen {calls} time{'s' if calls != 1 else ''} in {len(datasets)} dataset version"
             f"{'s' if len(datasets) != 1 else ''} (formats: {formats or '—'})."]
    if obs.get("invalid_arguments"):
        lines.append(f"{obs['invalid_arguments']} call(s) had arguments that were not a JSON object.")
    shapes = obs.get("argument_shapes") or {}
    if shapes:
        lines += ["", "| Argument | Types seen | Present in |", "|---|---|---|"]
        for arg, s in shapes.items():
            types = ", ".join(f"{t} {n}" for t, n in sorted((s.get("types") or {}).items()))
            lines.append(f"| {_cell(arg)} | {_cell(types)} | {s.get('present', 0)} of {calls} |")
    examples = obs.get("examples") or []
    if examples:
        lines += ["", "Examples:", ""]
        for ex in examples:
            lines.append(f"- dataset version {ex.get('dataset_version_id')}, example {ex.get('example_index')} "
                         f"({ex.get('format')}): {_inline(json.dumps(ex.get('arguments'), ensure_ascii=False))}")
    return lines


def render_markdown(tools: list[dict], call_formats: dict[str, str]) -> str:
    out = ["# Tools", "",
           f"{len(tools)} tool{'s' if len(tools) != 1 else ''} in the Training Hub tool registry: shipped with the "
           "hub (builtin), defined by an admin, or found by scanning dataset versions (scan; schema inferred).", "",
           "## Call formats", ""]
    out += [f"- **{name}**: {text}" for name, text in call_formats.items()]
    out.append("")
    for t in tools:
        out += [f"## {_inline(t['name'])}", ""]
        if t.get("description"):
            out += [_cell(t["description"]), ""]
        out += [f"Origin: {t.get('origin')} · call format: {t.get('call_format')}", "", "Example call:", "",
                _fenced(t.get("example_call") or "", "json" if t.get("call_format") == "openai" else ""), "",
                "### Parameters", ""]
        out += _parameters(t.get("parameters") or {})
        out += ["", "### Observed", ""]
        out += _observed(t.get("observed") or {})
        out.append("")
    return "\n".join(out).rstrip() + "\n"
