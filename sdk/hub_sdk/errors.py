"""The exceptions of the SDK: one `HubError` family, one class per kind of answer.

Every non-2xx answer of /api has one shape, `{"detail": str, "code": str, "errors": [{"field", "message"}]}`;
/v1 answers with OpenAI's `{"error": {"message", "type", "code"}}`. `error_from_response` reads either into the
matching class, so callers catch `ValidationError` and read `field_errors` instead of parsing bodies."""
from __future__ import annotations

from typing import Any

import httpx


class HubError(Exception):
    """An answer of the hub that is not a success (or no answer at all: `status` 0)."""

    status: int = 0

    def __init__(self, detail: str, *, status: int | None = None, code: str = "error",
                 errors: list[dict[str, Any]] | None = None, body: Any = None):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        self.code = code
        self.errors: list[dict[str, Any]] = list(errors or [])
        self.body = body

    @property
    def field_errors(self) -> dict[str, list[str]]:
        """{field: [messages]} (a message about the whole request is under "")."""
        out: dict[str, list[str]] = {}
        for e in self.errors:
            out.setdefault(e.get("field") or "", []).append(str(e.get("message", "")))
        return out

    @property
    def headline(self) -> str:
        """The detail without the field messages it repeats ("Invalid run: a: …; b: …" -> "Invalid run")."""
        head, sep, rest = self.detail.partition(": ")
        if self.errors and sep and head and all(str(e.get("message", "")) in rest for e in self.errors):
            return head
        return self.detail

    def __str__(self) -> str:
        lines = [self.headline]
        for e in self.errors:
            if e.get("message") != self.headline:
                lines.append(f"  {e.get('field') or '(request)'}: {e.get('message')}")
        return "\n".join(lines)


class NotConfigured(HubError):
    """No hub URL or API key: neither given, nor in HUB_URL / HUB_API_KEY, nor saved by `hub login`."""


class HubUnreachable(HubError):
    """The hub did not answer (connection refused, DNS, timeout)."""


class BadRequest(HubError):
    status = 400


class AuthenticationError(HubError):
    status = 401


class PermissionDenied(HubError):
    status = 403


class NotFound(HubError):
    status = 404


class Conflict(HubError):
    status = 409


class PayloadTooLarge(HubError):
    status = 413


class ValidationError(HubError):
    """422: the input was refused; `errors` / `field_errors` say which field and why. Nothing was saved."""

    status = 422


class RateLimited(HubError):
    status = 429

    @property
    def retry_after(self) -> float | None:
        value = (self.body or {}).get("retry_after") if isinstance(self.body, dict) else None
        return float(value) if isinstance(value, (int, float)) else None


class ServerError(HubError):
    status = 500


class WaitTimeout(HubError):
    """A wait (`watch`, `wait=True`) ran past its timeout; the job itself goes on."""


class JobFailed(HubError):
    """A job the caller waited for finished failed or cancelled; `body` is its last state."""


_BY_STATUS: dict[int, type[HubError]] = {400: BadRequest, 401: AuthenticationError, 403: PermissionDenied,
                                         404: NotFound, 409: Conflict, 413: PayloadTooLarge, 422: ValidationError,
                                         429: RateLimited}


def error_from_response(resp: httpx.Response) -> HubError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    detail, code, errors = "", "error", []
    if isinstance(body, dict) and isinstance(body.get("error"), dict):  # /v1: OpenAI's shape
        err = body["error"]
        detail, code = str(err.get("message") or ""), str(err.get("code") or err.get("type") or "error")
        if err.get("param"):
            errors = [{"field": err["param"], "message": detail}]
    elif isinstance(body, dict):
        detail, code = str(body.get("detail") or ""), str(body.get("code") or "error")
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
    if not detail:
        text = " ".join(resp.text.split())[:200] if body is None else ""
        detail = f"{resp.status_code} {resp.reason_phrase}" + (f": {text}" if text and "<" not in text else "")
    cls = _BY_STATUS.get(resp.status_code) or (ServerError if resp.status_code >= 500 else HubError)
    return cls(detail, status=resp.status_code, code=code, errors=errors, body=body)
