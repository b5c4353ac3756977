"""Supervised fine-tuning with the transformers Trainer (+ peft LoRA). Knows nothing of Django.

One entry point, :func:`run_training`, runs a job made of one or more stages (a multi-stage
pipeline is an ordered list of stages; a plain run has one). Each stage continues from the
previous stage's weights. Output layout under ``job.output_dir``::

    scratch-base/              tokenizer + randomly initialised model (method "scratch")
    stage-<i>/checkpoint-<n>/  Trainer checkpoints (weights/adapter + optimizer, scheduler, RNG state)
    stage-<i>/final/           the stage's result (adapter folder for LoRA, full model otherwise)
    stage-<i>/DONE             written once the stage finished

Progress goes out through ``report(step, metrics)``; ``should_stop()`` is polled after every
optimizer step (cooperative cancel); ``on_checkpoint(step, path, metrics)`` is told of every save.
Steps are numbered globally across stages so the loss curve is one line.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workers.engine.data import PadCollator, example_texts, tokenize_examples

log = logging.getLogger(__name__)

DEFAULTS = {
    "max_steps": 0,  # 0: train for `epochs`
    "epochs": 1.0,
    "learning_rate": 2e-4,
    "batch_size": 4,
    "grad_accum": 1,
    "max_seq_len": 512,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.05,
    "target_modules": "all-linear",
    "warmup_ratio": 0.03,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "lr_scheduler": "cosine",
    "gradient_checkpointing": False,
    "save_steps": 50,
    "save_total_limit": 2,
    "eval_steps": 0,  # 0: evaluate at every checkpoint when there is a validation set
    "seed": 42,
    "eval_prompts": [],
    "eval_max_new_tokens": 48,
    "size": "nano",
    "vocab_size": 2000,
}


class TrainingOOM(RuntimeError):
    """Out of memory, with advice for the user."""


class StoppedByRequest(Exception):
    pass


@dataclass
class Stage:
    train: list[dict]
    validation: list[dict] = field(default_factory=list)
    epochs: float | None = None
    max_steps: int | None = None
    name: str = ""


@dataclass
class Job:
    method: str  # lora | full | scratch
    output_dir: Path
    stages: list[Stage]
    hp: dict
    base_model_path: str | None = None  # lora/full: the model to start from
    adapter_path: str | None = None  # continue training this LoRA adapter
    evaluate: bool = True


def hp_with_defaults(hp: dict) -> dict:
    out = dict(DEFAULTS)
    out.update({k: v for k, v in (hp or {}).items() if v is not None})
    return out


# ----------------------------------------------------------------------------------------------
# devices


def device_info() -> dict:
    import torch

    if torch.cuda.is_available():
        return {"device": "cuda", "name": torch.cuda.get_device_name(0), "bf16": torch.cuda.is_bf16_supported(),
                "count": torch.cuda.device_count()}
    return {"device": "cpu", "name": "cpu", "bf16": False, "threads": os.cpu_count() or 1, "count": 0}


def memory_mb() -> dict:
    import torch

    out = {}
    try:
        import psutil

        out["rss_mb"] = round(psutil.Process().memory_info().rss / 2**20, 1)
    except Exception:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        out["gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _setup_threads() -> None:
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, os.cpu_count() or 1))


# ----------------------------------------------------------------------------------------------
# models


def _load_causal_lm(path: str, *, trainable_base: bool = False):
    """On CUDA a frozen base (LoRA) is loaded in bf16/fp16 (peft keeps the adapters in fp32); weights that
    are trained themselves (full, scratch) stay fp32 masters and the Trainer autocasts to bf16/fp16."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.float32
    if torch.cuda.is_available() and not trainable_base:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    kwargs = {"dtype": dtype, "attn_implementation": "sdpa"}
    try:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (ValueError, ImportError):
        kwargs.pop("attn_implementation", None)
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def _lora_config(hp: dict):
    from peft import LoraConfig

    targets = hp.get("target_modules") or "all-linear"
    if isinstance(targets, str) and targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=int(hp["lora_r"]), lora_alpha=int(hp["lora_alpha"]), lora_dropout=float(hp["lora_dropout"]),
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")


def _build_model(job: Job, stage_index: int, start_from: str | None):
    """The model to train in a stage. `start_from` is the previous stage's final folder."""
    from peft import PeftModel, get_peft_model

    if job.method == "lora":
        model = _load_causal_lm(job.base_model_path)
        adapter = start_from or job.adapter_path
        if adapter:
            model = PeftModel.from_pretrained(model, adapter, is_trainable=True)
        else:
            model = get_peft_model(model, _lora_config(job.hp))
    else:  # full / scratch: start_from is a full model folder
        model = _load_causal_lm(start_from or job.base_model_path, trainable_base=True)
    if job.hp.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable()
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    return model


def scratch_prepare(job: Job) -> str:
    """Train a BPE tokenizer on the job's data and build a model of a named size (once)."""
    from workers.engine.tiny import build_model

    folder = job.output_dir / "scratch-base"
    if (folder / "config.json").exists():
        return str(folder)
    texts = []
    for st in job.stages:
        texts += example_texts(st.train)
    tmp = job.output_dir / ".scratch-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_model(tmp, size=job.hp.get("size", "nano"), texts=texts, vocab_size=int(job.hp.get("vocab_size", 2000)),
                context_length=int(job.hp["max_seq_len"]), seed=int(job.hp.get("seed", 42)))
    os.replace(tmp, folder)
    return str(folder)


# ----------------------------------------------------------------------------------------------
# the loop


def _checkpoints(stage_dir: Path) -> list[Path]:
    found = [p for p in stage_dir.glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _complete(ckpt: Path) -> bool:
    """The Trainer writes trainer_state.json last: without a readable one the save was cut short."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
        return True
    except (OSError, ValueError):
        return False


def latest_checkpoint(stage_dir: Path) -> Path | None:
    """The newest complete checkpoint of a stage; half-written ones (a crash mid-save) are removed."""
    good = None
    for ckpt in _checkpoints(stage_dir):
        if _complete(ckpt):
            good = ckpt
        else:
            shutil.rmtree(ckpt, ignore_errors=True)
    return good


def _make_callback(report, should_stop, on_checkpoint, *, step_offset: int, total_steps: int, effective_batch: int,
                   stage_index: int):
    from transformers import TrainerCallback

    class HubCallback(TrainerCallback):
        def __init__(self):
            self.t0 = None
            self.tokens0 = 0
            self.step0 = 0
            self.stopped = False
            self.last_eval_loss = None

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()
            self.tokens0 = state.num_input_tokens_seen or 0
            self.step0 = state.global_step
            # where this process starts (after a crash: the checkpoint's step), so the caller can drop
            # anything it recorded after that point and the curve continues from the weights
            report(step_offset + state.global_step, {"kind": "resume", "stage": stage_index})

        def on_step_end(self, args, state, control, **kw):
            if _agree(should_stop(), args):
                self.stopped = True
                control.should_training_stop = True
                control.should_save = True
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            step = step_offset + state.global_step
            if "eval_loss" in logs:
                self.last_eval_loss = float(logs["eval_loss"])
                report(step, {"kind": "eval", "eval_loss": self.last_eval_loss,
                              "perplexity": _ppl(self.last_eval_loss), "stage": stage_index})
                return
            if "loss" not in logs:
                return
            elapsed = max(1e-9, time.perf_counter() - (self.t0 or time.perf_counter()))
            steps_done = state.global_step - self.step0
            tokens = (state.num_input_tokens_seen or 0) - self.tokens0
            steps_per_s = steps_done / elapsed
            remaining = max(0, total_steps - step)
            metrics = {
                "kind": "train",
                "loss": float(logs["loss"]),
                "learning_rate": float(logs.get("learning_rate", 0.0)),
                "grad_norm": float(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                "epoch": float(state.epoch or 0.0),
                "tokens_per_s": tokens / elapsed,
                "samples_per_s": steps_done * effective_batch / elapsed,
                "steps_per_s": steps_per_s,
                "eta_s": remaining / steps_per_s if steps_per_s > 0 else None,
                "tokens_seen": int(state.num_input_tokens_seen or 0),
                "stage": stage_index,
                "total_steps": total_steps,
            }
            metrics.update(memory_mb())
            report(step, metrics)

        def on_save(self, args, state, control, **kw):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if on_checkpoint and path.exists():
                on_checkpoint(step_offset + state.global_step, str(path),
                              {"eval_loss": self.last_eval_loss, "stage": stage_index,
                               "stage_step": state.global_step})

    return HubCallback()


def _agree(flag: bool, args) -> bool:
    """Under torchrun every rank must stop at the same step (else DDP waits forever): any rank's stop wins."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([int(flag)], device=args.device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _ppl(loss: float | None) -> float | None:
    if loss is None:
        return None
    try:
        return math.exp(min(loss, 50.0))
    except OverflowError:  # pragma: no cover
        return None


def _steps_for(n_examples: int, hp: dict, stage: Stage) -> int:
    per_epoch = max(1, math.ceil(n_examples / (int(hp["batch_size"]) * int(hp["grad_accum"]))))
    max_steps = stage.max_steps if stage.max_steps is not None else int(hp.get("max_steps") or 0)
    if max_steps and max_steps > 0:
        return max_steps
    epochs = stage.epochs if stage.epochs is not None else float(hp["epochs"])
    return max(1, math.ceil(per_epoch * epochs))


def plan(job: Job, tokenizer) -> dict:
    """Token counts and steps per stage (used before launch and for the total)."""
    hp = job.hp
    stages = []
    for st in job.stages:
        ds, stats = tokenize_examples(tokenizer, st.train, max_len=int(hp["max_seq_len"]))
        stats["steps"] = _steps_for(len(ds), hp, st)
        stages.append(stats)
    return {"stages": stages, "total_steps": sum(s["steps"] for s in stages)}


def run_training(job: Job, *, report: Callable[[int, dict], None], should_stop: Callable[[], bool],
                 on_checkpoint: Callable[[int, str, dict], None] | None = None) -> dict:
    """Run (or resume) all stages; returns a result dict. Raises TrainingOOM on out-of-memory."""
    import torch

    try:
        return _run_training(job, report=report, should_stop=should_stop, on_checkpoint=on_checkpoint)
    except torch.OutOfMemoryError as exc:
        raise TrainingOOM(_oom_advice(job, exc)) from exc
    except RuntimeError as exc:
        if "out of memory" in str(exc).lower() or "can't allocate memory" in str(exc).lower():
            raise TrainingOOM(_oom_advice(job, exc)) from exc
        raise


def _oom_advice(job: Job, exc: BaseException) -> str:
    hp = job.hp
    return (f"Out of memory ({str(exc).splitlines()[0][:200]}). Lower batch_size (now {hp['batch_size']}; "
            f"raise grad_accum to keep the effective batch) or max_seq_len (now {hp['max_seq_len']}), "
            f"turn on gradient_checkpointing, or use LoRA instead of full fine-tuning.")


def _run_training(job: Job, *, report, should_stop, on_checkpoint) -> dict:
    import torch
    from transformers import AutoTokenizer, PrinterCallback, Trainer, TrainingArguments

    _setup_threads()
    hp = job.hp
    job.output_dir = Path(job.output_dir)
    job.output_dir.mkdir(parents=True, exist_ok=True)
    dev = device_info()
    if job.method == "scratch":
        job.base_model_path = scratch_prepare(job)
    tokenizer = AutoTokenizer.from_pretrained(job.adapter_path or job.base_model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    max_len = int(hp["max_seq_len"])

    # Tokenize every stage up front: total steps are known for ETA and the curve.
    prepared = []
    for st in job.stages:
        train_ds, stats = tokenize_examples(tokenizer, st.train, max_len=max_len)
        if len(train_ds) == 0:
            raise ValueError("No example has an assistant turn to train on (all weight 0 or empty).")
        val_ds, _ = tokenize_examples(tokenizer, st.validation, max_len=max_len) if st.validation else (None, None)
        prepared.append((train_ds, val_ds, stats, _steps_for(len(train_ds), hp, st)))
    total_steps = sum(p[3] for p in prepared)

    start_from: str | None = None
    step_offset = 0
    result: dict = {"stages": [], "device": dev, "total_steps": total_steps}
    stopped = False
    trainer = None
    for i, (train_ds, val_ds, stats, steps) in enumerate(prepared):
        stage_dir = job.output_dir / f"stage-{i}"
        final_dir = stage_dir / "final"
        if (stage_dir / "DONE").exists():  # finished before a restart
            start_from = str(final_dir)
            step_offset += steps
            result["stages"].append(json.loads((stage_dir / "DONE").read_text()))
            continue
        latest = latest_checkpoint(stage_dir)
        resume = str(latest) if latest else None  # after a crash: continue the curve
        model = _build_model(job, i, start_from)
        on_cuda = dev["device"] == "cuda"
        has_val = val_ds is not None and len(val_ds) > 0
        save_steps = max(1, int(hp["save_steps"]))
        eval_steps = int(hp.get("eval_steps") or 0) or save_steps
        args = TrainingArguments(
            output_dir=str(stage_dir),
            max_steps=steps,
            per_device_train_batch_size=int(hp["batch_size"]),
            per_device_eval_batch_size=int(hp["batch_size"]),
            gradient_accumulation_steps=int(hp["grad_accum"]),
            learning_rate=float(hp["learning_rate"]),
            weight_decay=float(hp["weight_decay"]),
            max_grad_norm=float(hp["max_grad_norm"]),
            lr_scheduler_type=str(hp["lr_scheduler"]),
            warmup_steps=int(math.ceil(float(hp["warmup_ratio"]) * steps)),
            logging_steps=1,
            save_strategy="steps",
            save_steps=save_steps,
            save_total_limit=int(hp["save_total_limit"]),
            eval_strategy="steps" if has_val else "no",
            eval_steps=eval_steps if has_val else None,
            metric_for_best_model="eval_loss" if has_val else None,  # rotation keeps the best checkpoint
            greater_is_better=False if has_val else None,
            seed=int(hp["seed"]),
            bf16=bool(on_cuda and dev.get("bf16")),
            fp16=bool(on_cuda and not dev.get("bf16")),
            use_cpu=not on_cuda,
            train_sampling_strategy="group_by_length",
            include_num_input_tokens_seen="non_padding",
            remove_unused_columns=False,
            report_to="none",
            disable_tqdm=True,
            dataloader_pin_memory=on_cuda,
            optim="adamw_torch_fused",
            save_only_model=False,
        )
        cb = _make_callback(report, should_stop, on_checkpoint, step_offset=step_offset, total_steps=total_steps,
                            effective_batch=int(hp["batch_size"]) * int(hp["grad_accum"]) * max(1, dev["count"]),
                            stage_index=i)
        trainer = Trainer(
            model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds if has_val else None,
            data_collator=PadCollator(tokenizer.pad_token_id, 8 if on_cuda else None),
            processing_class=tokenizer, callbacks=[cb],
        )
        trainer.remove_callback(PrinterCallback)  # progress goes through `report`, not stdout
        t0 = time.perf_counter()
        out = trainer.train(resume_from_checkpoint=resume)
        elapsed = time.perf_counter() - t0
        if cb.stopped:
            stopped = True
            result["stopped_at"] = step_offset + trainer.state.global_step
            break
        stage_result = {
            "stage": i, "steps": steps, "train_loss": float(out.training_loss),
            "final_loss": _last_loss(trainer), "seconds": round(elapsed, 2),
            "tokens": stats["tokens"], "trained_tokens": stats["trained_tokens"], "truncated": stats["truncated"],
        }
        if has_val:
            ev = trainer.evaluate()
            stage_result["eval_loss"] = float(ev["eval_loss"])
            stage_result["perplexity"] = _ppl(stage_result["eval_loss"])
        main = trainer.is_world_process_zero()  # under torchrun only rank 0 writes files
        tmp = stage_dir / ".final-tmp"
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        trainer.accelerator.wait_for_everyone()
        trainer.save_model(str(tmp))
        if main:
            tokenizer.save_pretrained(str(tmp))
            shutil.rmtree(final_dir, ignore_errors=True)
            os.replace(tmp, final_dir)
            (stage_dir / "DONE").write_text(json.dumps(stage_result))
        trainer.accelerator.wait_for_everyone()
        result["stages"].append(stage_result)
        start_from = str(final_dir)
        step_offset += steps
    result["stopped"] = stopped
    result["world_size"] = trainer.args.world_size if trainer is not None else 1
    if stopped:
        return result
    last = result["stages"][-1]
    result["final_dir"] = start_from
    result["final_loss"] = last.get("final_loss")
    if last.get("eval_loss") is not None:
        result["eval_loss"] = last["eval_loss"]
        result["perplexity"] = last["perplexity"]
    result["memory"] = memory_mb()
    if trainer is not None and not trainer.is_world_process_zero():
        return result
    if job.evaluate and trainer is not None:
        from workers.engine.evaluate import evaluate_after_training

        try:
            result["evaluation"] = evaluate_after_training(job, trainer.model, tokenizer)
        except TrainingOOM:
            raise
        except Exception as exc:  # evaluation must not lose a finished training
            log.exception("evaluation failed")
            result["evaluation"] = {"error": f"{type(exc).__name__}: {exc}"}
    (job.output_dir / "result.json").write_text(json.dumps(result, default=str))
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def _last_loss(trainer) -> float | None:
    for entry in reversed(trainer.state.log_history):
        if "loss" in entry:
            return float(entry["loss"])
    return None
