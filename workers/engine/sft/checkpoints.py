"""A stage's Trainer checkpoints on disk: the newest complete one (half-written ones removed), how far
one got, and loading a finished stage's checkpoint without training. Knows nothing of Django.

Contract: `latest_checkpoint(stage_dir)` is the newest `checkpoint-<n>` whose trainer_state.json reads
(incomplete ones are deleted); `trained_steps(checkpoint)` its global step; `load_trained(trainer,
checkpoint)` loads its weights and trainer state and returns the stage's train loss; `last_loss(trainer)`
the last logged training loss."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path


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


def trained_steps(checkpoint: Path) -> int:
    return int(json.loads((checkpoint / "trainer_state.json").read_text()).get("global_step") or 0)


def load_trained(trainer, checkpoint: Path) -> float:
    """Load a stage's final checkpoint (weights and trainer state) without training; its train loss."""
    from transformers import TrainerState

    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    summary = next((e for e in reversed(trainer.state.log_history) if "train_loss" in e), None)
    return float(summary["train_loss"]) if summary else float(last_loss(trainer) or 0.0)


def last_loss(trainer) -> float | None:
    for entry in reversed(trainer.state.log_history):
        if "loss" in entry:
            return float(entry["loss"])
    return None
