"""The request path of /v1, shared by the OpenAI and Anthropic views and the playground:
authenticate, resolve the model, call the upstream (the inference process, vLLM, or Together) over
OpenAI HTTP, and re-frame its stream so clients always get the contract's shape.

No database writes here: the request log is queued after the response (services.request_log_enqueue).
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

import httpx
from asgiref.sync import sync_to_async
from django.http import HttpResponse, StreamingHttpResponse
from django.http.request import RawPostDataException
from django.core.exceptions import RequestDataTooBig

from apps.accounts import key_cache
from apps.accounts.auth import bearer_token
from apps.core import invalidation
from apps.proxy import selectors, services, upstream
from apps.proxy.errors import RETRYABLE, ProxyError, anthropic_error_response, json_response, openai_error_response
from apps.proxy.selectors import Route

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class Call:
    """Everything known about one /v1 call; becomes the request-log payload."""

    endpoint: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    user_id: int | None = None
    idempotency_key: str = ""
    model_requested: str = ""
    route: Route | None = None
    stream: bool = False
    request_body: dict = field(default_factory=dict)
    status_code: int = 200
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    response_body: dict = field(default_factory=dict)
    error: str = ""
    logged: bool = False

    def mark_first_token(self):
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000

    def set_usage(self, usage: dict | None):
        if isinstance(usage, dict):
            self.prompt_tokens = _int_or_none(usage.get("prompt_tokens", usage.get("input_tokens")))
            self.completion_tokens = _int_or_none(usage.get("completion_tokens", usage.get("output_tokens")))

    def fail(self, exc: ProxyError):
        self.status_code = exc.status
        self.error = exc.message

    def log(self):
        """Queue the log row once (after the response, or when the stream ends)."""
        if self.logged:
            return
        self.logged = True
        services.request_log_enqueue({
            "request_id": self.request_id, "idempotency_key": self.idempotency_key[:200],
            "user_id": self.user_id, "endpoint": self.endpoint, "model_requested": self.model_requested,
            "model_served": self.route.upstream_model if self.route else "",
            "model_version_id": self.route.version_id if self.route else None,
            "stream": self.stream, "status_code": self.status_code,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 2),
            "ttft_ms": round(self.ttft_ms, 2) if self.ttft_ms is not None else None,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "request": services.trim(self.request_body), "response": services.trim(self.response_body),
            "error": self.error[:2000], "started_at": self.started_at,
        })


def _int_or_none(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


# --- hot-path caches -----------------------------------------------------------------------------
# Without them every call costs a thread hop and a fresh database connection (Django runs each ASGI
# request's sync code on its own thread). API keys: apps.accounts.key_cache. Routes: resolved names,
# kept until the registry publishes invalidation.ROUTES (deploy, rollback, an alias or version edited) over
# apps.core.invalidation, which reaches this and every other web process within a second. No TTL: a
# route is stored only while this process's invalidation listener is live. Failures are never cached.
_route_cache: dict[tuple, Route] = {}
_route_generation = invalidation.Generation()


def _forget_routes(topic: str = "*", payload: str = "") -> None:
    _route_generation.bump()
    _route_cache.clear()


invalidation.on(invalidation.ROUTES, _forget_routes)
invalidation.on("*", _forget_routes)


def caches_clear() -> None:
    key_cache.clear()
    _forget_routes()


# --- request parsing ----------------------------------------------------------------------------
async def authenticate(request, call: Call):
    """API key (`Authorization: Bearer` or `x-api-key`), else the dashboard session with CSRF."""
    raw = bearer_token(request) or request.headers.get("x-api-key")
    if raw:
        user_id = await key_cache.auser_id_for(raw)
        if user_id is None:
            raise ProxyError(401, "Incorrect API key provided. Create one on the API keys page.",
                             code="invalid_api_key")
        call.user_id = user_id
        call.idempotency_key = request.headers.get("Idempotency-Key", "") or ""
        return user_id
    else:
        user = await request.auser()
        if not user.is_authenticated:
            raise ProxyError(401, "You didn't provide an API key: send `Authorization: Bearer <key>` "
                             "(or `x-api-key`).", code="invalid_api_key")
        if request.method == "POST":
            from django.middleware.csrf import CsrfViewMiddleware

            if CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is not None:
                raise ProxyError(403, "CSRF check failed: session-authenticated calls need the X-CSRFToken "
                                 "header.", code="csrf_failed")
    call.user_id = user.pk
    call.idempotency_key = request.headers.get("Idempotency-Key", "") or ""
    return user


def parse_json(request) -> dict:
    try:
        raw = request.body
    except (RequestDataTooBig, RawPostDataException):
        raise ProxyError(413, "The request body is too large.", code="request_too_large")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ProxyError(400, "We could not parse the JSON body of your request.", code="invalid_json")
    if not isinstance(body, dict):
        raise ProxyError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


async def resolve(call: Call, name: str, *, anthropic: bool = False) -> Route:
    call.model_requested = name
    from django.conf import settings

    key = (name, anthropic, settings.HUB_INFERENCE_URL, settings.TOGETHER_BASE_URL, settings.TOGETHER_API_KEY)
    route = _route_cache.get(key)
    if route is None:
        generation, live = _route_generation.value, invalidation.is_live()
        route = await sync_to_async(selectors.route_resolve)(name, anthropic=anthropic)
        if route is not None and live and _route_generation.value == generation:
            if len(_route_cache) > 10_000:
                _route_cache.clear()
            _route_cache[key] = route
    if route is None:
        raise ProxyError(404, f"The model `{name}` does not exist or you do not have access to it.",
                         param="model", code="model_not_found")
    call.route = route
    return route


# --- upstream -----------------------------------------------------------------------------------
def _upstream_error(status: int, raw: bytes) -> ProxyError:
    message, param, code, etype = None, None, None, None
    try:
        data = json.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            message, param, code, etype = err.get("message"), err.get("param"), err.get("code"), err.get("type")
        elif isinstance(err, str):
            message = err
        elif isinstance(data, dict) and isinstance(data.get("detail"), str):
            message = data["detail"]
    except ValueError:
        pass
    message = str(message or raw[:300].decode("utf-8", "replace") or f"HTTP {status}")
    code = str(code) if code is not None else None
    if status in (401, 403):
        return ProxyError(502, f"The model server rejected the hub's credentials: {message}",
                          type="server_error", code="upstream_auth_failed")
    if status >= 500:
        return ProxyError(503 if status == 503 else 502, f"The model server failed: {message}",
                          type="server_error", code=code or "upstream_error")
    return ProxyError(status, message, type=etype, param=param, code=code)


async def open_upstream(route: Route, path: str, body: dict) -> httpx.Response:
    """POST to the upstream and return the response with its body not yet read (the caller
    closes it). Errors before the first byte become ProxyErrors with the right status."""
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if route.api_key:
        headers["authorization"] = f"Bearer {route.api_key}"
    client = upstream.client()
    req = client.build_request("POST", route.base_url + path, json=body, headers=headers)
    try:
        resp = await client.send(req, stream=True)
    except httpx.TimeoutException:
        raise ProxyError(504, "The model server did not answer in time.", type="server_error",
                         code="upstream_timeout")
    except httpx.HTTPError as exc:
        raise ProxyError(502, f"The model server is unreachable ({type(exc).__name__}); is the inference "
                         "process running?", type="server_error", code="upstream_unavailable")
    if resp.status_code >= 400:
        try:
            raw = await resp.aread()
        finally:
            await resp.aclose()
        exc = _upstream_error(resp.status_code, raw)
        if exc.status in RETRYABLE:  # the upstream knows best when to come back
            exc.headers.update({k: resp.headers[k] for k in ("retry-after", "retry-after-ms") if k in resp.headers})
        raise exc
    return resp


async def read_json(resp: httpx.Response) -> dict:
    try:
        raw = await resp.aread()
    except httpx.HTTPError as exc:
        raise ProxyError(502, f"The model server dropped the connection ({type(exc).__name__}).",
                         type="server_error", code="upstream_error")
    finally:
        await resp.aclose()
    try:
        data = json.loads(raw)
        assert isinstance(data, dict)
        return data
    except (ValueError, AssertionError):
        raise ProxyError(502, "The model server sent an invalid response.", type="server_error",
                         code="upstream_error")


class UpstreamStreamError(Exception):
    """The upstream failed after the response started (a dropped connection, an error event, a
    stream that ended without [DONE])."""

    def __init__(self, message: str, error: dict | None = None):
        super().__init__(message)
        self.error = error or {"message": message, "type": "server_error", "param": None,
                               "code": "upstream_stream_error"}


async def sse_events(resp: httpx.Response) -> AsyncIterator[dict]:
    """Parsed `data:` events of an OpenAI SSE stream; raises UpstreamStreamError on failure."""
    done = False
    try:
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue  # comments, keep-alives, event names
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                obj = json.loads(data)
            except ValueError:
                raise UpstreamStreamError("The model server sent a malformed stream event.")
            if isinstance(obj, dict) and obj.get("error") is not None:
                err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
                err = {"message": str(err.get("message") or "The model server failed mid-stream."),
                       "type": err.get("type") or "server_error", "param": err.get("param"),
                       "code": err.get("code") or "upstream_stream_error"}
                raise UpstreamStreamError(err["message"], err)
            if isinstance(obj, dict):
                yield obj
    except httpx.HTTPError as exc:
        raise UpstreamStreamError(f"The model server dropped the stream ({type(exc).__name__}).")
    finally:
        await resp.aclose()
    if not done:
        raise UpstreamStreamError("The model server closed the stream before it finished.")


def upstream_chat_body(body: dict, route: Route) -> dict:
    out = dict(body)
    out["model"] = route.upstream_model
    if out.get("stream"):
        out["stream_options"] = {"include_usage": True}  # always: the log needs token counts
    else:
        out.pop("stream_options", None)
    return out


# --- the shared request path of the generating endpoints ----------------------------------------
@dataclass(frozen=True)
class Wire:
    """What differs between the OpenAI and the Anthropic dialect around a call: how an error is
    rendered, and which headers carry the request id."""

    error_response: Callable[[ProxyError, str | None], HttpResponse]
    id_headers: tuple[str, ...]

    def headers(self, call: Call) -> dict:
        return {name: call.request_id for name in self.id_headers}


OPENAI = Wire(openai_error_response, ("x-request-id",))
ANTHROPIC = Wire(anthropic_error_response, ("request-id", "x-request-id"))


def method_not_allowed(request, call: Call, wire: Wire) -> HttpResponse:
    return wire.error_response(ProxyError(405, f"Method {request.method} is not allowed here.",
                                          code="method_not_allowed"), call.request_id)


async def relay(request, call: Call, *, wire: Wire, validate: Callable[[dict], dict], path: str,
                render: Callable[[dict], dict], stream: Callable[[dict, httpx.Response], AsyncIterator[str]],
                anthropic: bool = False) -> HttpResponse:
    """POST /v1/chat/completions, /v1/completions and /v1/messages: check the method, authenticate,
    parse and `validate` the body (which returns the OpenAI request to forward), resolve the model,
    open the upstream at `path`. A streamed call returns `stream(clean, resp)` as SSE; otherwise the
    upstream JSON goes through `render(data)` (which also records usage on the call). Every
    ProxyError on the way is logged and rendered once, in the dialect of `wire`."""
    if request.method != "POST":
        return method_not_allowed(request, call, wire)
    try:
        await authenticate(request, call)
        body = parse_json(request)
        call.request_body = body
        clean = validate(body)
        call.stream = bool(clean.get("stream"))
        route = await resolve(call, clean["model"], anthropic=anthropic)
        resp = await open_upstream(route, path, upstream_chat_body(clean, route))
        if not call.stream:
            data = await read_json(resp)
    except ProxyError as exc:
        call.fail(exc)
        call.log()
        return wire.error_response(exc, call.request_id)
    if call.stream:
        response = StreamingHttpResponse(stream(clean, resp), content_type="text/event-stream",
                                         headers=SSE_HEADERS)
        for name, value in wire.headers(call).items():
            response[name] = value
        return response
    out = render(data)
    call.response_body = out
    call.log()
    return json_response(out, headers=wire.headers(call))
