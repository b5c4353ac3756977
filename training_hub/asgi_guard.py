"""ASGI middleware in front of Django (training_hub/asgi.py): what must happen before a body is read.

Django's ASGI handler spools the whole request body to a temporary file before any middleware or
view runs, so size limits and authentication checked there come too late: an anonymous client could
make the server store any amount of data. `RequestGuard` answers from the headers instead.

HTTP (`RequestGuard`), in this order:
1. Size. A body larger than its limit is refused with 413 from `Content-Length`, before one byte is
   read. Limits: multipart uploads HUB_MAX_UPLOAD_MB (+64 KiB for the form around the file, as the
   upload views count it) from an authenticated client, every other body HUB_MAX_BODY_MB (JSON on
   /api and /v1, dashboard forms, and any body from an anonymous client). A body without
   Content-Length (chunked) is counted while it streams and refused with the same 413 the moment it
   passes the limit.
2. Credentials, on /api and /v1 only. An API key (`Authorization: Bearer` or `x-api-key`) is checked
   first against the failed-attempt throttle (429 while its IP or key is locked, with Retry-After),
   then against the key cache (apps.accounts.key_cache: no database query on a hit); a wrong key
   counts as a failed attempt. A request that writes (any method but GET/HEAD/OPTIONS) or carries a
   body must have a valid key or a valid session (the session cookie is loaded and its user checked,
   as Django's auth does), else it gets 401 before its body is read. Reads without a body go on to
   Django unchanged, so what the API serves anonymously today (/api/docs, /api/openapi.json) still
   works. CSRF stays Django's and ninja's job: a valid session lets the request through to them.
3. Errors are in the interface's format: on /v1 OpenAI's `{"error": {...}}` (Anthropic's
   `{"type": "error", ...}` on /v1/messages), on /api `{"detail", "code"}`, elsewhere a plain page.

Websockets (`HostPortOriginValidator`): channels' AllowedHostsOriginValidator compares only the
Origin's host with ALLOWED_HOSTS, so a page on another port of the same host (another local app)
could open the run streams. This one accepts an Origin only when its host:port (without scheme,
default ports filled in from the Origin's scheme) equals the request's Host header and that host is
in ALLOWED_HOSTS, or when the Origin is listed in CSRF_TRUSTED_ORIGINS. Anything else is closed
before the consumer runs.
"""
from __future__ import annotations

import json
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import urlsplit

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings

MIB = 1024 * 1024
MULTIPART_OVERHEAD = 64 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}


def interface(path: str) -> str:
    if path == "/v1" or path.startswith("/v1/"):
        return "anthropic" if path.startswith("/v1/messages") else "openai"
    if path == "/api" or path.startswith("/api/"):
        return "api"
    return "page"


# --- responses ------------------------------------------------------------------------------------
async def _send(send, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
    out = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]  # the body, if any, was not read: this connection is done
    out += [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


async def error(send, iface: str, status: int, message: str, code: str, *, headers: dict | None = None,
                field: str | None = None) -> None:
    """One error, rendered the way the interface at this path renders its errors."""
    headers = dict(headers or {})
    if iface in ("openai", "anthropic"):
        from apps.proxy.errors import ProxyError, retry_headers

        exc = ProxyError(status, message, code=code)
        body = exc.anthropic_body() if iface == "anthropic" else exc.openai_body()
        headers = {**retry_headers(status), **headers}
        await _send(send, status, json.dumps(body).encode(), "application/json", headers)
    elif iface == "api":
        body = {"detail": message, "code": code}
        if field:
            body["errors"] = [{"field": field, "message": message}]
        await _send(send, status, json.dumps(body).encode(), "application/json", headers)
    else:
        from django.utils.html import escape

        title = {401: "Authentication required", 413: "Request too large", 429: "Too many attempts"}.get(
            status, "Request refused")
        page = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>"
                f"<body><h1>{title}</h1><p>{escape(message)}</p><p><a href=\"/\">Back to Training Hub</a></p>"
                "</body></html>")
        await _send(send, status, page.encode(), "text/html; charset=utf-8", headers)


# --- credentials ----------------------------------------------------------------------------------
def _session_user_ok(session_key: str) -> bool:
    """The session exists, is logged in, and its user is active with a matching auth hash."""
    from django.contrib import auth

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = auth.get_user(SimpleNamespace(session=store))
    return bool(user.is_authenticated and user.is_active)


def _close_connections() -> None:
    """The guard's database work ran on its own short-lived thread: close what it opened there."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()


def _client_ip(scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def api_key_from(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


class _Auth:
    """What the guard learnt about the caller; `db_used` says a connection may need closing."""

    def __init__(self, scope, headers):
        self.scope, self.headers = scope, headers
        self.key = api_key_from(headers)
        self.key_ok: bool | None = None
        self.session_ok: bool | None = None
        self.db_used = False

    @property
    def session_key(self) -> str | None:
        from django.http.cookie import parse_cookie  # what Django's request.COOKIES uses

        raw = self.headers.get("cookie")
        return parse_cookie(raw).get(settings.SESSION_COOKIE_NAME) or None if raw else None

    async def check_key(self) -> bool:
        from apps.accounts import key_cache

        if self.key_ok is None:
            if not key_cache.is_cached(self.key):
                self.db_used = True  # a miss reads the database
            self.key_ok = await key_cache.auser_id_for(self.key) is not None
        return self.key_ok

    async def check_session(self) -> bool:
        if self.session_ok is None:
            key = self.session_key
            self.session_ok = False
            if key:
                self.db_used = True
                self.session_ok = await sync_to_async(_session_user_ok)(key)
        return self.session_ok


class RequestGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        iface = interface(scope.get("path", ""))
        method = scope.get("method", "GET").upper()
        raw_length = headers.get("content-length")
        try:
            length = int(raw_length) if raw_length is not None else None
            if length is not None and length < 0:
                raise ValueError
        except ValueError:
            return await error(send, iface, 400, "The Content-Length header is not a number.", "invalid")
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        has_body = bool(length) or chunked
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        # An upload may be as large as `large` from a known client; anyone else gets `small`.
        large = small = settings.HUB_MAX_BODY_MB * MIB
        if multipart:
            large = settings.HUB_MAX_UPLOAD_MB * MIB + MULTIPART_OVERHEAD
            small = min(small, large)

        # 1. Larger than anything this request could be allowed: refused from the header alone.
        if length is not None and length > large:
            return await self._too_large(send, iface, multipart, large)

        auth = _Auth(scope, headers)
        async with ThreadSensitiveContext():  # the guard's own thread for any database work
            try:
                refused = await self._authenticate(auth, send, iface, method, has_body)
                limit = small
                if not refused and large > small and has_body and (length is None or length > small):
                    limit = large if (auth.key_ok or await auth.check_session()) else small
            finally:
                if auth.db_used:
                    await sync_to_async(_close_connections)()
        if refused:
            return
        if length is not None and length > limit:
            return await self._too_large(send, iface, multipart, limit)
        if not has_body:
            return await self.app(scope, receive, send)
        return await self._capped(scope, receive, send, iface, multipart, limit)

    async def _authenticate(self, auth: _Auth, send, iface: str, method: str, has_body: bool) -> bool:
        """On /api and /v1: 429/401 before the body is read. True when a response was sent."""
        if iface == "page":
            return False
        from apps.accounts import services, throttle

        bad_key = False
        if auth.key:
            parsed = services.api_key_parse(auth.key)
            account = parsed[0] if parsed else None
            ip = _client_ip(auth.scope)
            wait = await throttle.aretry_after(throttle.API_KEY, ip=ip, account=account)
            if wait:
                await error(send, iface, 429, f"Too many failed API key attempts from this address or for this "
                            f"key; try again in {wait} s.", "throttled" if iface == "api" else "rate_limit_exceeded",
                            headers={"retry-after": wait, **({} if iface == "api" else {"x-should-retry": "false"})})
                return True
            if await auth.check_key():
                return False
            bad_key = True
            await throttle.arecord_failure(throttle.API_KEY, ip=ip, account=account)
        if not (bad_key or has_body or method not in SAFE_METHODS):
            return False  # an anonymous read: Django decides (some are public)
        if await auth.check_session():
            return False
        if iface == "api":
            message = ("Invalid API key." if bad_key else
                       "Authentication required: send `Authorization: Bearer <API key>` or log in.")
            await error(send, iface, 401, message, "unauthenticated", headers={"www-authenticate": "Bearer"})
        else:
            message = ("Incorrect API key provided. Create one on the API keys page." if bad_key else
                       "You didn't provide an API key: send `Authorization: Bearer <key>` (or `x-api-key`).")
            await error(send, iface, 401, message, "invalid_api_key")
        return True

    async def _too_large(self, send, iface: str, multipart: bool, limit: int) -> None:
        upload_limit = settings.HUB_MAX_UPLOAD_MB * MIB + MULTIPART_OVERHEAD
        if multipart and limit >= upload_limit:
            message = f"The upload is larger than the {settings.HUB_MAX_UPLOAD_MB} MB limit."
        elif multipart:
            message = (f"The request is larger than the {settings.HUB_MAX_BODY_MB} MB limit for clients that "
                       "are not logged in.")
        else:
            message = f"The request body is larger than the {settings.HUB_MAX_BODY_MB} MB limit."
        code = "too_large" if iface in ("api", "page") else "request_too_large"
        await error(send, iface, 413, message, code, field="file" if multipart else None)

    async def _capped(self, scope, receive, send, iface: str, multipart: bool, limit: int):
        """Pass the request on, counting body bytes; past `limit` Django is told the client left
        (it stops reading and sends nothing) and the 413 is sent from here."""
        state = {"received": 0, "over": False, "started": False}

        async def capped_receive():
            message = await receive()
            if message["type"] == "http.request" and not state["over"]:
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message):
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, capped_receive, tracking_send)
        if state["over"] and not state["started"]:
            await self._too_large(send, iface, multipart, limit)


# --- websockets -----------------------------------------------------------------------------------
def _host_port(netloc: str, default_port: int) -> tuple[str, int] | None:
    """'Example.com:8000' -> ('example.com', 8000); no port -> the default; None when malformed."""
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host.lower(), port or default_port


def _trusted(origin: str, scheme: str, netloc: str) -> bool:
    from django.utils.http import is_same_domain

    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        t = urlsplit(trusted)
        if "*" in t.netloc:
            if t.scheme == scheme and is_same_domain(netloc, t.netloc.lstrip("*")):
                return True
        elif trusted.rstrip("/").lower() == origin.rstrip("/").lower():
            return True
    return False


def origin_allowed(scope) -> bool:
    from django.http.request import split_domain_port, validate_host

    headers = _headers(scope)
    origin, host_header = headers.get("origin"), headers.get("host")
    if not origin or not host_header:
        return False  # browsers always send both; channels' validator refused a missing Origin too
    parsed = urlsplit(origin)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return False
    domain, _ = split_domain_port(host_header.lower())
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    if not domain or not validate_host(domain, allowed_hosts):
        return False
    default = DEFAULT_PORTS[parsed.scheme]
    if _trusted(origin, parsed.scheme, parsed.netloc.lower()):
        return True
    theirs, ours = _host_port(parsed.netloc, default), _host_port(host_header, default)
    return theirs is not None and theirs == ours


class HostPortOriginValidator:
    """Closes a websocket whose Origin is not this server's host:port (see the module docstring)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)
