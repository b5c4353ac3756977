"""Trying a plan's targets in order until one answers (gateway.relay's core): which way a request reaches a
target, whether its prompt fits the target's context, and which error the client gets when no target is left.
See gateway's contract for when a failure falls through; upstream.open_target calls one target.

Contract: `await open_plan(call, plan, path=, clean=, native_body=, anthropic_wire=)` returns the
`upstream.Opened` answer of the first target that answered (recording every attempt on `call`, the
breaker's verdicts, `call.served`, `call.fallback`, `call.upstream_ms`, `call.tools_dropped`) or raises the
ProxyError the client gets. `context_error(tokens, limit, anthropic=)` is the dialect's "prompt is too
long" error.
"""
from __future__ import annotations

import time

from django.conf import settings

from apps.proxy import breaker, routing, upstream
from apps.proxy.errors import ProxyError
from apps.proxy.routing import Plan, Route
from apps.proxy.upstream import TargetFailed

# Failures that never reached a target (or say nothing about it): not "the last real failure".
_SKIPS = frozenset({"breaker_open", "unavailable", "unsupported", "context_overflow", "overloaded"})


def upstream_chat_body(body: dict, route: Route | None = None) -> dict:
    out = dict(body)
    if route is not None:
        out["model"] = route.upstream_model
    if out.get("stream"):
        out["stream_options"] = {"include_usage": True}  # always: the log needs token counts
    else:
        out.pop("stream_options", None)
    return out


def _mode(route: Route, *, native: bool, path: str) -> str | None:
    """How a request reaches `route`: as is (`openai`), natively (`native`: Anthropic to Anthropic), or
    translated (`to_anthropic`); None when the target cannot serve this endpoint."""
    if route.kind != "anthropic":
        return "openai"
    if native:
        return "native"
    return "to_anthropic" if path == "/chat/completions" else None


async def _fits(route: Route, body: dict, mode: str) -> tuple[TargetFailed | None, dict]:
    """Does the prompt fit `route`'s context? (None, body with max_tokens lowered to what still fits) or
    (a context_overflow failure, body)."""
    if not route.context_length:
        return None, body
    text, n = routing.prompt_text(body)
    asked = body.get("max_tokens") if isinstance(body.get("max_tokens"), int) else None
    if not routing.may_overflow(route, text, n, asked):
        return None, body
    if mode != "native" and isinstance(body.get("messages"), list):
        from apps.proxy import tokencount

        tokens = (await tokencount.aestimate(route, body["messages"], body.get("tools")))[0]
    else:
        tokens = routing.estimate_tokens(text, n)
    limit = route.context_length
    if tokens + routing.MIN_ANSWER_TOKENS > limit:
        return TargetFailed(ProxyError(400, f"{route.label}: the prompt has about {tokens} tokens; its context is "
                                       f"{limit}.", param="messages", code="context_length_exceeded"),
                            "context_overflow", breaker=False, tokens=tokens, limit=limit), body
    if asked is not None and tokens + asked > limit:
        body = {**body, "max_tokens": limit - tokens}
    return None, body


def context_error(tokens: int | None, limit: int | None, fallback_message: str, *,
                  anthropic: bool = False) -> ProxyError:
    """The dialect's own "prompt is too long" error, which the SDKs and CLIs recognise."""
    if anthropic:
        msg = (f"prompt is too long: {tokens} tokens > {limit} maximum" if tokens and limit
               else f"prompt is too long: {fallback_message}")
    elif tokens and limit:
        msg = (f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
               f"{tokens} tokens. Please reduce the length of the messages.")
    else:
        msg = fallback_message
    return ProxyError(400, msg, param="messages", code="context_length_exceeded")


def _final_error(failures: list[TargetFailed], anthropic: bool) -> ProxyError:
    real = [f for f in failures if f.status not in _SKIPS]
    if real:
        return real[-1].error
    overflows = [f for f in failures if f.status == "context_overflow"]
    if overflows:
        best = max(overflows, key=lambda f: f.limit or 0)
        return context_error(best.tokens, best.limit, best.error.message, anthropic=anthropic)
    return failures[-1].error


def _on_stream_end(call, route: Route):
    async def ended(ok: bool):
        if not ok:
            for a in reversed(call.attempts):
                if a["target"] == route.label and a["status"] == "ok":
                    a["status"] = "failed_mid_stream"
                    break
            await breaker.record_failure(route.label)

    return ended


async def _skip(route: Route, mode: str | None, path: str) -> TargetFailed | None:
    """Why `route` is not even tried (disabled, no key, wrong endpoint, open breaker), or None."""
    if route.unavailable:
        return TargetFailed(ProxyError(503, route.unavailable, type="server_error", code="model_unavailable"),
                            "unavailable", breaker=False)
    if mode is None:
        return TargetFailed(ProxyError(400, f"{route.label} (an Anthropic provider) cannot serve {path}.",
                                       code="unsupported_value"), "unsupported", breaker=False)
    if not await breaker.allow(route.label):
        wait = breaker.seconds_until_probe(route.label)
        return TargetFailed(ProxyError(503, f"{route.label} is failing; its circuit breaker is open for about "
                                       f"{wait} s more.", type="server_error", code="upstream_unavailable",
                                       headers={"retry-after": str(wait)}), "breaker_open", breaker=False)
    return None


async def _call(call, route: Route, *, mode: str, path: str, body: dict, last: bool, cid: str,
                created: int) -> upstream.Opened:
    """One target: its body, the context check, a concurrency slot, the call. Raises TargetFailed."""
    target_body = {**body, "model": route.upstream_model}
    if mode == "openai":
        target_body = upstream_chat_body(target_body)
    fail, target_body = await _fits(route, target_body, mode)
    if fail is not None:
        raise fail
    release = await upstream.acquire_slot(route, wait_s=(route.first_byte_s or settings.HUB_PROXY_TIMEOUT_S)
                                          if last else 0.0)
    if release is None:
        raise upstream.overloaded(route)
    started = time.perf_counter()
    try:
        return await upstream.open_target(route, mode=mode, path=path, body=target_body, stream=call.stream,
                                          client_headers=call.client_headers, release=release,
                                          on_end=_on_stream_end(call, route), cid=cid, created=created)
    except BaseException:
        release()
        raise
    finally:
        call.upstream_ms += (time.perf_counter() - started) * 1000


async def open_plan(call, plan: Plan, *, path: str, clean: dict, native_body: dict | None,
                    anthropic_wire: bool = False) -> upstream.Opened:
    """Try the plan's targets in order until one answers (up to its first byte)."""
    if not plan.targets:
        raise ProxyError(503, f"The alias `{plan.requested}` has no target to serve it.", type="server_error",
                         code="model_unavailable")
    body, call.tools_dropped = routing.apply_openai_settings(clean, plan.settings)
    nbody = None
    if native_body is not None and any(t.kind == "anthropic" for t in plan.targets):
        nbody, _ = routing.apply_anthropic_settings(native_body, plan.settings)
    cid, created = "chatcmpl-" + call.request_id, int(time.time())
    failures: list[TargetFailed] = []
    for i, route in enumerate(plan.targets):
        started = time.perf_counter()
        mode = _mode(route, native=native_body is not None, path=path)
        fail = await _skip(route, mode, path)
        if fail is None:
            try:
                opened = await _call(call, route, mode=mode, path=path, body=nbody if mode == "native" else body,
                                     last=i == len(plan.targets) - 1, cid=cid, created=created)
            except TargetFailed as exc:
                fail = exc
        ms = (time.perf_counter() - started) * 1000
        if fail is None:
            call.attempt(route, "ok", "", ms)
            call.served = call.route = route
            call.fallback = i > 0
            await breaker.record_success(route.label)
            return opened
        if fail.status == "context_overflow":
            if fail.tokens is None:
                text, n = routing.prompt_text(body)
                fail.tokens = routing.estimate_tokens(text, n)
            fail.limit = fail.limit or route.context_length
        call.attempt(route, fail.status, fail.error.message, ms)
        if fail.breaker:
            await breaker.record_failure(route.label)
        failures.append(fail)
        if not fail.fall_through:
            raise fail.error
    raise _final_error(failures, anthropic_wire)
