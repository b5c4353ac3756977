"""Anthropic-dialect requests served by an Anthropic provider, untranslated: the answer relayed as the
client asked for it by name (gateway.relay uses these in `native` mode; apps.proxy.upstream opened the call).

Contract: `native_answer(call, data)` is a non-streamed Messages answer with `model` set to the requested name
(usage recorded on `call`). `native_stream(call, lines)` relays the stream event by event: `message_start`
renamed, a `tool_use` block held until its `content_block_stop` (never half-formed), and a failure after the
first byte ending the stream with `event: error` (Anthropic's shape); it logs the call when it ends.
"""
from __future__ import annotations

import json
from typing import AsyncIterator

import httpx

from apps.proxy import upstream
from apps.proxy.upstream import UpstreamStreamError


def _int_or_none(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def native_answer(call, data: dict) -> dict:
    """An Anthropic provider's answer to an Anthropic request, as the client asked for it by name."""
    out = {**data, "model": call.model_requested}
    usage = out.get("usage") if isinstance(out.get("usage"), dict) else {}
    call.prompt_tokens = _int_or_none(usage.get("input_tokens"))
    if call.prompt_tokens is not None:
        call.prompt_tokens += sum(_int_or_none(usage.get(k)) or 0 for k in ("cache_read_input_tokens",
                                                                             "cache_creation_input_tokens"))
    call.completion_tokens = _int_or_none(usage.get("output_tokens"))
    return out


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


async def native_stream(call, lines: upstream.UpstreamLines) -> AsyncIterator[str]:
    """An Anthropic provider's stream relayed to an Anthropic client: events passed through (the model
    renamed to the requested name in message_start), a tool_use block held until its content_block_stop,
    and a failure after the first byte ending the stream with `event: error`."""
    held: list[str] | None = None
    held_index = None
    parts: list[str] = []
    name = None
    finished = False
    try:
        async for line in lines.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
                continue
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            try:
                ev = json.loads(data)
            except ValueError:
                raise UpstreamStreamError("The model server sent a malformed stream event.")
            etype = (ev.get("type") if isinstance(ev, dict) else None) or name or "message"
            name = None
            if etype == "error":
                err = ev.get("error") if isinstance(ev.get("error"), dict) else {}
                raise UpstreamStreamError(str(err.get("message") or "The model server failed mid-stream."),
                                          {"message": str(err.get("message") or "failed"),
                                           "type": err.get("type") or "api_error"})
            if etype == "message_start" and isinstance(ev.get("message"), dict):
                ev["message"]["model"] = call.model_requested
                usage = ev["message"].get("usage") or {}
                call.prompt_tokens = _int_or_none(usage.get("input_tokens"))
                data = json.dumps(ev, ensure_ascii=False, separators=(",", ":"))
            elif etype == "message_delta" and isinstance(ev.get("usage"), dict):
                call.completion_tokens = _int_or_none(ev["usage"].get("output_tokens")) or call.completion_tokens
            elif etype == "content_block_delta":
                call.mark_first_token()
                delta = ev.get("delta") or {}
                if isinstance(delta.get("text"), str):
                    parts.append(delta["text"])
            block = _event(etype, data)
            if etype == "content_block_start" and (ev.get("content_block") or {}).get("type") in (
                    "tool_use", "server_tool_use"):
                held, held_index = [block], ev.get("index")
                continue
            if held is not None:
                held.append(block)
                if etype == "content_block_stop" and ev.get("index") == held_index:
                    yield "".join(held)
                    held = None
                continue
            yield block
            if etype == "message_stop":
                finished = True
                break
        if not finished:
            raise UpstreamStreamError("The model server closed the stream before it finished.")
        call.response_body = {"content": "".join(parts)}
    except (UpstreamStreamError, httpx.HTTPError) as exc:
        if isinstance(exc, UpstreamStreamError):
            message, etype = exc.error.get("message") or str(exc), exc.error.get("type") or "api_error"
        else:
            message, etype = f"The model server dropped the stream ({type(exc).__name__}).", "api_error"
        if etype not in ("api_error", "overloaded_error", "rate_limit_error"):
            etype = "api_error"
        call.status_code, call.error = 502, message
        call.response_body = {"content": "".join(parts), "partial": True}
        yield _event("error", json.dumps({"type": "error", "error": {"type": etype, "message": message}}))
    finally:
        await lines.aclose()
        call.log()
