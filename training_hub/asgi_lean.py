"""The lean path of /v1 (training_hub/asgi.py, behind asgi_guard.RequestGuard): API-key calls skip Django's
middleware chain.

Django's ASGI handler runs every request through the whole middleware chain; most of those middlewares are
sync-only, so each request pays a thread hop per adapter boundary plus the request_started/request_finished
signals (more hops) — about 5 ms of the proxy's added latency at concurrency 1 (bench/bench_proxy.py). A
/v1 call that carries an API key (`Authorization: Bearer` or `x-api-key`) needs none of it: no session, no
CSRF (the key is the credential), no messages, no htmx, no whitenoise. `LeanV1` serves such a call itself:

- the body is read as Django reads it (the guard in front has already capped its size and checked the key);
- the request is Django's own `ASGIRequest`, resolved with Django's resolver on ROOT_URLCONF, so the /v1
  views (and their catch-all JSON 404) are the same functions as on the full stack; only async views are
  served here, anything else goes to the full stack;
- the response gets what the skipped middlewares would add to it (security headers, CSP, X-Frame-Options,
  Content-Length: their `process_response`, called directly, no thread hop) and is sent with Django's own
  `ASGIHandler.send_response`; a client that disconnects cancels the view as on Django's handler;
- database connections are closed at the end only when this request used a sync thread (a cache miss).

Everything else (no key, a session-authenticated playground call, pages, /api, a Host Django refuses) goes
to the full Django application unchanged. `request.lean = True` marks a request served here (tests).
HUB_LEAN_V1=0 in the environment turns the lean path off (every request on the full stack: comparisons).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from contextlib import aclosing

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.core.exceptions import DisallowedHost, RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.urls import get_resolver, set_script_prefix
from django.urls.exceptions import Resolver404

log = logging.getLogger(__name__)
# A stream's last piece leaves with the end of its body (_LeanHandler.send_response); HUB_LAST_PIECE_ENDS=0: apart.
LAST_PIECE_ENDS = os.environ.get("HUB_LAST_PIECE_ENDS", "1") != "0"


def _has_api_key(scope) -> bool:
    for name, value in scope.get("headers") or ():
        lname = name.lower()
        if lname == b"authorization":
            if value[:7].lower() == b"bearer " and value[7:].strip():
                return True
        elif lname == b"x-api-key" and value:
            return True
    return False


def is_lean(scope) -> bool:
    """Served by LeanV1: an HTTP request under /v1 carrying an API key."""
    path = scope.get("path", "")
    return (scope.get("type") == "http" and (path == "/v1" or path.startswith("/v1/"))
            and _has_api_key(scope))


class _ResponseMiddlewares:
    """The response side of the skipped middlewares that change an API response, called directly."""

    def __init__(self):
        from django.middleware.clickjacking import XFrameOptionsMiddleware
        from django.middleware.common import CommonMiddleware
        from django.middleware.security import SecurityMiddleware

        from apps.core.csp import CSPMiddleware

        def noop(request):  # never called: only process_response is used
            raise AssertionError

        self.chain = [m(noop) for m in (CommonMiddleware, XFrameOptionsMiddleware, CSPMiddleware,
                                        SecurityMiddleware)]  # inner to outer, as Django applies them

    def __call__(self, request, response):
        for m in self.chain:
            response = m.process_response(request, response)
        return response


class LeanV1:
    """ASGI app: API-key /v1 calls served without the middleware chain; all else to `app` (Django)."""

    def __init__(self, app):
        self.app = app
        self.handler = _LeanHandler()
        self.enabled = os.environ.get("HUB_LEAN_V1", "1") != "0"

    async def __call__(self, scope, receive, send):
        if not (self.enabled and is_lean(scope)):
            return await self.app(scope, receive, send)
        await self.handler(scope, receive, send, fallback=self.app)


class _LeanHandler(ASGIHandler):
    def __init__(self):  # no middleware loaded: that is the point
        self._middleware_chain = None
        self._response_middlewares = None
        self._resolver = None

    async def __call__(self, scope, receive, send, fallback=None):
        ctx = ThreadSensitiveContext()
        async with ctx:
            try:
                await self.handle_lean(scope, receive, send, fallback)
            finally:
                if ctx in SyncToAsync.context_to_thread_executor:  # a sync hop ran (cache miss): close its DB
                    from django.db import close_old_connections

                    await sync_to_async(close_old_connections)()

    async def handle_lean(self, scope, receive, send, fallback):
        if self._response_middlewares is None:
            self._response_middlewares = _ResponseMiddlewares()
            self._resolver = get_resolver()
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(self.get_script_prefix(scope))
        request, error_response = self.create_request(scope, body_file)
        match = None
        if request is not None:
            try:
                request.get_host()  # ALLOWED_HOSTS: Django's full stack answers a bad Host (400)
                match = self._resolver.resolve(request.path_info)
            except (DisallowedHost, Resolver404):
                match = None
        if request is None or match is None or not asyncio.iscoroutinefunction(match.func):
            # Anything unusual: the full stack, with the body already read replayed to it.
            body_file.seek(0)
            data = body_file.read()
            body_file.close()
            sent = False

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": data, "more_body": False}
                return await receive()

            return await fallback(scope, replay, send)
        request.resolver_match = match
        request.lean = True

        async def process_request():
            try:
                response = await match.func(request, *match.args, **match.kwargs)
            except Exception as exc:  # what Django's convert_exception_to_response does
                response = await sync_to_async(response_for_exception)(request, exc)
            response = self._response_middlewares(request, response)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass
            return response

        tasks = [asyncio.create_task(self.listen_for_disconnect(receive)), asyncio.create_task(process_request())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            response = None
        if response is not None:
            for closer in response._resource_closers:  # HttpResponse.close() without its signal (a thread hop)
                try:
                    closer()
                except Exception:  # as Django's close(): a closer's failure is not the client's
                    log.debug("response closer failed", exc_info=sys.exc_info())
            response._resource_closers.clear()
            response.closed = True
        body_file.close()

    async def send_response(self, response, send):
        """Django's send_response, except that a stream's last piece carries the end of the body (more_body=False)
        when the stream ends right after it: uvicorn then writes the last events and the chunked terminator in one
        write — one TCP segment and one wake-up of the client less per streamed answer. Pieces are never held back
        (apps.proxy.coalesce.with_last looks ahead only as far as the stream can go without waiting)."""
        if not (response.streaming and LAST_PIECE_ENDS):
            return await super().send_response(response, send)
        from apps.proxy.coalesce import with_last

        headers = []
        for header, value in response.items():  # as Django's send_response
            headers.append((header.encode("ascii") if isinstance(header, str) else bytes(header),
                            value.encode("latin1") if isinstance(value, str) else bytes(value)))
        for c in response.cookies.values():
            headers.append((b"Set-Cookie", c.output(header="").encode("ascii").strip()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        ended = False
        async with aclosing(with_last(aiter(response))) as content:
            async for part, last in content:
                for chunk, chunk_last in self.chunk_bytes(part):
                    ended = last and chunk_last
                    await send({"type": "http.response.body", "body": chunk, "more_body": not ended})
        if not ended:
            await send({"type": "http.response.body"})

    @staticmethod
    def get_script_prefix(scope):
        from django.core.handlers.asgi import get_script_prefix

        return get_script_prefix(scope)


class OneSegmentHead:
    """ASGI wrapper (outermost, around the guard): a lean /v1 answer's head and its first body bytes leave the
    server in one TCP segment.

    uvicorn writes the status line and headers as soon as `http.response.start` arrives and the body with the
    next message; uvloop sends each write at once, so the client gets two segments and wakes twice — and on a
    busy machine the woken client preempts the hub inside the first write (bench/bench_proxy.py). Here the
    socket is corked (TCP_CORK, Linux) from the head until the first body message has been handed to the
    server, then uncorked, which sends both together; a stream's later chunks go out as they come, uncorked.
    The kernel sends a corked segment after 200 ms on its own, so a slow first chunk costs at most that.

    The socket is found through uvicorn's transport (the `send` it hands the app is bound to its request
    cycle); with another server, a Unix socket or a platform without TCP_CORK this does nothing.
    HUB_ONE_SEGMENT_HEAD=0 turns it off (comparisons)."""

    def __init__(self, app):
        self.app = app
        self.enabled = hasattr(socket, "TCP_CORK") and os.environ.get("HUB_ONE_SEGMENT_HEAD", "1") != "0"

    async def __call__(self, scope, receive, send):
        sock = _tcp_socket(send) if self.enabled and is_lean(scope) else None
        if sock is None:
            return await self.app(scope, receive, send)
        corked = False

        async def corking_send(message):
            nonlocal corked
            kind = message["type"]
            if kind == "http.response.start":
                corked = _cork(sock, True)
                return await send(message)
            try:
                return await send(message)
            finally:
                if corked and kind == "http.response.body":
                    corked = False
                    _cork(sock, False)

        try:
            await self.app(scope, receive, corking_send)
        finally:
            if corked:
                _cork(sock, False)


def _tcp_socket(send):
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return None
    try:
        sock = transport.get_extra_info("socket")
    except Exception:
        return None
    if sock is None or getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return None
    return sock


def _cork(sock, on: bool) -> bool:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1 if on else 0)
        return on
    except OSError:  # the client is gone, or the option is refused: a plain write then
        return False


__all__ = ["LeanV1", "OneSegmentHead", "is_lean", "ASGIRequest"]
