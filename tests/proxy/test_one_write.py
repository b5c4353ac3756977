"""Fewer TCP segments per proxied call (issue 8, hot path): an upstream request leaves the hub in one write
(apps/proxy/netstream.py, the asyncio network backend installed in apps.proxy.upstream.client()) and a lean /v1
answer's head leaves together with its first body bytes (training_hub.asgi_lean.OneSegmentHead). Checked on real
loopback sockets: what the peer's first recv() returns. The backend's failure paths (refused, stalled, dropped,
closed while idle, TLS) are checked here too; tests/proxy/test_chains_fallback.py drives the whole proxy through it
against the fault-injecting upstream."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from apps.proxy import netstream, upstream
from tests.proxy.fake_upstream import ServerThread
from training_hub.asgi_lean import OneSegmentHead


# --- a real upstream socket -------------------------------------------------------------------------
class _RawUpstream:
    """A TCP server that records what its first recv() of each request returns, reads the request to its end
    (Content-Length) and answers a small JSON body, keeping the connection alive."""

    def __init__(self, behaviour: str = "ok"):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.first_reads: list[bytes] = []
        self.requests: list[bytes] = []
        self.connections = 0
        self.dropped: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            while True:
                first = conn.recv(1 << 20)
                if not first:
                    return
                self.first_reads.append(first)
                data = first
                while b"\r\n\r\n" not in data:
                    data += conn.recv(1 << 20)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")][0])
                while len(body) < length:
                    body += conn.recv(1 << 20)
                self.requests.append(head + b"\r\n\r\n" + body)
                if self.behaviour == "stall":
                    time.sleep(3)
                    return
                if self.behaviour == "drop_mid":
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                    return
                answer = (b"z" * 1_500_000 if self.behaviour == "big" else b'{"ok": true, "n": %d}' % len(body))
                cookie = b"set-cookie: __cf_bm=abc; Path=/\r\n" if self.behaviour == "cookie" else b""
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
                             % (cookie, len(answer), answer))
                if self.behaviour == "close_idle":  # closes a kept-alive connection once it is idle
                    time.sleep(0.05)
                    return
                if self.behaviour == "drop_reused":  # the next request on this connection is read, never answered
                    dropped = conn.recv(1 << 20)
                    if dropped:
                        self.dropped.append(dropped)
                    return

    def close(self):
        self.sock.close()


@pytest.fixture
def raw_server():
    """Make `_RawUpstream(behaviour)` servers, closed after the test; the proxy uses its real network client."""
    made: list[_RawUpstream] = []
    upstream.set_transport(None)  # the real network client, as in production

    def make(behaviour: str = "ok") -> _RawUpstream:
        made.append(_RawUpstream(behaviour))
        return made[-1]

    yield make
    for srv in made:
        srv.close()
    upstream.set_transport(None)


@pytest.fixture
def raw_upstream(raw_server):
    return raw_server()


def test_an_upstream_request_arrives_in_one_segment(raw_upstream, settings):
    settings.HUB_PROXY_TIMEOUT_S = 10
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'

    async def go():
        c = upstream.client()
        for _ in range(3):
            r = await c.post(f"http://127.0.0.1:{raw_upstream.port}/v1/chat/completions", content=body,
                             headers={"content-type": "application/json"})
            assert r.status_code == 200 and r.json() == {"ok": True, "n": len(body)}
        # a body larger than one flush still arrives whole and in order
        big = b'{"x": "' + b"y" * 300_000 + b'"}'
        r = await c.post(f"http://127.0.0.1:{raw_upstream.port}/v1/chat/completions", content=big)
        assert r.json() == {"ok": True, "n": len(big)}
        await c.aclose()

    asyncio.run(go())
    # head and body together in the server's first read, for each of the small requests
    for first in raw_upstream.first_reads[:3]:
        assert first.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n") and first.endswith(body)
    assert raw_upstream.requests[3].endswith(b"y" * 1000 + b'"}')
    assert raw_upstream.connections == 1  # keep-alive reuse is untouched


def test_an_upstream_s_cookie_does_not_ride_along_on_later_calls(raw_server):
    srv = raw_server("cookie")

    async def go():
        c = upstream.client()
        for _ in range(2):
            r = await c.post(f"http://127.0.0.1:{srv.port}/x", content=b"{}")
            assert r.status_code == 200 and r.headers["set-cookie"].startswith("__cf_bm=")
        assert len(c.cookies.jar) == 0
        await c.aclose()

    asyncio.run(go())
    assert all(b"cookie:" not in req.lower().replace(b"set-cookie", b"") for req in srv.requests)


def test_the_client_can_be_switched_back_to_one_write_per_part(raw_upstream, monkeypatch):
    monkeypatch.setattr(upstream, "ASYNCIO_SOCKETS", False)

    async def go():
        c = upstream.client()
        pool = c._transport._pool
        assert not isinstance(pool._network_backend, netstream.AsyncioBackend)
        r = await c.post(f"http://127.0.0.1:{raw_upstream.port}/x", content=b"{}")
        assert r.status_code == 200
        await c.aclose()

    asyncio.run(go())


def _post(port: int, body: bytes = b"{}", **client):
    async def go():
        c = upstream.client()
        try:
            return await c.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=body, **client)
        finally:
            await c.aclose()

    return asyncio.run(go())


def _raw_route(port: int):
    """A route to a raw test server on `port`, as open_target gets it for an OpenAI-compatible upstream."""
    from apps.proxy.routing import Route

    return Route(requested="m", version_id=None, upstream_model="m", base_url=f"http://127.0.0.1:{port}/v1",
                 api_key=None, remote=False, label="raw")


async def _open(route, body: dict, *, stream: bool = False):
    return await upstream.open_target(route, mode="openai", path="/chat/completions", body=body, stream=stream,
                                      client_headers={}, release=lambda: None)


def test_a_connection_the_server_closed_while_idle_is_not_reused(raw_server):
    srv = raw_server("close_idle")

    async def go():
        c = upstream.client()
        for _ in range(3):
            r = await c.post(f"http://127.0.0.1:{srv.port}/x", content=b"{}")
            assert r.status_code == 200
            await asyncio.sleep(0.2)  # the server has closed it by now: the pool must see that, not fail
        await c.aclose()

    asyncio.run(go())
    assert srv.connections == 3


def test_a_close_the_event_loop_has_not_delivered_yet_still_counts():
    """The pool asks "is this idle connection readable?" before reusing it; a FIN that the kernel holds but the
    (busy) event loop has not handed to the protocol yet must count, or the request is sent into a closed
    connection and fails."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    async def go():
        stream = await netstream.AsyncioBackend().connect_tcp("127.0.0.1", srv.getsockname()[1], timeout=5)
        conn, _ = srv.accept()
        assert stream.get_extra_info("is_readable") is False  # open and idle
        conn.close()
        time.sleep(0.1)  # the loop does not run: the protocol has not seen the end
        assert not stream._protocol.eof
        assert stream.get_extra_info("is_readable") is True  # the socket has
        await asyncio.sleep(0.05)
        assert stream._protocol.eof and await stream.read(100) == b""
        await stream.aclose()

    try:
        asyncio.run(go())
    finally:
        srv.close()


def test_a_request_sent_into_a_connection_the_server_was_closing_is_sent_again(settings, raw_server):
    """A kept-alive connection that the server closes just as the proxy reuses it (the server's keep-alive
    timeout): the request never reached it, so open_target sends it once more on a new connection instead of
    failing the target."""
    settings.HUB_PROXY_TIMEOUT_S = 10
    srv = raw_server("drop_reused")
    route = _raw_route(srv.port)

    async def go():
        answers = []
        for _ in range(2):
            answers.append((await _open(route, {"model": "m", "messages": []})).data)
        await upstream.client().aclose()
        return answers

    assert asyncio.run(go()) == [{"ok": True, "n": 27}, {"ok": True, "n": 27}]
    assert srv.connections == 2 and len(srv.requests) == 2
    assert len(srv.dropped) == 1 and srv.dropped[0].startswith(b"POST /v1/chat/completions")


def test_a_request_whose_pooled_connection_closed_before_it_was_written_is_sent_on_another(settings, raw_server,
                                                                                            monkeypatch):
    """The pool checks an idle connection before reusing it, but the server's FIN can arrive in between (httpcore
    waits on a lock first: the loop runs). The backend then refuses to write (netstream.NOT_SENT) and open_target
    sends the request again on a new connection, as often as that happens (a 200-stream soak against a server
    with uvicorn's 5 s keep-alive had five such 502s in 2,500 streams)."""
    settings.HUB_PROXY_TIMEOUT_S = 10
    srv = raw_server("close_idle")
    route = _raw_route(srv.port)
    readable = netstream.AsyncioStream.get_extra_info
    # the check loses the race every time: a closed idle connection looks alive to the pool
    monkeypatch.setattr(netstream.AsyncioStream, "get_extra_info",
                        lambda self, info: False if info == "is_readable" else readable(self, info))

    async def call():
        return (await _open(route, {"model": "m"})).data

    async def go():
        c = upstream.client()
        answers = [await call()]
        await asyncio.sleep(0.2)  # the server has closed it, and the loop has seen the end
        answers.append(await call())
        await asyncio.sleep(0.2)
        with pytest.raises(httpx.WriteError, match="before the request could be sent"):  # what the retry catches
            await c.post(f"http://127.0.0.1:{srv.port}/x", content=b"{}")
        await c.aclose()
        return answers

    assert asyncio.run(go()) == [{"ok": True, "n": 13}] * 2  # n: the body length the server read
    assert srv.connections == 2 and len(srv.requests) == 2


FAILURES = {"unsent": lambda: httpx.WriteError(netstream.NOT_SENT),
            "unanswered": lambda: httpx.RemoteProtocolError("Server disconnected without sending a response.")}


def _scripted_sends(failures: list[str]):
    """A transport whose sends fail as `failures` name in turn (FAILURES) and then answer; (transport, sends)."""
    sends: list[int] = []

    def handler(request):
        sends.append(1)
        if len(sends) <= len(failures):
            raise FAILURES[failures[len(sends) - 1]]()
        return httpx.Response(200, json={"ok": True})

    return httpx.MockTransport(handler), sends


UNSENT, UNANSWERED = "unsent", "unanswered"


@pytest.mark.parametrize("failures, answered, sent", [
    # seen in the soak: two pooled connections found closed, then a third the server closed as it was used
    ([UNSENT, UNANSWERED], True, 3),
    ([UNANSWERED, UNSENT], True, 3),
    ([UNANSWERED], True, 2),
    ([UNSENT, UNSENT], True, 3),
    # seen in a later soak: three pooled connections in a row found closed
    ([UNSENT, UNSENT, UNSENT], True, 4),
    ([UNSENT, UNANSWERED, UNSENT, UNSENT], True, 5),
    # a request that may have reached the server and went unanswered twice is not sent a third time
    ([UNANSWERED, UNANSWERED], False, 2),
    ([UNSENT, UNANSWERED, UNANSWERED], False, 3),
    # never-written resends are bounded all the same (upstream.UNSENT_RESENDS)
    ([UNSENT] * 8, True, 9),
    ([UNSENT] * 9, False, 9),
])
def test_only_an_unanswered_request_limits_the_resends(settings, failures, answered, sent):
    """Sends that never left (netstream.NOT_SENT) do not use up the one resend of a request the server closed
    its connection on without answering, and have a bound of their own."""
    settings.HUB_PROXY_TIMEOUT_S = 10
    transport, sends = _scripted_sends(failures)
    upstream.set_transport(transport)
    try:
        if answered:
            assert asyncio.run(_open(_raw_route(9), {"model": "m"})).data == {"ok": True}
        else:
            with pytest.raises(upstream.TargetFailed) as failed:
                asyncio.run(_open(_raw_route(9), {"model": "m"}))
            assert failed.value.status == "upstream_error"
    finally:
        upstream.set_transport(None)
    assert len(sends) == sent


def test_a_finished_stream_does_not_wait_for_the_upstream_s_terminator_and_its_connection_is_reused(settings):
    """After [DONE] the client's stream ends at once; the upstream's chunked terminator is read in the background
    (so the kept-alive connection goes back to the pool)."""
    from apps.proxy import gateway

    settings.HUB_PROXY_TIMEOUT_S = 10
    release = threading.Event()
    terminator_sent: list[float] = []
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    connections = []

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            connections.append(conn)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    def handle(conn):
        while True:
            data = conn.recv(1 << 16)
            if not data:
                return
            events = [b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n', b"data: [DONE]\n\n"]
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                         + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events))
            release.wait(5)
            release.clear()
            terminator_sent.append(time.perf_counter())
            conn.sendall(b"0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    upstream.set_transport(None)
    route = _raw_route(sock.getsockname()[1])

    async def one():
        opened = await _open(route, {"model": "m", "stream": True}, stream=True)
        events = [ev async for ev in gateway.sse_events(opened.lines)]
        ended = time.perf_counter()
        release.set()  # now the upstream may finish its body
        return events, ended

    async def go():
        first, ended = await one()
        assert first[0]["choices"][0]["delta"]["content"] == "hi"
        await asyncio.sleep(0.02)
        second, _ = await one()
        await asyncio.sleep(0.02)
        await upstream.client().aclose()
        return ended

    try:
        ended = asyncio.run(go())
        assert ended < terminator_sent[0]  # the stream's end did not wait for the terminator
        assert len(connections) == 1  # and the connection was reused for the next call
    finally:
        sock.close()
        for c in connections:
            c.close()


def test_backend_failures_are_httpx_s_usual_errors(raw_server):
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    port = refused.getsockname()[1]
    refused.close()  # nothing listens there
    with pytest.raises(httpx.ConnectError):
        _post(port)

    t0 = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        _post(raw_server("stall").port, timeout=httpx.Timeout(5, read=0.3))
    assert time.perf_counter() - t0 < 2

    with pytest.raises(httpx.RemoteProtocolError):  # h11: the body ended before its Content-Length
        _post(raw_server("drop_mid").port)

    r = _post(raw_server("big").port)  # more than the read buffer's high-water mark: reading pauses and resumes
    assert r.status_code == 200 and r.content == b"z" * 1_500_000


def test_tls_through_the_asyncio_backend(tmp_path):
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))

    async def handler(scope, receive, send):
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"tls ok " + body})

    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    with ServerThread(handler, ssl_certfile=str(tmp_path / "cert.pem"), ssl_keyfile=str(tmp_path / "key.pem")) as srv:
        async def go():
            async with httpx.AsyncClient(transport=netstream.transport(verify=client_ctx)) as c:
                for i in range(2):
                    r = await c.post(f"https://localhost:{srv.port}/v1/x", content=b"n%d" % i)
                    assert r.status_code == 200 and r.text == f"tls ok n{i}"
            # a certificate the client does not trust: ConnectError, as httpx raises it
            async with httpx.AsyncClient(transport=netstream.transport()) as c:
                with pytest.raises(httpx.ConnectError):
                    await c.get(f"https://localhost:{srv.port}/")

        asyncio.run(go())


# --- the client side: head + first body bytes ---------------------------------------------------------
def _app(chunks: list[bytes], pause: float):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i, chunk in enumerate(chunks):
            await asyncio.sleep(pause)
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})
    return app


def _first_read(port: int, path: str, headers: str = "") -> tuple[bytes, bytes]:
    """(first recv, everything) of one HTTP/1.0-style request (the server closes after the answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{headers}\r\n".encode())
        first = s.recv(1 << 16)
        rest = first
        while True:
            more = s.recv(1 << 16)
            if not more:
                return first, rest
            rest += more


KEY = "authorization: Bearer hub_test\r\n"


def test_a_lean_answer_s_head_waits_for_its_first_body_bytes():
    with ServerThread(OneSegmentHead(_app([b"first", b"second"], pause=0.08))) as srv:
        t0 = time.perf_counter()
        first, everything = _first_read(srv.port, "/v1/chat/completions", KEY)
        assert b"HTTP/1.1 200 OK" in first and first.rstrip().endswith(b"first")  # head + chunk 1, one segment
        assert b"second" not in first  # later chunks are not held back
        assert b"second" in everything and time.perf_counter() - t0 < 2

        # not a lean call (no key, or not /v1): the head leaves at once, as uvicorn sends it
        first, everything = _first_read(srv.port, "/v1/chat/completions")
        assert first.endswith(b"\r\n\r\n") and b"first" in everything
        first, _ = _first_read(srv.port, "/api/datasets", KEY)
        assert first.endswith(b"\r\n\r\n")


def test_the_head_is_not_held_when_switched_off(monkeypatch):
    monkeypatch.setenv("HUB_ONE_SEGMENT_HEAD", "0")
    with ServerThread(OneSegmentHead(_app([b"only"], pause=0.08))) as srv:
        first, everything = _first_read(srv.port, "/v1/models", KEY)
        assert first.endswith(b"\r\n\r\n") and b"\r\nonly\r\n" in everything


def test_an_app_without_a_socket_behind_its_send_is_served_unchanged():
    sent = []

    async def send(message):  # not uvicorn's: no transport to find
        sent.append(message["type"])

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "path": "/v1/models", "headers": [(b"authorization", b"Bearer k")]}
    asyncio.run(OneSegmentHead(_app([b"a"], pause=0))(scope, receive, send))
    assert sent == ["http.response.start", "http.response.body"]
