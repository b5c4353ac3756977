"""The proxy's sockets to its upstreams: an httpcore network backend on asyncio's own transports, sending each
request in one write (apps/proxy/upstream.py installs it in the proxy's httpx client).

Why not httpcore's default (anyio) backend, on the proxy's hot path (bench/bench_proxy.py):
- **One write per request.** httpcore writes an HTTP/1.1 request in two or three parts: the head, then the
  body (then an empty end-of-message for chunked bodies). Each write is its own TCP segment and wakes the
  model server on its own: it parses the head, goes back to waiting, wakes again for the body; on shared cores
  the woken server often preempts the hub right inside the first write. Here the writes of one request are
  held in memory and sent with one write when httpcore starts reading the answer (or as soon as more than
  `FLUSH_BYTES` wait, so a large body still streams out in bounded pieces).
- **A read costs one future.** A streamed answer is read one network read per token. anyio's stream puts
  each read under a cancel scope with its own timer, an exception-mapping context manager and a checkpoint
  (an extra trip through the event loop). Here a read returns what the protocol has buffered, or waits on
  one future with one timer.

HTTP itself stays httpcore's and h11's (framing, keep-alive, pooling, proxies); this module is the socket
under it. Errors are httpcore's: ConnectError/ConnectTimeout, ReadError/ReadTimeout, WriteError/WriteTimeout,
so httpx raises what it always raises. TLS uses `loop.start_tls` on the same protocol.
"""
from __future__ import annotations

import asyncio
import select
import ssl
import typing

import httpcore
import httpx

FLUSH_BYTES = 64 * 1024
# The WriteError of a request that never left: its pooled connection was found closed when the request was to be
# written (apps.proxy.upstream sends such a request again, on another connection).
NOT_SENT = "The connection was closed before the request could be sent."
READ_HIGH = 256 * 1024  # buffered but unread bytes past which the socket stops being read (flow control)


class _Protocol(asyncio.Protocol):
    __slots__ = ("transport", "buffer", "waiter", "eof", "exc", "write_paused", "drain_waiters")

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.eof = False
        self.exc: BaseException | None = None
        self.write_paused = False
        self.drain_waiters: list[asyncio.Future] = []

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(True)

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_HIGH:
            try:
                self.transport.pause_reading()
            except (AttributeError, RuntimeError):
                pass
        self._wake()

    def eof_received(self):
        self.eof = True
        self._wake()
        return False  # close the transport

    def connection_lost(self, exc):
        self.eof = True
        self.exc = exc
        self._wake()
        self._release_drain()

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        self._release_drain()

    def _release_drain(self):
        waiters, self.drain_waiters = self.drain_waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(True)


def _readable(sock) -> bool:
    """Would a recv() on `sock` return at once (data or the end)? One poll() with no wait, as httpcore checks."""
    try:
        fd = sock.fileno()
    except (AttributeError, OSError):
        return True
    if fd < 0:
        return True
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(0))


async def _wait(fut: asyncio.Future, timeout: float | None) -> bool:
    """Wait for `fut`; False when `timeout` passed first (one timer, no cancel scope)."""
    if timeout is None:
        await fut
        return True
    loop = asyncio.get_running_loop()
    handle = loop.call_later(timeout, _expire, fut)
    try:
        await fut
    finally:
        handle.cancel()
    return fut.result()


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """A connection to an upstream: reads straight from an asyncio protocol's buffer, writes held until the
    next read (see the module's docstring)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol):
        self._transport = transport
        self._protocol = protocol
        self._pending: list[bytes] = []
        self._size = 0
        self._timeout: float | None = None

    # --- writing: held, then one write ---
    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._pending.append(buffer)
        self._size += len(buffer)
        self._timeout = timeout
        if self._size >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        p = self._protocol
        if p.eof or self._transport.is_closing():
            raise httpcore.WriteError(NOT_SENT)
        try:
            self._transport.write(data)
        except (RuntimeError, OSError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc
        if p.write_paused:  # the kernel's buffer is full: wait until it drains (large bodies)
            fut = asyncio.get_running_loop().create_future()
            p.drain_waiters.append(fut)
            if not await _wait(fut, self._timeout):
                raise httpcore.WriteTimeout("Timed out sending the request.")
            if p.exc is not None:
                raise httpcore.WriteError(str(p.exc) or type(p.exc).__name__)

    # --- reading: the protocol's buffer, or one future ---
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        await self._flush()
        p = self._protocol
        if not p.buffer and not p.eof:
            fut = asyncio.get_running_loop().create_future()
            p.waiter = fut
            try:
                arrived = await _wait(fut, timeout)
            finally:
                if p.waiter is fut:
                    p.waiter = None
            if not arrived:
                raise httpcore.ReadTimeout("Timed out reading the answer.")
        buf = p.buffer
        if buf:
            if len(buf) <= max_bytes:
                data = bytes(buf)
                buf.clear()
            else:
                data = bytes(buf[:max_bytes])
                del buf[:max_bytes]
            if len(buf) < READ_HIGH // 2 and not p.eof:
                try:
                    self._transport.resume_reading()
                except (AttributeError, RuntimeError):
                    pass
            return data
        if p.exc is not None:
            raise httpcore.ReadError(str(p.exc) or type(p.exc).__name__)
        return b""  # the server closed the connection

    async def aclose(self) -> None:
        self._pending.clear()
        self._size = 0
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        await self._flush()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                                 server_hostname=server_hostname)
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout("Timed out in the TLS handshake.") from exc
        except (OSError, ssl.SSLError, ConnectionError, RuntimeError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable":  # an idle pooled connection the server closed (or wrote to)
            p = self._protocol
            if p.buffer or p.eof or self._transport.is_closing():
                return True
            # A FIN the kernel has but the event loop has not delivered yet (a busy loop): ask the socket.
            return _readable(self._transport.get_extra_info("socket"))
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio transports (see the module's docstring)."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options=None) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(
                    _Protocol, host, port, local_addr=(local_address, 0) if local_address else None)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"Timed out connecting to {host}:{port}.") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():  # asyncio already sets TCP_NODELAY
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options=None) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_unix_connection(_Protocol, path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"Timed out connecting to {path}.") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def transport(*, limits: httpx.Limits | None = None, verify: ssl.SSLContext | bool = True) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connection pool runs on `AsyncioBackend` (httpx builds its pool without a
    network_backend argument: the same pool, built with one)."""
    limits = limits or httpx.Limits()
    t = httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    t._pool = httpcore.AsyncConnectionPool(
        ssl_context=t._pool._ssl_context, max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
        network_backend=AsyncioBackend())
    return t


__all__ = ["AsyncioBackend", "AsyncioStream", "FLUSH_BYTES", "NOT_SENT", "transport"]
