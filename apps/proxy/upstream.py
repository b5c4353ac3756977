"""Calling one /v1 target: the shared HTTP client, timeouts, the concurrency cap, and reading an answer up to
its first byte so that a failure there can still fall back to the next target (gateway.relay loops over a
plan's targets with `open_target`).

Contract:
- `client()` is one httpx.AsyncClient per event loop (pooled keep-alive); `set_transport(t)` routes every call
  through `t` (tests).
- `await open_target(route, mode=..., ...)` returns an `Opened` answer or raises `TargetFailed` (with the
  ProxyError a client would get, a status word for the log, and whether the failure counts towards the
  target's circuit breaker / lets the chain fall through). Modes: `openai` (an OpenAI body to an
  OpenAI-compatible server at `{base}{path}`), `native` (an Anthropic Messages body to `{base}/v1/messages`,
  as is) and `to_anthropic` (an OpenAI chat body translated for an Anthropic provider with
  apps.proxy.anthropic_upstream, its answer translated back).
- Timeouts (the route's): `connect_s` for the TCP/TLS connection; `first_byte_s` until the first content event
  of a stream (a role-only chunk or a keep-alive does not count) and between stream chunks; `total_s` for the
  whole call (a non-streamed answer must arrive within it; a stream past it ends with an error event).
- A streamed answer comes back as `UpstreamLines`: `aiter_lines()` replays the lines read so far, then goes
  on reading (OpenAI SSE lines in every mode but `native`, so the dialect streams read every target alike);
  `aclose()` (idempotent) closes the connection, frees the concurrency slot and tells the breaker how the
  stream ended. After the first byte a failure raises `UpstreamStreamError` (or an httpx error that
  `gateway.sse_events` turns into one).
- Concurrency cap per provider: a counter per process (not shared between web processes: the cap is per
  process). A full provider is skipped when another target follows; the last target waits for a slot up to
  its first-byte timeout, then answers 529/503 overloaded.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import AsyncIterator, Callable

import httpx
from django.conf import settings

from apps.proxy import netstream
from apps.proxy.errors import ProxyError, dumps, loads
from apps.proxy.routing import Route

# Upstream sockets on asyncio's transports, each request in one write (apps/proxy/netstream.py);
# HUB_UPSTREAM_ASYNCIO=0 puts httpcore's default (anyio) backend back (before/after: bench_proxy.py --second-hub-env).
ASYNCIO_SOCKETS = os.environ.get("HUB_UPSTREAM_ASYNCIO", "1") != "0"
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = weakref.WeakKeyDictionary()
_transport: httpx.AsyncBaseTransport | None = None
ANTHROPIC_VERSION = "2023-06-01"


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    c = _clients.get(loop)
    if c is None or c.is_closed:
        timeout = httpx.Timeout(settings.HUB_PROXY_TIMEOUT_S, connect=5.0)
        limits = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)
        transport = _transport
        if transport is None and ASYNCIO_SOCKETS:
            transport = netstream.transport(limits=limits)
        c = httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport, trust_env=False,
                              cookies=_no_cookies())
        _clients[loop] = c
    return c


def _no_cookies() -> CookieJar:
    """A jar that keeps nothing: one client serves every user of the hub, so a cookie an upstream sets (a CDN's
    bot-management cookie, a sticky-session one) must not ride along on other users' calls."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


_URLS: dict[str, httpx.URL] = {}


def _url(url: str) -> httpx.URL:
    """The parsed URL of a target (httpx parses a string URL on every request: tens of microseconds)."""
    parsed = _URLS.get(url)
    if parsed is None:
        if len(_URLS) > 1024:  # a bound: base URLs change rarely
            _URLS.clear()
        parsed = _URLS[url] = httpx.URL(url)
    return parsed


def set_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Route every upstream call through `transport` (tests); None restores real HTTP."""
    global _transport
    _transport = transport
    _clients.clear()


class UpstreamStreamError(Exception):
    """The upstream failed after the response started (a dropped connection, an error event, a
    stream that ended without [DONE])."""

    def __init__(self, message: str, error: dict | None = None):
        super().__init__(message)
        self.error = error or {"message": message, "type": "server_error", "param": None,
                               "code": "upstream_stream_error"}


class TargetFailed(Exception):
    """One target could not answer. `status` names why in the log (connect_error, timeout, rate_limited,
    upstream_error, overloaded, auth_failed, not_found, malformed, stream_error, context_overflow,
    client_error); `breaker` says whether it counts as the target failing; `fall_through` whether the next
    target may be tried (not for a request the client got wrong)."""

    def __init__(self, error: ProxyError, status: str, *, breaker: bool, fall_through: bool = True,
                 tokens: int | None = None, limit: int | None = None):
        super().__init__(error.message)
        self.error, self.status, self.breaker, self.fall_through = error, status, breaker, fall_through
        self.tokens, self.limit = tokens, limit


# --- classifying an upstream's error answer -----------------------------------------------------------
_CONTEXT_RE = re.compile(r"context[ _-]length|context window|maximum context|prompt is too long|too many tokens|"
                         r"exceeds? the (?:model'?s? )?(?:max(?:imum)? )?(?:context|input)|input is too long|"
                         r"reduce the length", re.I)
_UNSUPPORTED_CODES = {"unsupported_value", "unsupported_parameter", "unsupported_feature"}


def context_numbers(message: str) -> tuple[int | None, int | None]:
    """(prompt tokens, context limit) from a context-overflow message, when it says them."""
    m = re.search(r"(\d[\d,]*) tokens? > (\d[\d,]*) maximum", message)
    if m:
        return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))
    limit = re.search(r"maximum context length is (\d[\d,]*)", message, re.I)
    tokens = re.search(r"(?:resulted in|the prompt has|you requested|prompt is|has) (\d[\d,]*) tokens", message, re.I)
    return (int(tokens.group(1).replace(",", "")) if tokens else None,
            int(limit.group(1).replace(",", "")) if limit else None)


def upstream_error(status: int, raw: bytes) -> ProxyError:
    """The ProxyError a client gets for an upstream's error answer (OpenAI or Anthropic body)."""
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
    if status == 529 or etype == "overloaded_error":
        return ProxyError(529, f"The model server is overloaded: {message}", type="server_error", code="overloaded")
    if status >= 500:
        return ProxyError(503 if status == 503 else 502, f"The model server failed: {message}",
                          type="server_error", code=code or "upstream_error")
    if status == 404:
        return ProxyError(502, f"The model server does not know this model: {message}", type="server_error",
                          code="upstream_model_not_found")
    if etype in ("invalid_request_error", "rate_limit_error", "permission_error", "authentication_error",
                 "not_found_error", "request_too_large", "api_error"):
        etype = None  # re-derived from the status for the client's dialect
    return ProxyError(status, message, type=etype, param=param, code=code)


def classify(status: int, raw: bytes, headers: httpx.Headers | dict | None = None) -> TargetFailed:
    exc = upstream_error(status, raw)
    if status == 429:
        exc.headers.update({k: headers[k] for k in ("retry-after", "retry-after-ms") if headers and k in headers})
        return TargetFailed(exc, "rate_limited", breaker=False)
    if exc.code == "overloaded":
        return TargetFailed(exc, "overloaded", breaker=True)
    if status >= 500 or status == 408:
        if status in (502, 503, 504):
            exc.headers.update({k: headers[k] for k in ("retry-after", "retry-after-ms") if headers and k in headers})
        return TargetFailed(exc, "timeout" if status in (408, 504) else "upstream_error", breaker=True)
    if status in (401, 403):
        return TargetFailed(exc, "auth_failed", breaker=True)
    if status == 404:
        return TargetFailed(exc, "not_found", breaker=True)
    if (exc.code == "context_length_exceeded" or status == 413 or _CONTEXT_RE.search(exc.message)) and \
            status in (400, 413, 422):
        tokens, limit = context_numbers(exc.message)
        return TargetFailed(exc, "context_overflow", breaker=False, tokens=tokens, limit=limit)
    if exc.code in _UNSUPPORTED_CODES:
        return TargetFailed(exc, "unsupported", breaker=False)
    return TargetFailed(exc, "client_error", breaker=False, fall_through=False)


# --- concurrency cap ------------------------------------------------------------------------------
_inflight: dict[int, int] = {}
_slot_lock = threading.Lock()


def _try_acquire(provider_id: int, cap: int) -> bool:
    with _slot_lock:
        n = _inflight.get(provider_id, 0)
        if n >= cap:
            return False
        _inflight[provider_id] = n + 1
        return True


def _release(provider_id: int) -> None:
    with _slot_lock:
        n = _inflight.get(provider_id, 0) - 1
        if n > 0:
            _inflight[provider_id] = n
        else:
            _inflight.pop(provider_id, None)


def inflight(provider_id: int) -> int:
    return _inflight.get(provider_id, 0)


async def acquire_slot(route: Route, *, wait_s: float) -> Callable[[], None] | None:
    """A release callback, or None when the provider stays full for `wait_s`."""
    if route.provider_id is None or not route.max_concurrency:
        return lambda: None
    deadline = time.monotonic() + wait_s
    while not _try_acquire(route.provider_id, route.max_concurrency):
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.02)
    released = False

    def release():
        nonlocal released
        if not released:
            released = True
            _release(route.provider_id)

    return release


def overloaded(route: Route) -> TargetFailed:
    return TargetFailed(ProxyError(529, f"{route.label} is at its concurrency cap ({route.max_concurrency}).",
                                   type="server_error", code="overloaded", headers={"retry-after": "1"}),
                        "overloaded", breaker=False)


# --- SSE ------------------------------------------------------------------------------------------
def _sse_data(line: str) -> str | None:
    return line[5:].strip() if line.startswith("data:") else None


def _openai_first_content(obj: dict) -> bool:
    """Does this OpenAI chunk carry an answer (text, a tool call, a finish)?"""
    for ch in obj.get("choices") or []:
        if not isinstance(ch, dict):
            continue
        delta = ch.get("delta") or {}
        if ch.get("finish_reason") or ch.get("text") or (isinstance(delta, dict) and (
                delta.get("content") or delta.get("tool_calls") or delta.get("reasoning_content"))):
            return True
    return False


def _stream_error(err, default_code: str = "upstream_stream_error") -> UpstreamStreamError:
    err = err if isinstance(err, dict) else {"message": str(err)}
    out = {"message": str(err.get("message") or "The model server failed mid-stream."),
           "type": err.get("type") or "server_error", "param": err.get("param"),
           "code": err.get("code") or default_code}
    return UpstreamStreamError(out["message"], out)


async def _anthropic_events(lines: AsyncIterator[str]) -> AsyncIterator[dict]:
    """Parsed events of an Anthropic Messages stream; `event: error` and a stream that ends before
    `message_stop` raise UpstreamStreamError."""
    stopped = False
    async for line in lines:
        data = _sse_data(line)
        if data is None or not data:
            continue
        try:
            ev = json.loads(data)
        except ValueError:
            raise UpstreamStreamError("The model server sent a malformed stream event.")
        if not isinstance(ev, dict):
            continue
        if ev.get("type") == "error":
            raise _stream_error(ev.get("error") or {}, "upstream_stream_error")
        if ev.get("type") == "message_stop":
            stopped = True
        yield ev
        if stopped:
            return
    raise UpstreamStreamError("The model server closed the stream before it finished.")


async def _translated_lines(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """An Anthropic stream as OpenAI SSE lines (apps.proxy.anthropic_upstream translates the events)."""
    from apps.proxy import anthropic_upstream

    async for chunk in anthropic_upstream.anthropic_stream_to_openai_chunks(_anthropic_events(lines)):
        yield "data: " + json.dumps(chunk, ensure_ascii=False, separators=(",", ":"))
    yield "data: [DONE]"


def _body_chunks(resp: httpx.Response) -> AsyncIterator[bytes]:
    """The streamed body's bytes as they arrive. Without a content encoding (an event stream usually has
    none), straight from the transport's stream: httpx's `aiter_bytes()` adds an identity decoder and a
    re-chunker around it, two more generator steps per network read of a token stream."""
    if resp.headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
        return resp.aiter_bytes()
    if resp.is_stream_consumed or resp.is_closed:  # as httpx would refuse it
        return resp.aiter_bytes()
    resp.is_stream_consumed = True
    return resp.stream.__aiter__()


async def sse_lines(resp: httpx.Response) -> AsyncIterator[str]:
    """The lines of a streamed body, as httpx's `aiter_lines()` gives them, in two generator layers instead of
    four: the (content-decoded) bytes are split at line ends first and only whole lines are decoded (an event
    stream is UTF-8, so a character split across two reads is joined before decoding). `\r\n`, `\n` and a lone
    `\r` all end a line; a `\r\n` split across two reads gives one extra empty line, which SSE ignores."""
    pending = b""
    async for chunk in _body_chunks(resp):
        if pending:
            chunk = pending + chunk
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        parts = chunk.split(b"\n")
        pending = parts.pop()
        for part in parts:
            yield part.decode("utf-8", "replace")
    if pending:
        yield pending.decode("utf-8", "replace")


@dataclass
class UpstreamLines:
    """A streamed answer whose first lines were read before the hub answered its client."""

    route: Route
    resp: httpx.Response
    lines: AsyncIterator[str]
    buffered: list[str]
    deadline: float | None  # perf_counter time of the total timeout
    release: Callable[[], None]
    on_end: Callable[[bool], object] | None = None  # called once with ok=True/False (breaker)
    read_s: float | None = None  # the connection's read timeout (ends a read that stalls this long)
    status_code: int = 200
    done: bool = False
    failed: str = ""
    closed: bool = False
    _ended: bool = field(default=False, repr=False)

    @property
    def headers(self):
        return self.resp.headers

    async def aiter_lines(self) -> AsyncIterator[str]:
        while self.buffered:
            line = self.buffered.pop(0)
            self._see(line)
            yield line
        it = self.lines.__aiter__()
        while True:
            try:
                # The total timeout: checked between lines; armed around the read only once it is nearer than
                # the client's own read timeout (which already ends a stalled read) — one timer per line costs
                # more than the rest of a token's relay.
                if self.deadline is not None:
                    remaining = self.deadline - time.perf_counter()
                    if remaining <= 0:
                        raise TimeoutError
                    if self.read_s is None or remaining < self.read_s:
                        async with asyncio.timeout(remaining):
                            line = await it.__anext__()
                    else:
                        line = await it.__anext__()
                else:
                    line = await it.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                self.failed = "timeout"
                raise UpstreamStreamError(f"{self.route.label} did not finish within its total timeout.",
                                          {"message": "The model server did not finish in time.",
                                           "type": "server_error", "param": None, "code": "upstream_timeout"})
            except (httpx.HTTPError, UpstreamStreamError) as exc:
                self.failed = type(exc).__name__
                raise
            self._see(line)
            yield line
        if not self.done:
            self.failed = self.failed or "ended early"

    def _see(self, line: str) -> None:
        data = _sse_data(line)
        if data == "[DONE]":
            self.done = True
        elif data and '"message_stop"' in data:
            self.done = True

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.done and not self.failed:
                # The stream ended ([DONE] / message_stop) but its body may still hold the chunked terminator:
                # read it (briefly) so the connection goes back to the pool instead of being dropped and the next
                # call does not pay a new TCP connect — in the background: the client's last events and the end
                # of its response do not wait for the upstream's terminator to arrive.
                task = asyncio.get_running_loop().create_task(self._drain())
                _draining.add(task)
                task.add_done_callback(_draining.discard)
            else:
                await self._shut()
        finally:
            self.release()
            if self.on_end is not None and not self._ended:
                self._ended = True
                result = self.on_end(not self.failed)  # a client that left early is not the target failing
                if asyncio.iscoroutine(result):
                    await result

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(0.05):
                async for _ in self.lines:
                    pass
        except Exception:  # noqa: BLE001 - a terminator that does not come: the connection is closed instead
            pass
        await self._shut()

    async def _shut(self) -> None:
        aclose = getattr(self.lines, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # noqa: BLE001 - closing a generator whose connection already failed
                pass
        await self.resp.aclose()


_draining: set[asyncio.Task] = set()  # finished streams reading their terminator (a reference keeps each alive)


async def _peek(lines: AsyncIterator[str], *, native: bool) -> tuple[list[str], AsyncIterator[str]]:
    """Read lines up to the first one that carries an answer. Raises UpstreamStreamError on a malformed
    event, an error event or an early end (the caller falls back)."""
    it = lines.__aiter__()
    buffered: list[str] = []
    while True:
        try:
            line = await it.__anext__()
        except StopAsyncIteration:
            raise UpstreamStreamError("The model server closed the stream before it answered.")
        buffered.append(line)
        data = _sse_data(line)
        if data is None or not data:
            continue
        if data == "[DONE]":
            return buffered, it
        try:
            obj = loads(data)
        except ValueError:
            raise UpstreamStreamError("The model server sent a malformed stream event.",
                                      {"message": "The model server sent a malformed stream event.",
                                       "type": "server_error", "param": None, "code": "upstream_malformed"})
        if not isinstance(obj, dict):
            continue
        if native:
            if obj.get("type") == "error":
                raise _stream_error(obj.get("error") or {})
            if obj.get("type") in ("content_block_start", "content_block_delta", "message_delta", "message_stop"):
                return buffered, it
        else:
            if obj.get("error") is not None:
                raise _stream_error(obj["error"])
            if _openai_first_content(obj):
                return buffered, it


# --- one target -----------------------------------------------------------------------------------
@dataclass
class Opened:
    route: Route
    mode: str
    ms: float  # until the first byte (streams) or the whole answer
    data: dict | None = None  # a non-streamed answer (OpenAI shape; Anthropic in `native` mode)
    lines: UpstreamLines | None = None


def _headers(route: Route, mode: str, client_headers: dict) -> dict:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if mode == "openai":
        if route.api_key:
            headers["authorization"] = f"Bearer {route.api_key}"
    else:
        headers["anthropic-version"] = client_headers.get("anthropic-version") or ANTHROPIC_VERSION
        if client_headers.get("anthropic-beta") and mode == "native":
            headers["anthropic-beta"] = client_headers["anthropic-beta"]
        if route.api_key:
            headers["x-api-key"] = route.api_key
    return headers


def _timeout_error(route: Route, what: str) -> TargetFailed:
    return TargetFailed(ProxyError(504, f"The model server did not answer in time ({route.label}: {what}).",
                                   type="server_error", code="upstream_timeout"), "timeout", breaker=True)


async def open_target(route: Route, *, mode: str, path: str, body: dict, stream: bool, client_headers: dict,
                      release: Callable[[], None], on_end: Callable[[bool], object] | None = None,
                      cid: str = "", created: int = 0) -> Opened:
    """Send `body` to `route` and read its answer up to the first byte (streams) or whole (otherwise)."""
    started = time.perf_counter()
    total = route.total_s
    first_byte = route.first_byte_s or settings.HUB_PROXY_TIMEOUT_S
    deadline = started + total if total else None
    if stream:
        budget = min(first_byte, total) if total else first_byte
    else:
        budget = total or first_byte
    if mode == "openai":
        url = route.base_url + path
    else:
        url = route.base_url + "/v1/messages"
    if mode == "to_anthropic":
        from apps.proxy import anthropic_upstream

        try:
            body = {**anthropic_upstream.openai_to_anthropic_request(body), "model": route.upstream_model,
                    "stream": stream}
        except ProxyError as exc:  # a feature Anthropic lacks: the next target may have it
            unsupported = exc.code in _UNSUPPORTED_CODES
            raise TargetFailed(exc, "unsupported" if unsupported else "client_error", breaker=False,
                               fall_through=unsupported)
    http = client()
    timeout = httpx.Timeout(connect=route.connect_s, read=first_byte if stream else budget, write=30.0,
                            pool=route.connect_s)
    req = http.build_request("POST", _url(url), content=dumps(body), headers=_headers(route, mode, client_headers),
                             timeout=timeout)
    resp = None
    try:
        async with asyncio.timeout(budget):
            unsent, resent_unanswered = 0, False
            while True:
                try:
                    resp = await http.send(req, stream=True)
                    break
                except (httpx.RemoteProtocolError, httpx.WriteError) as exc:
                    # A kept-alive connection the server closed just as it was reused (its keep-alive timeout,
                    # uvicorn's 5 s: vLLM, the bundled inference server): again, on another connection (after a
                    # quiet spell several pooled ones may have expired at once); an unanswered one once only.
                    stale = _stale(exc)
                    if stale == "unsent" and unsent < UNSENT_RESENDS:
                        unsent += 1
                    elif stale == "unanswered" and not resent_unanswered:
                        resent_unanswered = True
                    else:
                        raise
            if resp.status_code >= 400:
                raw = await resp.aread()
                raise classify(resp.status_code, raw, resp.headers)
            if not stream:
                raw = await resp.aread()
                try:
                    data = loads(raw)
                    if not isinstance(data, dict):
                        raise ValueError("not an object")
                except ValueError:
                    raise TargetFailed(ProxyError(502, "The model server sent an invalid response.",
                                                  type="server_error", code="upstream_error"),
                                       "malformed", breaker=True)
                if mode == "to_anthropic":
                    from apps.proxy import anthropic_upstream

                    data = anthropic_upstream.anthropic_to_openai_response(data, cid=cid, created=created,
                                                                           model=route.upstream_model)
                await resp.aclose()
                release()
                return Opened(route, mode, (time.perf_counter() - started) * 1000, data=data)
            source = sse_lines(resp)
            if mode == "to_anthropic":
                source = _translated_lines(source)
            buffered, rest = await _peek(source, native=mode == "native")
    except TargetFailed:
        await _close(resp)
        raise
    except TimeoutError:
        await _close(resp)
        raise _timeout_error(route, "first byte" if stream else "answer")
    except httpx.TimeoutException as exc:
        await _close(resp)
        raise _timeout_error(route, "connect" if isinstance(exc, httpx.ConnectTimeout) else "read")
    except httpx.ConnectError as exc:
        await _close(resp)
        raise TargetFailed(ProxyError(502, f"The model server is unreachable ({type(exc).__name__}); is it "
                                      "running?", type="server_error", code="upstream_unavailable"),
                           "connect_error", breaker=True)
    except httpx.HTTPError as exc:
        await _close(resp)
        raise TargetFailed(ProxyError(502, f"The model server dropped the connection ({type(exc).__name__}).",
                                      type="server_error", code="upstream_error"), "upstream_error", breaker=True)
    except UpstreamStreamError as exc:
        await _close(resp)
        code = exc.error.get("code") or "upstream_error"
        message = exc.error.get("message") or str(exc)
        if _CONTEXT_RE.search(message) or code == "context_length_exceeded":
            tokens, limit = context_numbers(message)
            raise TargetFailed(ProxyError(400, message, param="messages", code="context_length_exceeded"),
                               "context_overflow", breaker=False, tokens=tokens, limit=limit)
        status = "malformed" if code == "upstream_malformed" else "stream_error"
        raise TargetFailed(ProxyError(502, message, type="server_error", code="upstream_error"), status,
                           breaker=True)
    lines = UpstreamLines(route=route, resp=resp, lines=rest, buffered=buffered, deadline=deadline,
                          release=release, on_end=on_end, read_s=first_byte)
    return Opened(route, mode, (time.perf_counter() - started) * 1000, lines=lines)


# Resends of a request that was never written (netstream.NOT_SENT): safe and cheap (the closed connection is found
# before a byte goes out), bounded all the same. A 200-stream soak once met three such connections in a row.
UNSENT_RESENDS = 8


def _stale(exc: httpx.RemoteProtocolError | httpx.WriteError) -> str | None:
    """Did the request die on a pooled connection the server had closed? "unsent": it was never written (the
    backend found the connection closed: netstream.NOT_SENT), safe to send again whatever happened before;
    "unanswered": the server closed the connection without a byte of answer (h11: "Server disconnected without
    sending a response."), the keep-alive race, which open_target sends again once only, so a request that makes
    the server crash is not sent three times; None: neither."""
    if isinstance(exc, httpx.WriteError):
        return "unsent" if str(exc) == netstream.NOT_SENT else None
    return "unanswered" if "without sending a response" in str(exc) else None


async def _close(resp: httpx.Response | None) -> None:
    if resp is not None:
        try:
            await resp.aclose()
        except Exception:
            pass
