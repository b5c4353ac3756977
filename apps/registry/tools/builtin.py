"""The tools shipped with the hub (the demo's tabletop tools) and the call formats, as plain data.

Contract: no Django import (the scenario reader imports this at parse time, with no database).
- `BUILTIN_TOOLS`: name -> {"description", "parameters" (a JSON schema, Draft 2020-12), "example" (arguments of
  one call)}. The source of truth for the scenario reader's tool table (apps/datasets/formats/scenario.py derives
  its parameter order and checks from it: `parameter_checks`) and for the registry's builtin rows
  (apps.registry.tools.services.tool_registry_ensure_builtins). Bracket calls carry strings, so the numeric
  parameters take an integer or a string of digits (`pattern` applies to strings, `minimum` to numbers).
- `CALL_FORMATS`: format -> one-line explanation; `example_call(name, arguments, call_format)` writes one call
  the way a model writes it in that format.
"""
from __future__ import annotations

import json
import re

CALL_FORMATS: dict[str, str] = {
    "bracket": "Inline in the assistant's text: `[name: arg1, arg2]`, arguments in the order of the parameters "
               "(the scenario reader turns them into structured tool calls).",
    "openai": "OpenAI chat `tool_calls`: `{\"type\": \"function\", \"function\": {\"name\": ..., \"arguments\": "
              "\"<JSON object as a string>\"}}` on the assistant message.",
    "hermes": "Hermes / Qwen style: `<tool_call>{\"name\": ..., \"arguments\": {...}}</tool_call>` in the "
              "assistant's text.",
}


def _s(description: str, **extra) -> dict:
    return {"type": "string", "description": description, **extra}


def _obj(properties: dict) -> dict:
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


BUILTIN_TOOLS: dict[str, dict] = {
    "roll": {
        "description": "Roll dice, e.g. d20+5 or 2d6.",
        "parameters": _obj({"dice": _s("Dice notation: [count]d<sides> with an optional +/- modifier.",
                                       pattern=r"^\d*[dD]\d+(\s*[+-]\s*\d+)?$")}),
        "example": {"dice": "d20+5"},
    },
    "health": {
        "description": "Change a creature's hit points by a signed amount.",
        "parameters": _obj({
            "target": _s("The creature whose hit points change."),
            "amount": {"type": ["integer", "string"], "description": "Signed change: -5 for damage, +3 for healing.",
                       "pattern": r"^[+-]?\d+$"},
        }),
        "example": {"target": "player", "amount": "-5"},
    },
    "inventory": {
        "description": "Add, remove or use an item in a character's inventory.",
        "parameters": _obj({
            "character": _s("Whose inventory."),
            "action": _s("What happens to the item.", enum=["add", "remove", "use", "drop", "give"]),
            "item": _s("The item."),
        }),
        "example": {"character": "Mira", "action": "add", "item": "healing potion"},
    },
    "spellcast": {
        "description": "Cast a spell at a spell level (0-9).",
        "parameters": _obj({
            "caster": _s("Who casts it."),
            "spell": _s("The spell's name."),
            "level": {"type": ["integer", "string"], "description": "Spell level, 0 (cantrip) to 9.",
                      "pattern": r"^[0-9]$", "minimum": 0, "maximum": 9},
        }),
        "example": {"caster": "Mira", "spell": "fireball", "level": "3"},
    },
    "check": {
        "description": "Ask for a skill check.",
        "parameters": _obj({"skill": _s("The skill, e.g. perception."), "target": _s("Who rolls.")}),
        "example": {"skill": "perception", "target": "player"},
    },
    "save": {
        "description": "Ask for a saving throw against a DC.",
        "parameters": _obj({
            "ability": _s("The ability, e.g. dexterity."),
            "target": _s("Who rolls."),
            "dc": {"type": ["integer", "string"], "description": "Difficulty class (0-99).",
                   "pattern": r"^\d{1,2}$", "minimum": 0, "maximum": 99},
        }),
        "example": {"ability": "dexterity", "target": "player", "dc": "15"},
    },
}


def builtin_schemas() -> dict[str, dict]:
    """{name: JSON schema} of the builtin tools (what validation falls back to without a database)."""
    return {name: spec["parameters"] for name, spec in BUILTIN_TOOLS.items()}


def parameter_checks(schema: dict) -> dict[str, re.Pattern]:
    """Per-parameter regex checks of a string argument (case-insensitive, as the scenario reader always did):
    a `pattern`, or an `enum` of strings."""
    out = {}
    for name, prop in (schema.get("properties") or {}).items():
        if prop.get("pattern"):
            out[name] = re.compile(prop["pattern"], re.I)
        elif prop.get("enum") and all(isinstance(v, str) for v in prop["enum"]):
            out[name] = re.compile("^(" + "|".join(re.escape(v) for v in prop["enum"]) + ")$", re.I)
    return out


def _placeholder(name: str, prop: dict):
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return prop["enum"][0]
    kind = prop.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    samples = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}, "null": None}
    return samples.get(kind, f"<{name}>")


def example_arguments(schema: dict) -> dict:
    """Arguments for a documentation example: a placeholder per property (the first enum value, 1, true, ...)."""
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    return {k: _placeholder(k, v if isinstance(v, dict) else {}) for k, v in props.items()}


def example_call(name: str, arguments: dict, call_format: str) -> str:
    """One call as the model writes it: `[roll: d20+5]`, an OpenAI tool_calls entry, or a Hermes block."""
    if call_format == "bracket":
        values = arguments.get("args") if list(arguments) == ["args"] and isinstance(arguments.get("args"), list) \
            else list(arguments.values())
        text = ", ".join(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values)
        return f"[{name}: {text}]"
    if call_format == "hermes":
        block = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        return f"<tool_call>\n{block}\n</tool_call>"
    return json.dumps({"id": "call_1", "type": "function",
                       "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}},
                      ensure_ascii=False)
