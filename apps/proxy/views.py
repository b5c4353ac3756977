"""/v1 OpenAI-compatible endpoints (async Django views) and the playground page.

HTTP glue only: each view names its endpoint, validator and upstream path and hands the request to the one
request path (gateway.relay); the OpenAI wire shapes (bodies, streams) live in apps/proxy/openai.py."""
from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, ensure_csrf_cookie
from django.views.decorators.http import require_GET

from apps.proxy import limits, selectors
from apps.proxy.errors import ProxyError, json_response, openai_error_response
from apps.proxy.gateway import OPENAI, Call, authenticate, method_not_allowed, relay
from apps.proxy.openai import (chat_completion_body, chat_stream, completion_body, completion_stream,
                               stream_include_usage)
from apps.proxy.validation import validate_chat, validate_completion


async def _openai_endpoint(request, *, endpoint: str, id_prefix: str, validate, path: str, body, stream):
    """One OpenAI endpoint on the one request path: `body` renders a non-streamed answer, `stream` re-frames
    a streamed one (apps/proxy/openai.py); both stamp the id, time and requested model of this call."""
    call = Call(endpoint=endpoint)
    cid = id_prefix + call.request_id

    def render_answer(data: dict) -> dict:
        out = body(data, cid=cid, created=int(time.time()), model=call.model_requested)
        call.set_usage(out["usage"])
        return out

    def restream(clean: dict, resp):
        return stream(call, resp, cid=cid, created=int(time.time()), include_usage=stream_include_usage(clean))

    return await relay(request, call, wire=OPENAI, validate=validate, path=path, render=render_answer,
                       stream=restream)


@csrf_exempt
async def chat_completions(request):
    return await _openai_endpoint(request, endpoint="chat.completions", id_prefix="chatcmpl-",
                                  validate=validate_chat, path="/chat/completions",
                                  body=chat_completion_body, stream=chat_stream)


@csrf_exempt
async def completions(request):
    """The legacy text completions."""
    return await _openai_endpoint(request, endpoint="completions", id_prefix="cmpl-",
                                  validate=validate_completion, path="/completions",
                                  body=completion_body, stream=completion_stream)


# --- models ---------------------------------------------------------------------------------------
@csrf_exempt
async def models(request):
    call = Call(endpoint="models")
    if request.method != "GET":
        return method_not_allowed(request, call, OPENAI)
    try:
        await authenticate(request, call)
    except ProxyError as exc:
        return openai_error_response(exc, call.request_id)
    data = await limits.visible(call.key, await sync_to_async(selectors.model_list)())  # what the key may use
    return json_response({"object": "list", "data": data}, headers={"x-request-id": call.request_id})


@csrf_exempt
async def model_detail(request, model_id: str):
    call = Call(endpoint="models")
    if request.method != "GET":
        return method_not_allowed(request, call, OPENAI)
    try:
        await authenticate(request, call)
        item = await sync_to_async(selectors.model_get)(model_id)
        if item is None or not await limits.allows(call.key, model_id):  # a model the key may not use
            raise ProxyError(404, f"The model `{model_id}` does not exist.", param="model", code="model_not_found")
    except ProxyError as exc:
        return openai_error_response(exc, call.request_id)
    return json_response(item, headers={"x-request-id": call.request_id})


@csrf_exempt  # an API path: a JSON 404 for every method, never Django's CSRF page
async def not_found(request, rest: str = ""):
    """Any /v1 path no endpoint serves: 404 as JSON, in the dialect the request speaks (errors.looks_anthropic)."""
    from uuid import uuid4

    from apps.proxy.errors import wire_error_response

    exc = ProxyError(404, f"Unknown endpoint: {request.method} /v1/{rest}", code="unknown_url")
    return wire_error_response(request, exc, uuid4().hex)


# --- playground -----------------------------------------------------------------------------------
@login_required
@ensure_csrf_cookie
@require_GET
def playground(request):
    from apps.registry.models import Alias, ModelVersion

    aliases = Alias.objects.select_related("model_version").order_by("name")
    versions = ModelVersion.objects.select_related("base_model").order_by("-created_at")[:200]
    selected = request.GET.get("model", "")
    compare = request.GET.get("compare", "")  # a second model: the page opens side by side
    return render(request, "proxy/playground.html", {
        "aliases": aliases, "versions": versions, "selected": selected, "compare": compare,
    })
