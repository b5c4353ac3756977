"""Supervised fine-tuning with the transformers Trainer (+ peft LoRA). Knows nothing of Django.

One entry point, :func:`run_training`, runs a job made of one or more stages (a multi-stage
pipeline is an ordered list of stages; a plain run has one). Each stage continues from the
previous stage's weights. Output layout under ``job.output_dir``::

    scratch-base/              tokenizer + randomly initialised model (method "scratch")
    grow-base/                 the parent grown into the target size + grow.json, its check (method "grow")
    stage-<i>/checkpoint-<n>/  Trainer checkpoints (weights/adapter + optimizer, scheduler, RNG state)
    stage-<i>/final/           the stage's result (adapter folder for LoRA, full model otherwise)
    stage-<i>/DONE             written once the stage finished

Progress goes out through ``report(step, metrics)``, phases too: ``{"kind": "phase", "phase": p}`` with p
in loading, training, saving, evaluating (method "grow": growing, before loading). ``should_stop()`` is
polled after every optimizer step and during every evaluation after training (cooperative cancel in every phase: the weights trained so far
are kept); ``on_checkpoint(step, path, metrics)`` is told of every save.
Steps are numbered globally across stages so the loss curve is one line.

The package, by concern: `job` (Job, Stage, defaults, steps, errors), `devices` (device, memory, threads,
agreement between ranks), `models` (the model a stage trains, the from-scratch base), `checkpoints` (on
disk: newest complete, resume a finished stage), `progress` (the Trainer callback: metrics, phases, stop),
`recipe` (what a method does differently: its data, model, Trainer and metrics; preference training's
recipe is workers.engine.dpo), `loop` (run_training, for every local method). Import from the package: the
names below are its public surface.
"""
from workers.engine.sft.checkpoints import latest_checkpoint
from workers.engine.sft.devices import device_info, memory_mb
from workers.engine.sft.job import DEFAULTS, Job, Stage, StoppedByRequest, TrainingOOM, hp_with_defaults, plan
from workers.engine.sft.loop import run_training
from workers.engine.sft.models import load_causal_lm, scratch_prepare

__all__ = [
    "DEFAULTS", "Job", "Stage", "StoppedByRequest", "TrainingOOM", "device_info", "hp_with_defaults",
    "latest_checkpoint", "load_causal_lm", "memory_mb", "plan", "run_training", "scratch_prepare",
]
