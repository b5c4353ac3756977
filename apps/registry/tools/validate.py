"""Tool names, tool JSON schemas and arguments against a schema: pure functions, no Django.

Contract:
- `name_problem(name) -> str | None`: a tool name is 1-64 ASCII letters, digits, `_` and `-`, not starting with a
  digit or `-` (what OpenAI accepts as a function name).
- `schema_problems(schema) -> list[(field, message)]`: the tool's `parameters` must be a JSON object schema
  (`type` "object", `properties` an object of schemas with known JSON types, `required` names among them); then
  the meta-schema check of the JSON-schema library (`jsonschema`'s Draft202012Validator.check_schema when it is
  installed, else `jsonschema_rs`, else only the structural check above plus compiling each `pattern`). `field`
  is a dotted path from "parameters" ("parameters.properties.amount.type").
- `argument_problems(schema, arguments) -> list[str]`: what is wrong with one call's arguments (a JSON string or
  an object): every error of the library's Draft 2020-12 validation, or of the built-in subset (type, enum,
  const, pattern, lengths, bounds, properties, required, additionalProperties, items) where no library is
  installed. `compile_schema(schema)` returns that check as a callable, for checking many calls.
- `call_problems(name, arguments, schemas)`: an unknown tool, else its argument problems.
- `json_type(value)` and `infer_schema(shapes, calls)`: the JSON schema a scan infers from argument shapes.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable

try:  # the reference implementation, where installed
    import jsonschema
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema = None
try:
    import jsonschema_rs
except ImportError:  # pragma: no cover - depends on the environment
    jsonschema_rs = None

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
JSON_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")
MAX_PROBLEMS = 5


def engine() -> str:
    """Which validator runs: "jsonschema", "jsonschema_rs" or "builtin"."""
    return "jsonschema" if jsonschema is not None else "jsonschema_rs" if jsonschema_rs is not None else "builtin"


def name_problem(name: object) -> str | None:
    if not isinstance(name, str) or not name:
        return "Give the tool a name."
    if not NAME_RE.match(name):
        return ("Use 1-64 letters, digits, `_` and `-`, starting with a letter or `_` (e.g. get_weather); "
                f"not {name[:40]!r}.")
    return None


def json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object" if isinstance(value, dict) else "string"


def _types_of(spec: dict) -> list | None:
    t = spec.get("type")
    return [t] if isinstance(t, str) else t if isinstance(t, list) else None


def _structure(schema) -> list[tuple[str, str]]:
    if not isinstance(schema, dict):
        return [("parameters", "Must be a JSON object: a JSON schema such as "
                               "{\"type\": \"object\", \"properties\": {...}}.")]
    out = []
    if schema.get("type", "object") != "object":
        out.append(("parameters.type", "A tool's parameters are an object: `type` must be \"object\"."))
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        out.append(("parameters.properties", "`properties` must be an object mapping each argument to its schema."))
        props = {}
    for key, spec in props.items():
        where = f"parameters.properties.{key}"
        if not isinstance(spec, dict):
            out.append((where, f"The schema of `{key}` must be an object (e.g. {{\"type\": \"string\"}})."))
            continue
        types = _types_of(spec)
        if "type" in spec and (not types or any(t not in JSON_TYPES for t in types)):
            out.append((f"{where}.type", f"`{key}`: type must be one of {', '.join(JSON_TYPES)} (or a list of them); "
                        f"not {json.dumps(spec['type'])[:40]}."))
        if isinstance(spec.get("pattern"), str):
            try:
                re.compile(spec["pattern"])
            except re.error as exc:
                out.append((f"{where}.pattern", f"`{key}`: the pattern is not a regular expression ({exc})."))
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        out.append(("parameters.required", "`required` must be a list of argument names."))
    else:
        missing = [r for r in required if r not in props]
        if missing:
            out.append(("parameters.required", f"`required` names arguments that are not in `properties`: "
                        f"{', '.join(missing[:5])}."))
        if len(set(required)) != len(required):
            out.append(("parameters.required", "`required` lists an argument twice."))
    return out


def _error_field(path) -> str:
    return ".".join(["parameters", *(str(p) for p in path)])


def schema_problems(schema) -> list[tuple[str, str]]:
    """[(field, message)] of a tool's parameters schema; [] when it is a usable JSON object schema."""
    out = _structure(schema)
    if out:
        return out
    if jsonschema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            out.append((_error_field(exc.path), f"Not a valid JSON schema: {exc.message}"))
    elif jsonschema_rs is not None:
        try:
            jsonschema_rs.meta.validate(schema)
            jsonschema_rs.Draft202012Validator(schema)
        except jsonschema_rs.ValidationError as exc:
            out.append((_error_field(exc.instance_path), f"Not a valid JSON schema: {exc.message}"))
        except ValueError as exc:
            out.append(("parameters", f"Not a valid JSON schema: {exc}"))
    return out


# --- the built-in subset (no library installed) -----------------------------------------------------------
_CHECK_TYPE = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def _subset(schema: dict, value, path: str, out: list[str]) -> None:
    where = f"{path}: " if path else ""
    types = _types_of(schema)
    if types and not any(_CHECK_TYPE.get(t, lambda v: True)(value) for t in types):
        out.append(f"{where}{json.dumps(value)[:40]} is not of type {' or '.join(types)}")
        return
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}{json.dumps(value)[:40]} is not one of {json.dumps(schema['enum'])[:80]}")
    if "const" in schema and value != schema["const"]:
        out.append(f"{where}{json.dumps(value)[:40]} is not {json.dumps(schema['const'])[:40]}")
    if isinstance(value, str):
        if isinstance(schema.get("pattern"), str) and not re.search(schema["pattern"], value):
            out.append(f"{where}{json.dumps(value)[:40]} does not match {json.dumps(schema['pattern'])}")
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", float("inf")):
            out.append(f"{where}length {len(value)} is out of bounds")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for key, bad in (("minimum", lambda b: value < b), ("maximum", lambda b: value > b),
                         ("exclusiveMinimum", lambda b: value <= b), ("exclusiveMaximum", lambda b: value >= b)):
            if isinstance(schema.get(key), (int, float)) and bad(schema[key]):
                out.append(f"{where}{value} is out of bounds ({key} {schema[key]})")
    if isinstance(value, dict):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        for name in schema.get("required") or ():
            if name not in value:
                out.append(f"{where}{json.dumps(name)} is a required property")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                _subset(props[key], item, f"{path}/{key}" if path else key, out)
            elif extra is False:
                out.append(f"{where}additional property {json.dumps(key)} is not allowed")
            elif isinstance(extra, dict):
                _subset(extra, item, f"{path}/{key}" if path else key, out)
    if isinstance(value, list):
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                _subset(schema["items"], item, f"{path}/{i}" if path else str(i), out)
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", float("inf")):
            out.append(f"{where}{len(value)} items is out of bounds")


def compile_schema(schema: dict) -> Callable[[object], list[str]]:
    """A check of a parsed value against `schema` (its problems, [] when valid). A schema the library cannot
    compile falls back to the built-in subset."""
    if jsonschema is not None:
        try:
            v = jsonschema.Draft202012Validator(schema)
            return lambda value: [f"{'/'.join(map(str, e.absolute_path)) + ': ' if e.absolute_path else ''}{e.message}"
                                  for e in v.iter_errors(value)][:MAX_PROBLEMS]
        except Exception:  # noqa: BLE001 - a schema the library refuses: the subset below still checks it
            pass
    elif jsonschema_rs is not None:
        try:
            v = jsonschema_rs.Draft202012Validator(schema)
            return lambda value: [f"{'/'.join(map(str, e.instance_path)) + ': ' if e.instance_path else ''}{e.message}"
                                  for e in v.iter_errors(value)][:MAX_PROBLEMS]
        except (jsonschema_rs.ValidationError, ValueError):
            pass

    def check(value) -> list[str]:
        out: list[str] = []
        _subset(schema if isinstance(schema, dict) else {}, value, "", out)
        return out[:MAX_PROBLEMS]

    return check


def parse_arguments(arguments) -> tuple[dict | None, str | None]:
    """(arguments as an object, None) or (None, what is wrong) for a JSON string or an object."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return None, f"arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(arguments, dict):
        return None, f"arguments must be a JSON object, not {json_type(arguments)}"
    return arguments, None


def argument_problems(schema: dict, arguments, *, check: Callable | None = None) -> list[str]:
    parsed, problem = parse_arguments(arguments)
    if problem:
        return [problem]
    return (check or compile_schema(schema))(parsed)


def call_problems(name: str, arguments, schemas: dict[str, dict]) -> list[str]:
    if name not in schemas:
        return [f"`{name}` is not in the tool registry"]
    return [f"`{name}`: {p}" for p in argument_problems(schemas[name], arguments)]


def infer_schema(shapes: dict[str, dict], calls: int) -> dict:
    """A JSON object schema from argument shapes {arg: {"types": {type: n}, "present": n}} over `calls` calls
    with parseable arguments: each argument's types seen (integer folded into number when both appear),
    `required` = the arguments present in every one of them."""
    props = {}
    for arg in sorted(shapes):
        types = sorted(shapes[arg].get("types") or {"string": 1})
        if "number" in types and "integer" in types:
            types.remove("integer")
        spec: dict = {"type": types[0] if len(types) == 1 else types}
        if types == ["array"] and arg == "args":
            spec["items"] = {"type": "string"}
        props[arg] = spec
    required = [a for a in sorted(shapes) if calls and shapes[a].get("present", 0) >= calls]
    return {"type": "object", "properties": props, "required": required}


def parameter_order(schema: dict) -> list[str]:
    """The arguments' order (positional in a bracket call, rows of the docs): `required` as listed, then the
    other properties by name. Not the order of `properties`: PostgreSQL's jsonb does not keep an object's key order."""
    props = schema.get("properties") if isinstance(schema, dict) and isinstance(schema.get("properties"), dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    first = [r for r in dict.fromkeys(required) if isinstance(r, str) and r in props]
    return first + sorted(k for k in props if k not in first)
