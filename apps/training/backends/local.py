"""The local backend: runs train on the hub's own workers (Dramatiq queue `gpu`).

Cancel is cooperative: `run_request_cancel` sets `cancel_requested`, the engine's `should_stop()` sees it
after the current optimizer step, saves a checkpoint and stops. Multi-GPU runs (hyperparameter `gpus`)
go through `workers.engine.launch` (torchrun) on the same code path."""
from __future__ import annotations


def local_run_enqueue(run_id: int) -> None:
    from workers.training import train_run

    train_run.send(run_id)


def local_run_cancel(*, run) -> None:
    """Nothing to call: the worker polls the flag every step (a queued run was already cancelled)."""
    return None
