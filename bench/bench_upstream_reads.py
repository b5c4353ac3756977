"""CPU per network read of a token stream through the proxy's upstream client: httpcore's default (anyio) backend
vs the hub's asyncio backend (apps/proxy/netstream.py), and httpx's `aiter_bytes()` vs the raw transport stream
that apps.proxy.upstream.sse_lines reads when there is no content encoding.

A server thread in this process sends one chunked response of N one-event chunks (`data: {...}` of a token), one
chunk per send with a short pause so that each arrives in its own read; the client reads it under uvloop. Printed:
CPU of the process per read (the server thread's share is the same in every variant), best of `--repeat`.

    .venv/bin/python bench/bench_upstream_reads.py [--events 20000] [--repeat 3]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "training_hub.settings")

EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"tok"}}]}\n\n'


def serve(sock: socket.socket, events: int) -> None:
    conn, _ = sock.accept()
    with conn:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (len(EVENT), EVENT)
        for _ in range(events):
            conn.sendall(chunk)
            time.sleep(0.00005)
        conn.sendall(b"0\r\n\r\n")
        time.sleep(0.2)


async def one(backend: str, read: str, events: int) -> float:
    import httpx

    from apps.proxy import netstream

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    threading.Thread(target=serve, args=(sock, events), daemon=True).start()
    transport = netstream.transport() if backend == "asyncio" else httpx.AsyncHTTPTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        c0 = time.process_time()
        reads = tokens = 0
        async with client.stream("POST", f"http://127.0.0.1:{sock.getsockname()[1]}/", content=b"{}") as r:
            chunks = r.aiter_bytes() if read == "aiter_bytes" else r.stream
            async for b in chunks:
                reads += 1
                tokens += b.count(b"tok")
        cpu = time.process_time() - c0
    sock.close()
    assert tokens == events, (tokens, events)
    return cpu / reads * 1e6


def main() -> int:
    import django
    import uvloop

    django.setup()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{args.events} one-event reads, CPU µs per read (best of {args.repeat})")
    for backend, read in (("anyio", "aiter_bytes"), ("asyncio", "aiter_bytes"), ("asyncio", "raw stream")):
        best = min(uvloop.run(one(backend, read, args.events)) for _ in range(args.repeat))
        print(f"  {backend:8s} {read:12s} {best:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
