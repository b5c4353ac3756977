"""What a training job is: its stages, its hyperparameters (defaults from the one table), the steps each
stage takes, and the errors the engine raises. Knows nothing of Django.

Contract: `Job` and `Stage` are plain dataclasses (JSON-serialisable through workers.engine.launch);
`hp_with_defaults(hp)` fills every missing or None hyperparameter from DEFAULTS (the hyperparameter
table's ENGINE_DEFAULTS); `steps_for` is the optimizer steps of one stage (max_steps wins over epochs) and
`plan` the token counts and steps of every stage. `TrainingOOM` carries advice for the user;
`StoppedByRequest` ends an evaluation that a cancel interrupted."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from workers.engine.data import tokenize_examples
from workers.engine.hyperparameters import ENGINE_DEFAULTS

# every hyperparameter's default comes from the one table (workers/engine/hyperparameters/table.py)
DEFAULTS = dict(ENGINE_DEFAULTS)


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
    method: str  # lora | full | scratch | dpo (examples are then preference pairs: workers.engine.dpo)
    #              | grpo (examples are then tasks with their answers or tests: workers.engine.grpo)
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


def steps_for(n_examples: int, hp: dict, stage: Stage) -> int:
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
        stats["steps"] = steps_for(len(ds), hp, st)
        stages.append(stats)
    return {"stages": stages, "total_steps": sum(s["steps"] for s in stages)}
