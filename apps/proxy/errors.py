"""Error bodies of the /v1 wire formats: OpenAI `{"error": {message, type, param, code}}` and
Anthropic `{"type": "error", "error": {type, message}}`.

`ProxyError` is raised anywhere on the request path and rendered once, in the endpoint's dialect.
`wire_error_response(request, exc)` picks the dialect from the request itself (Anthropic when it carries
`anthropic-version`, `anthropic-beta` or `x-api-key`, or its path is /v1/messages*; OpenAI otherwise): used
where no endpoint decides, e.g. unknown /v1 paths. `anthropic_error_event(err)` is the body of Anthropic's
`event: error` for a failure after the first byte. A context overflow (`code: context_length_exceeded`)
reads "prompt is too long: ..." in Anthropic's shape, the words Claude Code reacts to (it compacts)."""
from __future__ import annotations

import json

import orjson
from django.http import HttpResponse


def loads(raw: bytes | str):
    """JSON text to Python: orjson (several times faster than the json module on the hot path), and the json
    module for what orjson refuses but the json module reads (integers past 64 bits, NaN, lone surrogates), so
    the hub accepts exactly what it accepted before. Raises ValueError (or UnicodeDecodeError) as json.loads."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def dumps(obj) -> bytes:
    """Python to compact UTF-8 JSON bytes: orjson, or the json module (ASCII-escaped) for what orjson cannot
    write (integers past 64 bits, non-string keys, lone surrogates)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(obj, separators=(",", ":")).encode()

_OPENAI_TYPE = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                404: "invalid_request_error", 408: "timeout", 409: "invalid_request_error",
                413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}
_ANTHROPIC_TYPE = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                   403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
                   409: "invalid_request_error", 413: "request_too_large", 422: "invalid_request_error",
                   429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}
_PROMPT_TOO_LONG = "prompt is too long"

# Retry hints the openai and anthropic SDKs obey (they retry 408, 409, 429 and >=500 on their own):
# a 4xx that will fail again says so; a rate limit or an upstream outage says when to come back.
RETRYABLE = frozenset({429, 502, 503, 504})
RETRY_AFTER_S = 1


def retry_headers(status: int) -> dict:
    if status in RETRYABLE:
        return {"x-should-retry": "true", "retry-after": str(RETRY_AFTER_S)}
    if 400 <= status < 500 and status not in (408, 409):
        return {"x-should-retry": "false"}
    return {}


class ProxyError(Exception):
    """Raised anywhere in the proxy; rendered once in the wire format of the endpoint."""

    def __init__(self, status: int, message: str, *, type: str | None = None, param: str | None = None,
                 code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or _OPENAI_TYPE.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = headers or {}

    def openai_body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict:
        kind = _ANTHROPIC_TYPE.get(self.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": _anthropic_message(self.message, self.code)}}


def _anthropic_message(message: str, code) -> str:
    if code == "context_length_exceeded" and _PROMPT_TOO_LONG not in (message or "").lower():
        return f"{_PROMPT_TOO_LONG}: {message}"
    return message


def anthropic_error_event(err: dict) -> dict:
    """Anthropic's `event: error` body for an upstream failure after the first byte; `err` is an OpenAI
    error object (`{message, type, param, code}`)."""
    err = err if isinstance(err, dict) else {}
    text = " ".join(str(err.get(k) or "") for k in ("type", "code")).lower()
    if "context_length" in text:
        kind = "invalid_request_error"
    elif "rate_limit" in text:
        kind = "rate_limit_error"
    elif "overload" in text:
        kind = "overloaded_error"
    elif "timeout" in text:
        kind = "timeout_error"
    else:
        kind = "api_error"
    message = _anthropic_message(str(err.get("message") or "The model server failed mid-stream."), err.get("code"))
    return {"type": "error", "error": {"type": kind, "message": message}}


def json_response(body, status: int = 200, headers: dict | None = None) -> HttpResponse:
    resp = HttpResponse(dumps(body), status=status, content_type="application/json")
    for k, v in (headers or {}).items():
        resp[k] = v
    return resp


def openai_error_response(exc: ProxyError, request_id: str | None = None) -> HttpResponse:
    headers = {**retry_headers(exc.status), **exc.headers}
    if request_id:
        headers["x-request-id"] = request_id
    return json_response(exc.openai_body(), exc.status, headers)


def anthropic_error_response(exc: ProxyError, request_id: str | None = None) -> HttpResponse:
    headers = {**retry_headers(exc.status), **exc.headers}
    if request_id:
        headers["request-id"] = request_id
        headers["x-request-id"] = request_id
    return json_response(exc.anthropic_body(), exc.status, headers)


def looks_anthropic(request) -> bool:
    """Does this request speak Anthropic's dialect (its headers, or a /v1/messages* path)?"""
    headers = request.headers
    if headers.get("anthropic-version") or headers.get("anthropic-beta") or headers.get("x-api-key"):
        return True
    path = request.path_info or ""
    return path.startswith("/v1/messages") or path.startswith("messages")


def wire_error_response(request, exc: ProxyError, request_id: str | None = None) -> HttpResponse:
    """`exc` in the dialect the request speaks (see looks_anthropic)."""
    render = anthropic_error_response if looks_anthropic(request) else openai_error_response
    return render(exc, request_id)
