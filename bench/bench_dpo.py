"""DPO throughput: the hub's preference training path vs TRL's DPOTrainer used directly.

Same base model (SmolLM2-135M-Instruct by default, or --tiny: a nano model built on the spot), same pairs,
same LoRA config (r=8, alpha 16, all-linear), same batch of pairs, max length and number of optimizer
steps; each path in its own child process (so peak RSS is per path), run back to back.

  hub        workers.engine.sft.run_training with method "dpo": the hub renders and tokenizes the pairs
             (workers/engine/dpo/data.py), length-grouped batches, TRL's DPOTrainer with the adapter
             disabled as the reference, gradient checkpointing off (the hub's default).
  trl        trl.DPOTrainer on the conversational pairs ({"prompt", "chosen", "rejected"}) with a
             peft LoraConfig, DPOConfig defaults (gradient checkpointing on, random sampler), bf16 only on a GPU.
  trl-nogc   the same with gradient_checkpointing=False (what the hub does; faster, more memory).

Pairs: the demo dataset's chats (262), the last assistant answer chosen and the next chat's last answer
rejected. Throughput counts non-padding tokens of the chosen and rejected sequences
(`include_num_input_tokens_seen="non_padding"` in every path) from the end of the first optimizer step to
the end of the last (warm-up excluded), per wall-clock second and per CPU-second of the child process (the
second stays comparable on a shared machine).

    .venv/bin/python bench/bench_dpo.py                  # SmolLM2-135M, 5 steps, batch 4 pairs, 512 tokens
    .venv/bin/python bench/bench_dpo.py --tiny --steps 20 --threads 1     # a micro model built on the spot
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_train import Meter, find_model, load_examples  # noqa: E402


class CpuMeter(Meter):
    """Meter that also notes the process's CPU time: tokens per CPU-second stays comparable when other work
    shares the cores (wall-clock tokens/s does not)."""

    def __init__(self):
        super().__init__()
        self.cpu: list[float] = []

    def mark(self, step: int, tokens: int) -> None:
        super().mark(step, tokens)
        self.cpu.append(time.process_time())

    def result(self) -> dict:
        out = super().result()
        out["cpu_s"] = self.cpu[-1] - self.cpu[0]
        out["tokens_per_cpu_s"] = out["tokens"] / out["cpu_s"]
        return out


def pairs() -> list[dict]:
    """The hub's pair shape: {"messages": prompt + chosen, "rejected": [answer]}."""
    chats = load_examples()
    out = []
    for i, ex in enumerate(chats):
        other = chats[(i + 1) % len(chats)]["messages"][-1]
        out.append({"messages": ex["messages"], "rejected": [{"role": "assistant", "content": other["content"]}]})
    return out


def child_hub(args) -> dict:
    from workers.engine.sft import Job, Stage, hp_with_defaults, run_training

    meter = CpuMeter()
    hp = hp_with_defaults({"max_steps": args.steps, "batch_size": args.batch, "grad_accum": 1,
                           "max_seq_len": args.seq_len, "learning_rate": 5e-5, "lora_r": 8, "lora_alpha": 16,
                           "save_steps": 10_000, "warmup_ratio": 0.0, "beta": 0.1})

    def report(step, metrics):
        if metrics.get("kind") == "train":
            meter.mark(step, int(metrics["tokens_seen"]))

    run_training(Job(method="dpo", output_dir=Path(tempfile.mkdtemp(prefix="bench-dpo-hub-")),
                     stages=[Stage(train=pairs())], hp=hp, base_model_path=str(args.model), evaluate=False),
                 report=report, should_stop=lambda: False)
    return meter.result()


def child_trl(args, *, gradient_checkpointing: bool) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    rows = [{"prompt": p["messages"][:-1], "chosen": p["messages"][-1:], "rejected": p["rejected"]} for p in pairs()]
    tok = AutoTokenizer.from_pretrained(args.model)
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16 if cuda else torch.float32)
    meter = CpuMeter()

    class Cb(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            meter.mark(state.global_step, int(state.num_input_tokens_seen))

    config = DPOConfig(output_dir=tempfile.mkdtemp(prefix="bench-dpo-trl-"), max_steps=args.steps,
                       per_device_train_batch_size=args.batch, learning_rate=5e-5, beta=0.1, max_length=args.seq_len,
                       report_to="none", save_strategy="no", logging_steps=10_000, disable_tqdm=True,
                       include_num_input_tokens_seen="non_padding", bf16=cuda, use_cpu=not cuda,
                       gradient_checkpointing=gradient_checkpointing)
    peft = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    DPOTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok,
               peft_config=peft, callbacks=[Cb()]).train()
    return meter.result()


def run_child(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--steps", str(args.steps), "--batch", str(args.batch),
           "--seq-len", str(args.seq_len), "--model", str(args.model), "--threads", str(args.threads)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{kind} failed (exit {proc.returncode})")
    return json.loads(lines[-1][7:])


def tiny_model() -> Path:
    from workers.engine.tiny import build_model

    folder = Path(tempfile.gettempdir()) / "bench-dpo-tiny"
    if not (folder / "config.json").exists():
        texts = [m["content"] for ex in load_examples() for m in ex["messages"]]
        build_model(folder, size="micro", texts=texts, vocab_size=2000, context_length=1024)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--model", default=None)
    p.add_argument("--tiny", action="store_true", help="a micro model built from the demo data (no download)")
    p.add_argument("--paths", default="trl,trl-nogc,hub")
    p.add_argument("--threads", type=int, default=0, help="CPU threads per child (0: every core). On a shared "
                   "machine 1 thread keeps the figures comparable: idle threads spin while others hold the cores")
    p.add_argument("--child", choices=["hub", "trl", "trl-nogc"])
    args = p.parse_args()
    args.model = Path(args.model) if args.model else (tiny_model() if args.tiny else find_model(None))
    if args.child:
        import torch

        if not torch.cuda.is_available():
            torch.set_num_threads(args.threads or os.cpu_count() or 1)
            if args.threads:  # the hub's loop would take every core again
                import workers.engine.sft.loop as loop

                loop.setup_threads = lambda: None
        if args.child == "hub":
            res = child_hub(args)
        else:
            res = child_trl(args, gradient_checkpointing=args.child == "trl")
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if torch.cuda.is_available():
            res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
            res["device"] = torch.cuda.get_device_name(0)
        else:
            res["device"] = f"cpu x{os.cpu_count()}"
        print("RESULT " + json.dumps(res), flush=True)
        return

    print(f"model {args.model}\nDPO, LoRA r=8 all-linear · {args.steps} steps · batch {args.batch} pairs · max length "
          f"{args.seq_len} · demo dataset (262 pairs)", flush=True)
    results = {}
    for kind in args.paths.split(","):
        t = time.perf_counter()
        results[kind] = r = run_child(kind, args)
        mem = f"peak RSS {r['peak_rss_mb']:.0f} MB" + (f", GPU {r['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in r else "")
        print(f"{kind:9s} {r['tokens_per_s']:9.1f} non-padding tokens/s  {r['tokens_per_cpu_s']:7.1f} per CPU-s  "
              f"{r['steps_per_s']:.3f} steps/s  {mem}  ({r['device']}, {time.perf_counter() - t:.0f} s wall)", flush=True)
    for base in ("trl", "trl-nogc"):
        if "hub" in results and base in results:
            h, b = results["hub"], results[base]
            print(f"ratio hub/{base}: {h['tokens_per_s'] / b['tokens_per_s']:.2f}x tokens/s, "
                  f"{h['tokens_per_cpu_s'] / b['tokens_per_cpu_s']:.2f}x tokens per CPU-second, "
                  f"{h['peak_rss_mb'] / b['peak_rss_mb']:.2f}x peak RSS")


if __name__ == "__main__":
    main()
