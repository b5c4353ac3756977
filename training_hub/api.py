"""The NinjaAPI mounted at /api: one router per app, one mapping of errors to bodies.

Every error answer has the one `Error` shape of apps/core/schemas.py (`detail`, `code`, optional `errors`),
whether it comes from an `ApplicationError`, ninja's validation (422), an unparsable body (400), a failed
CSRF check (403), a throttle (429) or a 404; each operation documents its statuses with `responses()`."""
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError as NinjaValidationError

from apps.accounts.auth import ApiKeyAuth, SessionAuth
from apps.core.exceptions import ApplicationError

api = NinjaAPI(
    title="Training Hub API",
    version="1",
    urls_namespace="api",
    auth=[ApiKeyAuth(), SessionAuth()],
    docs_url="/docs",
)


@api.exception_handler(ApplicationError)
def _application_error(request, exc: ApplicationError):
    return api.create_response(request, exc.as_dict(), status=exc.status_code)


@api.exception_handler(AuthenticationError)
def _auth_error(request, exc):
    return api.create_response(
        request,
        {"detail": "Authentication required: send `Authorization: Bearer <API key>` or log in.", "code": "unauthenticated"},
        status=401,
    )


_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 429: "throttled"}


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    """ninja's own errors (a body that is not JSON, a failed CSRF check, a throttle) in the one Error shape."""
    return api.create_response(
        request, {"detail": str(exc), "code": _HTTP_CODES.get(exc.status_code, "error")}, status=exc.status_code
    )


@api.exception_handler(Http404)
def _not_found(request, exc):
    return api.create_response(request, {"detail": str(exc) or "Not found.", "code": "not_found"}, status=404)


@api.exception_handler(NinjaValidationError)
def _validation_error(request, exc: NinjaValidationError):
    errors = []
    for err in exc.errors:
        # ninja's loc is (source, field...) and, for a body, (source, parameter, field...): keep the field
        loc = [str(p) for p in err.get("loc", [])]
        source = loc.pop(0) if loc and loc[0] in ("body", "query", "form", "path", "file", "header", "cookie") else ""
        if source in ("body", "form", "file") and len(loc) > 1:
            loc.pop(0)
        errors.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid value")})
    return api.create_response(
        request, {"detail": "Invalid input.", "code": "invalid", "errors": errors}, status=422
    )


from apps.accounts.api import router as accounts_router  # noqa: E402
from apps.core.jobs.api import router as jobs_router  # noqa: E402
from apps.datasets.api import router as datasets_router  # noqa: E402
from apps.registry.api import router as registry_router  # noqa: E402
from apps.training.api import router as training_router  # noqa: E402

api.add_router("/", accounts_router)
api.add_router("/datasets", datasets_router)
api.add_router("/reviews", "apps.review.api.router")  # team review (issue 9)
api.add_router("/", training_router)
api.add_router("/", registry_router)
api.add_router("/", jobs_router)
api.add_router("/", "apps.proxy.api.router")  # providers and alias chains (issue 8)
api.add_router("/", "apps.sources.api.router")  # /api/sources, /api/generations (issue 10)
api.add_router("/", "apps.arena.api.router")  # /api/arenas (issue 11)
api.add_router("/", "apps.monitoring.api.router")  # /api/monitoring/*, /api/alerts (issue 11)
api.add_router("/", "apps.experiments.api.router")  # /api/experiments, /api/feedback, /api/rollouts (issue 11)
api.add_router("/", "apps.registry.tools.api.router")  # /api/tools: the tool registry (issue 12)
api.add_router("/", "apps.registry.exports.api.router")  # /api/models/{id}/exports, /api/exports (issue 12)
api.add_router("/", "apps.registry.bundles.api.router")  # /api/exports/{id}/bundles, /api/bundles (issue 12)
api.add_router("/commands", "apps.commands.api.router")  # /api/commands/parse: the command bar, `hub do` (issue 14)
api.add_router("/", "apps.evaluations.api.router")  # /api/evaluations, /api/rewards/components (issue 13)
