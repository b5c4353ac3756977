"""Error bodies of the /v1 wire formats: OpenAI `{"error": {message, type, param, code}}` and
Anthropic `{"type": "error", "error": {type, message}}`."""
from __future__ import annotations

import json

from django.http import HttpResponse

_OPENAI_TYPE = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
                404: "invalid_request_error", 408: "timeout", 409: "invalid_request_error",
                413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}
_ANTHROPIC_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                   404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error",
                   429: "rate_limit_error", 529: "overloaded_error"}

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
        return {"type": "error", "error": {"type": kind, "message": self.message}}


def json_response(body, status: int = 200, headers: dict | None = None) -> HttpResponse:
    resp = HttpResponse(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")
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
