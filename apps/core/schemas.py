"""The one error body of /api and the helper every operation uses to document the statuses it returns.

Contract: every non-2xx answer of /api has the `Error` shape — `{"detail": str, "code": str,
"errors": [{"field": str | null, "message": str}]}` (extra keys allowed, e.g. `retry_after`).
`ApplicationError.as_dict()`, ninja's own validation / parse / auth / 404 errors (mapped in
training_hub/api.py) and the throttle all produce it. An operation declares its responses with
`responses({200: Out}, 404, 409)`: the statuses any authenticated operation can return (401, 429) are
added for it, 422 for an operation that reads parameters (`inputs=True`, the default), 400 (a body that is
not JSON) for one that reads a JSON body (`body=True`), and 403 (a session caller's failed CSRF check) and
413 (a body past HUB_MAX_BODY_MB, refused from Content-Length by training_hub/asgi_guard.py) for a write
(`write=True`, implied by `body`)."""
from __future__ import annotations

from ninja import Schema

ALWAYS = (401, 429)  # no or a bad credential; too many attempts


class FieldError(Schema):
    field: str | None = None
    message: str


class Error(Schema):
    detail: str
    code: str
    errors: list[FieldError] = []


def responses(ok: dict, *statuses: int, inputs: bool = True, body: bool = False, write: bool = False) -> dict:
    """`{200: Out}` plus an `Error` body for each error status the operation can answer with."""
    out = dict(ok)
    implied = ((422,) if inputs or body else ()) + ((400,) if body else ()) + ((403, 413) if write or body else ())
    for status in (*ALWAYS, *implied, *statuses):
        out.setdefault(status, Error)
    return dict(sorted(out.items()))
