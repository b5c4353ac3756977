"""Proxy overhead: latency of /v1/chat/completions through the hub vs calling the mock upstream directly.

Everything on loopback, each in its own process, as in production: the mock OpenAI upstream
(tests/proxy/fake_upstream.py, a Starlette app under uvicorn), the hub's ASGI app under uvicorn
(1 process, as in the Procfile; the configured database; the embedded Redis receiving the request-log
messages, no worker draining them), and this load generator (httpx, asyncio). For each concurrency
(1/4/16) it sends a bounded number of requests directly to the mock and through the proxy (alias
`production` -> mv-1 -> the mock), non-streaming and streaming (latency = until [DONE]), and
reports p50/p95/p99 of both and the difference (the proxy's added latency).

LiteLLM's proxy is the second column, in the same run, on the same mock: `litellm --config <tmp>/litellm.yaml
--num_workers 1` from a benchmark-only venv (--litellm-venv, default $LITELLM_VENV or /tmp/litellm-venv;
created with `pip install 'litellm[proxy]'` on first use, never in the project's .venv), model `production`
-> openai/mv-1 at the mock's base URL, with a master key so it authenticates each call as the hub does.
`--no-litellm` skips it. The hub/LiteLLM column is the ratio of their added p50s.

    .venv/bin/python bench/bench_proxy.py [--requests 200] [--no-litellm] [--litellm-venv DIR]

`--soak SECONDS` runs the soak instead: `--soak-streams` (200) clients each keep one stream open through the
hub at all times, for SECONDS (60), against the mock's paced streams (`--soak-tokens` tokens, one every
`--soak-ms` ms, as a model decodes). It counts every failure by kind (non-200, an error event, a stream without
[DONE] or with missing tokens, a transport error) and samples the hub's resident memory every 5 s.

    .venv/bin/python bench/bench_proxy.py --soak 60 [--soak-streams 200] [--soak-tokens 20] [--soak-ms 100]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
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


LITELLM_CONFIG = """model_list:
  - model_name: production
    litellm_params:
      model: openai/mv-1
      api_base: {base}
      api_key: sk-mock-upstream
general_settings:
  master_key: sk-bench-litellm
litellm_settings:
  telemetry: false
"""


def litellm_bin(venv: Path) -> Path:
    """The `litellm` CLI of the benchmark venv, creating the venv on first use."""
    exe = venv / "bin" / "litellm"
    if not exe.exists():
        print(f"creating {venv} with litellm[proxy] (first use)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)
    return exe


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children (LiteLLM's worker), from /proc."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def pct(values, p):
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * (len(s) - 1)))))
    return s[k]


async def load(url: str, headers: dict, model: str, *, concurrency: int, total: int, stream: bool,
               overhead: list | None = None) -> list[float]:
    """Latencies in ms; `overhead` collects the hub's x-hub-overhead-ms (its own time until the answer began)."""
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
                    if overhead is not None and "x-hub-overhead-ms" in r.headers:
                        overhead.append(float(r.headers["x-hub-overhead-ms"]))
                    tail = ""
                    async for chunk in r.aiter_text():
                        tail = (tail + chunk)[-32:]
                    assert "[DONE]" in tail
            else:
                r = await client.post(url + "/chat/completions", json=body)
                assert r.status_code == 200, r.text
                if overhead is not None and "x-hub-overhead-ms" in r.headers:
                    overhead.append(float(r.headers["x-hub-overhead-ms"]))
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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def soak(url: str, headers: dict, *, pid: int, seconds: float, streams: int, tokens: int, ms: int) -> dict:
    """`streams` clients, each with one stream open through the hub at all times, for `seconds`."""
    body = {"model": "production", "stream": True, "max_tokens": 64,
            "messages": [{"role": "user", "content": f"PACED {tokens} {ms}"}]}
    errors: dict[str, int] = {}
    examples: dict[str, str] = {}  # the first body of each kind of failure
    done = 0
    durations: list[float] = []
    rss: list[tuple[float, float]] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as client:
        async def one_client():
            nonlocal done
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                phase = "before the status line"
                try:
                    async with client.stream("POST", url + "/chat/completions", json=body) as r:
                        phase = "in the body"
                        if r.status_code != 200:
                            await r.aread()
                            errors[f"http {r.status_code}"] = errors.get(f"http {r.status_code}", 0) + 1
                            examples.setdefault(f"http {r.status_code}", r.text[:300])
                            continue
                        text = ""
                        async for chunk in r.aiter_text():
                            text += chunk
                except httpx.HTTPError as exc:
                    kind = f"{type(exc).__name__} {phase}"
                    errors[kind] = errors.get(kind, 0) + 1
                    continue
                if '"error"' in text:
                    errors["error event"] = errors.get("error event", 0) + 1
                    examples.setdefault("error event", text[-300:])
                elif not text.rstrip().endswith("data: [DONE]"):
                    errors["no [DONE]"] = errors.get("no [DONE]", 0) + 1
                elif text.count(" tok") != tokens:
                    errors["tokens missing"] = errors.get("tokens missing", 0) + 1
                else:
                    done += 1
                    durations.append(time.perf_counter() - t0)

        async def sampler():
            t0 = time.perf_counter()
            while time.perf_counter() < deadline:
                rss.append((time.perf_counter() - t0, rss_mb(pid)))
                await asyncio.sleep(5)
            rss.append((time.perf_counter() - t0, rss_mb(pid)))

        await asyncio.gather(sampler(), *(one_client() for _ in range(streams)))
    return {"completed": done, "errors": errors, "examples": examples, "rss": rss, "durations": durations}


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
    ap.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM column")
    ap.add_argument("--litellm-venv", type=Path,
                    default=Path(os.environ.get("LITELLM_VENV", "/tmp/litellm-venv")))
    ap.add_argument("--profile", type=Path, help="run the hub under cProfile, stats to this file (slows it)")
    ap.add_argument("--full-stack-too", action="store_true",
                    help="also a second hub process with HUB_LEAN_V1=0 (every /v1 call through Django's middleware)")
    ap.add_argument("--second-hub-env", metavar="KEY=VALUE[,KEY=VALUE]",
                    help="the second hub process (the full-stack column) runs with these variables instead of "
                         "HUB_LEAN_V1=0, e.g. HUB_PROXY_COALESCE=0 (a before/after in one run)")
    ap.add_argument("--concurrency", default="1,4,16", help="comma-separated levels")
    ap.add_argument("--modes", default="json,stream", help="comma-separated: json, stream")
    ap.add_argument("--soak", type=float, metavar="SECONDS", help="run the soak (long-lived streams) instead")
    ap.add_argument("--soak-streams", type=int, default=200)
    ap.add_argument("--soak-tokens", type=int, default=20)
    ap.add_argument("--soak-ms", type=int, default=100)
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
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
            # the data dir's static files, as `make setup` collects them (else the hub warns once per file)
            subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                           check=True)
            out = subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP], cwd=ROOT, env=env, check=True,
                                 capture_output=True, text=True).stdout
            key = [line[4:] for line in out.splitlines() if line.startswith("KEY=")][0]
            procs.append(subprocess.Popen([sys.executable, "-c", MOCK.format(port=mock_port)], cwd=ROOT, env=env))
            profile = ["-m", "cProfile", "-o", str(args.profile.resolve())] if args.profile else []
            procs.append(subprocess.Popen(
                [sys.executable, *profile, "-m", "uvicorn", "training_hub.asgi:application", "--host", "127.0.0.1",
                 "--port", str(hub_port), "--no-access-log", "--log-level", "warning",
                 "--timeout-keep-alive", "65"], cwd=ROOT, env=env))  # as the Procfile
            hub_pid, full_pid, lite_pid = procs[-1].pid, None, None
            mock_url, hub_url = f"http://127.0.0.1:{mock_port}/v1", f"http://127.0.0.1:{hub_port}/v1"
            full_url = None
            second_env = {"HUB_LEAN_V1": "0"}
            if args.second_hub_env:
                second_env = dict(kv.split("=", 1) for kv in args.second_hub_env.split(","))
            if args.full_stack_too or args.second_hub_env:
                full_port = free_port()
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "training_hub.asgi:application", "--host", "127.0.0.1",
                     "--port", str(full_port), "--no-access-log", "--log-level", "warning",
                     "--timeout-keep-alive", "65"], cwd=ROOT, env={**env, **second_env}))
                full_pid = procs[-1].pid
                full_url = f"http://127.0.0.1:{full_port}/v1"
                wait_ready(full_url, "/models")
            lite_url = None
            if not args.no_litellm:
                lite_port = free_port()
                cfg = Path(tmp) / "litellm.yaml"
                cfg.write_text(LITELLM_CONFIG.format(base=mock_url))
                lite_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
                lite_env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False",
                                DISABLE_SCHEMA_UPDATE="True")
                procs.append(subprocess.Popen(
                    [str(litellm_bin(args.litellm_venv)), "--config", str(cfg), "--host", "127.0.0.1", "--port",
                     str(lite_port), "--num_workers", "1"], cwd=tmp, env=lite_env,
                    stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "litellm.log", "w")))
                lite_pid = procs[-1].pid
                lite_url = f"http://127.0.0.1:{lite_port}/v1"
            wait_ready(mock_url, "/models")
            wait_ready(hub_url, "/models")
            auth = {"Authorization": f"Bearer {key}"}
            lite_auth = {"Authorization": "Bearer sk-bench-litellm"}
            if lite_url:
                wait_ready(lite_url, "/models", timeout=180)
            if args.soak:
                asyncio.run(load(hub_url, auth, "production", concurrency=4, total=40, stream=True))  # warm-up
                res = asyncio.run(soak(hub_url, auth, pid=hub_pid, seconds=args.soak, streams=args.soak_streams,
                                       tokens=args.soak_tokens, ms=args.soak_ms))
                d = sorted(res["durations"])
                print(f"soak: {args.soak_streams} concurrent streams for {args.soak:.0f} s, {args.soak_tokens} tokens "
                      f"every {args.soak_ms} ms each: {res['completed']} streams complete, failures: "
                      f"{res['errors'] or 'none'}")
                for kind, example in res["examples"].items():
                    print(f"  first {kind}: {example}")
                if d:
                    ideal = args.soak_tokens * args.soak_ms / 1000
                    print(f"stream duration p50/p95/max {pct(d, 50):.2f}/{pct(d, 95):.2f}/{d[-1]:.2f} s "
                          f"(the mock alone: {ideal:.2f} s)")
                print("hub RSS MB at t=s: " + ", ".join(f"{t:.0f}:{m:.0f}" for t, m in res["rss"]))
                return 0 if not res["errors"] else 1
            print(f"{os.cpu_count()} CPUs; {args.requests} requests per cell; latencies in ms; "
                  "added = target minus direct, per percentile", flush=True)
            fmt = lambda xs: "/".join(f"{x:.1f}" for x in xs)  # noqa: E731
            head = f"{'mode':<7}{'conc':>5} | {'direct p50/p95/p99':>18} | {'hub added p50/p95/p99':>22} | hub req/s"
            if full_url:
                label = ("full-stack" if not args.second_hub_env else args.second_hub_env)[:16]
                head += f" | {label + ' added p50/p95/p99':>28} | B req/s"
            if lite_url:
                head += f" | {'LiteLLM added p50/p95/p99':>26} | LiteLLM req/s | hub/LiteLLM p50"
            print(head, flush=True)
            targets = ([("hub", hub_url, auth)] + ([("full", full_url, auth)] if full_url else [])
                       + ([("litellm", lite_url, lite_auth)] if lite_url else []))
            pids = {"hub": hub_pid, "full": full_pid, "litellm": lite_pid}
            cpu_rows: list[str] = []
            width = {"hub": (22, 9), "full": (28, 10), "litellm": (26, 13)}
            overheads: dict[str, list[str]] = {}
            for stream in [m == "stream" for m in args.modes.split(",")]:
                for conc in levels:
                    asyncio.run(load(mock_url, {}, "mv-1", concurrency=conc, total=20, stream=stream))  # warm-up
                    for _, url, hdrs in targets:
                        asyncio.run(load(url, hdrs, "production", concurrency=conc, total=20, stream=stream))
                    d = asyncio.run(load(mock_url, {}, "mv-1", concurrency=conc, total=args.requests, stream=stream))
                    dp = [pct(d, q) for q in (50, 95, 99)]
                    row = f"{'stream' if stream else 'json':<7}{conc:>5} | {fmt(dp):>18}"
                    added = {}
                    cpu_cell = []
                    for name, url, hdrs in targets:
                        c0 = cpu_s(pids[name])
                        t0 = time.perf_counter()
                        own: list[float] = []
                        p = asyncio.run(load(url, hdrs, "production", concurrency=conc, total=args.requests,
                                             stream=stream, overhead=own))
                        if own:
                            overheads.setdefault(name, []).append(f"{'stream' if stream else 'json'}@{conc}: "
                                                                  f"{statistics.median(own):.2f}")
                        rps = args.requests / (time.perf_counter() - t0)
                        cpu_cell.append(f"{name} {(cpu_s(pids[name]) - c0) * 1000 / args.requests:.2f}")
                        added[name] = [b - a for a, b in zip(dp, (pct(p, q) for q in (50, 95, 99)))]
                        row += f" | {fmt(added[name]):>{width[name][0]}} | {rps:>{width[name][1]}.0f}"
                    if lite_url:
                        lite50 = added["litellm"][0]
                        row += f" | {added['hub'][0] / lite50:.2f}" if lite50 > 0 else " | n/a"
                    print(row, flush=True)
                    cpu_rows.append(f"{'stream' if stream else 'json'}@{conc}: " + ", ".join(cpu_cell))
            print("CPU ms per request of each server process (user + system, load-independent): "
                  + "; ".join(cpu_rows))
            for name, items in overheads.items():
                print(f"{name}: median x-hub-overhead-ms (the gateway's own time until the answer began) "
                      + ", ".join(items))
        finally:
            for p in procs:
                if args.profile and p is procs[1]:
                    p.send_signal(signal.SIGINT)  # uvicorn re-raises it after shutdown; cProfile still writes
                else:
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
