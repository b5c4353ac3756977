"""The tool-registry rule of dataset validation: structured tool calls against the registry's JSON schemas.

Contract: `ToolCallCheck().check(example, report, index=i) -> set[str]` warns, on the example's line, for each
assistant `tool_calls` entry that
- names a tool that is neither in the tool registry nor defined in the example's own `tools`
  (`unregistered_tool`), or
- has arguments that violate the tool's schema (`tool_schema_violation`): the registry's schema, else the one
  the example defines.
The registry is read once per check object (one per validation run), on the first example with tool calls:
apps.registry.tools.selectors.tool_registry_schemas inside a savepoint; where no database can be read (a
command-line check, a benchmark, an async context) the builtin tools' schemas stand in and no call is reported
as unregistered (the registry is unknown). Each schema is compiled
once per run. Both codes depend on the registry, not on the example alone: they are recomputed on every
validation (pipeline.SET_CODES).
"""
from __future__ import annotations

import json
import logging

from apps.registry.tools.validate import argument_problems, compile_schema

log = logging.getLogger(__name__)
CODES = frozenset({"unregistered_tool", "tool_schema_violation"})
MAX_OWN_SCHEMAS = 256  # compiled schemas of examples' own tool definitions kept per run


def registry_schemas() -> tuple[dict[str, dict], bool]:
    """({name: schema}, True) from the registry; (the builtin tools' schemas, False) where it cannot be read."""
    try:
        from django.db import transaction

        from apps.registry.tools.selectors import tool_registry_schemas

        with transaction.atomic():
            return tool_registry_schemas(), True
    except Exception as exc:  # noqa: BLE001 - no database here: validate against the builtin tools
        from apps.registry.tools.builtin import builtin_schemas

        log.debug("tool registry not readable (%s): using the builtin tools", exc)
        return builtin_schemas(), False


def _own_schemas(tools) -> dict[str, dict]:
    out = {}
    for t in tools if isinstance(tools, list) else ():
        fn = t.get("function") if isinstance(t, dict) and isinstance(t.get("function"), dict) else t
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            schema = fn.get("parameters", fn.get("input_schema"))
            out[fn["name"]] = schema if isinstance(schema, dict) else {}
    return out


class ToolCallCheck:
    def __init__(self, registry: dict[str, dict] | None = None):
        self.registry = registry
        self.complete = registry is not None  # False: the builtin stand-ins, so unknown names are not reported
        self._checks: dict[str, object] = {}
        self._own: dict[str, object] = {}

    def _registry_check(self, name: str):
        if name not in self._checks:
            self._checks[name] = compile_schema(self.registry[name])
        return self._checks[name]

    def _own_check(self, schema: dict):
        key = json.dumps(schema, sort_keys=True)
        if key not in self._own:
            if len(self._own) >= MAX_OWN_SCHEMAS:
                self._own.clear()
            self._own[key] = compile_schema(schema)
        return self._own[key]

    def check(self, ex: dict, report, *, index: int) -> set[str]:
        codes: set[str] = set()
        own = None
        for i, m in enumerate(ex.get("messages") or ()):
            for j, call in enumerate(m.get("tool_calls") or ()):
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    continue
                if self.registry is None:
                    self.registry, self.complete = registry_schemas()
                if own is None:
                    own = _own_schemas(ex.get("tools"))
                name, where = fn["name"], f"messages[{i}].tool_calls[{j}]"
                if name in self.registry:
                    check = self._registry_check(name)
                elif name in own:
                    check = self._own_check(own[name])
                elif not self.complete:
                    continue
                else:
                    codes.add("unregistered_tool")
                    report.warn("unregistered_tool", f"{where} calls `{name}`, which is not in the tool registry "
                                "(Models → Tools): scan this version or define the tool.",
                                line=ex.get("source_line"), file=ex.get("source_file") or None, example=index)
                    continue
                problems = argument_problems({}, fn.get("arguments", "{}"), check=check)
                if problems:
                    codes.add("tool_schema_violation")
                    report.warn("tool_schema_violation", f"{where} `{name}`: " + "; ".join(problems[:3]) + ".",
                                line=ex.get("source_line"), file=ex.get("source_file") or None, example=index)
        return codes
