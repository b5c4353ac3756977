"""Request validation for /v1 (OpenAI chat + legacy completions), per the wire contract.

Each function returns the body to send upstream (a new dict) or raises ProxyError(400).
"""
from __future__ import annotations

from apps.proxy.errors import ProxyError

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
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        _bad("Invalid type for 'tools': expected an array of objects.", "tools", "invalid_type")
    rf = body.get("response_format")
    if rf is not None and not isinstance(rf, dict):
        _bad("Invalid type for 'response_format': expected an object.", "response_format", "invalid_type")
    return out


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
