"""Training Hub SDK: a typed Python client of a hub's /api and /v1, and the `hub` command line.

    from hub_sdk import Hub
    hub = Hub()  # HUB_URL / HUB_API_KEY, or what `hub login` saved
"""
__version__ = "0.1.0"

from hub_sdk.client import Hub  # noqa: E402
from hub_sdk.errors import (  # noqa: E402
    AuthenticationError, Conflict, HubError, HubUnreachable, JobFailed, NotConfigured, NotFound, PermissionDenied,
    RateLimited, ServerError, ValidationError, WaitTimeout,
)

__all__ = ["Hub", "HubError", "ValidationError", "NotFound", "Conflict", "PermissionDenied", "AuthenticationError",
           "RateLimited", "ServerError", "HubUnreachable", "NotConfigured", "WaitTimeout", "JobFailed", "__version__"]
