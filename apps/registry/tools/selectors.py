"""Reads of the tool registry, shared by /api, the page, dataset validation, evaluation and deploy bundles.

Every signed-in user may read the registry; each selector first makes sure the builtin tools exist
(services.tool_registry_ensure_builtins: one query once they do).

Contract (the names other code calls):
- `tool_list() -> list[Tool]` (by name); `tool_get(name) -> Tool` (NotFound for no such tool or a malformed name).
- `tool_registry_schemas() -> {name: JSON schema}`: what validation and tool-call evaluation check against.
- `tool_example_call(tool) -> str` (in its call format), `tool_example_display(tool) -> str` (one line, a table's).
- `tool_as_dict(tool) -> dict`: {name, description, parameters, call_format, origin, observed, example_call}.
- `tool_registry_export() -> {"tools": [{name, description, parameters, call_format, example_call}],
  "call_formats": {format: explanation}}`: the tools config a deploy bundle ships.
- `tool_docs_markdown() -> str`: markdown documentation of every tool (apps/registry/tools/docs.py).
- `tool_call_problems(name, arguments, *, registry=None) -> list[str]`: an unknown tool, or the arguments'
  violations of its schema; [] for a valid call. `registry` ({name: schema}) saves the read when checking many.
"""
from __future__ import annotations

import json

from apps.core.exceptions import NotFound
from apps.registry.models import Tool
from apps.registry.tools import docs
from apps.registry.tools.builtin import BUILTIN_TOOLS, CALL_FORMATS, example_arguments, example_call
from apps.registry.tools.services import tool_registry_ensure_builtins
from apps.registry.tools.validate import argument_problems, call_problems, name_problem, parameter_order


def tool_list() -> list[Tool]:
    tool_registry_ensure_builtins()
    return list(Tool.objects.select_related("updated_by").order_by("name"))


def tool_get(name: str) -> Tool:
    tool_registry_ensure_builtins()
    tool = Tool.objects.select_related("updated_by").filter(name=name).first() if not name_problem(name) else None
    if tool is None:
        raise NotFound("No such tool.")
    return tool


def tool_registry_schemas() -> dict[str, dict]:
    tool_registry_ensure_builtins()
    return {name: params or {} for name, params in Tool.objects.values_list("name", "parameters")}


def _example_arguments(tool: Tool) -> dict:
    """A valid call's arguments: the first observed example that fits the schema, else the builtin example, else
    placeholders made from the schema."""
    schema = tool.parameters or {}
    for ex in (tool.observed or {}).get("examples") or ():
        args = ex.get("arguments")
        if isinstance(args, dict) and "(truncated)" not in args and not argument_problems(schema, args):
            return args
    builtin = BUILTIN_TOOLS.get(tool.name)
    if builtin and not argument_problems(schema, builtin["example"]):
        return builtin["example"]
    return example_arguments(schema)


def tool_example_call(tool: Tool) -> str:
    args = _example_arguments(tool)
    order = parameter_order(tool.parameters or {})
    ordered = {k: args[k] for k in order if k in args} | {k: v for k, v in args.items() if k not in order}
    return example_call(tool.name, ordered, tool.call_format)


def tool_example_display(tool: Tool) -> str:
    """The example call on one line for a table: as written for bracket and Hermes, `name({...})` for OpenAI
    (its tool_calls entry carries the arguments as an escaped JSON string)."""
    if tool.call_format != "openai":
        return " ".join(tool_example_call(tool).split())
    return f"{tool.name}({json.dumps(_example_arguments(tool), ensure_ascii=False)})"


def tool_as_dict(tool: Tool) -> dict:
    return {"name": tool.name, "description": tool.description, "parameters": tool.parameters or {},
            "call_format": tool.call_format, "origin": tool.origin, "observed": tool.observed or {},
            "example_call": tool_example_call(tool),
            "updated_by": tool.updated_by.username if tool.updated_by_id and tool.updated_by else None,
            "updated_at": tool.updated_at, "created_at": tool.created_at}


def tool_registry_export() -> dict:
    return {"tools": [{k: d[k] for k in ("name", "description", "parameters", "call_format", "example_call")}
                      for d in map(tool_as_dict, tool_list())],
            "call_formats": dict(CALL_FORMATS)}


def tool_docs_markdown() -> str:
    return docs.render_markdown([tool_as_dict(t) for t in tool_list()], CALL_FORMATS)


def tool_call_problems(name: str, arguments, *, registry: dict[str, dict] | None = None) -> list[str]:
    return call_problems(name, arguments, registry if registry is not None else tool_registry_schemas())
