"""Tool-call validity of one logged /v1 call: how many tool calls the answer made and how many of them were
valid. Pure Python over the logged request and response (apps.proxy.models.RequestLog.request / .response).

Contract: `tool_call_counts(request, response, registry=None) -> (calls, valid)`. A call is valid when it
names a tool the request offered, its arguments are a JSON object (a string that parses to one, or an object), every
`required` parameter of the tool's schema is present, and each present parameter with a declared JSON
`type` has a value of that type (nested schemas are not walked). A request that offered no tools counts
(0, 0). With `registry` ({name: JSON schema}, apps.registry.tools.selectors.tool_registry_schemas): a tool the
request offered without a schema (no `parameters`, or one without `properties`) is checked against the
registry's schema of that name, and a request that offered no tools at all is checked against the registry
(its calls must name registry tools). Understands the three dialects' shapes:
- OpenAI chat: request `tools[].function.{name, parameters}`; answer `choices[0].message.tool_calls[]` or,
  for a streamed call, the log's `tool_calls[]` (`function.{name, arguments}`);
- Anthropic: request `tools[].{name, input_schema}`; answer `content[]` blocks of type `tool_use` (`input`);
- Responses: request `tools[]` of type function (`name`, `parameters`); answer `output[]` items of type
  `function_call` (`name`, `arguments`).
"""
from __future__ import annotations

import json

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def offered_tools(request: dict) -> dict[str, dict]:
    """{name: JSON schema of its parameters} of the tools a request offered (any dialect)."""
    out: dict[str, dict] = {}
    tools = request.get("tools") if isinstance(request, dict) else None
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out[fn["name"]] = fn.get("parameters") if isinstance(fn.get("parameters"), dict) else {}
        elif isinstance(tool.get("name"), str):
            schema = tool.get("input_schema", tool.get("parameters"))
            out[tool["name"]] = schema if isinstance(schema, dict) else {}
    return out


def _calls(response: dict) -> list[tuple[str | None, object]]:
    """[(name, arguments)] of the tool calls in an answer (arguments: a JSON string or an object)."""
    if not isinstance(response, dict):
        return []
    found: list[tuple[str | None, object]] = []

    def openai(items):
        for c in items if isinstance(items, list) else ():
            fn = c.get("function") if isinstance(c, dict) else None
            if isinstance(fn, dict):
                found.append((fn.get("name"), fn.get("arguments")))

    for choice in response.get("choices") or ():
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            openai(choice["message"].get("tool_calls"))
    openai(response.get("tool_calls"))  # a streamed chat call's log
    for block in response.get("content") if isinstance(response.get("content"), list) else ():
        if isinstance(block, dict) and block.get("type") == "tool_use":
            found.append((block.get("name"), block.get("input")))
    for item in response.get("output") if isinstance(response.get("output"), list) else ():
        if isinstance(item, dict) and item.get("type") == "function_call":
            found.append((item.get("name"), item.get("arguments")))
    return found


def _valid(args: object, schema: dict) -> bool:
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return False
    if not isinstance(args, dict):
        return False
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    if any(isinstance(r, str) and r not in args for r in required):
        return False
    props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    for key, value in args.items():
        spec = props.get(key)
        declared = spec.get("type") if isinstance(spec, dict) else None
        kinds = declared if isinstance(declared, list) else [declared] if isinstance(declared, str) else []
        checks = [_TYPES[k] for k in kinds if k in _TYPES]
        if checks and not any(check(value) for check in checks):
            return False
    return True


def _with_registry(tools: dict[str, dict], registry: dict[str, dict] | None) -> dict[str, dict]:
    if not registry:
        return tools
    if not tools:
        return {name: schema for name, schema in registry.items() if isinstance(schema, dict)}
    return {name: registry[name] if not schema.get("properties") and isinstance(registry.get(name), dict) else schema
            for name, schema in tools.items()}


def tool_call_counts(request: dict, response: dict, registry: dict[str, dict] | None = None) -> tuple[int, int]:
    tools = _with_registry(offered_tools(request), registry)
    if not tools:
        return 0, 0
    calls = _calls(response)
    valid = sum(1 for name, args in calls if isinstance(name, str) and name in tools and _valid(args, tools[name]))
    return len(calls), valid
