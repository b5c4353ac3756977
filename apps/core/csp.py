"""Content-Security-Policy middleware: django-csp's, plus the websocket origin of the request's host.

The policy itself is settings.CONTENT_SECURITY_POLICY (strict: scripts, styles and connections from this
origin only, no inline script, style or event handler). CSP level 3 lets `'self'` match ws:/wss: on the
same host and port, but not every browser implements that, and the run page follows a training run over
`ws(s)://<the host the page came from>/ws/runs/<id>/`; so connect-src names both schemes for that host.
`request.get_host()` is checked against ALLOWED_HOSTS, so nothing unchecked reaches the header; a request
with a bad Host (already answered 400 by Django) gets the policy without them.
"""
from __future__ import annotations

from csp.middleware import CSPMiddleware as _DjangoCSPMiddleware
from csp.middleware import PolicyParts
from django.core.exceptions import DisallowedHost


class CSPMiddleware(_DjangoCSPMiddleware):
    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request=request, response=response, report_only=report_only)
        try:
            host = request.get_host()
        except DisallowedHost:
            return parts
        update = dict(parts.update or {})
        update["connect-src"] = [*(update.get("connect-src") or ()), f"ws://{host}", f"wss://{host}"]
        parts.update = update
        return parts
