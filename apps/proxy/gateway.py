"""The request path of /v1, shared by the OpenAI, Anthropic and Responses views and the playground:
authenticate, resolve the requested name to a plan (an alias's fallback chain, its deployed version, or a
version by id), apply the alias's settings, try the targets in order, and hand the first answer to the
dialect's renderer or stream.

Contract (README, "Fallback chains"):
- Before the first byte of an answer reaches the client, a target that fails is followed by the next one:
  connect errors, timeouts (connect, first byte, total), 429, 5xx / 529 overload, the provider refusing the
  hub's key or not knowing the model, a malformed answer, a stream that breaks before its first content, a
  400 that says the request needs a feature the target lacks (`unsupported_value`), and a prompt longer than
  the target's context (estimated before sending, or the upstream's own 400 saying so). Open circuit
  breakers (apps.proxy.breaker), disabled providers and a full concurrency cap skip a target. Other 4xx
  answers are the client's to fix and are returned at once. With no target left the client gets the last
  real failure in its dialect (a context overflow everywhere: OpenAI 400 `context_length_exceeded`,
  Anthropic `invalid_request_error` "prompt is too long: N tokens > M maximum").
- After the first byte nothing is retried and nothing is silently cut: the dialect's stream ends with its
  error event (`UpstreamStreamError`, raised by `sse_events`), and a tool call is released to the dialects
  only whole (`sse_events` holds tool-call fragments until the upstream's message ends).
- Every answer of `relay`, errors included, carries x-request-id and `x-hub-served-by` (a target label or
  `none`), `x-hub-fallback` (true/false), `x-hub-upstream-ms` (waiting on upstreams, every attempt, until the
  answer began) and `x-hub-overhead-ms` (the hub's own time until then).
- A warm request touches no database: plans are cached per process until invalidation.ROUTES (deploys,
  provider and chain edits, experiments started or ended) or "*" (the listener reconnected).
- While an experiment or canary runs on the alias (apps.experiments), the cached plan carries its split and
  the caller's sticky arm is picked per request by hashing (no I/O); the call is logged with `experiment_id`
  and `arm`, and its answer carries `x-hub-arm: <experiment id>/<arm>`.
Where: the loop over targets is apps/proxy/fallback.py, one target's call apps/proxy/upstream.py, the
Anthropic-to-Anthropic passthrough apps/proxy/native.py, plans apps/proxy/selectors.py + routing.py, breakers
apps/proxy/breaker.py. No database writes here: the request log is queued after the response
(services.request_log_enqueue).
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, StreamingHttpResponse
from django.http.request import RawPostDataException

from apps.accounts import key_cache
from apps.accounts.auth import bearer_token
from apps.core import invalidation
from apps.experiments import assign
from apps.proxy import breaker, fallback, limits, native, selectors, services, upstream
from apps.proxy.coalesce import coalesce
from apps.proxy.errors import ProxyError, anthropic_error_response, json_response, loads, openai_error_response
from apps.proxy.routing import Plan, Route
from apps.proxy.fallback import context_error, upstream_chat_body
from apps.proxy.upstream import UpstreamStreamError

__all__ = ["Call", "Route", "Plan", "UpstreamStreamError", "authenticate", "parse_json", "resolve", "resolve_plan",
           "sse_events", "relay", "Wire", "OPENAI", "ANTHROPIC", "method_not_allowed", "hub_headers",
           "caches_clear", "context_error", "upstream_chat_body"]

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# Events of a stream that are ready together leave in one write (apps/proxy/coalesce.py); HUB_PROXY_COALESCE=0
# writes each on its own (the benchmark's before/after).
COALESCE = os.environ.get("HUB_PROXY_COALESCE", "1") != "0"


@dataclass
class Call:
    """Everything known about one /v1 call; becomes the request-log payload."""

    endpoint: str
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    user_id: int | None = None
    key: key_cache.KeyInfo | None = None  # the API key and its limits (None: a dashboard session)
    idempotency_key: str = ""
    model_requested: str = ""
    route: Route | None = None  # the target that served (or, before that, the plan's first)
    plan: Plan | None = None
    served: Route | None = None
    fallback: bool = False
    attempts: list = field(default_factory=list)  # [{target, status, error, ms}]
    upstream_ms: float = 0.0
    answered_at: float | None = None  # perf_counter when the response (or its headers) was ready
    tools_dropped: int = 0
    client_headers: dict = field(default_factory=dict)
    stream: bool = False
    request_body: dict = field(default_factory=dict)
    status_code: int = 200
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    response_body: dict = field(default_factory=dict)
    error: str = ""
    logged: bool = False
    experiment_id: int | None = None  # the experiment whose arm serves the call (apps.experiments.assign)
    arm: str = ""
    unit: str = ""  # the sticky unit, hashed

    def mark_first_token(self):
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000

    def mark_answered(self):
        if self.answered_at is None:
            self.answered_at = time.perf_counter()

    @property
    def overhead_ms(self) -> float:
        end = self.answered_at if self.answered_at is not None else time.perf_counter()
        return max(0.0, (end - self.started) * 1000 - self.upstream_ms)

    def set_usage(self, usage: dict | None):
        if isinstance(usage, dict):
            self.prompt_tokens = _int_or_none(usage.get("prompt_tokens", usage.get("input_tokens")))
            self.completion_tokens = _int_or_none(usage.get("completion_tokens", usage.get("output_tokens")))

    def fail(self, exc: ProxyError):
        self.status_code = exc.status
        self.error = exc.message

    def attempt(self, route: Route, status: str, error: str, ms: float) -> None:
        self.attempts.append({"target": route.label, "status": status, "error": error[:500], "ms": round(ms, 2)})

    def log(self):
        """Queue the log row once (after the response, or when the stream ends)."""
        if self.logged:
            return
        self.logged = True
        served = self.served
        services.request_log_enqueue({
            "request_id": self.request_id, "idempotency_key": self.idempotency_key[:200],
            "user_id": self.user_id, "api_key_id": getattr(self.key, "id", None), "endpoint": self.endpoint,
            "model_requested": self.model_requested, "alias": (self.plan.alias or "") if self.plan else "",
            "model_served": served.upstream_model if served else "",
            "model_version_id": served.version_id if served else None,
            "served_by": served.label if served else "", "fallback": self.fallback, "attempts": self.attempts,
            "stream": self.stream, "status_code": self.status_code,
            "latency_ms": round((time.perf_counter() - self.started) * 1000, 2),
            "ttft_ms": round(self.ttft_ms, 2) if self.ttft_ms is not None else None,
            "upstream_ms": round(self.upstream_ms, 2), "overhead_ms": round(self.overhead_ms, 2),
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "tools_dropped": self.tools_dropped,
            "request": services.trim(self.request_body), "response": services.trim(self.response_body),
            "error": self.error[:2000], "started_at": self.started_at,
            "experiment_id": self.experiment_id, "arm": self.arm, "unit": self.unit,
        })


def _int_or_none(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def hub_headers(call: Call) -> dict:
    """Who served the call, whether a fallback did, and where the time went (until the answer began)."""
    out = {"x-hub-served-by": call.served.label if call.served else "none",
           "x-hub-fallback": "true" if call.fallback else "false",
           "x-hub-upstream-ms": f"{call.upstream_ms:.1f}", "x-hub-overhead-ms": f"{call.overhead_ms:.1f}"}
    if call.arm:
        out["x-hub-arm"] = f"{call.experiment_id}/{call.arm}"
    return out


# --- hot-path caches -----------------------------------------------------------------------------
# Without them every call costs a thread hop and a fresh database connection (Django runs each ASGI
# request's sync code on its own thread). API keys: apps.accounts.key_cache. Plans: resolved names with
# their targets (providers' decrypted keys included) and alias settings, kept until the registry or the
# provider/chain services publish invalidation.ROUTES (deploy, rollback, an alias, version, provider or chain
# edited) over apps.core.invalidation, which reaches this and every other web process within a second. No
# TTL: a plan is stored only while this process's invalidation listener is live. Failures are never cached.
_route_cache: dict[tuple, Plan] = {}
_route_generation = invalidation.Generation()


def _forget_routes(topic: str = "*", payload: str = "") -> None:
    _route_generation.bump()
    _route_cache.clear()


invalidation.on(invalidation.ROUTES, _forget_routes)
invalidation.on("*", _forget_routes)


def caches_clear() -> None:
    from apps.accounts import throttle

    key_cache.clear()
    throttle._forget_clear()
    _forget_routes()
    breaker.forget_local()


# --- request parsing ----------------------------------------------------------------------------
async def authenticate(request, call: Call):
    """API key (`Authorization: Bearer` or `x-api-key`), else the dashboard session with CSRF."""
    raw = bearer_token(request) or request.headers.get("x-api-key")
    if raw:
        call.key = await key_cache.aresolve(raw)
        if call.key is None:
            raise ProxyError(401, "Incorrect API key provided. Create one on the API keys page.",
                             code="invalid_api_key")
        limits.check_expiry(call.key)  # 401 key_expired
        call.user_id = user_id = call.key.user_id
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
        body = loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ProxyError(400, "We could not parse the JSON body of your request.", code="invalid_json")
    if not isinstance(body, dict):
        raise ProxyError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


async def resolve_plan(call: Call, name: str, *, anthropic: bool = False, headers=None) -> Plan:
    """The plan for a requested name (cached); 404 model_not_found when it names nothing. While an experiment
    runs on the alias, the plan of the arm the caller sticks to (by its key, user or session `headers`: see
    apps.experiments.assign), chosen from the cached split: no database, a few microseconds."""
    call.model_requested = name
    key = (name, anthropic, settings.HUB_INFERENCE_URL, settings.TOGETHER_BASE_URL, settings.TOGETHER_API_KEY,
           settings.HUB_PROXY_TIMEOUT_S)
    plan = _route_cache.get(key)
    if plan is None:
        generation, live = _route_generation.value, invalidation.is_live()
        plan = await sync_to_async(selectors.plan_resolve)(name, anthropic=anthropic)
        if plan is not None and live and _route_generation.value == generation:
            if len(_route_cache) > 10_000:
                _route_cache.clear()
            _route_cache[key] = plan
    if plan is None:
        raise ProxyError(404, f"The model `{name}` does not exist or you do not have access to it.",
                         param="model", code="model_not_found")
    if plan.split is not None:
        plan = _arm_plan(call, plan, headers)
    call.plan = plan
    if plan.targets:
        call.route = plan.targets[0]
    return plan


def _arm_plan(call: Call, plan: Plan, headers=None) -> Plan:
    split = plan.split
    unit, _ = assign.sticky_unit(split.sticky_by, key_id=getattr(call.key, "id", None), user_id=call.user_id,
                                 body=call.request_body, headers=headers, request_id=call.request_id)
    arm = split.pick(unit)
    if arm is None:
        return plan
    call.experiment_id, call.arm, call.unit = split.experiment_id, arm.name, assign.unit_hash(split.sticky_by, unit)
    return arm.plan


async def resolve(call: Call, name: str, *, anthropic: bool = False) -> Route:
    """The first target of the plan (for callers that need one upstream, e.g. count_tokens)."""
    plan = await resolve_plan(call, name, anthropic=anthropic)
    if not plan.targets:
        raise ProxyError(503, f"The alias `{name}` has no target to serve it.", type="server_error",
                         code="model_unavailable")
    return plan.targets[0]


# --- reading an upstream's OpenAI stream -------------------------------------------------------------
def _tool_fragments(obj: dict) -> list | None:
    for ch in obj.get("choices") or []:
        if isinstance(ch, dict) and ch.get("index", 0) == 0:
            delta = ch.get("delta")
            if isinstance(delta, dict) and delta.get("tool_calls"):
                return delta["tool_calls"]
    return None


def _release_tool_calls(held: list[dict]) -> list[dict]:
    """The events held since the first tool-call fragment, with every tool call merged whole into one
    event (id, type and name once; the arguments joined) placed first; the other deltas follow as they were."""
    calls: dict[int, dict] = {}
    rest: list[dict] = []
    for ev in held:
        frags = _tool_fragments(ev)
        if frags:
            for frag in frags:
                if not isinstance(frag, dict):
                    continue
                idx = frag.get("index", 0) if isinstance(frag.get("index", 0), int) else 0
                fn = frag.get("function") if isinstance(frag.get("function"), dict) else {}
                merged = calls.setdefault(idx, {"index": idx, "id": None, "type": "function",
                                                "function": {"name": "", "arguments": ""}})
                merged["id"] = merged["id"] or frag.get("id")
                if fn.get("name") and not merged["function"]["name"]:
                    merged["function"]["name"] = fn["name"]
                if isinstance(fn.get("arguments"), str):
                    merged["function"]["arguments"] += fn["arguments"]
            choices = []
            for ch in ev.get("choices") or []:
                if isinstance(ch, dict) and ch.get("index", 0) == 0:
                    delta = {k: v for k, v in (ch.get("delta") or {}).items() if k != "tool_calls"}
                    if delta.get("content") or ch.get("finish_reason"):
                        choices.append({**ch, "delta": delta})
                else:
                    choices.append(ch)
            if choices or ev.get("usage"):
                rest.append({**ev, "choices": choices})
        else:
            rest.append(ev)
    if not calls:
        return held
    first = held[0]
    for c in calls.values():
        if not c["id"]:
            c.pop("id")
    merged_event = {k: v for k, v in first.items() if k not in ("choices", "usage")}
    merged_event["choices"] = [{"index": 0, "delta": {"tool_calls": [calls[i] for i in sorted(calls)]},
                                "finish_reason": None}]
    return [merged_event, *rest]


async def sse_events(resp) -> AsyncIterator[dict]:
    """Parsed `data:` events of an OpenAI SSE stream; raises UpstreamStreamError on failure (a dropped
    connection, a malformed event, an error event, an end without [DONE]). Tool calls come out whole: from
    the first tool-call fragment on, events are held until the upstream finishes, so a stream that breaks
    mid-call never shows a half-formed call."""
    done = False
    held: list[dict] | None = None
    try:
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue  # comments, keep-alives, event names
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                obj = loads(data)  # orjson, the json module for what only it reads (NaN, integers past 64 bits)
            except ValueError:
                raise UpstreamStreamError("The model server sent a malformed stream event.")
            if isinstance(obj, dict) and obj.get("error") is not None:
                err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
                err = {"message": str(err.get("message") or "The model server failed mid-stream."),
                       "type": err.get("type") or "server_error", "param": err.get("param"),
                       "code": err.get("code") or "upstream_stream_error"}
                raise UpstreamStreamError(err["message"], err)
            if not isinstance(obj, dict):
                continue
            if held is None and _tool_fragments(obj):
                held = []
            if held is not None:
                held.append(obj)
            else:
                yield obj
    except httpx.HTTPError as exc:
        raise UpstreamStreamError(f"The model server dropped the stream ({type(exc).__name__}).")
    finally:
        await resp.aclose()
    if not done:
        raise UpstreamStreamError("The model server closed the stream before it finished.")
    for obj in _release_tool_calls(held or []):
        yield obj


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


async def _closing(chunks: AsyncIterator[str], lines: upstream.UpstreamLines) -> AsyncIterator[str]:
    """Yield `chunks`; however they end (finished, failed, client gone), close the upstream stream too."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        try:
            if aclose is not None:
                await aclose()
        finally:
            await lines.aclose()


async def relay(request, call: Call, *, wire: Wire, validate: Callable[[dict], dict], path: str,
                render: Callable[[dict], dict], stream: Callable[[dict, object], AsyncIterator[str]],
                anthropic: bool = False) -> HttpResponse:
    """POST /v1/chat/completions, /v1/completions, /v1/messages and /v1/responses: check the method,
    authenticate, parse and `validate` the body (which returns the OpenAI request to forward), admit it
    under the key's limits, resolve the model to a plan and open its first target that answers (see the
    module's contract). A streamed call returns `stream(clean, lines)` as SSE (`lines` replays the
    upstream's OpenAI SSE lines: `sse_events(lines)` reads them); otherwise the upstream JSON goes through
    `render(data)` (which also records usage on the call). With `anthropic`, an Anthropic provider gets the
    original Messages body natively and its answer is relayed as is. Every ProxyError on the way is
    logged and rendered once, in the dialect of `wire`."""
    if request.method != "POST":
        return method_not_allowed(request, call, wire)
    try:
        await authenticate(request, call)
        body = parse_json(request)
        call.request_body = body
        clean = validate(body)
        call.stream = bool(clean.get("stream"))
        await limits.admit(call.key, clean["model"], limits.estimate_tokens(request.body))
        plan = await resolve_plan(call, clean["model"], anthropic=anthropic, headers=request.headers)
        call.client_headers = {k: request.headers[k] for k in ("anthropic-version", "anthropic-beta")
                               if request.headers.get(k)}
        opened = await fallback.open_plan(call, plan, path=path, clean=clean,
                                          native_body=body if anthropic else None, anthropic_wire=wire is ANTHROPIC)
        if not call.stream:
            out = native.native_answer(call, opened.data) if opened.mode == "native" else render(opened.data)
    except ProxyError as exc:
        call.fail(exc)
        call.mark_answered()
        call.log()
        response = wire.error_response(exc, call.request_id)
        for name, value in hub_headers(call).items():
            response[name] = value
        return response
    if call.stream:
        chunks = native.native_stream(call, opened.lines) if opened.mode == "native" else stream(clean, opened.lines)
        call.mark_answered()
        chunks = limits.metered(call.key, _closing(chunks, opened.lines), call)
        response = StreamingHttpResponse(coalesce(chunks) if COALESCE else chunks,
                                         content_type="text/event-stream", headers=SSE_HEADERS)
        for name, value in {**wire.headers(call), **hub_headers(call)}.items():
            response[name] = value
        return response
    call.response_body = out
    call.mark_answered()
    await limits.charge(call.key, limits.used_tokens(call))
    call.log()
    return json_response(out, headers={**wire.headers(call), **hub_headers(call)})
