"""The training loop: every stage of a job, one after the other, each continuing from the previous
stage's weights, resumed after a crash from the newest complete checkpoint. Knows nothing of Django.

Contract: see the package (workers/engine/sft/__init__.py) for the output layout, the phases and the
callbacks. `run_training(job, report=, should_stop=, on_checkpoint=)` returns the result dict (stages,
device, total_steps, stopped / stopped_at, final_dir, final_loss, eval_loss, perplexity, memory,
evaluation; DPO adds `preference`) and raises TrainingOOM, with advice, on out-of-memory. Every local
method runs through this loop; what a method does differently (its data, model, Trainer and metrics) is
its recipe (sft/recipe.py; DPO's in workers/engine/dpo)."""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Callable

from workers.engine.sft.checkpoints import last_loss, latest_checkpoint, load_trained, trained_steps
from workers.engine.sft.devices import agree, device_info, memory_mb, setup_threads
from workers.engine.sft.job import Job, StoppedByRequest, TrainingOOM
from workers.engine.sft.models import scratch_prepare
from workers.engine.sft.progress import make_callback, perplexity
from workers.engine.sft.recipe import recipe_for

log = logging.getLogger(__name__)


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
    from transformers import AutoTokenizer, PrinterCallback

    setup_threads()
    hp = job.hp
    recipe = recipe_for(job.method)  # what the method does differently (data, model, trainer, metrics)
    recipe.prepare(job)
    job.output_dir = Path(job.output_dir)
    job.output_dir.mkdir(parents=True, exist_ok=True)
    dev = device_info()
    if job.method == "scratch":
        job.base_model_path = scratch_prepare(job)
    elif job.method == "grow":  # the parent grown into the target size, its function checked (workers/engine/grow)
        from workers.engine.grow import grow_prepare

        job.base_model_path = grow_prepare(job, report=report)
    report(0, {"kind": "phase", "phase": "loading"})
    tokenizer = AutoTokenizer.from_pretrained(job.adapter_path or job.base_model_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    max_len = int(hp["max_seq_len"])

    # Tokenize every stage up front: total steps are known for ETA and the curve.
    report(0, {"kind": "phase", "phase": "tokenizing"})
    prepared = []
    for st in job.stages:
        train_ds, stats = recipe.tokenize(tokenizer, st.train, max_len=max_len)
        if len(train_ds) == 0:
            raise ValueError(recipe.empty_message)
        val_ds, _ = recipe.tokenize(tokenizer, st.validation, max_len=max_len) if st.validation else (None, None)
        prepared.append((train_ds, val_ds, stats, recipe.steps(len(train_ds), hp, st)))
    total_steps = sum(p[3] for p in prepared)

    start_from: str | None = None
    step_offset = 0
    result: dict = {"stages": [], "device": dev, "total_steps": total_steps}
    if job.method == "grow":  # parent and grown model's validation loss before training, sizes, noise
        from workers.engine.grow import grow_report

        result["grow"] = grow_report(job.base_model_path)
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
        model = recipe.model(job, i, start_from)
        on_cuda = dev["device"] == "cuda"
        has_val = val_ds is not None and len(val_ds) > 0
        save_steps = max(1, int(hp["save_steps"]))
        eval_steps = int(hp.get("eval_steps") or 0) or save_steps
        args = dict(
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
        cb = make_callback(report, should_stop, on_checkpoint, step_offset=step_offset, total_steps=total_steps,
                           effective_batch=int(hp["batch_size"]) * int(hp["grad_accum"]) * max(1, dev["count"]),
                           stage_index=i, metric_keys=recipe.metric_keys, lm_loss=recipe.lm_loss)
        trainer = recipe.trainer(job, model=model, args=args, train_ds=train_ds, val_ds=val_ds if has_val else None,
                                 tokenizer=tokenizer, callback=cb, on_cuda=on_cuda)
        trainer.remove_callback(PrinterCallback)  # progress goes through `report`, not stdout
        t0 = time.perf_counter()
        if latest is not None and trained_steps(latest) >= steps:
            # resumed (a relaunch) from the stage's final checkpoint: nothing left to train in this stage;
            # Trainer.train() would run the rest of the epoch ("step 5 / 4")
            report(step_offset + trained_steps(latest), {"kind": "resume", "stage": i})
            train_loss = load_trained(trainer, latest)
        else:
            train_loss = float(trainer.train(resume_from_checkpoint=resume).training_loss)
        elapsed = time.perf_counter() - t0
        if cb.stopped:
            stopped = True
            result["stopped_at"] = step_offset + trainer.state.global_step
            break
        cb.post_training = True
        stage_result = {
            "stage": i, "steps": steps, "train_loss": train_loss,
            "final_loss": last_loss(trainer), "seconds": round(elapsed, 2),
            "tokens": stats["tokens"], "trained_tokens": stats["trained_tokens"], "truncated": stats["truncated"],
            **recipe.stage_summary(trainer),
        }
        # the trained weights are written before the evaluation, so a cancel during it keeps them
        report(step_offset + steps, {"kind": "phase", "phase": "saving", "stage": i})
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
        if has_val:
            report(step_offset + steps, {"kind": "phase", "phase": "evaluating", "stage": i})
            try:
                if agree(should_stop(), trainer.args):
                    raise StoppedByRequest()
                ev = trainer.evaluate()
            except StoppedByRequest:
                stopped = True
                result["stopped_at"] = step_offset + trainer.state.global_step
                break
            stage_result["eval_loss"] = float(ev["eval_loss"])
            if recipe.lm_loss:
                stage_result["perplexity"] = perplexity(stage_result["eval_loss"])
            stage_result.update(recipe.eval_summary(ev))
        if main:
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
        if last.get("perplexity") is not None:
            result["perplexity"] = last["perplexity"]
    for key in recipe.result_keys:  # what a method adds (DPO: the last rewards, training and validation)
        if last.get(key):
            result[key] = last[key]
    result["memory"] = memory_mb()
    if trainer is not None and not trainer.is_world_process_zero():
        return result
    if job.evaluate and trainer is not None:
        from workers.engine.evaluate import evaluate_after_training

        report(step_offset, {"kind": "phase", "phase": "evaluating"})
        try:
            result["evaluation"] = evaluate_after_training(job, trainer.model, tokenizer, should_stop=should_stop)
        except StoppedByRequest:  # cancelled while evaluating: the trained weights stay in final_dir
            result["stopped"] = True
            result["stopped_at"] = step_offset
            return result
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
