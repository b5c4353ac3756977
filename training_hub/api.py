"""The NinjaAPI mounted at /api: one router per app, one mapping of errors to bodies."""
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError as NinjaValidationError

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


@api.exception_handler(NinjaValidationError)
def _validation_error(request, exc: NinjaValidationError):
    errors = []
    for err in exc.errors:
        loc = [str(p) for p in err.get("loc", []) if p not in ("body", "payload", "query", "form", "path", "file")]
        errors.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid value")})
    return api.create_response(
        request, {"detail": "Invalid input.", "code": "invalid", "errors": errors}, status=422
    )


from apps.accounts.api import router as accounts_router  # noqa: E402
from apps.datasets.api import router as datasets_router  # noqa: E402
from apps.registry.api import router as registry_router  # noqa: E402
from apps.training.api import router as training_router  # noqa: E402

api.add_router("/", accounts_router)
api.add_router("/datasets", datasets_router)
api.add_router("/", training_router)
api.add_router("/", registry_router)
