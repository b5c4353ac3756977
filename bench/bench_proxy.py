"""Proxy overhead: latency of /v1/chat/completions through the hub vs calling the mock upstream directly.

Everything on loopback, each in its own process, as in production: the mock OpenAI upstream
(tests/proxy/fake_upstream.py, a Starlette app under uvicorn), the hub's ASGI app under uvicorn
(1 process, as in the Procfile; SQLite database file; the embedded Redis receiving the request-log
messages, no worker draining them), and this load generator (httpx, asyncio). For each concurrency
(1/4/16) it sends a bounded number of requests directly to the mock and through the proxy (alias
`production` -> mv-1 -> the mock), non-streaming and streaming (latency = until [DONE]), and
reports p50/p95/p99 of both and the difference (the proxy's added latency).

    .venv/bin/python bench/bench_proxy.py [--requests 200]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.proxy.fake_upstream import free_port  # noqa: E402

SETUP = """
from apps.accounts.models import User
from apps.accounts.services import api_key_create
from apps.registry.services import alias_deploy, model_version_register
u = User.objects.create_user(username="bench", password="bench-pass-1", role="admin")
v = model_version_register(name="bench", kind="adapter", base_model=None)
alias_deploy(actor=u, version_id=v.pk, alias="production")
print("KEY=" + api_key_create(user=u, name="bench").plaintext)
"""
MOCK = ("import uvicorn; from tests.proxy.fake_upstream import create_fake_upstream; "
        "uvicorn.run(create_fake_upstream(), host='127.0.0.1', port={port}, log_level='error', access_log=False)")


def pct(values, p):
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


async def load(url: str, headers: dict, model: str, *, concurrency: int, total: int, stream: bool) -> list[float]:
    body = {"model": model, "messages": [{"role": "user", "content": "say something short please"}],
            "max_tokens": 16}
    if stream:
        body["stream"] = True
    lat: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:
        async def one():
            t0 = time.perf_counter()
            if stream:
                async with client.stream("POST", url + "/chat/completions", json=body) as r:
                    assert r.status_code == 200, r.status_code
                    tail = ""
                    async for chunk in r.aiter_text():
                        tail = (tail + chunk)[-32:]
                    assert "[DONE]" in tail
            else:
                r = await client.post(url + "/chat/completions", json=body)
                assert r.status_code == 200, r.text
            lat.append((time.perf_counter() - t0) * 1000)

        queue = asyncio.Queue()
        for _ in range(total):
            queue.put_nowait(None)

        async def worker():
            while not queue.empty():
                queue.get_nowait()
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return lat


def wait_ready(url: str, path: str = "/", timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            httpx.get(url + path, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200, help="requests per (concurrency, mode, target)")
    args = ap.parse_args()
    from training_hub import embedded_redis

    procs = []
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        redis_proc, _ = embedded_redis.start(Path(tmp))
        mock_port, hub_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update(HUB_DATA_DIR=tmp, DJANGO_SETTINGS_MODULE="training_hub.settings", DEBUG="0",
                   HUB_INFERENCE_URL=f"http://127.0.0.1:{mock_port}/v1", LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
        try:
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
            out = subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP], cwd=ROOT, env=env, check=True,
                                 capture_output=True, text=True).stdout
            key = [line[4:] for line in out.splitlines() if line.startswith("KEY=")][0]
            procs.append(subprocess.Popen([sys.executable, "-c", MOCK.format(port=mock_port)], cwd=ROOT, env=env))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "training_hub.asgi:application", "--host", "127.0.0.1",
                 "--port", str(hub_port), "--no-access-log", "--log-level", "warning"], cwd=ROOT, env=env))
            mock_url, hub_url = f"http://127.0.0.1:{mock_port}/v1", f"http://127.0.0.1:{hub_port}/v1"
            wait_ready(mock_url, "/models")
            wait_ready(hub_url, "/models")
            auth = {"Authorization": f"Bearer {key}"}
            print(f"{os.cpu_count()} CPUs; {args.requests} requests per cell; latencies in ms", flush=True)
            print(f"{'mode':<7}{'conc':>5} | {'direct p50/p95/p99':>22} | {'proxy p50/p95/p99':>22} | "
                  f"{'added p50/p95/p99':>22} | proxy req/s")
            for stream in (False, True):
                for conc in (1, 4, 16):
                    asyncio.run(load(mock_url, {}, "mv-1", concurrency=conc, total=20, stream=stream))  # warm-up
                    asyncio.run(load(hub_url, auth, "production", concurrency=conc, total=20, stream=stream))
                    d = asyncio.run(load(mock_url, {}, "mv-1", concurrency=conc, total=args.requests, stream=stream))
                    t0 = time.perf_counter()
                    p = asyncio.run(load(hub_url, auth, "production", concurrency=conc, total=args.requests,
                                         stream=stream))
                    rps = args.requests / (time.perf_counter() - t0)
                    dp = [pct(d, q) for q in (50, 95, 99)]
                    pp = [pct(p, q) for q in (50, 95, 99)]
                    added = [b - a for a, b in zip(dp, pp)]
                    fmt = lambda xs: "/".join(f"{x:.1f}" for x in xs)  # noqa: E731
                    print(f"{'stream' if stream else 'json':<7}{conc:>5} | {fmt(dp):>22} | {fmt(pp):>22} | "
                          f"{fmt(added):>22} | {rps:.0f}", flush=True)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            embedded_redis.stop(redis_proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
