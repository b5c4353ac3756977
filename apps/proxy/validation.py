"""Request validation for /v1 (OpenAI chat + legacy completions), per the wire contract.

Each function returns the body to send upstream (a new dict) or raises ProxyError(400).
"""
from __future__ import annotations

import re

from apps.proxy.errors import ProxyError

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ROLES = {"system", "developer", "user", "assistant", "tool", "function"}


def _bad(message: str, param: str | None = None, code: str | None = None):
    raise ProxyError(400, message, param=param, code=code)


def _number(body: dict, key: str, lo: float, hi: float) -> None:
    v = body.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        _bad(f"Invalid type for '{key}': expected a number.", key, "invalid_type")
    if not lo <= v <= hi:
        _bad(f"Invalid '{key}': {v} is out of range; it must be between {lo} and {hi}.", key, "invalid_value")


def _positive_int(body: dict, key: str) -> None:
    v = body.get(key)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int):
        _bad(f"Invalid type for '{key}': expected an integer.", key, "invalid_type")
    if v < 1:
        _bad(f"Invalid '{key}': it must be at least 1.", key, "invalid_value")


def _common(body, *, stream_key="stream") -> dict:
    if not isinstance(body, dict):
        _bad("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        _bad("You must provide a model parameter.", "model", "missing_required_parameter")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "presence_penalty", -2, 2)
    _number(body, "frequency_penalty", -2, 2)
    _positive_int(body, "max_tokens")
    _positive_int(body, "max_completion_tokens")
    n = body.get("n")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            _bad("Invalid 'n': it must be a positive integer.", "n", "invalid_value")
        if n > 1:
            _bad("n > 1 is not supported by this server; send one request per completion.", "n", "unsupported_value")
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            pass
        elif not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
            _bad("Invalid 'stop': a string or an array of up to 4 strings.", "stop", "invalid_value")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        _bad("Invalid type for 'seed': expected an integer.", "seed", "invalid_type")
    stream = body.get(stream_key)
    if stream is not None and not isinstance(stream, bool):
        _bad("Invalid type for 'stream': expected a boolean.", "stream", "invalid_type")
    opts = body.get("stream_options")
    if opts is not None:
        if stream is not True:
            _bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                 "stream_options", "invalid_value")
        if not isinstance(opts, dict):
            _bad("Invalid type for 'stream_options': expected an object.", "stream_options", "invalid_type")
        inc = opts.get("include_usage")
        if inc is not None and not isinstance(inc, bool):
            _bad("Invalid type for 'stream_options.include_usage': expected a boolean.",
                 "stream_options.include_usage", "invalid_type")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        _bad("Invalid type for 'user': expected a string.", "user", "invalid_type")
    out = dict(body)
    if out.get("max_completion_tokens") is not None and out.get("max_tokens") is None:
        out["max_tokens"] = out["max_completion_tokens"]
    out.pop("max_completion_tokens", None)
    return out


def _content_ok(content) -> bool:
    if isinstance(content, str):
        return True
    if isinstance(content, list):
        return all(isinstance(p, dict) and isinstance(p.get("type"), str) for p in content)
    return False


def validate_chat(body) -> dict:
    out = _common(body)
    messages = body.get("messages")
    if messages is None:
        _bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        _bad("Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages",
             "empty_array")
    for i, m in enumerate(messages):
        p = f"messages[{i}]"
        if not isinstance(m, dict):
            _bad(f"Invalid type for '{p}': expected an object.", p, "invalid_type")
        role = m.get("role")
        if role not in ROLES:
            _bad(f"Invalid value for '{p}.role': {role!r}. Supported: system, developer, user, assistant, tool.",
                 f"{p}.role", "invalid_value")
        content = m.get("content")
        if role == "assistant" and content is None and (m.get("tool_calls") or m.get("function_call")):
            pass
        elif role == "assistant" and content is None:
            pass  # an empty assistant turn; templates render it as ""
        elif not _content_ok(content):
            _bad(f"Invalid '{p}.content': a string or an array of content parts is required.",
                 f"{p}.content", "invalid_type")
        if role == "tool" and not isinstance(m.get("tool_call_id"), str):
            _bad(f"Missing required parameter: '{p}.tool_call_id'.", f"{p}.tool_call_id",
                 "missing_required_parameter")
        if m.get("tool_calls") is not None and not isinstance(m.get("tool_calls"), list):
            _bad(f"Invalid type for '{p}.tool_calls': expected an array.", f"{p}.tool_calls", "invalid_type")
    _tools(body)
    _response_format(body.get("response_format"))
    return out


def _tools(body: dict) -> None:
    """`tools` (function tools need `function.name`; `parameters` an object), `tool_choice` and
    `parallel_tool_calls` in OpenAI's shapes."""
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        _bad("Invalid type for 'tools': expected an array of objects.", "tools", "invalid_type")
    names = set()
    for i, t in enumerate(tools or []):
        if t.get("type", "function") != "function":
            continue
        fn = t.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            _bad(f"Missing required parameter: 'tools[{i}].function.name'.", f"tools[{i}].function.name",
                 "missing_required_parameter")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            _bad(f"Invalid type for 'tools[{i}].function.parameters': expected a JSON schema object.",
                 f"tools[{i}].function.parameters", "invalid_type")
        names.add(fn["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if isinstance(choice, str):
            if choice not in ("none", "auto", "required"):
                _bad(f"Invalid value for 'tool_choice': {choice!r}. Supported values are: 'none', 'auto', "
                     "'required', or an object naming a function.", "tool_choice", "invalid_value")
        elif not isinstance(choice, dict):
            _bad("Invalid type for 'tool_choice': expected a string or an object.", "tool_choice", "invalid_type")
        elif choice.get("type") == "function":
            fn = choice.get("function")
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not name:
                _bad("Missing required parameter: 'tool_choice.function.name'.", "tool_choice.function.name",
                     "missing_required_parameter")
            if names and name not in names:
                _bad(f"Invalid value for 'tool_choice.function.name': {name!r} is not one of the request's tools.",
                     "tool_choice.function.name", "invalid_value")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        _bad("Invalid type for 'parallel_tool_calls': expected a boolean.", "parallel_tool_calls", "invalid_type")


def _response_format(rf) -> None:
    """`response_format`: {"type": "text"}, {"type": "json_object"} or {"type": "json_schema", "json_schema":
    {"name", "schema"?, "strict"?, "description"?}}. Passed on as sent: the local inference server enforces
    it by constrained decoding (a schema it cannot enforce is its 400 `unsupported_value`); other upstreams
    (vLLM, OpenAI-compatible providers) do what they do with it."""
    if rf is None:
        return
    if not isinstance(rf, dict):
        _bad("Invalid type for 'response_format': expected an object.", "response_format", "invalid_type")
    kind = rf.get("type")
    if kind is None:
        _bad("Missing required parameter: 'response_format.type'.", "response_format.type",
             "missing_required_parameter")
    if kind not in ("text", "json_object", "json_schema"):
        _bad(f"Invalid value for 'response_format.type': {kind!r}. Supported values are: 'text', 'json_object', "
             "and 'json_schema'.", "response_format.type", "invalid_value")
    if kind != "json_schema":
        return
    js = rf.get("json_schema")
    if js is None:
        _bad("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema",
             "missing_required_parameter")
    if not isinstance(js, dict):
        _bad("Invalid type for 'response_format.json_schema': expected an object.", "response_format.json_schema",
             "invalid_type")
    name = js.get("name")
    if name is None:
        _bad("Missing required parameter: 'response_format.json_schema.name'.", "response_format.json_schema.name",
             "missing_required_parameter")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        _bad("Invalid 'response_format.json_schema.name': letters, digits, underscores and dashes only, at most "
             "64 characters.", "response_format.json_schema.name", "invalid_value")
    if "schema" in js and not isinstance(js["schema"], dict):
        _bad("Invalid type for 'response_format.json_schema.schema': expected a JSON schema object.",
             "response_format.json_schema.schema", "invalid_type")
    if js.get("strict") is not None and not isinstance(js["strict"], bool):
        _bad("Invalid type for 'response_format.json_schema.strict': expected a boolean.",
             "response_format.json_schema.strict", "invalid_type")
    if js.get("description") is not None and not isinstance(js["description"], str):
        _bad("Invalid type for 'response_format.json_schema.description': expected a string.",
             "response_format.json_schema.description", "invalid_type")


def validate_completion(body) -> dict:
    out = _common(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if isinstance(prompt, list):
        _bad("Only a single prompt per request is supported.", "prompt", "unsupported_value")
    if not isinstance(prompt, str):
        _bad("Missing required parameter: 'prompt' (a string).", "prompt", "missing_required_parameter")
    out["prompt"] = prompt
    return out
