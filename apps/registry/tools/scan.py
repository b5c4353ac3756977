"""Finding tool calls in stored examples and folding them into a tool's `observed` figures: pure, no Django.

Contract:
- `calls_in_messages(messages, params) -> [(name, arguments | None, format)]`: the calls of one example's
  assistant turns, in order: structured `tool_calls` ("openai"; `arguments` a JSON string or an object, None
  when it is not a JSON object), `<tool_call>{"name", "arguments"}</tool_call>` blocks in the text ("hermes"),
  and `[name: a, b]` left in the text ("bracket", the scenario reader's CALL_RE). A bracket call's values
  are strings, named by the tool's parameters (`params`: name -> ordered names) when their number matches,
  else `{"args": [...]}`; a bracket name not in `params` counts only when it is lower-case (`[roll: d20]`,
  `[look_up: x]`), so that prose such as `[Note: ...]` is not taken for a call. Names are matched to `params`
  case-insensitively (as the scenario reader does).
- `Tally`: per tool, for one dataset version: calls, calls whose arguments were not an object (`invalid`),
  argument shapes {arg: {"types": {json type: n}, "present": n}}, formats {format: n} and up to EXAMPLES
  examples ({"dataset_version_id", "example_index", "format", "arguments"}).
- `merge_observed(observed, version_id, entry)` puts one version's tally into a tool's `observed`, replacing
  what an earlier scan of that version put there (so a re-scan never double counts); `entry=None` removes the
  version. Totals ("calls", "datasets", "argument_shapes", "formats", "invalid_arguments", "examples") are
  recomputed from the per-version entries kept under "versions".
"""
from __future__ import annotations

import json
import re
from collections import Counter

from apps.registry.tools.validate import json_type

# The scenario reader's call syntax (apps/datasets/formats/scenario.py CALL_RE), kept identical here so that
# this module imports nothing from the datasets app.
CALL_RE = re.compile(r"\[([A-Za-z_][\w-]*)\s*:\s*([^\[\]\n]*)\](?!\()")
HERMES_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)
LOWER_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]*$")
EXAMPLES = 3
EXAMPLE_CHARS = 400


def _bracket(name: str, raw: str, params: dict[str, list[str]], lower: dict[str, str]):
    known = lower.get(name.lower())
    if known is None and not LOWER_NAME_RE.match(name):
        return None
    values = [a.strip() for a in raw.split(",")] if raw.strip() else []
    names = params.get(known) if known else None
    positional = names and names != ["args"] and len(names) == len(values)  # ["args"]: an inferred list of values
    args = dict(zip(names, values)) if positional else {"args": values}
    return (known or name, args, "bracket")


def calls_in_messages(messages, params: dict[str, list[str]], lower: dict[str, str] | None = None) -> list[tuple]:
    lower = lower if lower is not None else {n.lower(): n for n in params}
    found: list[tuple] = []
    for m in messages if isinstance(messages, list) else ():
        if not isinstance(m, dict) or m.get("role") != "assistant":
            continue
        for c in m.get("tool_calls") or ():
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                continue
            args = fn.get("arguments")
            if isinstance(args, str):
                try:
                    args = json.loads(args) if args.strip() else {}
                except ValueError:
                    args = None
            found.append((fn["name"], args if isinstance(args, dict) else None, "openai"))
        text = m.get("content")
        if not isinstance(text, str) or "[" not in text and "<tool_call>" not in text:
            continue
        if "<tool_call>" in text:
            for hm in HERMES_RE.finditer(text):
                try:
                    block = json.loads(hm.group(1))
                except ValueError:
                    continue
                if isinstance(block, dict) and isinstance(block.get("name"), str):
                    args = block.get("arguments", block.get("parameters", {}))
                    if isinstance(args, str):
                        try:
                            args = json.loads(args)
                        except ValueError:
                            args = None
                    found.append((block["name"], args if isinstance(args, dict) else None, "hermes"))
        if ":" in text:
            for bm in CALL_RE.finditer(text):
                call = _bracket(bm.group(1), bm.group(2), params, lower)
                if call is not None:
                    found.append(call)
    return found


class Tally:
    """One dataset version's calls, per tool."""

    def __init__(self, version_id: int):
        self.version_id = version_id
        self.tools: dict[str, dict] = {}

    def add(self, name: str, args: dict | None, fmt: str, example_index: int) -> None:
        t = self.tools.get(name)
        if t is None:
            t = self.tools[name] = {"calls": 0, "invalid": 0, "args": {}, "formats": Counter(), "examples": []}
        t["calls"] += 1
        t["formats"][fmt] += 1
        if args is None:
            t["invalid"] += 1
            return
        shapes = t["args"]
        for key, value in args.items():
            s = shapes.get(key)
            if s is None:
                s = shapes[key] = {"types": Counter(), "present": 0}
            s["present"] += 1
            s["types"][json_type(value)] += 1
        if len(t["examples"]) < EXAMPLES:
            text = json.dumps(args, ensure_ascii=False)
            t["examples"].append({"dataset_version_id": self.version_id, "example_index": example_index,
                                  "format": fmt, "arguments": args if len(text) <= EXAMPLE_CHARS else
                                  {"(truncated)": text[:EXAMPLE_CHARS]}})

    def entry(self, name: str) -> dict:
        """The JSON-ready per-version entry of one tool."""
        t = self.tools[name]
        return {"calls": t["calls"], "invalid": t["invalid"], "formats": dict(t["formats"]),
                "args": {k: {"types": dict(v["types"]), "present": v["present"]} for k, v in t["args"].items()},
                "examples": t["examples"]}


def merge_observed(observed: dict | None, version_id: int, entry: dict | None) -> dict:
    versions = dict((observed or {}).get("versions") or {})
    key = str(version_id)
    if entry is None:
        versions.pop(key, None)
    else:
        versions[key] = entry
    shapes: dict[str, dict] = {}
    formats: Counter = Counter()
    examples: list[dict] = []
    calls = invalid = 0
    for vid in sorted(versions, key=lambda k: int(k) if k.isdigit() else 0):
        e = versions[vid]
        calls += e.get("calls", 0)
        invalid += e.get("invalid", 0)
        formats.update(e.get("formats") or {})
        for arg, s in (e.get("args") or {}).items():
            agg = shapes.setdefault(arg, {"types": Counter(), "present": 0})
            agg["present"] += s.get("present", 0)
            agg["types"].update(s.get("types") or {})
        examples += e.get("examples") or []
    return {
        "calls": calls,
        "datasets": {vid: versions[vid].get("calls", 0) for vid in versions},
        "argument_shapes": {a: {"types": dict(s["types"]), "present": s["present"]} for a, s in sorted(shapes.items())},
        "formats": dict(formats),
        "invalid_arguments": invalid,
        "examples": examples[-EXAMPLES:],  # the newest versions' examples
        "versions": versions,
    }


def dominant_format(observed: dict, default: str = "openai") -> str:
    formats = observed.get("formats") or {}
    return max(formats, key=lambda f: (formats[f], f)) if formats else default
