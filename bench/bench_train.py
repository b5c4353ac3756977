"""LoRA training throughput: the hub's training path vs TRL's SFTTrainer (and a plain transformers Trainer).

Same base model (SmolLM2-135M-Instruct), same data (the demo dataset), same LoRA config, same
effective batch, same max sequence length and number of optimizer steps; run back to back, each in
its own child process (so peak RSS is per path).

  hub       workers.engine.sft.run_training: loss on assistant tokens only, dynamic padding
            (each batch padded to its own longest example) with length-grouped batches.
  trl       TRL's SFTTrainer as its documentation sets it up (prompt/completion chats, SFTConfig defaults:
            dynamic padding, gradient checkpointing on); trl-nogc the same without gradient checkpointing.
  baseline  transformers Trainer with default settings (random sampler, default optimizer), every
            example padded to max_seq_len, labels = input ids (padding masked).

Throughput counts non-padding tokens only (the Trainer's `include_num_input_tokens_seen="non_padding"`
in both), measured from the end of the first optimizer step to the end of the last (warm-up excluded).
With a GPU it also prints MFU: 4·N FLOPs per token for LoRA (forward 2N + backward activations 2N,
no weight gradients), N = base parameters, over the device's dense bf16 peak.

    .venv/bin/python bench/bench_train.py                  # defaults: 5 steps, batch 4, seq 512
    .venv/bin/python bench/bench_train.py --steps 20 --batch 16 --seq-len 1024
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

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def find_model(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    from workers.engine.base_models import DEFAULT_BASE_MODEL_ID

    cache = Path(os.environ.get("HUB_MODEL_CACHE", "~/.cache/training-hub/models")).expanduser()
    folder = cache / DEFAULT_BASE_MODEL_ID
    if not (folder / "config.json").exists():
        sys.exit(f"{folder} is not prepared: run `python manage.py prepare_base_model` (or pass --model / set "
                 f"HUB_MODEL_CACHE)")
    return folder


def load_examples() -> list[dict]:
    path = ROOT / "apps" / "datasets" / "demo" / "demo.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Meter:
    """(time, non-padding tokens seen) at every optimizer step."""

    def __init__(self):
        self.marks: list[tuple[float, int, int]] = []

    def mark(self, step: int, tokens: int) -> None:
        self.marks.append((time.perf_counter(), step, tokens))

    def result(self) -> dict:
        (t0, s0, k0), (t1, s1, k1) = self.marks[0], self.marks[-1]
        dt = t1 - t0
        return {"steps": s1 - s0, "seconds": dt, "tokens": k1 - k0, "tokens_per_s": (k1 - k0) / dt,
                "steps_per_s": (s1 - s0) / dt}


def child_hub(args) -> dict:
    from workers.engine.sft import Job, Stage, hp_with_defaults, run_training

    meter = Meter()
    out = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    hp = hp_with_defaults({"max_steps": args.steps, "batch_size": args.batch, "grad_accum": 1,
                           "max_seq_len": args.seq_len, "learning_rate": 2e-4, "lora_r": 8, "lora_alpha": 16,
                           "lora_dropout": 0.05, "save_steps": 10_000, "warmup_ratio": 0.0,
                           **json.loads(args.hub_hp or "{}")})

    def report(step, metrics):
        if metrics.get("kind") == "train":
            meter.mark(step, int(metrics["tokens_seen"]))

    run_training(Job(method="lora", output_dir=out, stages=[Stage(train=load_examples())], hp=hp,
                     base_model_path=str(args.model), evaluate=False),
                 report=report, should_stop=lambda: False)
    return meter.result()


def child_baseline(args) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    tok = AutoTokenizer.from_pretrained(args.model)
    texts = [tok.apply_chat_template(ex["messages"], tokenize=False) for ex in load_examples()]
    enc = tok(texts, padding="max_length", truncation=True, max_length=args.seq_len, add_special_tokens=False)
    items = []
    for ids, mask in zip(enc["input_ids"], enc["attention_mask"]):
        labels = [i if m else -100 for i, m in zip(ids, mask)]
        items.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    meter = Meter()

    class Cb(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            meter.mark(state.global_step, int(state.num_input_tokens_seen))

    targs = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="bench-base-"), max_steps=args.steps,
                              per_device_train_batch_size=args.batch, learning_rate=2e-4, report_to="none",
                              save_strategy="no", logging_steps=10_000, disable_tqdm=True,
                              include_num_input_tokens_seen="non_padding",
                              bf16=torch.cuda.is_available())
    Trainer(model=model, args=targs, train_dataset=items, callbacks=[Cb()]).train()
    return meter.result()


def child_trl(args, *, gradient_checkpointing: bool = True) -> dict:
    """TRL's SFTTrainer as its documentation sets it up: the chats as a conversational `messages` dataset, a peft
    LoraConfig, SFTConfig's defaults (dynamic padding, gradient checkpointing on — TRL's default; `trl-nogc`
    turns it off), loss on the completion only (the last assistant answer of each chat: prompt/completion
    rows), bf16 on a GPU."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    rows = []
    for ex in load_examples():
        msgs = ex["messages"]
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        rows.append({"prompt": msgs[:last], "completion": [msgs[last]]})
    tok = AutoTokenizer.from_pretrained(args.model)
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    meter = Meter()

    class Cb(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            meter.mark(state.global_step, int(state.num_input_tokens_seen))

    cfg = SFTConfig(output_dir=tempfile.mkdtemp(prefix="bench-trl-"), max_steps=args.steps,
                    per_device_train_batch_size=args.batch, learning_rate=2e-4, report_to="none",
                    save_strategy="no", logging_steps=10_000, disable_tqdm=True, max_length=args.seq_len,
                    include_num_input_tokens_seen="non_padding", bf16=torch.cuda.is_available(),
                    gradient_checkpointing=gradient_checkpointing)
    SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok,
               peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                                      task_type="CAUSAL_LM"),
               callbacks=[Cb()]).train()
    return meter.result()


CHILDREN = {"hub": child_hub, "baseline": child_baseline, "trl": child_trl,
            "trl-nogc": lambda args: child_trl(args, gradient_checkpointing=False)}


def run_child(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--steps", str(args.steps), "--batch", str(args.batch),
           "--seq-len", str(args.seq_len), "--model", str(args.model), "--hub-hp", args.hub_hp or "{}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{kind} failed (exit {proc.returncode})")
    return json.loads(lines[-1][7:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--model", default=None)
    p.add_argument("--child", choices=sorted(CHILDREN))
    p.add_argument("--hub-hp", default="", help='extra hyperparameters of the hub path, JSON, e.g. {"checkpoint_layers": 0.5}')
    p.add_argument("--paths", default="trl,hub",
                   help="comma-separated, run in this order: trl (TRL SFTTrainer, its defaults), trl-nogc, hub, "
                        "baseline (a plain Trainer padding every example to max_seq_len)")
    args = p.parse_args()
    args.model = find_model(args.model)
    if args.child:
        import torch

        if not torch.cuda.is_available():
            torch.set_num_threads(os.cpu_count() or 1)
        res = CHILDREN[args.child](args)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if torch.cuda.is_available():
            res["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
            res["device"] = torch.cuda.get_device_name(0)
        else:
            res["device"] = f"cpu x{os.cpu_count()}"
        print("RESULT " + json.dumps(res), flush=True)
        return

    print(f"model {args.model}\nLoRA r=8 all-linear · {args.steps} steps · batch {args.batch} · max_seq_len "
          f"{args.seq_len} · demo dataset (262 chats)", flush=True)
    results = {}
    kinds = [k.strip() for k in args.paths.split(",") if k.strip()]
    for kind in kinds:
        t = time.perf_counter()
        results[kind] = run_child(kind, args)
        r = results[kind]
        mem = f"peak RSS {r['peak_rss_mb']:.0f} MB" + (f", GPU {r['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in r else "")
        print(f"{kind:9s} {r['tokens_per_s']:9.1f} non-padding tokens/s  {r['steps_per_s']:.3f} steps/s  {mem}  "
              f"({r['device']}, {time.perf_counter() - t:.0f} s wall)", flush=True)
    if "hub" in results:
        for other in (k for k in kinds if k != "hub"):
            a, b = results["hub"], results[other]
            mem_key = "peak_gpu_mb" if "peak_gpu_mb" in a else "peak_rss_mb"
            print(f"hub/{other}: {a['tokens_per_s'] / b['tokens_per_s']:.2f}x tokens/s, "
                  f"{a[mem_key] / b[mem_key]:.2f}x peak memory ({mem_key})")
    if "hub" not in results:
        return
    dev = results["hub"]["device"]
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in dev), None)
    if peak:
        from transformers import AutoConfig, AutoModelForCausalLM
        import torch

        with torch.device("meta"):
            n = sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(args.model)).parameters())
        for kind in kinds:
            mfu = results[kind]["tokens_per_s"] * 4 * n / (peak * 1e12)
            print(f"MFU {kind}: {100 * mfu:.2f}% (4·N, N={n / 1e6:.0f}M, peak {peak:.0f} TFLOP/s bf16)")


if __name__ == "__main__":
    main()
