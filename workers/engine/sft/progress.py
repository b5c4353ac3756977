"""Progress out of the Trainer: one callback that reports phases, training and evaluation metrics and
checkpoints, and honours a cooperative stop after every optimizer step (and during the final evaluation).
Knows nothing of Django.

Contract: `make_callback(report, should_stop, on_checkpoint, step_offset=, total_steps=,
effective_batch=, stage_index=, metric_keys=, lm_loss=)` returns a transformers TrainerCallback. It calls
`report(step, metrics)` with steps numbered globally across stages: {"kind": "phase", "phase": "training"}
and {"kind": "resume"} at the start, {"kind": "train", loss, learning_rate, grad_norm, tokens_per_s, eta_s,
...} per logged step, {"kind": "eval", eval_loss, perplexity} per evaluation (both with a method's
`metric_keys`, e.g. DPO's rewards/margins; no perplexity when the loss is not a language-model loss);
`on_checkpoint(step, path, metrics)` per save.
When should_stop() turns true it asks the Trainer to save and stop (`.stopped` is then True); once
`.post_training` is set, a stop raises StoppedByRequest from inside the evaluation."""
from __future__ import annotations

import fnmatch
import math
import time
from pathlib import Path

from workers.engine.sft.devices import agree, memory_mb
from workers.engine.sft.job import StoppedByRequest


def make_callback(report, should_stop, on_checkpoint, *, step_offset: int, total_steps: int, effective_batch: int,
                  stage_index: int, metric_keys: tuple[str, ...] = (), lm_loss: bool = True):
    """`metric_keys`: logged metrics a method adds (DPO's rewards/margins, ...; a key with * is a pattern, as
    GRPO's rewards/*/mean), reported under the same names in train points and, from `eval_<key>`, in eval
    points; `lm_loss`: the loss is a language-model loss (eval points then carry its perplexity)."""
    from transformers import TrainerCallback

    exact = tuple(k for k in metric_keys if "*" not in k)
    patterns = tuple(k for k in metric_keys if "*" in k)  # GRPO's rewards/*/mean: one per reward component

    def extra(logs: dict, prefix: str = "") -> dict:
        out = {key: float(logs[prefix + key]) for key in exact if logs.get(prefix + key) is not None}
        if patterns:
            for name, value in logs.items():
                key = name[len(prefix):] if name.startswith(prefix) else None
                if key and value is not None and any(fnmatch.fnmatchcase(key, p) for p in patterns):
                    out[key] = float(value)
        return out

    class HubCallback(TrainerCallback):
        def __init__(self):
            self.t0 = None
            self.tokens0 = 0
            self.step0 = 0
            self.stopped = False
            self.last_eval_loss = None
            self.post_training = False

        def on_train_begin(self, args, state, control, **kw):
            report(step_offset + state.global_step, {"kind": "phase", "phase": "training", "stage": stage_index})
            self.t0 = time.perf_counter()
            self.tokens0 = state.num_input_tokens_seen or 0
            self.step0 = state.global_step
            # where this process starts (after a crash: the checkpoint's step), so the caller can drop
            # anything it recorded after that point and the curve continues from the weights
            report(step_offset + state.global_step, {"kind": "resume", "stage": stage_index})

        def on_prediction_step(self, args, state, control, **kw):
            # after training (the stage's final evaluation) a cancel interrupts the evaluation itself
            if self.post_training and agree(should_stop(), args):
                raise StoppedByRequest()

        def on_step_end(self, args, state, control, **kw):
            if agree(should_stop(), args):
                self.stopped = True
                control.should_training_stop = True
                control.should_save = True
            return control

        def on_log(self, args, state, control, logs=None, **kw):
            logs = logs or {}
            step = step_offset + state.global_step
            if "eval_loss" in logs:
                self.last_eval_loss = float(logs["eval_loss"])
                point = {"kind": "eval", "eval_loss": self.last_eval_loss, "stage": stage_index}
                if lm_loss:
                    point["perplexity"] = perplexity(self.last_eval_loss)
                report(step, {**point, **extra(logs, "eval_")})
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
                **extra(logs),
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


def perplexity(loss: float | None) -> float | None:
    if loss is None:
        return None
    try:
        return math.exp(min(loss, 50.0))
    except OverflowError:  # pragma: no cover
        return None
