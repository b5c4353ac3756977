"""Content-Security-Policy middleware: django-csp's, plus the websocket origin of the request's host.

The policy itself is settings.CONTENT_SECURITY_POLICY (strict: scripts, styles and connections from this
origin only, no inline script, style or event handler). CSP level 3 lets `'self'` match ws:/wss: on the
same host and port, but not every browser implements that, and the run page follows a training run over
`ws(s)://<the host the page came from>/ws/runs/<id>/`; so connect-src names both schemes for that host.
`request.get_host()` is checked against ALLOWED_HOSTS, so nothing unchecked reaches the header; a request
with a bad Host (already answered 400 by Django) gets the policy without them.

The two header values (the policy and the report-only policy) depend only on the settings and that host unless a
view asked for a nonce or decorated its response (`@csp_update` and the like): those go through django-csp as
they are; every other response gets the values built once per host (django-csp builds them anew for each
response: ~0.1 ms of the proxy's hot path, bench/bench_proxy.py). The cache forgets everything when a CSP
setting or DEBUG changes (tests), and holds at most MAX_HOSTS hosts.
"""
from __future__ import annotations

import http.client as http_client
from dataclasses import asdict

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, PolicyParts
from csp.middleware import CSPMiddleware as _DjangoCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed

MAX_HOSTS = 64
# what a view sets on its response to change the policy for that response alone (csp.decorators)
_PER_RESPONSE = ("_csp_config", "_csp_update", "_csp_replace", "_csp_config_ro", "_csp_update_ro",
                 "_csp_replace_ro")
_POLICIES: dict[str | None, tuple[str, str]] = {}


def _forget(*, setting, **kwargs):
    if setting.startswith("CONTENT_SECURITY_POLICY") or setting == "DEBUG":
        _POLICIES.clear()


setting_changed.connect(_forget)


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

    def process_response(self, request, response):
        if getattr(request, "_csp_nonce", None) is not None or any(hasattr(response, a) for a in _PER_RESPONSE):
            return super().process_response(request, response)
        if response.status_code in (http_client.INTERNAL_SERVER_ERROR, http_client.NOT_FOUND) and settings.DEBUG:
            return response  # django-csp leaves Django's debug pages alone
        try:
            key = request.get_host()
        except DisallowedHost:
            key = None
        policies = _POLICIES.get(key)
        if policies is None:
            policies = (
                build_policy(**asdict(self.get_policy_parts(request=request, response=response))),
                build_policy(**asdict(self.get_policy_parts(request=request, response=response, report_only=True)),
                             report_only=True),
            )
            if len(_POLICIES) >= MAX_HOSTS:
                _POLICIES.clear()
            _POLICIES[key] = policies
        for value, header, exempt, setting in ((policies[0], HEADER, "_csp_exempt", "CONTENT_SECURITY_POLICY"),
                                               (policies[1], HEADER_REPORT_ONLY, "_csp_exempt_ro",
                                                "CONTENT_SECURITY_POLICY_REPORT_ONLY")):
            if not value or header in response or getattr(response, exempt, False) is not False:
                continue
            prefixes = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES", None) or ()
            if not request.path_info.startswith(tuple(prefixes)):
                response[header] = value
        if getattr(request, "_csp_nonce", None) is None:  # as django-csp: a nonce asked for after this is an error
            request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response
