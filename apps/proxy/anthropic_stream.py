"""Anthropic's Messages stream, re-framed from an OpenAI-style upstream stream.

Events, in Anthropic's order: `message_start` (its `usage.input_tokens` already estimated with the served
model's tokenizer, apps/proxy/tokencount.py, since an OpenAI-style upstream reports usage only at the
end), `ping`, then per content block `content_block_start` / `content_block_delta` / `content_block_stop`:
`thinking` (`thinking_delta`, from the upstream's `reasoning_content` / `reasoning`, only when the request
asked for thinking), `text` (`text_delta`), `tool_use` (one `input_json_delta` with the call's complete
arguments, sent once the upstream has finished the call: a tool call is never sent half-formed; arguments
that are not a JSON object arrive as `{"_raw": ...}`); then `message_delta` (`stop_reason`,
`stop_sequence`, `usage` with the upstream's real counts) and `message_stop`. While the upstream is
silent (a long prefill) a `ping` goes out every PING_S seconds.

A failure after the first byte (gateway.UpstreamStreamError or any subclass) ends the stream with
`event: error` and an Anthropic error body (errors.anthropic_error_event); the SDKs raise it as an
APIError. Nothing is silently truncated: without `message_stop` the answer is not complete.

Stop sequences: the upstream's `choices[].stop_reason` when it names one of the requested sequences;
besides, StopMatcher watches the text (holding back only a possible prefix of a stop sequence), so an
upstream that ignores or echoes stops is cut exactly where the sequence starts and the upstream
connection is closed. The helpers shared with the non-streamed answer (apps/proxy/anthropic.py) live here
too: `tool_input`, `usage_block`, `cached_tokens`, `stop_outcome`.
"""
from __future__ import annotations

import asyncio
import json
import logging

from apps.proxy import tokencount
from apps.proxy.errors import anthropic_error_event
from apps.proxy.gateway import Call, UpstreamStreamError, sse_events

log = logging.getLogger(__name__)

PING_S = 10.0
_PING = object()
_STOP = {"stop": "end_turn", "length": "max_tokens", "content_filter": "refusal"}


class StopMatcher:
    """Finds the first requested stop sequence in streamed text. `feed` returns the text that is safe to
    emit and the matched sequence (or None); text that could be the start of a sequence is held back
    until the next piece decides. `flush` releases what is held at the end."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        buf = self.held + text
        best = None
        for s in self.stops:
            k = buf.find(s)
            if k >= 0 and (best is None or k < best[0]):
                best = (k, s)
        if best is not None:
            self.held = ""
            return buf[:best[0]], best[1]
        hold = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(buf)), hold, -1):
                if buf.endswith(s[:n]):
                    hold = n
                    break
        self.held = buf[len(buf) - hold:] if hold else ""
        return (buf[:len(buf) - hold] if hold else buf), None

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out

    def cut(self, text: str) -> tuple[str, str | None]:
        """A whole text: (the text before the first stop sequence, that sequence) or (text, None)."""
        head, matched = self.feed(text)
        return (head, matched) if matched is not None else (head + self.flush(), None)


def tool_input(arguments) -> dict:
    """A tool call's arguments as the `input` object of a tool_use block."""
    if isinstance(arguments, dict):
        return arguments
    if arguments in (None, ""):
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        return {"_raw": str(arguments)}
    return value if isinstance(value, dict) else {"_raw": str(arguments)}


def usage_block(prompt: int, completion: int, cached: int = 0) -> dict:
    cached = min(max(cached, 0), prompt)
    return {"input_tokens": prompt - cached, "output_tokens": completion, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached}


def cached_tokens(usage) -> int:
    details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
    n = details.get("cached_tokens") if isinstance(details, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def stop_outcome(finish, reported, tool_use: bool, matched: str | None, stops: list[str],
                 hub_cut: bool = False) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) from the upstream's finish_reason and stop_reason, and the stop
    sequence the hub found in the text itself. `hub_cut`: the answer hit a limit the hub set (the alias's
    max-tokens cap, a context that left less room), not the client's own max_tokens: that is the length the
    operator chose for this model, so the turn ends (`end_turn`); `max_tokens` would tell the client to
    retry with more room it cannot get (Claude Code then escalates its max_tokens and gives up)."""
    if tool_use:
        return "tool_use", None
    if matched is not None:
        return "stop_sequence", matched
    if finish in (None, "stop") and isinstance(reported, str) and reported in stops:
        return "stop_sequence", reported
    if finish == "length" and hub_cut:
        return "end_turn", None
    return _STOP.get(finish, "end_turn"), None  # (tool_calls without any call: end_turn)


def cut_by_hub(call, finish, completion, asked) -> bool:
    """Did a limit of the hub's (not the client's max_tokens) end this answer? Known from the upstream's
    token count when it sent one, else from the alias's max-tokens cap."""
    if finish != "length" or not isinstance(asked, int) or isinstance(asked, bool):
        return False
    if isinstance(completion, int) and not isinstance(completion, bool):
        return completion < asked
    cap = getattr(getattr(getattr(call, "plan", None), "settings", None), "max_tokens", None)
    return isinstance(cap, int) and cap < asked


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


_PING_EVENT = _event("ping", {"type": "ping"})


async def _paced(events, interval: float):
    """The upstream's events, with _PING whenever none came for `interval` seconds."""
    it = events.__aiter__()
    pending = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait((pending,), timeout=interval)
            if not done:
                yield _PING
                continue
            fut, pending = pending, None
            try:
                item = fut.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            try:
                await pending
            except BaseException:  # the read we abandoned (cancelled, or failed meanwhile)
                pass
        await it.aclose()


class _Blocks:
    """The content blocks of the answer: their events, and the message they add up to (for the log)."""

    def __init__(self):
        self.index = -1
        self.open: str | None = None
        self.content: list[dict] = []

    def start(self, kind: str) -> list[str]:
        if self.open == kind:
            return []
        out = self.stop()
        self.index += 1
        self.open = kind
        block = {"type": "thinking", "thinking": "", "signature": ""} if kind == "thinking" else {"type": "text",
                                                                                                 "text": ""}
        self.content.append(dict(block))
        out.append(_event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                  "content_block": block}))
        return out

    def delta(self, kind: str, text: str) -> list[str]:
        out = self.start(kind)
        self.content[-1][kind] += text
        delta = {"type": "thinking_delta", "thinking": text} if kind == "thinking" else {"type": "text_delta",
                                                                                         "text": text}
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                  "delta": delta}))
        return out

    def stop(self) -> list[str]:
        if self.open is None:
            return []
        self.open = None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def tool(self, call_id: str, name: str, arguments: str) -> list[str]:
        out = self.stop()
        self.index += 1
        value = tool_input(arguments)
        self.content.append({"type": "tool_use", "id": call_id, "name": name, "input": value})
        out.append(_event("content_block_start", {"type": "content_block_start", "index": self.index,
                                                  "content_block": {"type": "tool_use", "id": call_id,
                                                                    "name": name, "input": {}}}))
        out.append(_event("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": {
            "type": "input_json_delta", "partial_json": json.dumps(value, ensure_ascii=False)}}))
        out.append(_event("content_block_stop", {"type": "content_block_stop", "index": self.index}))
        return out


async def anthropic_stream(call: Call, resp, *, msg_id: str, options: dict, request: dict):
    """The SSE text of an Anthropic Messages stream for the upstream response `resp` (OpenAI SSE)."""
    route, stops = call.route, options.get("stops") or []
    blocks = _Blocks()
    tools: dict[int, dict] = {}  # upstream tool-call index -> {id, name, args: [...]}, in arrival order
    matcher = StopMatcher(stops) if stops else None
    finish = reported = matched = None
    cached = 0
    events = None
    outcome: dict = {}
    try:
        try:
            est = (await tokencount.aestimate(route, request["messages"], request.get("tools")))[0]
        except Exception:  # an estimate must never cost the answer
            log.warning("token estimate failed; counting characters", exc_info=True)
            est = tokencount.chars_estimate(request["messages"], request.get("tools"))
        yield _event("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": call.model_requested, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage_block(est, 0)}})
        yield _PING_EVENT
        events = _paced(sse_events(resp), PING_S)
        async for ev in events:
            if ev is _PING:
                yield _PING_EVENT
                continue
            usage = ev.get("usage")
            if isinstance(usage, dict) and usage:
                call.set_usage(usage)
                cached = cached_tokens(usage) or cached
            for ch in ev.get("choices") or []:
                if not isinstance(ch, dict) or ch.get("index", 0) != 0:
                    continue
                delta = ch.get("delta") or {}
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if isinstance(reasoning, str) and reasoning and options.get("thinking"):
                    call.mark_first_token()
                    for out in blocks.delta("thinking", reasoning):
                        yield out
                text = delta.get("content")
                if isinstance(text, str) and text:
                    call.mark_first_token()
                    if matcher is not None:
                        text, matched = matcher.feed(text)
                    if text:
                        for out in blocks.delta("text", text):
                            yield out
                    if matched is not None:
                        break
                for frag in delta.get("tool_calls") or []:
                    if not isinstance(frag, dict):
                        continue
                    call.mark_first_token()
                    fn = frag.get("function") or {}
                    slot = tools.setdefault(frag.get("index", len(tools)), {"id": "", "name": "", "args": []})
                    slot["id"] = slot["id"] or str(frag.get("id") or "")
                    slot["name"] = slot["name"] or str(fn.get("name") or "")
                    if isinstance(fn.get("arguments"), str):
                        slot["args"].append(fn["arguments"])
                if ch.get("finish_reason"):
                    finish = ch["finish_reason"]
                if ch.get("stop_reason") is not None:
                    reported = ch["stop_reason"]
            if matched is not None:
                break  # the rest of the upstream's answer is past a stop sequence: _paced closes it
        if matcher is not None and matched is None:
            tail = matcher.flush()
            if tail:
                for out in blocks.delta("text", tail):
                    yield out
        for out in blocks.stop():
            yield out
        if matched is None:
            for k, slot in enumerate(tools.values()):
                for out in blocks.tool(slot["id"] or f"toolu_{msg_id[4:16]}_{k}", slot["name"], "".join(slot["args"])):
                    yield out
        hub_cut = cut_by_hub(call, finish, call.completion_tokens, request.get("max_tokens"))
        stop_reason, stop_sequence = stop_outcome(finish, reported, bool(tools) and matched is None, matched, stops,
                                                  hub_cut)
        prompt = call.prompt_tokens if isinstance(call.prompt_tokens, int) else est
        completion = call.completion_tokens
        if not isinstance(completion, int) or matched is not None:
            produced = "".join(json.dumps(b["input"]) if b["type"] == "tool_use" else b[b["type"]]
                               for b in blocks.content)
            completion = max(completion or 0, tokencount.text_tokens(route, produced))
        call.prompt_tokens, call.completion_tokens = prompt, completion
        usage = usage_block(prompt, completion, cached)
        outcome = {"stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage}
        yield _event("message_delta", {"type": "message_delta",
                                       "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                                       "usage": usage})
        yield _event("message_stop", {"type": "message_stop"})
    except UpstreamStreamError as exc:
        err = exc.error if isinstance(getattr(exc, "error", None), dict) else {"message": str(exc)}
        call.status_code = 502
        call.error = str(err.get("message") or exc)
        outcome = {"partial": True}
        yield _event("error", anthropic_error_event(err))
    finally:
        if events is not None:
            await events.aclose()
        await resp.aclose()
        call.response_body = {"id": msg_id, "type": "message", "role": "assistant", "model": call.model_requested,
                              "content": blocks.content, **outcome}
        call.log()
