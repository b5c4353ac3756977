"""The dashboard's one mapping of bad requests and of the `ApplicationError` family to pages (each API maps
them once itself, in its own format).

Contract, for every page outside /api and /v1 (the dashboard and Django's admin):
- A NUL byte in the path is a 404 and one in the query string a 422, before any view runs: no URL of the hub
  contains one, and PostgreSQL refuses one in a query (Django's admin would look it up and answer 500).
- A view may let a selector's or a service's `ApplicationError` through; it is answered with the page
  `core/error.html` and the error's status (404 for `NotFound`, 403 for `PermissionDenied`, 422 for
  `ValidationFailed`, 409 for `Conflict`, ...), showing the one-line message, never a 500.
/api and /v1 are left alone: ninja and the proxy validate their inputs and map errors to their own bodies."""
from __future__ import annotations

from django.shortcuts import render
from django.utils.deprecation import MiddlewareMixin

from apps.core.exceptions import ApplicationError, NotFound, ValidationFailed

API_PREFIXES = ("/api/", "/v1/")

_TITLES = {403: "Not allowed", 404: "Not found", 409: "Conflict", 413: "Too large", 422: "Invalid request"}


def error_page(request, exc: ApplicationError):
    status = exc.status_code
    return render(request, "core/error.html", {
        "title": _TITLES.get(status, "Bad request"), "message": exc.message, "code": exc.code, "status": status,
    }, status=status)


class DashboardErrorsMiddleware(MiddlewareMixin):
    def process_request(self, request):
        if request.path.startswith(API_PREFIXES):
            return None
        if "\x00" in request.path:
            return error_page(request, NotFound("No such page."))
        if any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()):
            return error_page(request, ValidationFailed("The query string must not contain NUL bytes."))
        return None

    def process_exception(self, request, exception):
        if not isinstance(exception, ApplicationError) or request.path.startswith(API_PREFIXES):
            return None
        return error_page(request, exception)
